"""Group commit of every write (issue 10 item 2): concurrent ``@writes`` calls queued on the writer share one
transaction and one COMMIT, each in its own savepoint, on SQLite and PostgreSQL.

The writer lane is held busy by a call that waits on an event, so the calls queued meanwhile are known to
run as ONE group when it is released (on SQLite they join the holding call's group, which writes nothing) (counted by the engine's COMMIT events): nothing here depends on timing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import Any

import pytest
import sqlalchemy as sa

from janusmail.store import writer_calls
from janusmail.store.model import NotFound, StorageUnavailable
from janusmail.store.schema import accounts, changes, mailboxes
from janusmail.store.writes import writes
from tests.mailgen import simple
from tests.store.storage_faults import Faults

WAIT = 120  # generous deadline for a future (a safety net, not a measurement)


class Lane:
    """Holds the writer lanes of the given accounts busy until released (SQLite has one lane; PostgreSQL one
    per group of accounts), and counts the COMMITs made meanwhile."""

    def __init__(self, store: Any, *account_ids: str) -> None:
        self.store = store
        self.commits = 0
        self._lanes = {store._writer.lane_of(a): a for a in account_ids}
        self._release = threading.Event()
        sa.event.listen(store.engine, "commit", self._count)

    def _count(self, conn: Any) -> None:
        self.commits += 1

    @property
    def groups(self) -> int:
        """How many groups the calls of these accounts can form at least: one per lane."""
        return len(self._lanes)

    def __enter__(self) -> Lane:
        started = threading.Semaphore(0)

        @writes
        def hold(account_id: str) -> None:  # keyed by the account: it runs on that account's lane
            started.release()
            assert self._release.wait(WAIT)

        self._held = [writer_calls.submit(self.store, hold, a) for a in self._lanes.values()]
        for _ in self._held:
            assert started.acquire(timeout=WAIT)
        self.commits = 0
        self._queued: list[Future[Any]] = []
        return self

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        fut = writer_calls.submit(self.store, fn, *args, **kwargs)
        self._queued.append(fut)
        return fut

    def __exit__(self, *exc: object) -> None:
        """Release the lanes and wait until every call queued meanwhile is answered."""
        self._release.set()
        # (the queued calls joined the holding call's group: a COMMIT that fails fails the holder too)
        done, pending = wait([*self._held, *self._queued], WAIT)
        assert not pending
        for held in self._held:  # it ran to its end: only a refused shared COMMIT may fail it
            assert held.exception() is None or isinstance(held.exception(), StorageUnavailable)


def _account(store: Any, name: str, n: int = 3) -> tuple[str, str]:
    acct = store.accounts.create(f"{name}@example.test", "x")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    for i in range(n):
        store.emails.ingest(acct.id, simple(i), (inbox.id,))
    return acct.id, inbox.id


def _modseq(store: Any, account_id: str) -> int:
    with store.read() as conn:
        return conn.execute(sa.select(accounts.c.modseq).where(accounts.c.id == account_id)).scalar_one()


def _logged(store: Any, account_id: str, since: int) -> dict[int, set[tuple[str, str, str]]]:
    with store.read() as conn:
        rows = conn.execute(sa.select(changes.c.modseq, changes.c.kind, changes.c.object_id, changes.c.op)
                            .where(changes.c.account_id == account_id, changes.c.modseq > since)).all()
    out: dict[int, set[tuple[str, str, str]]] = {}
    for r in rows:
        out.setdefault(r.modseq, set()).add((r.kind, r.object_id, r.op))
    return out


def test_concurrent_writers_share_one_commit_and_keep_their_own_modseqs(store) -> None:  # noqa: ANN001
    a, a_inbox = _account(store, "alice")
    b, b_inbox = _account(store, "bob")
    before = {a: _modseq(store, a), b: _modseq(store, b)}
    mb = store.memberships
    with Lane(store, a, b, "carol@example.test") as lane:
        futs = [
            lane.submit(mb.store_flags, a, a_inbox, [(1, 1)], "add", ["$seen"], None),
            lane.submit(mb.store_flags, b, b_inbox, [(2, 2)], "add", ["$flagged"], None),
            lane.submit(store.mailboxes.create, a, "Projects"),
            lane.submit(mb.store_flags, a, a_inbox, [(2, 3)], "add", ["Work"], None),
            lane.submit(mb.expunge, b, b_inbox),  # nothing is \Deleted: rolled back alone, not even a modseq
            lane.submit(store.emails.ingest, b, simple(99), (b_inbox,)),
            lane.submit(store.accounts.create, "carol@example.test", "x"),
        ]
    results = [f.result(WAIT) for f in futs]
    assert lane.commits == lane.groups  # seven writers, one COMMIT (one per lane on PostgreSQL)
    assert [results[0].modseq, results[3].modseq] == [before[a] + 1, before[a] + 3]
    assert results[2].name == "Projects"
    assert results[4] == []
    assert results[1].modseq == before[b] + 1 and results[5].modseq == before[b] + 2
    assert results[6].address == "carol@example.test"  # read back inside the group that created it
    assert store.mailboxes.by_path(results[6].id, ["INBOX"]) is not None
    assert _modseq(store, a) == before[a] + 3 and _modseq(store, b) == before[b] + 2
    assert sorted(_logged(store, b, before[b])) == [before[b] + 1, before[b] + 2]  # gap-free around the discarded
    logged = _logged(store, a, before[a])
    assert sorted(logged) == [before[a] + 1, before[a] + 2, before[a] + 3]  # each call its own change rows
    assert ("Mailbox", results[2].id, "c") in logged[before[a] + 2]
    assert {k for k, _, _ in logged[before[a] + 3]} >= {"Email", "Mailbox"}
    assert ("Email", results[5].email_id, "c") in _logged(store, b, before[b])[before[b] + 2]
    assert store.messages.fetch_rows  # the store is still usable: a fresh write after the group
    assert store.memberships.store_flags(a, a_inbox, [(1, 1)], "add", ["$flagged"], None).modseq == before[a] + 4


def test_a_group_whose_writes_all_discard_themselves_commits_nothing(store) -> None:  # noqa: ANN001
    """EXPUNGEs with nothing \\Deleted and a STORE of UIDs that are gone, in one group: each rolls its savepoint
    back, and the group is rolled back instead of committed (SQLite would write and sync the pages those
    savepoints touched at COMMIT)."""
    a, a_inbox = _account(store, "alice")
    b, b_inbox = _account(store, "bob")
    before = {a: _modseq(store, a), b: _modseq(store, b)}
    mb = store.memberships
    with Lane(store, a, b) as lane:
        futs = [
            lane.submit(mb.expunge, a, a_inbox),
            lane.submit(mb.expunge, b, b_inbox, [(1, 3)]),
            lane.submit(mb.store_flags, a, a_inbox, [(50, 60)], "add", ["$seen"], None),
        ]
    results = [f.result(WAIT) for f in futs]
    assert results[:2] == [[], []] and results[2].updated == []
    assert lane.commits == 0
    assert {a: _modseq(store, a), b: _modseq(store, b)} == before
    assert _logged(store, a, before[a]) == {} and _logged(store, b, before[b]) == {}
    assert mb.store_flags(a, a_inbox, [(1, 1)], "add", ["$seen"], None).modseq == before[a] + 1  # next in turn


def test_concurrent_writers_from_threads_are_all_acknowledged(store) -> None:  # noqa: ANN001
    accts = [_account(store, f"user{i}", n=4) for i in range(3)]
    before = {a: _modseq(store, a) for a, _ in accts}
    out: list[Any] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        a, inbox = accts[i % len(accts)]
        for n in range(6):
            res = writer_calls.run(store, store.memberships.store_flags, a, inbox, [(1 + n % 4, 1 + n % 4)],
                                   "add" if n % 2 else "remove", [f"k{i}"], None)
            with lock:
                out.append((a, res.modseq))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert len(out) == 54
    for a, _ in accts:
        seqs = sorted(m for acct, m in out if acct == a)
        assert seqs == list(range(before[a] + 1, before[a] + 19))  # every call its own modseq, no gap
        assert _modseq(store, a) == before[a] + 18
        assert sorted(_logged(store, a, before[a])) == seqs


def test_a_failing_call_fails_alone(store) -> None:  # noqa: ANN001
    a, inbox = _account(store, "alice")
    start = _modseq(store, a)

    @writes
    def half_then_fail(account_id: str) -> None:  # writes, then fails inside its write: all of it rolls back
        with store.write(account_id) as tx:
            tx.conn.execute(sa.update(mailboxes).where(mailboxes.c.id == inbox).values(sort_order=77))
            tx.log("Mailbox", inbox, "u")
            raise ValueError("refused halfway")

    mb = store.memberships
    with Lane(store, a) as lane:
        first = lane.submit(mb.store_flags, a, inbox, [(1, 1)], "add", ["$seen"], None)
        bad = lane.submit(half_then_fail, a)
        missing = lane.submit(mb.store_flags, a, "no-such-mailbox", [(1, 1)], "add", ["$seen"], None)
        last = lane.submit(mb.store_flags, a, inbox, [(2, 2)], "add", ["$seen"], None)
    assert lane.commits == 1
    with pytest.raises(ValueError, match="halfway"):
        bad.result(WAIT)
    with pytest.raises(NotFound):
        missing.result(WAIT)
    assert first.result(WAIT).modseq == start + 1
    assert last.result(WAIT).modseq == start + 2  # the failed calls' modseq bumps were rolled back
    assert store.mailboxes.get(a, inbox).sort_order != 77
    assert sorted(_logged(store, a, start)) == [start + 1, start + 2]
    assert _modseq(store, a) == start + 2


def test_a_failing_or_discarded_first_call_is_rolled_back_and_the_group_goes_on(store) -> None:  # noqa: ANN001
    """A group's first block runs without a SAVEPOINT (the transaction holds nothing else yet): when it fails
    or discards itself the whole transaction is rolled back and the next block begins a new one. Nothing of
    the first block survives; everything after it commits, once."""
    a, inbox = _account(store, "alice")
    start = _modseq(store, a)

    @writes
    def half_then_fail(account_id: str) -> None:
        _half_then_fail_body(store, account_id, inbox)

    @writes
    def fail_then_recover(account_id: str) -> int:  # one call: a failed first block, then a block that holds
        with pytest.raises(ValueError):
            _half_then_fail_body(store, account_id, inbox)
        with store.write(account_id) as tx:
            tx.conn.execute(sa.update(mailboxes).where(mailboxes.c.id == inbox).values(sort_order=5))
            tx.log("Mailbox", inbox, "u")
            return tx.modseq

    mb = store.memberships
    with Lane(store, a) as lane:
        bad = lane.submit(half_then_fail, a)
        ok = lane.submit(mb.store_flags, a, inbox, [(1, 1)], "add", ["$seen"], None)
    assert lane.commits == 1
    with pytest.raises(ValueError, match="halfway"):
        bad.result(WAIT)
    assert ok.result(WAIT).modseq == start + 1
    assert store.mailboxes.get(a, inbox).sort_order != 77

    with Lane(store, a) as lane:
        empty = lane.submit(mb.expunge, a, inbox)  # nothing \Deleted: discards itself
        ok = lane.submit(mb.store_flags, a, inbox, [(2, 2)], "add", ["$seen"], None)
    assert lane.commits == 1
    assert empty.result(WAIT) == [] and ok.result(WAIT).modseq == start + 2

    with Lane(store, a) as lane:
        recovered = lane.submit(fail_then_recover, a)
    assert lane.commits == 1
    assert recovered.result(WAIT) == start + 3
    assert store.mailboxes.get(a, inbox).sort_order == 5
    assert sorted(_logged(store, a, start)) == [start + 1, start + 2, start + 3]
    assert _modseq(store, a) == start + 3


def _half_then_fail_body(store: Any, account_id: str, inbox: str) -> None:
    """A write that changes the mailbox and logs it, then fails inside its block."""
    with store.write(account_id) as tx:
        tx.conn.execute(sa.update(mailboxes).where(mailboxes.c.id == inbox).values(sort_order=77))
        tx.log("Mailbox", inbox, "u")
        raise ValueError("refused halfway")


def test_events_are_published_after_the_shared_commit_in_order(store) -> None:  # noqa: ANN001
    a, inbox = _account(store, "alice")
    start = _modseq(store, a)
    seen_at_publish: list[tuple[int, int]] = []
    real = store.notifier.deliver

    def spy(ev: Any) -> None:  # what a woken session would read at that moment
        if ev.account_id == a:
            seen_at_publish.append((ev.modseq, _modseq(store, a)))
        real(ev)

    store.notifier.deliver = spy
    with Lane(store, a) as lane:
        futs = [lane.submit(store.memberships.store_flags, a, inbox, [(i, i)], "add", ["$seen"], None)
                for i in (1, 2, 3)]
    for f in futs:
        f.result(WAIT)
    assert [m for m, _ in seen_at_publish] == [start + 1, start + 2, start + 3]
    assert all(committed == start + 3 for _, committed in seen_at_publish)  # all durable before anyone hears


def test_disk_full_at_the_group_commit_fails_every_call_and_records_nothing(store, monkeypatch) -> None:  # noqa: ANN001
    a, inbox = _account(store, "alice")
    start = _modseq(store, a)
    counts_before = store.mailboxes.counts(a, [inbox])[inbox]
    f = Faults(monkeypatch)
    f.commit_disk_full(store.engine)  # the COMMIT of the transaction that inserted an email fails
    mb = store.memberships
    with Lane(store, a) as lane:
        futs = [
            lane.submit(mb.store_flags, a, inbox, [(1, 3)], "add", ["$seen"], None),
            lane.submit(store.emails.ingest, a, simple(50), (inbox,)),
            lane.submit(store.mailboxes.create, a, "Never"),
            lane.submit(mb.store_flags, a, "no-such-mailbox", [(1, 1)], "add", ["$seen"], None),
        ]
    assert f.fired == 1 and lane.commits == 1  # one COMMIT tried for the four, and refused
    for fut in futs[:3]:
        with pytest.raises(StorageUnavailable) as info:
            fut.result(WAIT)
        assert info.value.full
    with pytest.raises(NotFound):  # a call that failed on its own keeps its own answer
        futs[3].result(WAIT)
    assert _modseq(store, a) == start and _logged(store, a, start) == {}
    assert store.mailboxes.by_path(a, ["Never"]) is None
    assert store.mailboxes.counts(a, [inbox])[inbox] == counts_before
    # The disk has room again: the same writes go through.
    assert store.memberships.store_flags(a, inbox, [(1, 3)], "add", ["$seen"], None).modseq == start + 1


def test_a_call_that_loses_the_transaction_fails_the_group_it_ran_in(store) -> None:  # noqa: ANN001
    """SQLite may roll back a whole transaction on a disk error inside one statement: the savepoint of the
    failing call is gone then, and so is everything the calls before it wrote. They get StorageUnavailable;
    the calls after it run in a new group and succeed."""
    a, inbox = _account(store, "alice")
    start = _modseq(store, a)

    @writes
    def lose_everything(account_id: str) -> None:
        with store.write(account_id) as tx:
            tx.conn.exec_driver_sql("ROLLBACK")  # what the database does on its own in that case
            raise StorageUnavailable("disk I/O error", full=False)

    mb = store.memberships
    with Lane(store, a) as lane:
        before = lane.submit(mb.store_flags, a, inbox, [(1, 1)], "add", ["$seen"], None)
        bad = lane.submit(lose_everything, a)
        after = lane.submit(mb.store_flags, a, inbox, [(2, 2)], "add", ["$seen"], None)
    for fut in (before, bad):
        with pytest.raises(StorageUnavailable):
            fut.result(WAIT)
    assert after.result(WAIT).modseq == start + 1
    assert _modseq(store, a) == start + 1 and sorted(_logged(store, a, start)) == [start + 1]


_RENAME = sa.update(mailboxes).where(mailboxes.c.id == sa.bindparam("mid")).values(sort_order=sa.bindparam("n"))


@pytest.mark.parametrize("path", ["sqlalchemy", "sqltext"])
def test_a_write_beside_the_group_is_refused_not_deadlocked(store, path: str) -> None:  # noqa: ANN001
    """Through SQLAlchemy's execution or the store's own statement path (``SqlText``, the raw cursor) alike."""
    a, inbox = _account(store, "alice")

    @writes
    def second_writer() -> None:
        with store.write(a):
            pass
        if path == "sqlalchemy":
            with store.engine.begin() as conn:  # its own transaction: would wait for this thread's own lock
                conn.execute(_RENAME, {"mid": inbox, "n": 5})
        else:
            with store.engine.connect() as conn:
                store.sql.count(conn, _RENAME, {"mid": inbox, "n": 5})

    with pytest.raises(RuntimeError, match="deadlock"):
        writer_calls.run(store, second_writer)


def test_a_read_beside_the_group_is_allowed_and_unguarded_connections_pay_nothing(store) -> None:  # noqa: ANN001
    """A pre-check reading committed state on a connection of its own is not a deadlock; and connections opened
    outside a group carry no statement listener (the guard costs nothing on a reader's or the loop's reads)."""
    a, inbox = _account(store, "alice")

    @writes
    def check_then_write() -> int:
        with store.write(a):
            pass
        with store.engine.connect() as conn:
            found = conn.execute(sa.select(sa.func.count()).select_from(mailboxes)
                                 .where(mailboxes.c.id == inbox)).scalar_one()
        with store.write(a) as tx:
            store.sql.count(tx.conn, _RENAME, {"mid": inbox, "n": 7})
        return found

    assert writer_calls.run(store, check_then_write) == 1
    assert not store.engine.dispatch.before_cursor_execute
    with store.engine.connect() as conn:
        assert not conn.dispatch.before_cursor_execute
        assert conn.execute(sa.select(mailboxes.c.sort_order).where(mailboxes.c.id == inbox)).scalar_one() == 7


def test_store_call_acknowledges_after_the_commit(store) -> None:  # noqa: ANN001
    """The asyncio path (``Store.call``): many concurrent writes, all answered, the last modseq durable."""
    a, inbox = _account(store, "alice", n=10)
    start = _modseq(store, a)

    async def run() -> list[Any]:
        return await asyncio.gather(*(store.call(store.memberships.store_flags, a, inbox, [(i, i)], "add",
                                                 ["$flagged"], None) for i in range(1, 11)))

    results = asyncio.run(run())
    assert sorted(r.modseq for r in results) == list(range(start + 1, start + 11))
    assert _modseq(store, a) == start + 10



def _lock_entered(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set once a lane starts waiting for (or taking) the cross-process writer lock."""
    from janusmail.store import groupcommit

    entered = threading.Event()
    real_acquire = groupcommit.WriterLock.acquire

    def acquire(self: Any) -> None:
        entered.set()
        real_acquire(self)

    monkeypatch.setattr(groupcommit.WriterLock, "acquire", acquire)
    return entered


def test_sqlite_lanes_of_several_processes_queue_on_the_writer_lock_file(store, monkeypatch) -> None:  # noqa: ANN001
    """``serve --workers N`` on SQLite: a lane takes the ``-writers`` file lock BEFORE SQLite's write lock, so a
    lane of another process (played here by the test holding the file lock) makes it wait in the kernel, not in
    SQLite's sleeping busy handler; once the lock is free the write goes through."""
    if not store.sqlite:
        pytest.skip("PostgreSQL's writers wait on row locks, with no busy handler")
    import fcntl
    import os
    import sqlite3


    a, inbox = _account(store, "alice")
    path = store._writer.lock_path
    assert path is not None and path.endswith("-writers")
    entered = _lock_entered(monkeypatch)
    other = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)  # "another process" is writing
        fut = writer_calls.submit(store, store.memberships.store_flags, a, inbox, [(1, 1)], "add", ["$flagged"],
                                  None)
        assert entered.wait(WAIT)
        # the lane waits for the file lock and has not taken SQLite's: another writer still gets it at once
        db = sqlite3.connect(store.engine.url.database, timeout=0, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        finally:
            db.close()
        assert not fut.done()
        fcntl.flock(other, fcntl.LOCK_UN)
        assert fut.result(WAIT).modseq == _modseq(store, a)
    finally:
        os.close(other)


def test_calls_queued_while_a_lane_waits_for_the_writer_lock_join_its_group(store, monkeypatch) -> None:  # noqa: ANN001
    """A lane takes the writer lock before it takes its calls: what is queued while another process's group holds
    the lock joins the group (one COMMIT and one sync for all), instead of the lane committing the one call it
    had when it woke and then the rest (two workers had 2.1 calls per group against one worker's 3.6)."""
    if not store.sqlite:
        pytest.skip("PostgreSQL's lanes take no writer lock")
    import fcntl
    import os


    a, inbox = _account(store, "alice")
    groups: list[int] = []
    monkeypatch.setattr(store, "on_group_commit", lambda calls, commit_s, total_s: groups.append(calls))
    entered = _lock_entered(monkeypatch)
    other = os.open(store._writer.lock_path, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)  # "another process" is writing
        futures = [writer_calls.submit(store, store.memberships.store_flags, a, inbox, [(1, 1)], "add",
                                       ["$flagged"], None)]
        assert entered.wait(WAIT)  # the lane woke for the first call and waits for the lock
        futures += [writer_calls.submit(store, store.memberships.store_flags, a, inbox, [(1, 1)], "add",
                                        [f"$k{i}"], None) for i in range(4)]
        fcntl.flock(other, fcntl.LOCK_UN)
        modseqs = [f.result(WAIT).modseq for f in futures]
    finally:
        os.close(other)
    assert groups == [5]
    assert modseqs == sorted(modseqs) and len(set(modseqs)) == 5


def _count_parses(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The messages the store parses from now on (``emails.prepare``), in order."""
    parsed: list[bytes] = []
    real_prepare = store.emails.prepare

    def prepare(item: Any) -> Any:
        parsed.append(bytes(item.raw))
        return real_prepare(item)

    monkeypatch.setattr(store.emails, "prepare", prepare)
    return parsed


def test_a_failed_delivery_batch_is_retried_one_by_one_without_parsing_again(store, monkeypatch) -> None:  # noqa: ANN001
    """Deliveries queued together are one ``ingest_many``; when one of them fails it (a mailbox gone), each is
    stored alone so the others still go in. That retry reuses what the batch prepared: each message is parsed
    once (and its bytes, already placed in the pack, are not written a second time)."""
    a, inbox = _account(store, "alice", n=0)
    parsed = _count_parses(store, monkeypatch)

    async def deliver_all() -> list[Any]:
        return await asyncio.gather(*(store.deliver(a, simple(10 + i), (inbox if i != 2 else "Fnowhere",))
                                      for i in range(4)), return_exceptions=True)

    results = asyncio.run(deliver_all())
    assert isinstance(results[2], NotFound), results
    assert all(not isinstance(r, BaseException) for k, r in enumerate(results) if k != 2), results
    assert len(parsed) == 4 and len(set(parsed)) == 4  # (without the reuse: 4 more in the retry)
    assert store.mailboxes.counts(a)[inbox].messages == 3


def test_the_next_delivery_batch_prepares_while_one_waits_for_the_writer(store, monkeypatch) -> None:  # noqa: ANN001
    """Delivery batches are pipelined (``MAX_IN_FLIGHT``): while one batch waits for the writer lane, the next
    is already parsed and placed, instead of waiting for the first one's commit before it starts."""
    a, inbox = _account(store, "alice", n=0)
    parsed = _count_parses(store, monkeypatch)

    async def scenario() -> list[Any]:
        with Lane(store, a):
            first = asyncio.ensure_future(store.deliver(a, simple(1), (inbox,)))
            deadline = asyncio.get_running_loop().time() + WAIT / 4  # (under pytest-timeout's limit)
            while len(parsed) < 1:  # the first batch was prepared and now waits for the held lane
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            second = asyncio.ensure_future(store.deliver(a, simple(2), (inbox,)))
            while len(parsed) < 2:  # one at a time, this waited for the first batch's commit: a hang here
                assert asyncio.get_running_loop().time() < deadline, "the second batch waited for the first"
                await asyncio.sleep(0.01)
            assert not first.done() and not second.done()  # neither is acknowledged before its commit
        return list(await asyncio.gather(first, second))

    first, second = asyncio.run(scenario())
    assert first.uids[inbox] != second.uids[inbox]
    assert store.mailboxes.counts(a)[inbox].messages == 2


def test_a_delivery_batch_of_known_and_new_messages_is_placed_once(store, monkeypatch) -> None:  # noqa: ANN001
    """A batch mixing a message the account holds already (delivered again) with a new one: the new one's bytes
    are placed off the lane, the known one links the existing blob, and the batch goes in as one. (Placing
    asked for the known message's place among the new ones and failed, so the batch was parsed and written
    again message by message.)"""
    a, inbox = _account(store, "alice", n=0)
    store.emails.ingest(a, simple(1), (inbox,))
    parsed = _count_parses(store, monkeypatch)

    async def both() -> list[Any]:
        return list(await asyncio.gather(store.deliver(a, simple(1), (inbox,)), store.deliver(a, simple(2), (inbox,))))

    again, new = asyncio.run(both())
    assert len(parsed) == 2, len(parsed)  # one parse each: no retry one by one
    assert again.blob_id != new.blob_id
    assert store.mailboxes.counts(a)[inbox].messages == 3


def test_the_gathering_wait_ends_when_as_many_deliveries_as_last_time_are_queued(store, monkeypatch) -> None:  # noqa: ANN001
    """After a batch of three, the next gathering waits for up to ``GATHER_SECONDS`` while fewer than three are
    queued, and no longer once they are: senders acknowledged together come back together, and the batch goes
    as soon as the last of them arrives. (A fixed sleep made them all wait the whole time; here that time is a
    minute, so the old wait fails the test's deadline.)"""
    from janusmail.store import groupcommit

    a, inbox = _account(store, "alice", n=0)

    async def three(start: int) -> list[Any]:  # (queued before the batcher runs: one batch of three)
        return list(await asyncio.gather(*(store.deliver(a, simple(start + i), (inbox,)) for i in range(3))))

    async def one_then_two(start: int) -> list[Any]:
        first = asyncio.ensure_future(store.deliver(a, simple(start), (inbox,)))
        for _ in range(5):  # the batcher wakes with one queued and starts gathering
            await asyncio.sleep(0)
        assert not first.done()
        rest = [store.deliver(a, simple(start + i), (inbox,)) for i in (1, 2)]
        return list(await asyncio.gather(first, *rest))

    async def scenario() -> tuple[list[Any], list[Any]]:
        first = await asyncio.wait_for(three(0), WAIT)
        monkeypatch.setattr(groupcommit, "GATHER_SECONDS", 60.0)
        return first, await asyncio.wait_for(one_then_two(10), WAIT / 4)

    first, second = asyncio.run(scenario())
    assert len({d.uids[inbox] for d in first + second}) == 6
    assert store.mailboxes.counts(a)[inbox].messages == 6


def test_calls_queued_while_a_group_runs_join_it_before_its_commit(store, monkeypatch) -> None:  # noqa: ANN001
    """Late joiners (SQLite): calls queued while the lane runs a group's calls join that group and share its
    COMMIT, instead of waiting for the next group (and, with several workers, for the other process's group
    in between). Each keeps its own modseq, in the order the calls ran."""
    if not store.sqlite:
        pytest.skip("PostgreSQL's groups keep their calls in account order: no late joiners")
    a, inbox = _account(store, "alice")
    groups: list[int] = []
    monkeypatch.setattr(store, "on_group_commit", lambda calls, commit_s, total_s: groups.append(calls))
    running, go_on = threading.Event(), threading.Event()

    @writes
    def first(account_id: str) -> int:
        running.set()
        assert go_on.wait(WAIT)
        return store.memberships.store_flags(account_id, inbox, [(1, 1)], "add", ["$first"], None).modseq

    futures = [writer_calls.submit(store, first, a)]
    assert running.wait(WAIT)  # the group has begun: what is queued now arrives late
    futures += [writer_calls.submit(store, store.memberships.store_flags, a, inbox, [(2, 2)], "add",
                                    [f"$k{i}"], None) for i in range(3)]
    go_on.set()
    modseqs = [f.result(WAIT) if i == 0 else f.result(WAIT).modseq for i, f in enumerate(futures)]
    assert groups == [4]
    assert modseqs == sorted(modseqs) and len(set(modseqs)) == 4
