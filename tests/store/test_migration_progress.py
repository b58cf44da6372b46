"""store.migration_progress: the mark moves with its batch or not at all; digests count \\Deleted copies; the
marks are per account and source and go with the account. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import pytest

from janusmail.store.migration_progress import Position
from janusmail.store.model import IngestItem, NotFound


def test_mark_moves_in_the_batch_transaction(store, account):  # noqa: ANN001
    progress = store.migration_progress
    inbox = store.mailboxes.by_path(account.id, ["INBOX"]).id
    assert progress.positions(account.id, "src") == {}
    progress.ingest_batch(account.id, "src", "Box", Position(7, 0), [])  # an empty mailbox: the mark alone
    assert progress.positions(account.id, "src") == {"Box": Position(7, 0)}

    items = [IngestItem(b"Subject: %d\r\n\r\nx\r\n" % i, (inbox,), (), None, i == 1) for i in range(3)]
    done = progress.ingest_batch(account.id, "src", "INBOX", Position(42, 3),
                                 [store.emails.prepare(it) for it in items])
    assert len(done) == 3 and progress.positions(account.id, "src")["INBOX"] == Position(42, 3)

    # A batch the store refuses leaves neither messages nor a moved mark.
    bad = IngestItem(b"Subject: lost\r\n\r\nx\r\n", ("no-such-mailbox",))
    with pytest.raises(NotFound):
        progress.ingest_batch(account.id, "src", "INBOX", Position(42, 9), [store.emails.prepare(bad)])
    assert progress.positions(account.id, "src")["INBOX"] == Position(42, 3)
    assert store.mailboxes.recount(account.id)[inbox].messages == 3

    # Bytes already in the mailbox, the \Deleted copy included; per mailbox.
    digests = [hashlib.sha256(it.raw).hexdigest() for it in items] + ["0" * 64]
    assert progress.digests_in(account.id, inbox, digests) == set(digests[:3])
    sent = store.mailboxes.by_path(account.id, ["Sent"]).id
    assert progress.digests_in(account.id, sent, digests) == set()

    # Per source and per account; gone with the account.
    other = store.accounts.create("bob@example.test", "x")
    assert progress.positions(account.id, "elsewhere") == {} and progress.positions(other.id, "src") == {}
    store.accounts.delete(account.id)
    assert progress.positions(account.id, "src") == {}
