"""A message with a megabyte of distinct words is stored and searchable on both backends (PostgreSQL's word
index has a 1 MiB tsvector limit: without a cap the delivery was refused, issue found by the blob-store work)."""

from __future__ import annotations

import random

from janusmail.store.search import ast as q


def test_megabyte_of_words_is_stored_and_found(store) -> None:  # noqa: ANN001
    acct = store.accounts.create("big@example.test", "hash")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    rnd = random.Random(5)
    words = " ".join(f"w{rnd.getrandbits(32):08x}" for _ in range(110_000))  # ~1.1 MB, ~all distinct
    raw = ("From: a@example.test\r\nTo: big@example.test\r\nSubject: huge\r\n"
           "Content-Type: text/plain; charset=us-ascii\r\n\r\nneedleword " + words + "\r\n").encode()
    d = store.emails.ingest(acct.id, raw, (inbox.id,))
    assert store.emails.raw(acct.id, d.email_id) == raw
    rows = store.search.mailbox_search(acct.id, inbox.id, q.Text("body", ("needleword",)), below_uid=10**9)
    assert [uid for uid, _ in rows] == [d.uids[inbox.id]]
