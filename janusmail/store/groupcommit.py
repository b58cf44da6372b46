"""Group commit for every write: concurrent ``@writes`` calls share one database transaction and one commit.

Why: every acknowledged write must be durable, and a commit costs a sync (SQLite WAL with ``synchronous=FULL``,
PostgreSQL's WAL flush) plus a connection checkout, BEGIN and COMMIT round trips. Under concurrency (many IMAP
sessions storing flags, expunging, appending; JMAP clients setting keywords) each call waited for its own
commit behind every other one. Now ``Store.call`` and ``writer_calls`` queue write calls on a writer *lane*;
the lane's thread takes everything queued (up to :data:`MAX_GROUP`) and runs the calls one after the other
inside ONE transaction:

* every ``Store.write`` block of a call is a SAVEPOINT of that transaction (:meth:`Group.write`): a call that
  fails rolls back only itself and gets its own exception; each block still bumps its account's modseq and
  writes its own change rows, in the order the calls ran, so per-account modseqs stay gap-free and ordered;
* change events the calls publish are held (``Notifier.holding``) and sent only after the shared COMMIT;
* a call's future is resolved only after that COMMIT: nobody is acknowledged before their rows are durable.

Failures of the group as a whole: a COMMIT the disk refuses (``faults``) gives each call that succeeded its own
``StorageUnavailable`` (nothing of the group was recorded); a transaction the database dropped while a call
failed (SQLite rolls back the whole transaction on some disk errors, so the call's savepoint is gone) does the
same for the calls already run and queues the rest again; any other COMMIT failure re-runs each call alone.

Several processes on one SQLite file (``serve --workers N``, each with its lane): SQLite's own wait for its write
lock is a busy handler that SLEEPS (1, 2, 5, 10, ... ms) and retries, so under load a lane waited far longer
than the other process held the lock, and a second worker made writes slower, not faster. So a lane first
takes an exclusive ``flock`` on ``<database>-writers`` (:class:`WriterLock`): the kernel wakes a waiter the
moment the holder lets go, and waiters queue instead of polling. The file lock orders Janus's lanes (the
server's and the CLI's, ``janusmail import`` included); SQLite's lock still guards the database against any
other writer. A lane takes the lock BEFORE it takes its calls from the queue: the calls that arrive while it
waits for another process's group join its own, so under contention groups grow instead of each lane
committing (and syncing) half as many calls as one lane would (issue 10: two workers had 2.1 calls per group,
one worker 3.6, and every group held the one write lock for its sync). For the same reason the calls queued
while a group runs join it before its COMMIT (*late joiners*, up to :data:`MAX_GROUP` in all): under the logged-in
stress profile a group of one small write held the lock about 2 ms, two thirds of it the COMMIT's sync and the
hand-over between the processes, against 0.2-0.3 ms per call more (8 of 8 paired runs faster, by 5-45%). Not on
PostgreSQL, whose groups take their calls in account order to keep two lanes from waiting on each other's row
locks: a late joiner would break that order. So a ``@writes`` call must never wait for another lane or another
process's write: it would wait while holding the lock that write needs.

Lanes: one on SQLite (one write lock anyway). On PostgreSQL several, so different accounts keep writing in
parallel; a call goes to the lane of its first string argument (the account id, by the services'
convention), so one account's calls are ordered in one lane and two lanes rarely wait on the same row lock.

Deliveries are batched one step earlier too (:class:`GroupCommitter`): concurrent messages for one account
become one ``ingest_many`` (one pack sync, one set of set-based INSERTs), and those batches then share the
group commit with every other write.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import threading
import time
import zlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import db, faults, pgnotify
from .model import Delivered, IngestItem, StorageUnavailable
from .transaction import WriteTx

if TYPE_CHECKING:
    from .store import Store

log = logging.getLogger("janusmail.store.groupcommit")

#: Most calls in one shared transaction (a bound on how long the first of them waits for the commit).
MAX_GROUP = 64

MAX_BATCH = 256
GATHER_SECONDS = 0.002  # at most this much added latency, only when fewer arrived than last time
#: Delivery batches under way at once: while one is on the writer lane the next is parsed, hashed and written to
#: its pack on the ingest threads (two of them), instead of waiting for the first batch's commit.
MAX_IN_FLIGHT = 2

_local = threading.local()


def current_group() -> Group | None:
    """The group whose calls this thread is running (None outside a writer lane's group)."""
    return getattr(_local, "group", None)


class _Discarded(Exception):  # noqa: N818 - a signal, not an error
    """Rolls a discarded write's savepoint back (``Group.write``); never leaves it."""


class _Call:
    __slots__ = ("fn", "args", "kwargs", "future", "key")

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict, key: str) -> None:
        self.fn, self.args, self.kwargs, self.key = fn, args, kwargs, key
        self.future: Future[Any] = Future()


def lane_key(args: tuple) -> str:
    """The first string among the positional arguments (one level into tuples): the account id for the
    services' write methods and for wrappers that carry a method's arguments (the IMAP credential check)."""
    for a in args:
        if isinstance(a, str):
            return a
    for a in args:
        if isinstance(a, tuple):
            for b in a:
                if isinstance(b, str):
                    return b
    return ""


class Group:
    """One shared write transaction on a writer lane, opened by the first ``Store.write`` of its calls."""

    def __init__(self, store: Store, lock: WriterLock | None = None, *, locked: bool = False,
                 keeper: threading.local | None = None) -> None:
        self.store = store
        #: holds the lane's connection between groups (SQLite: ``keeper.conn``); None: one from the pool per group
        self._keeper = keeper
        self._lock = lock  # SQLite with several processes: taken before BEGIN IMMEDIATE, given back in close()
        self._locked = locked and lock is not None  # (taken already by the lane, before it formed the group)
        self._ctx: sa.Connection | None = None
        self.conn: sa.Connection | None = None
        self._root: sa.RootTransaction | None = None
        #: set when the database dropped the transaction under a failing call: nothing of it will commit
        self.broken = False
        self._depth = 0  # savepoints open now (each gets its own name)
        #: calls' blocks released into the transaction (not rolled back): none, and COMMIT has nothing to keep
        self.kept = 0
        #: no block has run in the open transaction yet: the next one needs no SAVEPOINT (see :meth:`savepoint`)
        self._fresh = False
        #: the group is opening its own connection (not a second one, see :func:`_watch_second_connection`)
        self.opening = False

    def connection(self) -> sa.Connection:
        """The group's connection, in its shared transaction (begun by the first caller, and again by the next
        one after a first block that was rolled back with the whole transaction, see :meth:`savepoint`)."""
        if self.conn is None:
            if self._lock is not None and not self._locked:
                self._lock.acquire()
                self._locked = True
            try:
                ctx = self._open()
                try:
                    conn = (ctx.execution_options(sqlite_begin="IMMEDIATE", sqlite_begin_direct=True)
                            if self.store.sqlite else ctx)
                    self._root = conn.begin()
                except BaseException:
                    self._drop(ctx)
                    raise
            except BaseException:
                self._unlock()
                raise
            self._ctx, self.conn = ctx, conn
            self._fresh = True
        elif self._root is None and not self.broken:
            self._root = self.conn.begin()
            self._fresh = True
        return self.conn

    def _open(self) -> sa.Connection:
        """The lane's kept connection (opened the first time, and again after one was dropped), or one from the
        pool. Kept on SQLite: a pool checkout, SQLAlchemy's Connection and the pool's reset on return cost
        about 50 us per group, a few percent of a small write's time under the write lock (issue 10). Not on
        PostgreSQL, whose pool checks a connection is alive before handing it out (a server restart)."""
        keeper = self._keeper
        conn = getattr(keeper, "conn", None) if keeper is not None else None
        if conn is not None and not conn.closed and not conn.invalidated:
            return conn
        self.opening = True
        try:
            conn = self.store.engine.connect()
        finally:
            self.opening = False
        if keeper is not None:
            conn.detach()  # (out of the pool, so it does not hold one of the pool's connections for good)
            keeper.conn = conn
        return conn

    def _drop(self, ctx: sa.Connection, *, invalidate: bool = False) -> None:
        """Give ``ctx`` back to the pool, or close it for good. A kept one stays open unless broken, with no
        transaction left on it (``db.end_transaction``: after a COMMIT that failed, SQLite still holds the
        transaction and its write lock)."""
        keeper = self._keeper
        kept = keeper is not None and getattr(keeper, "conn", None) is ctx
        if kept and not invalidate:
            try:
                db.end_transaction(ctx)
                return
            except Exception:  # noqa: BLE001 - not reusable: closed below
                log.warning("the writer's connection could not be reset; it is replaced", exc_info=True)
                invalidate = True
        if invalidate:
            with contextlib.suppress(Exception):
                ctx.invalidate()
        if kept:
            assert keeper is not None
            keeper.conn = None
        ctx.close()

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            assert self._lock is not None
            self._lock.release()

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[sa.Connection]:
        """A block of one call as a SAVEPOINT of the shared transaction: rolled back alone if it fails.

        The SAVEPOINT, RELEASE and ROLLBACK TO statements go straight to the driver: SQLAlchemy's
        ``begin_nested`` cost about as much Python per call as a small STORE's own statements (issue 10). A
        block inside a block (``Store.transaction`` within a write) gets a savepoint of its own name.

        The first block of a transaction gets none: rolling it back is rolling back the whole transaction,
        which holds nothing else, and the next block begins a new one. Most groups are one or two calls, and
        SAVEPOINT and RELEASE were two of a small write's dozen statements under the write lock."""
        conn = self.connection()
        if self._fresh and self._depth == 0:
            self._fresh = False
            self._depth += 1
            try:
                yield conn
            except BaseException:
                self._restart()
                raise
            finally:
                self._depth -= 1
            self.kept += 1
            return
        self._fresh = False
        self._depth += 1
        name = f"jm_sp{self._depth}"
        dbapi = conn.connection.dbapi_connection
        assert dbapi is not None
        cur = dbapi.cursor()
        try:
            cur.execute(f"SAVEPOINT {name}")
            try:
                yield conn
            except BaseException:
                try:
                    cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    cur.execute(f"RELEASE SAVEPOINT {name}")
                except Exception:  # noqa: BLE001 - the savepoint is gone with the whole transaction
                    log.warning("a failed write took the shared transaction with it", exc_info=True)
                    self.broken = True
                raise
            cur.execute(f"RELEASE SAVEPOINT {name}")
            if self._depth == 1:  # (a block inside a block is kept or dropped with its outer one)
                self.kept += 1
        finally:
            self._depth -= 1
            cur.close()

    def _restart(self) -> None:
        """The transaction's first block failed (or discarded itself): roll the transaction back, as its
        savepoint would have been; the group's next block begins a new one on the same connection."""
        root, self._root = self._root, None
        try:
            if root is not None:
                root.rollback()
        except Exception:  # noqa: BLE001 - the connection is discarded when the group closes
            log.warning("a failed write took the shared transaction with it", exc_info=True)
            self.broken = True

    @contextlib.contextmanager
    def write(self, account_id: str, new_account: Mapping[str, object] | None) -> Iterator[WriteTx]:
        """``Store.write`` inside the group: its own modseq, change rows and event, in a savepoint (rolled back
        alone when the block discards itself, ``WriteTx.discard``)."""
        try:
            with self.savepoint() as conn:
                tx = WriteTx(self.store, conn, account_id, new_account)
                yield tx
                if tx.discarded:
                    raise _Discarded
                tx._flush()
                if not self.store.sqlite:
                    pgnotify.notify(conn, tx.event(), self.store.node_id)  # sent by PostgreSQL at the shared commit
        except _Discarded:
            pass

    def commit(self) -> None:
        """COMMIT the shared transaction (nothing to do when no call wrote). When every block was rolled back
        (each call failed or discarded itself, ``WriteTx.discard``) it is rolled back instead: SQLite still
        writes the pages a rolled-back savepoint touched, and syncs them, at COMMIT."""
        if self._root is not None:
            if self.kept:
                self._root.commit()
            else:
                self._root.rollback()
            self._root = None

    def close(self) -> None:
        """Roll back whatever is still open and give the connection back (a broken one is not reused)."""
        ctx, self._ctx, self.conn, root, self._root = self._ctx, None, None, self._root, None
        if ctx is None:
            self._unlock()
            return
        try:
            try:
                if root is not None:  # not committed (or the COMMIT failed): the database must forget it all
                    root.rollback()
            except Exception:  # noqa: BLE001 - the connection is discarded below
                log.debug("rollback of a failed group", exc_info=True)
                self.broken = True
            self._drop(ctx, invalidate=self.broken)
        finally:
            self._unlock()  # after the COMMIT or the rollback: the database's own lock is free by now


class _Lane:
    """One writer thread and its queue."""

    def __init__(self, queue: WriteQueue, name: str) -> None:
        self._queue = queue
        self.lock = WriterLock(queue.lock_path) if queue.lock_path else None
        self._calls: deque[_Call] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _close_kept(self) -> None:
        keeper = self._queue.keeper
        conn = getattr(keeper, "conn", None) if keeper is not None else None
        if conn is not None:
            keeper.conn = None
            with contextlib.suppress(Exception):
                conn.close()

    def put(self, call: _Call) -> None:
        with self._cond:
            if self._stopping:
                raise RuntimeError("cannot schedule new writes after the store closed")
            self._calls.append(call)
            self._cond.notify()

    def _take(self, room: int) -> list[_Call]:
        """Up to ``room`` calls queued since the group began (see ``WriteQueue.run_group``'s ``more``)."""
        with self._cond:
            return [self._calls.popleft() for _ in range(min(room, len(self._calls)))]

    def stop(self, wait: bool) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if wait and self._thread is not threading.current_thread():
            self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._calls and not self._stopping:
                    self._cond.wait()
                if not self._calls:
                    if self.lock is not None:
                        self.lock.close()
                    self._close_kept()
                    return  # stopping, and everything queued is done
            lock = self.lock
            if lock is not None:  # (blocks while another process writes: what is queued meanwhile joins us)
                lock.acquire()
            with self._cond:
                calls = [self._calls.popleft() for _ in range(min(MAX_GROUP, len(self._calls)))]
            try:
                # (late joiners are appended to ``calls`` itself: the except below answers them too)
                self._queue.run_group(calls, lock, locked=lock is not None and lock.held,
                                      more=self._take if self._queue.store.sqlite else None)
            except BaseException as exc:  # noqa: BLE001 - a bug here must not leave callers waiting forever
                if lock is not None:
                    lock.release()  # (a no-op when the group gave it back)
                log.exception("writer lane failed")
                for call in calls:
                    if not call.future.done():
                        _settle(call, False, exc)
            # An idle lane must not keep the last group's arguments alive (a delivery's message bytes).
            del calls


class WriteQueue:
    """The store's writer: ``submit`` queues a ``@writes`` call and returns a future resolved after the commit
    of the group it ran in (an executor's interface: ``Store.call`` and ``writer_calls`` use it as one)."""

    def __init__(self, store: Store, lanes: int, name: str) -> None:
        self.store = store
        if not sa.event.contains(store.engine, "engine_connect", _watch_second_connection):
            sa.event.listen(store.engine, "engine_connect", _watch_second_connection)
        path = store.engine.url.database if store.sqlite else None
        #: the lanes' cross-process lock file (SQLite files only; see the module docstring)
        self.lock_path = path + "-writers" if path and path != ":memory:" else None
        #: each lane thread's connection kept between its groups (SQLite; see ``Group._open``)
        self.keeper = threading.local() if store.sqlite else None
        self._lanes = [_Lane(self, f"{name}-{i}") for i in range(max(1, lanes))]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        key = lane_key(args)
        call = _Call(fn, args, kwargs, key)
        self._lanes[self.lane_of(key)].put(call)
        return call.future

    def lane_of(self, key: str) -> int:
        """The lane that runs calls keyed ``key`` (always the same one: an account's calls stay in order)."""
        n = len(self._lanes)
        return 0 if n == 1 else zlib.crc32(key.encode()) % n

    def shutdown(self, wait: bool = True) -> None:
        for lane in self._lanes:
            lane.stop(wait)

    # -- running a group (on a lane's thread) ---------------------------------------------------------------

    def run_group(self, calls: list[_Call], lock: WriterLock | None = None, *, locked: bool = False,
                  more: Callable[[int], list[_Call]] | None = None) -> None:
        """Run ``calls`` in one transaction and settle their futures after its COMMIT (see the module
        docstring for what happens when the group as a whole fails). ``lock``: the lane's writer lock;
        ``locked``: the lane holds it already (the group gives it back when it closes).

        ``more(room)``: calls queued on the lane since ``calls`` were taken, which join the group before its
        COMMIT (late joiners, SQLite's lane only: see the module docstring)."""
        if not self.store.sqlite and len(calls) > 1:
            # PostgreSQL: take account row locks in one order in every group (a stable sort keeps each
            # account's calls in arrival order), so two lanes' groups can never wait on each other in a cycle.
            calls = sorted(calls, key=lambda c: c.key)
        store = self.store
        group = Group(store, lock, locked=locked, keeper=self.keeper)
        started = time.perf_counter()
        commit_seconds = 0.0
        outcomes: list[tuple[_Call, bool, Any]] = []
        rest: list[_Call] = []
        lost: BaseException | None = None
        _local.group = group
        try:
            with store.notifier.holding() as held:
                i = 0
                while i < len(calls):
                    call = calls[i]
                    i += 1
                    if not (call.future.running() or call.future.set_running_or_notify_cancel()):
                        continue  # its caller gave up waiting before it ran (as an executor would skip it)
                    try:
                        outcomes.append((call, True, call.fn(*call.args, **call.kwargs)))
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller through its future
                        outcomes.append((call, False, exc))
                        if group.broken:  # the transaction is gone: the calls not run yet go again
                            lost, rest = exc, calls[i:]
                            break
                    if i == len(calls) and more is not None and len(calls) < MAX_GROUP:
                        calls += more(MAX_GROUP - len(calls))
                if lost is None:
                    try:
                        with faults.mapped():
                            commit_started = time.perf_counter()
                            group.commit()
                            commit_seconds = time.perf_counter() - commit_started
                    except BaseException as exc:  # noqa: BLE001 - given to every call that wrote
                        lost = exc
        finally:
            _local.group = None
            group.close()
        alone: list[_Call] = []
        if lost is None:
            for ev in held:
                store.notifier.publish(ev)
            for call, ok, value in outcomes:
                _settle(call, ok, value)
            if store.on_group_commit is not None:  # metrics (janusmail.observability), after the callers woke
                store.on_group_commit(len(outcomes), commit_seconds, time.perf_counter() - started)
        else:
            for call, ok, value in outcomes:
                if not ok:
                    _settle(call, False, value)
                elif isinstance(lost, StorageUnavailable):  # it seemed to succeed; nothing was recorded
                    _settle(call, False, _copy_failure(lost))
                elif len(calls) == 1:
                    _settle(call, False, lost)
                else:  # not the disk: each call that wrote is tried again on its own
                    alone.append(call)
            if alone:
                log.warning("a shared commit failed (%s); its calls are retried one by one", lost)
        for call in alone:
            self.run_group([call], lock)
        if rest:
            self.run_group(rest, lock)



class WriterLock:
    """An exclusive ``flock`` on the database's ``-writers`` file, held by a lane from before its BEGIN IMMEDIATE
    to after its COMMIT (see the module docstring). One per lane: flock excludes per open file, so two lanes of
    one process with one descriptor would not exclude each other. Waiting blocks in the kernel, with the GIL
    released."""

    def __init__(self, path: str) -> None:
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # (a read-only data dir): SQLite's own lock still orders the writers
            log.warning("no writer lock file %s (%s): writers wait on SQLite's busy handler", path, exc)
        self._held = False

    def acquire(self) -> None:
        if self._fd is None:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._held = True
        except OSError as exc:  # a file system without flock (ENOLCK): go on without it, as above
            log.warning("writer lock unavailable (%s): writers wait on SQLite's busy handler", exc)
            self.close()

    @property
    def held(self) -> bool:
        return self._held

    def release(self) -> None:
        if self._fd is not None and self._held:
            self._held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

_WRITE_STATEMENTS = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")


def _watch_second_connection(conn: sa.Connection) -> None:
    """A connection opened on a thread that is running a group (other than the group's own) is watched for
    writes (:func:`_no_second_writer`). Only such connections: a ``before_cursor_execute`` listener on the
    engine cost about 4 us on every statement of every connection (issue 10), to guard against a mistake
    that can only happen on a writer lane."""
    group = getattr(_local, "group", None)
    if group is not None and not group.opening:
        sa.event.listen(conn, "before_cursor_execute", _no_second_writer)


def _no_second_writer(conn: sa.Connection, cursor: Any, statement: str, parameters: Any, context: Any,
                      executemany: bool) -> None:
    """Refuse a write on another connection while this thread's group holds its transaction open: it would
    wait for a lock held by this very thread (SQLite's write lock, a PostgreSQL row lock) and never get it.
    Such a write belongs in ``Store.write`` or ``Store.transaction``, which join the group. (A read there is
    allowed: it sees only what was committed, which some pre-checks want.)"""
    group = getattr(_local, "group", None)
    if group is not None and group.conn is not None and conn is not group.conn \
            and statement.lstrip()[:15].upper().startswith(_WRITE_STATEMENTS):
        raise RuntimeError("a write outside Store.write/Store.transaction inside a group commit would deadlock")


def _copy_failure(exc: StorageUnavailable) -> StorageUnavailable:
    """A fresh exception of the same meaning for each caller (one instance raised in many threads would share
    and grow one traceback)."""
    fresh = StorageUnavailable(str(exc), full=exc.full)
    fresh.__cause__ = exc
    return fresh


def _settle(call: _Call, ok: bool, value: Any) -> None:
    fut = call.future
    if fut.done():
        return
    try:
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
    except InvalidStateError:  # cancelled meanwhile
        pass


# -- deliveries ----------------------------------------------------------------------------------------------


class GroupCommitter:
    """Concurrent deliveries (LMTP, IMAP APPEND, JMAP import) become one ``ingest_many`` per account: one pack
    sync and set-based INSERTs for the batch. A caller is still acknowledged only after its own message is
    durable; a batch that fails is retried message by message so one bad message cannot fail the others."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[tuple[str, IngestItem, asyncio.Future[Delivered]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_batch = 1
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()  # batches under way (held: a loop keeps only weak refs)

    async def deliver(self, account_id: str, item: IngestItem) -> Delivered:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
            self._task = loop.create_task(self._drain())
        fut: asyncio.Future[Delivered] = loop.create_future()
        self._queue.append((account_id, item, fut))
        assert self._wake is not None
        self._wake.set()
        return await fut

    async def _drain(self) -> None:
        """Batches the queue, up to :data:`MAX_IN_FLIGHT` batches under way at once. One at a time, a batch
        waited for the whole of the previous one (its parse, its pack sync, its turn on the writer lane and the
        commit) before its own parse began: under the logged-in IMAP stress profile an APPEND took twice as
        long as its own work (issue 10). Batches are independent: no caller's message waits for another's,
        and which of two concurrent deliveries gets the lower UID was never defined."""
        assert self._wake is not None and self._slots is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Callers acknowledged together come back together: a moment's wait gathers the next group, and
            # ends the moment it has as many as last time (a fixed sleep made four LMTP senders in step wait
            # the whole 2 ms for messages that had all arrived in the first fraction of it).
            await self._gather()
            while self._queue:
                await self._slots.acquire()  # (meanwhile the queue grows: the next batch is bigger)
                # The batch lives in _run's frame only: once stored, nothing of it stays referenced here. (Kept
                # in this loop's variables, an idle drainer held the last messages' bytes, possibly tens of MiB,
                # until the next delivery came.)
                task = asyncio.get_running_loop().create_task(self._run_in_slot(self._take()))
                self._running.add(task)
                task.add_done_callback(self._running.discard)

    async def _gather(self) -> None:
        """Wait up to :data:`GATHER_SECONDS` while fewer deliveries are queued than the last batch held."""
        assert self._wake is not None
        if len(self._queue) >= self._last_batch:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GATHER_SECONDS
        while len(self._queue) < self._last_batch:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)
            except TimeoutError:
                return

    async def _run_in_slot(self, batch: list[tuple[str, IngestItem, asyncio.Future[Delivered]]]) -> None:
        assert self._slots is not None
        try:
            await self._run(batch)
        finally:
            self._slots.release()

    def _take(self) -> list[tuple[str, IngestItem, asyncio.Future[Delivered]]]:
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        self._last_batch = len(batch)
        return batch

    async def _run(self, batch: list[tuple[str, IngestItem, asyncio.Future[Delivered]]]) -> None:
        by_account: dict[str, list[tuple[IngestItem, asyncio.Future[Delivered]]]] = defaultdict(list)
        for account_id, item, fut in batch:
            by_account[account_id].append((item, fut))
        del batch[:]
        # Queued together, the accounts' batches share one group commit on the writer.
        answers = await asyncio.gather(*(self._commit(a, entries) for a, entries in by_account.items()))
        by_account.clear()  # no message stays referenced once the callers wake up (below)
        for fut, ok, value in (x for answer in answers for x in answer):
            if not fut.done():
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

    async def _commit(self, account_id: str, entries: list[tuple[IngestItem, asyncio.Future[Delivered]]]
                      ) -> list[tuple[asyncio.Future[Delivered], bool, Any]]:
        """One account's share: one ``ingest_many``, or message by message when that fails. Returns each
        caller's answer; the caller's future is set by ``_run`` once nothing here holds the messages. Parsing,
        hashing and the pack's sync run first on the store's own ingest threads (``Store.prepare_ingest``), not
        on the reader pool, where that hop waited behind the reads under the mixed IMAP workload."""
        store = self.store
        items = [item for item, _ in entries]
        prepared: list[Any] | None = None
        try:  # parse, hash and the bytes' sync off the writer lane (ingest.place), shared by the batch
            prepared = await store.prepare_ingest(account_id, items)
            results = await store.call(store.emails.ingest_many, account_id, items, prepared)
        except Exception as exc:  # noqa: BLE001 - one message: its answer (a disk that refused: UNAVAILABLE)
            if len(entries) == 1:
                return [(entries[0][1], False, exc)]
        else:  # more: one by one below, so one bad message cannot fail the others
            return [(fut, True, res) for (_, fut), res in zip(entries, results, strict=True)]
        del items
        out: list[tuple[asyncio.Future[Delivered], bool, Any]] = []
        for k, (item, fut) in enumerate(entries):
            # what the batch prepared (parsed, its bytes already placed) serves again: no second parse, and no
            # second copy of the bytes in the pack; only a batch whose preparation failed prepares each anew
            mine = None if prepared is None else [prepared[k]]
            try:
                out.append((fut, True, (await store.call(store.emails.ingest_many, account_id, [item], mine))[0]))
            except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                out.append((fut, False, exc))
        return out
