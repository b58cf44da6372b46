"""The Store: the only owner of mail state. IMAP and JMAP are two views over it.

The queries live in services (``store.accounts``, ``store.mailboxes``, ``store.emails``, ``store.memberships``,
``store.changes``, ``store.blobs``, ``store.search``, ...; notes/STORE_API.md lists them). Their methods are
synchronous and each is one transaction; the asyncio servers call them through ``await store.call(fn, ...)``,
which runs them on the store's worker threads so the event loop never waits on disk (a read the caller knows
is small may run on the loop's own thread instead: ``await store.read_inline(fn, ...)``). The doors never see
``engine`` or ``schema``: the services return plain data; writes always go
through ``write()`` so the change log stays the single truth. Caches of what the store holds belong to this
instance (row cache, render memo, query cache, counts), never to a module.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from . import db, faults, pgnotify
from .accounts import Accounts
from .app_passwords import AppPasswords
from .blobs import Blobs
from .blobstore import open_blob_store
from .changes import Changes
from .credential_signal import CredentialSignal, signal_path
from .credentials import CREDENTIAL, Credentials, CredentialWatcher
from .emails import Emails
from .groupcommit import GroupCommitter, WriteQueue, current_group
from .identities import Identities
from .issued_tokens import IssuedTokens
from .keywords import Keywords
from .mailbox_deltas import MailboxDeltas
from .mailbox_rows import RowCache
from .mailbox_structure import TREE, StructureCache
from .mailboxes import Mailboxes
from .membership import Memberships
from .message_views import MessageViews
from .metadata import Metadata
from .migration_progress import MigrationProgress
from .model import Delivered, IngestItem
from .notifier import Notifier
from .packs import PackStore
from .process_state import ProcessState
from .push_subscriptions import PushSubscriptions
from .quotas import Quotas
from .replace import Replacements
from .save_dates import SaveDates
from .search import SearchService
from .search.merging import merge_everything
from .search.queue import drain as drain_search_queue
from .shared_counter import SharedCounter, counter_path
from .sqltext import SqlText
from .submissions import Submissions
from .subscriptions import Subscriptions
from .transaction import WriteTx
from .vacation import Vacation
from .visible_emails import VisibleEmails
from .writer_calls import WRITER_PREFIX
from .writes import is_write

T = TypeVar("T")

log = logging.getLogger("janusmail.store")


class _LeaveLoop(BaseException):
    """Raised inside a :meth:`Store.read_inline` read that finds it must write (or wait for the write lock): the
    read is run again on a reader thread. A BaseException, so a service's ``except Exception`` cannot keep it."""


class Store:
    """The engine, the pack files, the writer and reader threads, the change notifier, and the services that
    hold every query (see notes/STORE_API.md). Services reach each other through this object, never through
    each other's private methods."""

    def __init__(self, engine: sa.Engine, blob_root: Path, *, fsync: bool = True, workers: int = 6,
                 blob_store: str = "local") -> None:
        self.engine = engine
        self.sqlite = db.is_sqlite(engine)
        #: The hot paths' statements (built once, at import) compiled once for this engine and run on the
        #: driver's cursor (see :mod:`.sqltext`)
        self.sql = SqlText()
        #: the node's append-only pack files (the "local" blob store)
        self.packs = PackStore(blob_root, fsync=fsync)
        #: where bytes live: new blobs go to the configured backend ([store] blob_store: "local" packs or
        #: "database" chunks), reads to the one a location names (blobstore.py); ``blobs`` is the
        #: account-checked service over it
        self.blob_store = open_blob_store(blob_store, engine, self.packs)
        self.notifier = Notifier()
        self._thread = threading.local()  # this thread's shared read connection (shared_read)
        #: the event loop threads' own read connections (``_loop_read``), closed with the store
        self._kept: list[sa.Connection] = []
        self._kept_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store-read")
        # Deliveries' parse, hash and pack sync, before they join the writer lane (``prepare_ingest``): threads
        # of their own, not the readers' (a delivery waiting behind reads was slower), nor the lane's.
        self._ingest_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="store-ingest")
        # Writes queue on writer lanes that group-commit them (groupcommit.py): one lane on SQLite (it has one
        # write lock anyway; waiting writers must not hold the reader threads), several on PostgreSQL (row
        # locks per account let different accounts write in parallel).
        self._writer = WriteQueue(self, 1 if self.sqlite else workers, WRITER_PREFIX)
        self.max_message_size = 64 * 1024 * 1024
        self._group = GroupCommitter(self)
        self._listener: pgnotify.Listener | None = None
        self._credential_watcher: CredentialWatcher | None = None
        # Moved after every committed credential change, seen by every process on this SQLite file: a session
        # whose last good check saw the same value skips the epoch read (credential_signal.py).
        self.credential_signal = CredentialSignal(signal_path(engine))
        self.notifier.watchers.append(self.credential_signal.watcher(CREDENTIAL))
        # Each account's mailbox tree without counters, kept while no structural change committed in any
        # process on this SQLite file (mailbox_structure.py): resolving a mailbox name costs no statement.
        self.mailbox_structure = StructureCache(SharedCounter(counter_path(engine, "-mailboxes"), "mailbox signal"))
        self.notifier.watchers.append(self.mailbox_structure.signal.watcher(TREE))
        self.node_id = pgnotify.new_node_id()
        self.accounts = Accounts(self)
        self.credentials = Credentials(self)
        self.app_passwords = AppPasswords(self)
        self.tokens = IssuedTokens(self)  # issued bearer tokens: list, revoke, the revoked set (issued_tokens.py)
        self.process_state = ProcessState(self)  # what every process sees live (connections, failed logins)
        self.changes = Changes(self)
        self.mailboxes = Mailboxes(self)
        self.keywords = Keywords(self)
        self.emails = Emails(self)
        self.memberships = Memberships(self)
        self.blobs = Blobs(self)
        self.visible_emails = VisibleEmails(self)
        self.messages = MessageViews(self)
        self.mailbox_deltas = MailboxDeltas(self)  # IMAP catch-up reads, shared by sessions (mailbox_deltas.py)
        self.subscriptions = Subscriptions(self)
        self.identities = Identities(self)
        self.push_subscriptions = PushSubscriptions(self)  # JMAP PushSubscription (RFC 8620 §7.2)
        self.submissions = Submissions(self)  # JMAP EmailSubmission and the outbound queue (submissions.py)
        self.vacation = Vacation(self)  # JMAP VacationResponse and its per-sender reply log (vacation.py)
        self.search = SearchService(self)
        self.replacements = Replacements(self)  # IMAP REPLACE (RFC 8508): append + expunge in one write
        self.metadata, self.save_dates = Metadata(self), SaveDates(self)  # IMAP METADATA, SAVEDATE (issue 11)
        self.quotas = Quotas(self)  # limits and usage: IMAP QUOTA, JMAP Quota, LMTP (quotas.py)
        self.migration_progress = MigrationProgress(self)  # where `janusmail migrate` stopped (migration_progress.py)
        #: Told of every group commit: (calls, COMMIT seconds, whole group's seconds); set by the server when
        #: metrics are on (janusmail.observability), called on the writer lane after the callers were answered.
        self.on_group_commit: Callable[[int, float, float], None] | None = None
        #: Metadata rows of big mailboxes, kept exact by MODSEQ (FETCH FLAGS and metadata SEARCH read them).
        self.mailbox_rows = RowCache(engine)

    @classmethod
    def open(cls, data_dir: Path, url: str | None = None, *, fsync: bool = True, blob_store: str = "local") -> Store:
        """Open (and migrate) the store: SQLite under ``data_dir`` unless ``url`` names PostgreSQL; blob bytes
        in ``data_dir``'s pack files (``blob_store="local"``) or in the database (``"database"``)."""
        data_dir.mkdir(parents=True, exist_ok=True)
        engine = db.make_engine(url or db.sqlite_url(data_dir))
        db.migrate(engine)
        return cls(engine, data_dir / "blobs", fsync=fsync, blob_store=blob_store)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
        if self._credential_watcher is not None:
            self._credential_watcher.stop()
        self._ingest_pool.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self._pool.shutdown(wait=True)
        with self._kept_lock:
            kept, self._kept = self._kept, []
        for conn in kept:
            with contextlib.suppress(Exception):
                conn.close()
        self.blob_store.close()  # the packs too
        self.engine.dispose()
        self.credential_signal.close()
        self.mailbox_structure.close()

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking store method on the worker threads (writer threads for methods marked @writes)."""
        if is_write(fn):  # queued for the next group commit; resolved after that commit
            return await asyncio.wrap_future(self._writer.submit(fn, *args, **kwargs))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    async def read_inline(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A read whose cost the caller knows is small (a few rows by key: a mailbox's deltas, FLAGS of the
        messages a command named, the mailbox tree) run the cheapest way. On SQLite: right here, on the event
        loop's thread. The hop to a reader thread and back cost more than such a read (two thread wake-ups and
        the GIL handed over and back, measured as a third of the server's CPU in context switches under the
        logged-in IMAP stress profile, issue 10), and a SQLite read in WAL mode never waits for a writer. A read
        that finds it must write (IMAP4rev1's \\Recent claim through :meth:`write_call`, or its own
        ``write``/``transaction``) would stall the loop on the writer lane: it stops, unfinished, and runs again
        on a reader thread. On PostgreSQL every read is a network round trip: a reader thread, as ``call``."""
        if self.sqlite and not is_write(fn):
            self._thread.inline = True
            try:
                return fn(*args, **kwargs)
            except _LeaveLoop:
                pass
            finally:
                self._thread.inline = False
        return await self.call(fn, *args, **kwargs)

    def needs_thread(self) -> None:
        """Say so before work that must not run on the event loop's thread: a write outside a writer lane, or a
        read whose size is the mailbox's (a cold snapshot of a big mailbox). Inside a :meth:`read_inline` read
        on the loop it stops the read, which then runs again on a reader thread; anywhere else it does nothing."""
        if getattr(self._thread, "inline", False):
            raise _LeaveLoop

    async def prepare_ingest(self, account_id: str, items: list[IngestItem], *, each: bool = False) -> list[Any]:
        """``emails.prepare_placed`` on the ingest threads: what a delivery can do before the writer lane (parse,
        hash, and with local packs the bytes stored and synced), so the lane runs only its statements. With
        ``each``, ``emails.prepare_each`` instead (for ``ingest_each``: an item that fails is refused alone)."""
        loop = asyncio.get_running_loop()
        fn = self.emails.prepare_each if each else self.emails.prepare_placed
        return await loop.run_in_executor(self._ingest_pool, fn, account_id, items)

    def write_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a ``@writes`` method from synchronous store code (a read on a reader thread that finds it must
        write, as SELECT's \\Recent claim): queued on the writer lane and committed with its group, waiting
        for that commit; on a writer lane itself, simply called (it joins the running group). A transaction
        of its own on a reader thread would instead contend with the lane for SQLite's write lock, and the
        loser sleeps in SQLite's busy handler (milliseconds each time, measured under the IMAP stress profile).
        """
        if current_group() is not None:
            return fn(*args, **kwargs)
        self.needs_thread()
        return self._writer.submit(fn, *args, **kwargs).result()

    async def deliver(self, account_id: str, raw: bytes, mailbox_ids: tuple[str, ...], keywords: tuple[str, ...] = (),
                      received_at: int | None = None, *, deleted: bool = False,
                      claim_recent: str | None = None, inbound: bool = False) -> Delivered:
        """Store one message from an async server, sharing durability syncs with concurrent deliveries.
        ``deleted``: its memberships start with IMAP's ``\\Deleted``, in the same transaction (APPEND);
        ``claim_recent``, ``inbound`` (a delivery: a report in it is linked to its submission): see ``IngestItem``."""
        item = IngestItem(raw, tuple(mailbox_ids), tuple(keywords), received_at, deleted, claim_recent, inbound)
        return await self._group.deliver(account_id, item)

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A connection for reading. Inside a write call on a writer lane it is the group's own transaction
        (opened if need be), so the call reads what it and the calls before it wrote but did not commit yet; inside
        :meth:`shared_read` it is that block's connection."""
        group = current_group()
        if group is not None:
            # (opened here if no write of the group opened it yet: a write call's first read, such as the IMAP
            # credential check before its STORE, then shares the group's transaction instead of a connection,
            # BEGIN and ROLLBACK of its own)
            yield group.connection()
            return
        shared = getattr(self._thread, "read_conn", None)
        if shared is not None:
            try:
                yield shared
            except BaseException:
                with contextlib.suppress(Exception):  # a failed statement must not poison the block's later reads
                    shared.rollback()
                raise
            return
        with self.statement_read() as conn:
            yield conn

    @contextlib.contextmanager
    def _loop_read(self) -> Iterator[sa.Connection]:
        """The event loop thread's reads (:meth:`read_inline`, SQLite) on a connection of its own, kept open:
        taking a connection from the pool and giving it back (SQLAlchemy's Connection, the pool's checkout and
        reset) cost about 34 us on every read, more than the small read itself, and a busy IMAP worker makes
        several such reads per command (issue 10). The block ends whatever transaction it began, as the pool's
        reset would: a read snapshot left open would hide later commits from the next read."""
        if getattr(self._thread, "loop_busy", False):  # inside another such block: it keeps its own snapshot
            with self.engine.connect() as other:
                yield other
            return
        conn = getattr(self._thread, "loop_conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._keep_connection()
        self._thread.loop_busy = True
        try:
            yield conn
        finally:
            self._thread.loop_busy = False
            try:
                db.end_transaction(conn)
            except Exception:  # noqa: BLE001 - a broken connection: the next read opens another
                log.debug("rollback of a loop read failed", exc_info=True)
                self._drop_loop_connection(conn)

    @contextlib.contextmanager
    def statement_read(self) -> Iterator[sa.Connection]:
        """A connection for a read that stands on its own: its own snapshot, never a write group's transaction
        nor a :meth:`shared_read` block's. On the event loop's thread (a ``read_inline`` read on SQLite) that is
        the loop's kept connection (:meth:`_loop_read`), elsewhere one from the pool. The FETCH rows and the
        end-of-command mailbox deltas read this way on every command; a pool checkout each was about 5% of a
        busy IMAP worker's loop thread (issue 10)."""
        if getattr(self._thread, "inline", False):
            with self._loop_read() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            yield conn

    def _keep_connection(self) -> sa.Connection:
        old = getattr(self._thread, "loop_conn", None)
        if old is not None:
            self._drop_loop_connection(old)
        conn = self.engine.connect()
        conn.detach()  # (out of the pool: it does not take one of the pool's connections for good)
        self._thread.loop_conn = conn
        with self._kept_lock:
            self._kept.append(conn)
        return conn

    def _drop_loop_connection(self, conn: sa.Connection) -> None:
        if getattr(self._thread, "loop_conn", None) is conn:
            self._thread.loop_conn = None
        with self._kept_lock:
            if conn in self._kept:
                self._kept.remove(conn)
        with contextlib.suppress(Exception):
            conn.close()

    @contextlib.contextmanager
    def shared_read(self) -> Iterator[None]:
        """Every :meth:`read` of this thread inside the block uses one connection (one read transaction): an
        IMAP command's credential check and its own reads cost one connection checkout, BEGIN and ROLLBACK
        instead of one each (issue 10 item 0). Not on a writer lane (reads there use the group's transaction)."""
        if current_group() is not None or getattr(self._thread, "read_conn", None) is not None:
            yield
            return
        # (read before the block's first statement, so before its snapshot: see read_stamp)
        self._thread.read_stamp = self.mailbox_structure.stamp()
        with self.statement_read() as conn:
            self._thread.read_conn = conn
            try:
                yield
            finally:
                self._thread.read_conn = None

    def read_stamp(self) -> int | None:
        """The mailbox-structure counter as of this thread's read snapshot or earlier: inside
        :meth:`shared_read`, its value when the block began (a structural change that committed since may not
        be in the block's snapshot); elsewhere, now (the next read opens a new snapshot). A tree read in that
        snapshot may be cached under this value (``Mailboxes.shapes``)."""
        if getattr(self._thread, "read_conn", None) is not None:
            return getattr(self._thread, "read_stamp", None)
        return self.mailbox_structure.stamp()

    @contextlib.contextmanager
    def write(self, account_id: str, *, new_account: Mapping[str, object] | None = None) -> Iterator[WriteTx]:
        """A write transaction for one account; publishes a change event after a successful commit.

        A full disk or an I/O error of the database, in any statement or at COMMIT, leaves as
        ``StorageUnavailable`` (see ``faults``): nothing was committed and the doors answer "try again later".
        ``new_account`` (the accounts service only): the row of an account this transaction creates.

        On a writer lane (``Store.call``, ``writer_calls``) the block is a savepoint of the lane's shared group
        transaction instead: the event is published, and the caller answered, only after the group's COMMIT
        (groupcommit.py)."""
        group = current_group()
        if group is not None:
            with faults.mapped(), group.write(account_id, new_account) as tx:
                yield tx
            if not tx.discarded:
                self.notifier.publish(tx.event())  # held until the group commits
            return
        self.needs_thread()
        with faults.mapped():
            conn_ctx = self.engine.connect()
            conn = conn_ctx.execution_options(sqlite_begin="IMMEDIATE") if self.sqlite else conn_ctx
            with conn_ctx:
                with conn.begin() as trans:
                    tx = WriteTx(self, conn, account_id, new_account)
                    yield tx
                    if tx.discarded:
                        trans.rollback()
                    else:
                        tx._flush()
                        if not self.sqlite:
                            pgnotify.notify(conn, tx.event(), self.node_id)  # other nodes hear it when this commits
        if not tx.discarded:
            self.notifier.publish(tx.event())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A small write that is no mail change (no modseq, no change log, no event): an app password's
        last-used stamp, IMAP's \\Recent claim. On a writer lane it is a savepoint of the group's transaction
        (a transaction of its own there would wait for the group's lock, held by this very thread)."""
        group = current_group()
        with faults.mapped():
            if group is not None:
                with group.savepoint() as conn:
                    yield conn
                return
            self.needs_thread()
            conn_ctx = self.engine.connect()
            conn = conn_ctx.execution_options(sqlite_begin="IMMEDIATE") if self.sqlite else conn_ctx
            with conn_ctx, conn.begin():
                yield conn

    def refresh_statistics(self) -> None:
        """Update the query planner's statistics after bulk changes (an import): without them PostgreSQL
        plans the first-screen query as if the tables were empty and takes minutes instead of milliseconds.
        On SQLite the queued mail is indexed (``search/queue.py``) and the full-text indexes' segments are merged
        first, in short steps (``search/merging.py``): left as a bulk load leaves them, the next deliveries paid
        for seconds-long merges while every write waited."""
        if self.sqlite:
            drain_search_queue(self)
            merge_everything(self)
        with self.engine.connect() as conn:
            if self.sqlite:
                conn.exec_driver_sql("PRAGMA optimize")
            else:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")

    def start_listener(self) -> None:
        """Hear other server nodes' changes (PostgreSQL: LISTEN/NOTIFY). SQLite has one server process, but
        the CLI may change credentials from another one: a cheap poll turns those into events too."""
        if not self.sqlite and self._listener is None:
            self._listener = pgnotify.Listener(self)
            self._listener.start()
        if self.sqlite and self._credential_watcher is None:
            self._credential_watcher = CredentialWatcher(self)
            self._credential_watcher.start()
