"""The schema of the write path (issue 10: every page a write dirties is written and synced under the one write
lock).

Migration 0021: on SQLite the small tables every IMAP write touches keep their rows in their primary key
(``WITHOUT ROWID``), rebuilt with their rows, keys and indexes intact; down and up again round-trips a store
that has mail in every one of them. On PostgreSQL the migration does nothing, and the same round trip must
leave the data as it was.

Migration 0022: the indexes no query reads are gone (and come back on downgrade)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from janusmail.store import db
from janusmail.store.db import alembic_config
from tests.mailgen import simple

CLUSTERED = ("messages", "email_keywords", "thread_refs", "vanished", "threads")


def _clustered(engine: sa.Engine, table: str) -> bool:
    with engine.connect() as conn:
        sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                   (table,)).scalar_one()
    return sql.rstrip().upper().endswith("WITHOUT ROWID")


def _indexes(engine: sa.Engine, table: str) -> set[str]:
    return {ix["name"] for ix in sa.inspect(engine).get_indexes(table)}


def _rows(engine: sa.Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {t: sorted(tuple(map(str, r)) for r in conn.exec_driver_sql(f"SELECT * FROM {t}"))
                for t in CLUSTERED}


def _migrate(store, target: str) -> None:  # noqa: ANN001
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.upgrade if target == "head" else command.downgrade)(cfg, target)


def test_small_tables_are_clustered_and_survive_down_and_up(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = store.mailboxes.by_path(a, ["INBOX"])
    for n in range(1, 6):
        store.emails.ingest(a, simple(n), (inbox.id,))
    store.memberships.store_flags(a, inbox.id, [(1, 3)], "add", ["$seen", "Project-X"], None)
    store.memberships.store_flags(a, inbox.id, [(2, 2)], "add", [], True)
    assert store.memberships.expunge(a, inbox.id) == [2]
    sqlite = db.is_sqlite(store.engine)
    if sqlite:
        assert all(_clustered(store.engine, t) for t in CLUSTERED)
    before = _rows(store.engine)
    assert all(before[t] for t in CLUSTERED)  # every table has rows to carry
    indexes = {t: _indexes(store.engine, t) for t in CLUSTERED}

    _migrate(store, "0020")
    if sqlite:
        assert not any(_clustered(store.engine, t) for t in CLUSTERED)
    assert _rows(store.engine) == before
    assert all(indexes[t] <= _indexes(store.engine, t) for t in CLUSTERED)  # (0022 dropped some)

    _migrate(store, "head")
    if sqlite:
        assert all(_clustered(store.engine, t) for t in CLUSTERED)
    assert _rows(store.engine) == before
    assert {t: _indexes(store.engine, t) for t in CLUSTERED} == indexes

    # the rebuilt tables take writes and keep their keys: a new message gets the next UID, a duplicate key
    # is still refused by the primary key
    store.emails.ingest(a, simple(6), (inbox.id,))
    store.memberships.store_flags(a, inbox.id, [(6, 6)], "add", ["Project-X"], None)
    with store.engine.connect() as conn:
        uids = [r[0] for r in conn.exec_driver_sql("SELECT uid FROM messages ORDER BY uid")]
        keywords = conn.exec_driver_sql("SELECT count(*) FROM email_keywords WHERE keyword = 'project-x'").scalar()
    assert uids == [1, 3, 4, 5, 6]
    assert keywords == 3
    with store.engine.begin() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.exec_driver_sql("INSERT INTO vanished (mailbox_id, uid, modseq) "
                             "SELECT mailbox_id, uid, modseq FROM vanished")


#: Indexes migration 0022 drops: (table, index, dropped on PostgreSQL too)
UNUSED = (("emails", "ix_emails_account_modseq", True), ("emails", "ix_emails_meta", True),
          ("email_keywords", "ix_email_keywords_keyword", False))


def test_unused_indexes_are_dropped_and_come_back_on_downgrade(store, account) -> None:  # noqa: ANN001
    sqlite = db.is_sqlite(store.engine)
    gone = {(t, ix) for t, ix, everywhere in UNUSED if sqlite or everywhere}
    kept = {(t, ix) for t, ix, _ in UNUSED} - gone
    present = {(t, ix) for t, ix, _ in UNUSED if ix in _indexes(store.engine, t)}
    assert present == kept
    store.emails.ingest(account.id, simple(1), (store.mailboxes.by_path(account.id, ["INBOX"]).id,))
    _migrate(store, "0021")
    assert all(ix in _indexes(store.engine, t) for t, ix, _ in UNUSED)
    _migrate(store, "head")
    assert {(t, ix) for t, ix, _ in UNUSED if ix in _indexes(store.engine, t)} == kept
