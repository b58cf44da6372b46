"""SQLite's full-text indexes kept up to date in batches (janusmail/store/search/queue.py, issue 10).

New mail waits in ``search_queue`` and destroyed mail's index rows in ``search_trash``; the background moves
them a batch at a time. What must hold whatever the background did: every search finds all mail stored before
it began and none that was destroyed, index rowids are never given twice, and the indexes agree with themselves.
On PostgreSQL mail is indexed in its write: the same searches, nothing queued.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from janusmail.store.search import ast as q
from janusmail.store.search import queue
from tests.mailgen import simple

from .contract.util import box


def _count(store: Any, table: str) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()  # noqa: S608


def _imap(store: Any, account_id: str, mailbox_id: str, value: str) -> list[int]:
    """IMAP SEARCH BODY (the trigram index)."""
    return [uid for uid, _ in store.search.mailbox_search(account_id, mailbox_id, q.Contains("body", value),
                                                          below_uid=10**9)]


def _jmap(store: Any, account_id: str, word: str) -> list[str]:
    """JMAP Email/query {text: word} (the word index)."""
    return store.search.email_query(account_id, q.EmailQuery(q.Text("all", (word,))), 0, 50).ids


def _three_indexed_then_expunged(store: Any, account_id: str, mailbox_id: str, text: str, last: int) -> list[int]:
    """UIDs 1-3 with bodies ``text1``..``text3``, indexed; then UIDs 1..``last`` expunged (their rows trashed)."""
    for i in range(1, 4):
        store.emails.ingest(account_id, simple(i, body=f"{text}{i}"), (mailbox_id,))
    queue.drain(store)
    store.memberships.store_flags(account_id, mailbox_id, [(1, last)], "add", [], True)
    return store.memberships.expunge(account_id, mailbox_id)


def _intact(store: Any) -> None:
    """FTS5 raises when an index disagrees with itself."""
    with store.engine.connect() as conn:
        for table in ("email_fts", "email_trgm"):
            conn.execute(sa.text(f"INSERT INTO {table}({table}) VALUES ('integrity-check')"))


def test_mail_is_queued_and_every_search_indexes_what_waits_first(store: Any, account: Any) -> None:
    a, inbox = account.id, box(store, account.id)
    d = store.emails.ingest(a, simple(1, body="a zanzibar quokka"), (inbox.id,))
    if store.sqlite:
        assert _count(store, "search_queue") == 1 and _count(store, "email_fts") == 0
    assert _imap(store, a, inbox.id, "zibar quo") == [1]  # indexed first, then searched
    if store.sqlite:
        assert _count(store, "search_queue") == 0 and _count(store, "email_fts") == 1
    e = store.emails.ingest(a, simple(2, body="another quokka"), (inbox.id,))
    assert sorted(_jmap(store, a, "quokka")) == sorted([d.email_id, e.email_id])
    snippets, missing = store.search.snippets(a, [d.email_id], q.Text("body", ("zanzibar",)))
    assert missing == [] and "<mark>zanzibar</mark>" in (snippets[0].preview or "")
    if store.sqlite:
        assert _count(store, "search_queue") == 0
        _intact(store)


def test_searches_that_read_no_index_wait_for_nothing(store: Any, account: Any) -> None:
    """Flags, mailboxes, subjects, short header values never read the full-text indexes: such a search
    leaves the queue to the background (it never waits for the writer)."""
    if not store.sqlite:
        return
    a, inbox = account.id, box(store, account.id)
    store.emails.ingest(a, simple(1), (inbox.id,))
    assert [uid for uid, _ in store.search.mailbox_search(a, inbox.id, q.Keyword("$seen"), below_uid=10)] == []
    assert len(store.search.email_query(a, q.EmailQuery(q.InMailbox(inbox.id)), 0, 10).ids) == 1
    assert len(_imap_rows(store, a, inbox.id, q.SubjectContains("number"))) == 1
    assert _count(store, "search_queue") == 1


def _imap_rows(store: Any, account_id: str, mailbox_id: str, cond: Any) -> list[tuple[int, int]]:
    return store.search.mailbox_search(account_id, mailbox_id, cond, below_uid=10**9)


def test_which_conditions_read_the_indexes() -> None:
    from janusmail.store.search.compile import reads_text_index

    reads = [q.Text("all", ("word",)), q.Contains("body", "ab"), q.Contains("text", "abcdef"),
             q.Header("subject", "hello"), q.Address("from", ("alice",), words=True),
             q.Not(q.Contains("body", "x")), q.Or((q.Keyword("$seen"), q.Text("body", ("w",))))]
    not_reads = [q.All(), q.Keyword("$seen"), q.InMailbox("F1"), q.SubjectContains("hello"),
                 q.Text("all", ()), q.Contains("body", ""), q.Header("subject", "hi"), q.Header("received", "hello"),
                 q.Header("subject", None), q.Address("from", ("alice",)), q.Size(">", 10)]
    assert all(reads_text_index(c) for c in reads), [c for c in reads if not reads_text_index(c)]
    assert not any(reads_text_index(c) for c in not_reads), [c for c in not_reads if reads_text_index(c)]


def test_jmap_results_include_every_email_of_the_state_they_report(store: Any, account: Any,
                                                                    monkeypatch: Any) -> None:
    """Mail stored after the search indexed the queue but before its snapshot began is in the state the
    results are reported under: the query indexes and looks again instead of missing it (and caching that,
    and /queryChanges since that state never reporting it)."""
    if not store.sqlite:
        return
    from janusmail.store.search import service

    a, inbox = account.id, box(store, account.id)
    store.emails.ingest(a, simple(1, body="early kestrel"), (inbox.id,))
    real, late = service.ensure_indexed, []

    def then_more_mail(s: Any) -> None:
        real(s)
        if not late:  # (once: the second look finds it queued, indexes it, and succeeds)
            late.append(store.emails.ingest(a, simple(2, body="late kestrel"), (inbox.id,)))

    monkeypatch.setattr(service, "ensure_indexed", then_more_mail)
    query = q.EmailQuery(q.Text("all", ("kestrel",)))
    out = store.search.email_query(a, query, 0, 10)
    assert late and late[0].email_id in out.ids and len(out.ids) == 2
    assert out.state == store.search.email_query(a, query, 0, 10).state
    changes = store.search.query_changes(a, query, out.state)
    assert changes.total == 2


def test_a_query_that_never_settles_says_try_again(store: Any, account: Any, monkeypatch: Any) -> None:
    if not store.sqlite:
        return
    from janusmail.store.search import service
    from janusmail.store.search.service import SearchError

    a, inbox = account.id, box(store, account.id)
    real, n = service.ensure_indexed, [0]

    def always_more_mail(s: Any) -> None:
        real(s)
        n[0] += 1
        store.emails.ingest(a, simple(n[0], body="endless"), (inbox.id,))

    monkeypatch.setattr(service, "ensure_indexed", always_more_mail)
    try:
        store.search.email_query(a, q.EmailQuery(q.Text("all", ("endless",))), 0, 10)
    except SearchError as exc:
        assert exc.code == "serverUnavailable"
    else:
        raise AssertionError("a query whose mail never settled answered")
    assert n[0] == service._SETTLE_TRIES  # noqa: SLF001


def test_destroyed_mail_is_never_found_and_its_rows_go_in_a_batch(store: Any, account: Any) -> None:
    if not store.sqlite:
        return
    a, inbox = account.id, box(store, account.id)
    assert _three_indexed_then_expunged(store, a, inbox.id, "shared walrus number", 2) == [1, 2]
    assert _count(store, "search_trash") == 2 and _count(store, "email_fts") == 3  # still in the indexes
    assert _imap(store, a, inbox.id, "walrus") == [3] and len(_jmap(store, a, "walrus")) == 1
    assert store.write_call(queue.index_queued, store) is False  # one batch, not full
    assert _count(store, "search_trash") == 0 and _count(store, "email_fts") == 1 and _count(store, "email_trgm") == 1
    _intact(store)


def test_mail_destroyed_while_queued_is_never_tokenized(store: Any, account: Any) -> None:
    if not store.sqlite:
        return
    a, inbox = account.id, box(store, account.id)
    store.emails.ingest(a, simple(1, body="fleeting"), (inbox.id,))
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", [], True)
    store.memberships.expunge(a, inbox.id)
    assert _count(store, "search_queue") == 0 and _count(store, "search_trash") == 0
    assert _imap(store, a, inbox.id, "fleeting") == [] and _count(store, "email_text") == 0


def test_rowids_of_trashed_rows_are_not_given_again(store: Any, account: Any) -> None:
    """The newest indexed email destroyed: its rows still hold their rowids until the batch; a new email must
    get others, or its index rows would collide with them (or, once the batch ran, be deleted with them)."""
    if not store.sqlite:
        return
    a, inbox = account.id, box(store, account.id)
    store.emails.ingest(a, simple(1, body="first"), (inbox.id,))
    store.emails.ingest(a, simple(2, body="newest"), (inbox.id,))
    queue.drain(store)
    store.memberships.store_flags(a, inbox.id, [(2, 2)], "add", [], True)
    store.memberships.expunge(a, inbox.id)
    # Its word-index row gone already (as for mail indexed before migration 0011, whose two rowids may differ),
    # the trash is the only place that still knows rowid 2 is taken (in the trigram index).
    with store.transaction() as conn:
        conn.exec_driver_sql("DELETE FROM email_fts WHERE rowid = 2")
    store.emails.ingest(a, simple(3, body="replacement"), (inbox.id,))
    assert _imap(store, a, inbox.id, "replacement") == [3]  # indexed beside the trashed rows
    queue.drain(store)
    assert _imap(store, a, inbox.id, "replacement") == [3] and _imap(store, a, inbox.id, "newest") == []
    assert len(_jmap(store, a, "replacement")) == 1
    _intact(store)


def test_batches_stop_at_their_size(store: Any, account: Any, monkeypatch: Any) -> None:
    """A batch takes at most BATCH_ROWS emails and about BATCH_BYTES of text (always at least one email)."""
    if not store.sqlite:
        return
    a, inbox = account.id, box(store, account.id)
    monkeypatch.setattr(queue, "BATCH_ROWS", 3)
    monkeypatch.setattr(queue, "BATCH_BYTES", 2000)
    for i in range(5):
        store.emails.ingest(a, simple(i, body="x" * 400 + f" tail{i}"), (inbox.id,))
    with store.transaction() as conn:
        assert queue._index_batch(conn, store.sql, 3, 2000) == (3, True)  # noqa: SLF001 - full: more may wait
    with store.transaction() as conn:
        # one email over the size still goes; cut by the size, the batch says more may wait
        assert queue._index_batch(conn, store.sql, 3, 10) == (1, True)  # noqa: SLF001
    assert _count(store, "search_queue") == 1
    assert store.write_call(queue.index_queued, store) is False  # (the last one: not full)
    assert _count(store, "search_queue") == 0


def test_refresh_statistics_indexes_a_bulk_load(store: Any, account: Any) -> None:
    a, inbox = account.id, box(store, account.id)
    from janusmail.store.model import IngestItem

    store.emails.ingest_many(a, [IngestItem(simple(i, body=f"bulk{i} item"), (inbox.id,)) for i in range(30)])
    store.refresh_statistics()
    if store.sqlite:
        assert _count(store, "search_queue") == 0 and _count(store, "email_fts") == 30
    assert _imap(store, a, inbox.id, "bulk17 ") == [18]


async def test_the_background_indexer_empties_queue_and_trash(store: Any, account: Any) -> None:
    if not store.sqlite:
        return
    a, inbox = account.id, box(store, account.id)
    for i in range(3):
        store.emails.ingest(a, simple(i, body="background"), (inbox.id,))
    idle = asyncio.Event()
    task = asyncio.create_task(queue.index_forever(store, idle_seconds=0.01, idle=idle))
    try:
        await asyncio.wait_for(idle.wait(), 30)
        assert _count(store, "search_queue") == 0 and _count(store, "email_fts") == 3
        store.memberships.store_flags(a, inbox.id, [(1, 3)], "add", [], True)
        store.memberships.expunge(a, inbox.id)
        assert _count(store, "search_trash") == 3
        idle.clear()
        while _count(store, "search_trash"):
            await asyncio.wait_for(idle.wait(), 30)
            idle.clear()
        assert _count(store, "email_fts") == 0 and _count(store, "email_trgm") == 0
    finally:
        task.cancel()


def test_the_migration_down_and_up_keeps_the_indexes_whole(store: Any, account: Any) -> None:
    """Down to 0019: what waits is indexed, what is trashed unindexed, and the trigger deletes trigram rows
    again (nothing else would); up again: the queue and the trash are back, empty."""
    if not store.sqlite:
        return
    from alembic import command

    from janusmail.store.db import alembic_config

    a, inbox = account.id, box(store, account.id)
    _three_indexed_then_expunged(store, a, inbox.id, "migrating heron", 1)
    store.emails.ingest(a, simple(4, body="migrating heron4"), (inbox.id,))  # queued
    assert _count(store, "search_trash") == 1 and _count(store, "search_queue") == 1
    cfg = alembic_config()
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0019")
    with store.engine.connect() as conn:
        tables = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master")}
        trigger = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE name = 'email_text_ad'").scalar()
    assert "search_queue" not in tables and "search_trash" not in tables
    assert "DELETE FROM email_trgm" in trigger
    assert _count(store, "email_fts") == 3 and _count(store, "email_trgm") == 3
    _intact(store)
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    assert _count(store, "search_queue") == 0 and _count(store, "search_trash") == 0
    assert _imap(store, a, inbox.id, "heron") == [2, 3, 4]
