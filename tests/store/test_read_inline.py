"""``Store.read_inline``: a small read on the event loop's own thread (SQLite), never a write there.

Issue 10: the hop of every small IMAP read to a reader thread and back cost more than the read (context switches
were a third of the server's CPU under the logged-in stress profile). These tests pin what makes running reads on
the loop safe: on SQLite the read runs on the caller's thread; a read that finds it must write (IMAP4rev1's
\\Recent claim through ``write_call``, or a ``write``/``transaction`` of its own) is stopped before it writes
anything and run again, whole, on a reader thread, so the loop never waits for the write lock or the writer lane;
a ``@writes`` method still goes to the writer lane; PostgreSQL (a network round trip per read) always hops.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from janusmail.store.model import NotFound
from janusmail.store.writes import writes
from tests.mailgen import simple

from .contract.util import box


async def test_a_read_runs_on_the_callers_thread_on_sqlite_only(store: Any, account: Any) -> None:
    here = threading.get_ident()
    ran_on: list[int] = []

    def read(account_id: str) -> list[str]:
        ran_on.append(threading.get_ident())
        return sorted(b.name for b in store.mailboxes.list(account_id))

    assert "INBOX" in await store.read_inline(read, account.id)
    assert (ran_on[0] == here) is store.sqlite, ran_on
    assert len(ran_on) == 1


async def test_a_read_that_must_write_finishes_on_a_reader_thread(store: Any, account: Any) -> None:
    """The claim is made once, on a reader thread: the attempt on the loop stopped before it wrote."""
    inbox = box(store, account.id)
    store.emails.ingest(account.id, simple(1), [inbox.id])
    here = threading.get_ident()
    ran_on: list[int] = []

    def select(mailbox_id: str) -> Any:
        ran_on.append(threading.get_ident())
        return store.messages.mailbox_snapshot(account.id, mailbox_id, claim_recent=True)

    snap = await store.read_inline(select, inbox.id)
    assert snap is not None and snap.recent_from == 1 and list(snap.uids) == [1]
    if store.sqlite:
        assert ran_on[0] == here and len(ran_on) == 2 and ran_on[1] != here
    else:
        assert len(ran_on) == 1 and ran_on[0] != here
    # claimed once: a second claim finds nothing new
    again = store.messages.mailbox_snapshot(account.id, inbox.id, claim_recent=True)
    assert again is not None and again.recent_from == 2


@pytest.mark.parametrize("how", ["write", "transaction"])
async def test_a_read_that_opens_a_write_of_its_own_leaves_the_loop(store: Any, account: Any, how: str) -> None:
    here = threading.get_ident()
    ran_on: list[int] = []

    def read_then_write(account_id: str) -> int:
        ran_on.append(threading.get_ident())
        if how == "write":
            with store.write(account_id) as tx:
                return tx.modseq
        with store.transaction() as conn:
            return 1 if conn is not None else 0

    assert await store.read_inline(read_then_write, account.id)
    assert ran_on[-1] != here  # the write itself ran on a reader thread
    if store.sqlite:
        assert ran_on[0] == here and len(ran_on) == 2
    # and the loop's thread may still write outside an inline read (the flag was cleared)
    with store.write(account.id) as tx:
        assert tx.modseq


async def test_a_writes_method_goes_to_the_writer_lane(store: Any, account: Any) -> None:
    lanes: list[str] = []

    @writes
    def stamp(account_id: str) -> int:
        lanes.append(threading.current_thread().name)
        with store.write(account_id) as tx:
            return tx.modseq

    assert await store.read_inline(stamp, account.id)
    assert lanes and lanes[0].startswith("store-write"), lanes


async def test_errors_leave_as_they_are_and_the_next_read_is_inline_again(store: Any, account: Any) -> None:
    def missing() -> None:
        raise NotFound("nothing")

    with pytest.raises(NotFound):
        await store.read_inline(missing)
    here = threading.get_ident()
    assert (await store.read_inline(threading.get_ident) == here) is store.sqlite


async def test_a_cold_snapshot_of_a_big_mailbox_is_read_on_a_reader_thread(store: Any, account: Any,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading every UID of a big mailbox (its first SELECT) would stall the loop: that read leaves it; the next
    SELECT, from the cached snapshot, stays on the loop."""
    from janusmail.store import message_views

    monkeypatch.setattr(message_views, "INLINE_LOAD", 2)  # (three messages are "big" here)
    inbox = box(store, account.id)
    for i in range(3):
        store.emails.ingest(account.id, simple(i), [inbox.id])
    here = threading.get_ident()

    def select(ran_on: list[int]) -> Any:
        ran_on.append(threading.get_ident())
        return store.messages.mailbox_snapshot(account.id, inbox.id)

    cold: list[int] = []
    snap = await store.read_inline(select, cold)
    assert snap is not None and list(snap.uids) == [1, 2, 3]
    warm: list[int] = []
    assert list((await store.read_inline(select, warm)).uids) == [1, 2, 3]
    if store.sqlite:
        assert cold[0] == here and cold[1:] and cold[-1] != here, cold
        assert warm == [here], warm
    else:
        assert here not in cold + warm


def test_a_small_fetch_reads_by_key_even_when_the_rows_are_cached(store: Any, account: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """FETCH of a few messages (``SQL_ROWS``) runs on the loop's thread: it must not take the row cache's
    per-mailbox lock, which a reader thread may hold for a whole big mailbox's load."""
    from janusmail.store.message_views import SQL_ROWS

    inbox = box(store, account.id)
    for i in range(3):
        store.emails.ingest(account.id, simple(i), [inbox.id])
    cache = store.mailbox_rows
    monkeypatch.setattr(cache, "cached", lambda mailbox_id: True)  # as if a big mailbox's rows were cached

    def never(*_: Any) -> None:
        raise AssertionError("the row cache was asked")

    monkeypatch.setattr(cache, "get", never)
    rows = store.messages.fetch_rows(inbox.id, [(1, 3)], keywords=True, covered=3, size_hint=100_000)
    assert [r[0] for r in rows.rows] == [1, 2, 3]
    assert SQL_ROWS >= 3
    with pytest.raises(AssertionError, match="row cache"):  # (more than SQL_ROWS still come from the cache)
        store.messages.fetch_rows(inbox.id, [(1, 3)], covered=SQL_ROWS + 1, size_hint=100_000)


async def test_the_loops_reads_share_one_connection_that_never_keeps_a_snapshot(store: Any, account: Any) -> None:
    """On SQLite the loop's reads run on one connection of its own (no pool checkout per read), and each read
    ends the transaction it began: a read that left its snapshot open would not see the next commit."""
    import sqlalchemy as sa

    from janusmail.store.schema import mailboxes

    checkouts: list[int] = []

    def count(*_args: Any) -> None:
        checkouts.append(1)

    sa.event.listen(store.engine, "checkout", count)
    try:
        inbox = box(store, account.id)

        def sort_order(conn_ids: list[int]) -> int:
            with store.read() as conn:  # SQLAlchemy's execution: this begins a transaction
                conn_ids.append(id(conn.connection.dbapi_connection))
                return conn.execute(sa.select(mailboxes.c.sort_order).where(mailboxes.c.id == inbox.id)).scalar_one()

        seen: list[int] = []
        first = await store.read_inline(sort_order, seen)
        before = len(checkouts)
        with store.engine.begin() as conn:  # committed elsewhere after the first read
            conn.execute(sa.update(mailboxes).where(mailboxes.c.id == inbox.id).values(sort_order=first + 41))
        assert await store.read_inline(sort_order, seen) == first + 41
        for _ in range(5):
            await store.read_inline(sort_order, seen)
        if store.sqlite:
            assert len(set(seen)) == 1 and len(checkouts) == before + 1  # (the update's own connection only)
    finally:
        sa.event.remove(store.engine, "checkout", count)


async def test_a_statement_read_on_the_loop_uses_its_connection_and_a_nested_one_keeps_the_outer_snapshot(
        store: Any, account: Any) -> None:
    """``statement_read`` (FETCH rows, the end-of-command deltas) on the loop's thread takes the loop's kept
    connection, not one from the pool; one opened inside another loop read gets a connection of its own, so
    the outer read's snapshot is not ended under it."""
    import sqlalchemy as sa

    from janusmail.store.schema import mailboxes

    inbox = box(store, account.id)
    q = sa.select(mailboxes.c.sort_order).where(mailboxes.c.id == inbox.id)

    def reads() -> tuple[int, int, int, bool, int]:
        with store.statement_read() as outer:
            before = outer.execute(q).scalar_one()  # the outer snapshot begins here
            with store.engine.begin() as w:  # committed while the outer snapshot is open
                w.execute(sa.update(mailboxes).where(mailboxes.c.id == inbox.id).values(sort_order=before + 7))
            with store.statement_read() as inner:
                fresh = inner.execute(q).scalar_one()
                same = inner.connection.dbapi_connection is outer.connection.dbapi_connection
            again = outer.execute(q).scalar_one()
        checkouts: list[int] = []
        sa.event.listen(store.engine, "checkout", lambda *_: checkouts.append(1))
        for _ in range(3):
            with store.statement_read() as later:
                later.execute(q).scalar_one()
        return before, fresh, again, same, len(checkouts)

    before, fresh, again, same, checkouts = await store.read_inline(reads)
    assert fresh == before + 7 and not same
    if store.sqlite:  # the outer read kept its snapshot; the later reads took no connection from the pool
        assert again == before
        assert checkouts == 0
