"""App passwords as store facts: their rows, the reads a login needs, last-used stamps, and revocation.

Why here and not in :mod:`janusmail.auth.app_passwords`: revoking an app password must end the sessions logged
in with it, so the revocation and the account's credential-epoch stamp (:mod:`.credentials`) are one
transaction, and the change is announced on the store's notifier. That is store work (one owner of writes and
of the change notifier); the auth layer keeps what is credential logic (generating secrets, hashing and
comparing them, validating names and protocols) and asks the store for the data through :class:`AppPasswords`
(``store.app_passwords``), never running SQL or stamping epochs itself. The secret never reaches the store:
:meth:`AppPasswords.create` receives its hash.

``last_used_at`` is stamped on logins. A login must not wait for that write, so :meth:`AppPasswords.touch_soon`
queues it on the writer executor and returns; at most one stamp per credential is queued at a time, so a burst of
JMAP requests with Basic auth turns into one write, not one per request.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import credentials, faults, ids, writer_calls
from .credential_signal import bump_for
from .model import AlreadyExists, NotFound
from .schema import accounts
from .schema import app_passwords as table
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

log = logging.getLogger("janusmail.store.app_passwords")


@dataclass(frozen=True, slots=True)
class AppPassword:
    """An app password as listed to its owner; never carries the secret or its hash."""

    id: str
    account_id: str
    name: str
    protocols: frozenset[str]
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, protocol: str) -> bool:
        return self.active and protocol in self.protocols


def _row(row: Any) -> AppPassword:
    return AppPassword(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        protocols=frozenset(p for p in row.protocols.split(",") if p),
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


# -- statements on the caller's connection (shared by the Store service and the engine-only adapter) ----------


def state(conn: sa.Connection, credential_id: str) -> tuple[str, bool] | None:
    """``(account_id, active)`` of one app password, ``None`` when there is no such row (any more)."""
    row = conn.execute(sa.select(table.c.account_id, table.c.revoked_at).where(table.c.id == credential_id)).first()
    return (row.account_id, row.revoked_at is None) if row is not None else None


def revoke(conn: sa.Connection, account_id: str, name_or_id: str, *, now: int, node_id: str | None = None) -> bool:
    """Inside the caller's write transaction: revoke the account's active app password with that id or name
    and stamp the account's credential epoch; False (nothing written) when there is none."""
    c = table.c
    res = conn.execute(
        sa.update(table)
        .where(c.account_id == account_id, c.revoked_at.is_(None),
               sa.or_(c.id == name_or_id, c.name == name_or_id.strip()))
        .values(revoked_at=now)
    )
    if res.rowcount == 0:
        return False
    credentials.record_change(conn, account_id, node_id=node_id)
    return True


def _insert(conn: sa.Connection, account_id: str, name: str, protocols: Iterable[str], password_hash: str,
            now: int) -> AppPassword:
    """Insert a new app password; a revoked one of the same name is deleted first (names are unique per
    account), an active one is ``AlreadyExists``."""
    c = table.c
    existing = conn.execute(sa.select(c.id, c.revoked_at).where(c.account_id == account_id, c.name == name)).first()
    if existing is not None:
        if existing.revoked_at is None:
            raise AlreadyExists(name)
        conn.execute(sa.delete(table).where(c.id == existing.id))
    protos = frozenset(protocols)
    new_id = ids.mint(ids.APP_PASSWORD)
    conn.execute(sa.insert(table).values(
        id=new_id, account_id=account_id, name=name, password_hash=password_hash,
        protocols=",".join(sorted(protos)), created_at=now,
    ))
    return AppPassword(new_id, account_id, name, protos, now, None, None)


def _list(conn: sa.Connection, account_id: str, include_revoked: bool) -> list[AppPassword]:
    c = table.c
    q = sa.select(table).where(c.account_id == account_id)
    if not include_revoked:
        q = q.where(c.revoked_at.is_(None))
    return [_row(r) for r in conn.execute(q.order_by(c.created_at, c.id))]


def _get(conn: sa.Connection, app_password_id: str) -> AppPassword | None:
    row = conn.execute(sa.select(table).where(table.c.id == app_password_id)).first()
    return _row(row) if row is not None else None


def _candidates(conn: sa.Connection, account_id: str) -> list[tuple[AppPassword, str]]:
    c = table.c
    rows = conn.execute(sa.select(table).where(c.account_id == account_id, c.revoked_at.is_(None))).all()
    return [(_row(r), r.password_hash) for r in rows]


def _touch(conn: sa.Connection, app_password_id: str, now: int, not_since: int) -> bool:
    c = table.c
    res = conn.execute(
        sa.update(table)
        .where(c.id == app_password_id, sa.or_(c.last_used_at.is_(None), c.last_used_at < not_since))
        .values(last_used_at=now)
    )
    return bool(res.rowcount)


# -- the Store's service ----------------------------------------------------------------------------------------


class AppPasswords:
    """``store.app_passwords``: every read and write of the app-password table, typed."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._queued: dict[str, int] = {}  # app password id -> the last-used stamp queued for it
        self._pending: set[Future[bool]] = set()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self._store.engine.connect() as conn:
            yield conn

    @writes
    def create(self, account_id: str, name: str, protocols: Iterable[str], password_hash: str, *,
               now: int | None = None) -> AppPassword:
        """Record a new app password (``password_hash``: the secret's hash, made by the auth layer).
        ``NotFound``: no such account; ``AlreadyExists``: an active one has that name."""
        now = int(time.time()) if now is None else now
        try:
            with self._store.write(account_id) as tx:
                return _insert(tx.conn, account_id, name, protocols, password_hash, now)
        except sa.exc.IntegrityError as exc:  # a concurrent create with the same name won the race
            raise AlreadyExists(name) from exc

    def list(self, account_id: str, *, include_revoked: bool = False) -> list[AppPassword]:
        """The account's app passwords, oldest first."""
        with self._read() as conn:
            return _list(conn, account_id, include_revoked)

    def get(self, app_password_id: str) -> AppPassword | None:
        """One app password by id, revoked or not."""
        with self._read() as conn:
            return _get(conn, app_password_id)

    def candidates(self, account_id: str) -> list[tuple[AppPassword, str]]:
        """The account's active app passwords with their stored hashes (one query): what a login compares a
        secret against. The hashes leave the store only for that comparison."""
        with self._read() as conn:
            return _candidates(conn, account_id)

    def state(self, credential_id: str) -> tuple[str, bool] | None:
        """``(account_id, active)``, ``None`` once the app password no longer exists."""
        with self._read() as conn:
            return state(conn, credential_id)

    @writes
    def touch(self, app_password_id: str, now: int, *, not_since: int) -> bool:
        """Stamp ``last_used_at = now`` unless it is already ``>= not_since``; True when written. A plain
        transaction, not ``Store.write``: a last-used stamp is no mail state (no modseq, nothing to notify)."""
        with self._store.transaction() as conn:
            return _touch(conn, app_password_id, now, not_since)

    def touch_soon(self, app_password_id: str, now: int, *, not_since: int) -> None:
        """Queue :meth:`touch` on the writer executor without waiting (logins do not wait for the stamp).
        Nothing is queued when a stamp at least as recent as ``not_since`` is already queued."""
        with self._lock:
            queued = self._queued.get(app_password_id)
            if queued is not None and queued >= not_since:
                return
            self._queued[app_password_id] = now
        try:
            fut = writer_calls.submit(self._store, self.touch, app_password_id, now, not_since=not_since)
        except RuntimeError:  # the store is closing: the stamp is best effort
            self._done(app_password_id, now)
            return
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(lambda f: self._finished(f, app_password_id, now))

    def _finished(self, fut: Future[bool], app_password_id: str, now: int) -> None:
        self._done(app_password_id, now)
        with self._lock:
            self._pending.discard(fut)
        exc = fut.exception()
        if exc is not None:
            log.warning("could not record the use of app password %s: %s", app_password_id, exc)

    def _done(self, app_password_id: str, now: int) -> None:
        with self._lock:
            if self._queued.get(app_password_id) == now:
                del self._queued[app_password_id]

    def settle(self) -> None:
        """Wait until the stamps queued so far are written (tests; tools before they exit)."""
        with self._lock:
            pending = list(self._pending)
        for fut in pending:
            with contextlib.suppress(Exception):  # a failed stamp was logged; settling is no place to raise
                fut.result()

    @writes
    def revoke(self, account_id: str, name_or_id: str, *, now: int | None = None) -> bool:
        """Revoke the account's active app password with that id or name; False when there is none.

        One transaction revokes it and stamps the account's credential epoch; after the commit the change is
        published on the notifier (and on PostgreSQL sent to the other nodes by ``NOTIFY`` with the commit), so
        IMAP sessions and JMAP push connections logged in with it end within seconds, in any process."""
        store = self._store
        try:
            with store.write(account_id) as tx:
                done = revoke(tx.conn, account_id, name_or_id, now=int(time.time()) if now is None else now,
                              node_id=store.node_id)
        except NotFound:  # no such account: nothing to revoke
            return False
        if done:
            store.notifier.publish(credentials.event(account_id))
        return done


class EngineAppPasswords:
    """The same reads and writes over a bare engine, for a tool or test holding no Store (no writer executor,
    no local notifier: other processes hear a revocation through the SQLite watcher or PostgreSQL NOTIFY)."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine

    def create(self, account_id: str, name: str, protocols: Iterable[str], password_hash: str, *,
               now: int | None = None) -> AppPassword:
        now = int(time.time()) if now is None else now
        try:
            with faults.mapped(), self._engine.begin() as conn:
                if conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
                    raise NotFound(account_id)
                return _insert(conn, account_id, name, protocols, password_hash, now)
        except sa.exc.IntegrityError as exc:
            raise AlreadyExists(name) from exc

    def list(self, account_id: str, *, include_revoked: bool = False) -> list[AppPassword]:
        with self._engine.connect() as conn:
            return _list(conn, account_id, include_revoked)

    def get(self, app_password_id: str) -> AppPassword | None:
        with self._engine.connect() as conn:
            return _get(conn, app_password_id)

    def candidates(self, account_id: str) -> list[tuple[AppPassword, str]]:
        with self._engine.connect() as conn:
            return _candidates(conn, account_id)

    def state(self, credential_id: str) -> tuple[str, bool] | None:
        with self._engine.connect() as conn:
            return state(conn, credential_id)

    def touch(self, app_password_id: str, now: int, *, not_since: int) -> bool:
        with faults.mapped(), self._engine.begin() as conn:
            return _touch(conn, app_password_id, now, not_since)

    def touch_soon(self, app_password_id: str, now: int, *, not_since: int) -> None:
        self.touch(app_password_id, now, not_since=not_since)  # a tool has no writer to queue on

    def settle(self) -> None:
        pass

    def revoke(self, account_id: str, name_or_id: str, *, now: int | None = None) -> bool:
        return revoke_with_engine(self._engine, account_id, name_or_id, now=now)


def service_for(target: Any) -> AppPasswords | EngineAppPasswords:
    """The app-password service of a Store, or the engine-only adapter for a bare engine."""
    if isinstance(target, sa.Engine):
        return EngineAppPasswords(target)
    service = getattr(target, "app_passwords", None)
    if isinstance(service, (AppPasswords, EngineAppPasswords)):
        return service
    raise TypeError(f"expected a Store or an engine, not {type(target).__name__}")


def revoke_with_engine(engine: sa.Engine, account_id: str, name_or_id: str, *, now: int | None = None) -> bool:
    """:func:`revoke` in its own transaction, for a tool holding only an engine (no Store, so no local
    notifier: other processes hear it through the SQLite watcher or PostgreSQL NOTIFY, as from the CLI; the
    SQLite signal is bumped here)."""
    with faults.mapped(), engine.begin() as conn:
        done = revoke(conn, account_id, name_or_id, now=int(time.time()) if now is None else now)
    if done:  # committed: sessions on this SQLite file re-check at their next command (credential_signal.py)
        bump_for(engine)
    return done
