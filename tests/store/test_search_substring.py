"""The substring index below the doors (issue 11 items 3-5), on SQLite and PostgreSQL: migration 0004
backfills mail stored before it, the index follows every delete (expunge-like destroys and account deletion),
short strings scan, trace fields stay out of TEXT but not out of HEADER, and JMAP keeps whole words."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from janusmail.store.db import alembic_config
from janusmail.store.model import IngestItem
from janusmail.store.search import ast as q

MESSAGES = [
    b"From: Ann <ann@example.test>\r\nTo: team:;\r\nSubject: plain\r\nReceived: from relay.example.test\r\n"
    b"X-Header: qwertyuiop\r\n\r\nasdfghjkl zxcvbnm\r\n",
    b"From: bob@example.test\r\nTo: ann@example.test\r\nSubject: =?utf-8?b?"
    + base64.b64encode(b"plainhiddenword") + b"?=\r\n\r\nBrown foxes jump\r\n",
    b"From: carol@example.test\r\nTo: ann@example.test\r\nSubject: third\r\n\r\nnothing to see\r\n",
]


def _migrate(store, down: bool = False) -> None:  # noqa: ANN001
    """Down to the revision before 0004 (and back up to head)."""
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        if down:
            command.downgrade(cfg, ScriptDirectory.from_config(cfg).get_revision("0004").down_revision)
        else:
            command.upgrade(cfg, "head")


def _uids(store, acct: str, box: str, cond: q.Condition) -> set[int]:  # noqa: ANN001
    return {uid for uid, _ in store.search.mailbox_search(acct, box, cond)}


def _check_index(store) -> None:  # noqa: ANN001
    """SQLite: the trigram index agrees with its content table (FTS5 raises otherwise)."""
    if store.sqlite:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO email_trgm(email_trgm, rank) VALUES ('integrity-check', 1)")


@pytest.mark.parametrize("backfill", [False, True], ids=["ingested", "backfilled"])
def test_substring_index(store, backfill: bool) -> None:  # noqa: ANN001
    acct = store.accounts.create("ann@example.test", "x").id
    box = store.mailboxes.by_path(acct, ["INBOX"]).id
    got = store.emails.ingest_many(acct, [IngestItem(raw, (box,), (), 1000 + i) for i, raw in enumerate(MESSAGES)])
    if backfill:  # mail stored before migration 0004: the migration indexes it
        _migrate(store, down=True)
        _migrate(store)
    cases = [
        (q.Contains("text", "sdfghjk"), {1}),
        (q.Contains("body", "SDFGHJK"), {1}),
        (q.Contains("text", "qwertyuiop"), {1}),       # only in X-Header
        (q.Contains("body", "qwertyuiop"), set()),
        (q.Contains("text", "hiddenwor"), {2}),         # only in the decoded encoded word
        (q.Contains("text", "rown fox"), {2}),
        (q.Contains("text", "wn"), {2}),                # short: a scan
        (q.Contains("text", "relay.example"), set()),   # a trace field: not in TEXT...
        (q.Header("received", "relay.example"), {1}),   # ...but in HEADER
        (q.Header("to", "team"), {1}),
        (q.Header("x-header", "wertyu"), {1}),
        (q.Header("x-header", "nope"), set()),
        (q.Not(q.Header("subject")), set()),
        (q.Not(q.Header("x-header")), {2, 3}),
    ]
    wrong = [(c, w, g) for c, w in cases if (g := _uids(store, acct, box, c)) != w]
    assert not wrong, wrong
    _check_index(store)
    # JMAP keeps whole words: "rown" is no word of any email
    assert store.search.email_query(acct, q.EmailQuery(q.Text("all", ("rown",)))).ids == []
    assert store.search.email_query(acct, q.EmailQuery(q.Text("all", ("brown",)))).ids == [got[1].email_id]
    # a destroyed email leaves the index
    store.emails.destroy(acct, [got[0].email_id])
    assert _uids(store, acct, box, q.Contains("text", "sdfghjk")) == set()
    assert _uids(store, acct, box, q.Contains("text", "rown fox")) == {2}
    _check_index(store)
    # so do the emails of a deleted account (rows cascade)
    other = store.accounts.create("other@example.test", "x").id
    obox = store.mailboxes.by_path(other, ["INBOX"]).id
    store.emails.ingest_many(other, [IngestItem(MESSAGES[0], (obox,), (), 5000)])
    store.accounts.delete(other)
    _check_index(store)
    if store.sqlite:
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM email_text")).scalar() == 2
