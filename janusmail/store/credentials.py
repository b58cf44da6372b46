"""Credential changes as facts of the store, so a logged-in session can learn that its credential died.

A session authenticates once and then runs for hours; the rule (README, "Sessions end with their credential") is
that replacing the account password, revoking an app password or deleting the account ends every session that
relies on it. The change may be made by any process (``janusmail user passwd`` is a separate process) on any
node, so it has to be visible in the database itself, cheaply enough to look at before every IMAP command:

* ``accounts.credential_epoch`` is stamped, in the same transaction as the change, with a store-wide increasing
  value (``max + 1``; serialized by SQLite's single writer, and by a transaction-scoped advisory lock on
  PostgreSQL so that commit order and value order agree). ``accounts.password_epoch`` gets the same value when
  the password itself changed. A session remembers the store-wide maximum read *before* its credentials were
  verified; any later change of its account carries a larger value. One primary-key read per command tells it
  whether anything changed; only then does it look at what (:mod:`janusmail.auth.revocation`).
* The change is also an event (kind ``Credential``) on the store's change notifier, so IDLE sessions, which
  send no commands, hear it within seconds: published locally by the writing process, sent to other PostgreSQL
  nodes with ``NOTIFY`` in the same transaction, and on SQLite, where another process's commit makes no sound,
  found by :class:`CredentialWatcher`'s poll of one indexed ``max()``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import pgnotify
from .model import NotFound
from .notifier import ChangeEvent
from .schema import accounts
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

log = logging.getLogger("janusmail.store.credentials")

#: The ChangeEvent kind of a credential change (JMAP push ignores kinds it does not know).
CREDENTIAL = "Credential"
#: pg_advisory_xact_lock key serializing credential epochs on PostgreSQL (an arbitrary constant: "JANUSCRD").
PG_LOCK_KEY = 0x4A414E5553435244


def event(account_id: str) -> ChangeEvent:
    return ChangeEvent(account_id, 0, frozenset({CREDENTIAL}))


def is_credential_event(ev: ChangeEvent) -> bool:
    return CREDENTIAL in ev.kinds


def record_change(conn: sa.Connection, account_id: str, *, password: bool = False,
                  node_id: str | None = None) -> int | None:
    """Stamp a credential change of ``account_id`` inside the caller's write transaction; returns the new
    epoch (``None`` when there is no such account). On PostgreSQL the change event is queued with the
    transaction (``node_id``: the writing store's, so its own listener does not republish what it published
    itself; any other value, e.g. from a tool without a store, lets this node's listener publish it too)."""
    postgres = conn.dialect.name == "postgresql"
    if postgres:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(PG_LOCK_KEY)))
    others = accounts.alias("all_accounts")  # an alias: the same table would be correlated to the updated row
    following = sa.select(sa.func.coalesce(sa.func.max(others.c.credential_epoch), 0) + 1).scalar_subquery()
    res = conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(credential_epoch=following))
    if res.rowcount == 0:
        return None
    if password:
        conn.execute(sa.update(accounts).where(accounts.c.id == account_id)
                     .values(password_epoch=accounts.c.credential_epoch))
    if postgres:
        pgnotify.notify(conn, event(account_id), node_id or pgnotify.new_node_id())
    return conn.execute(sa.select(accounts.c.credential_epoch).where(accounts.c.id == account_id)).scalar_one()


def announce(conn: sa.Connection, account_id: str, node_id: str | None = None) -> None:
    """Queue a credential event without stamping (an account being deleted has no row left to stamp)."""
    if conn.dialect.name == "postgresql":
        pgnotify.notify(conn, event(account_id), node_id or pgnotify.new_node_id())


def current_sequence(engine: sa.Engine) -> int:
    """The store-wide credential epoch now: read before verifying a login, it is the session's baseline."""
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(accounts.c.credential_epoch), 0)))
                   .scalar_one())


#: Built once: every IMAP command after login runs this check (issue 10 item 0).
_EPOCHS = (sa.select(accounts.c.credential_epoch, accounts.c.password_epoch)
           .where(accounts.c.id == sa.bindparam("account_id")))


def epochs(engine: sa.Engine, account_id: str) -> tuple[int, int] | None:
    """``(credential_epoch, password_epoch)`` of the account, ``None`` when it no longer exists."""
    with engine.connect() as conn:
        row = conn.execute(_EPOCHS, {"account_id": account_id}).first()
    return (int(row[0]), int(row[1])) if row is not None else None


@dataclass(frozen=True, slots=True)
class LoginAccount:
    """What a login checks about an account: its secrets (hashes only), whether JMAP is enabled, and whether
    the account is disabled (no login through any door: janusmail/admin, ``user disable``)."""

    id: str
    address: str
    password_hash: str | None
    scram_sha256: str | None
    jmap_enabled: bool
    disabled: bool = False


class _Unchanged(Exception):
    """Rolls back a compare-and-set that found the password changed meanwhile (nothing to write or announce)."""


class Credentials:
    """``store.credentials``: the account reads a login needs and the credential writes it may make.

    Hashing and verifying (argon2, SCRAM) stay in :mod:`janusmail.auth`; this service only reads and writes
    the stored forms."""

    _COLUMNS = (accounts.c.id, accounts.c.address, accounts.c.password_hash, accounts.c.scram_sha256,
                accounts.c.jmap_enabled, accounts.c.disabled)

    def __init__(self, store: Store) -> None:
        self._store = store

    def login_account(self, *, address: str | None = None, account_id: str | None = None) -> LoginAccount | None:
        """The account with that (already normalized) address, or that id; one primary/unique-key read."""
        if (address is None) == (account_id is None):
            raise TypeError("give exactly one of address and account_id")
        q = sa.select(*self._COLUMNS)
        q = q.where(accounts.c.address == address) if address is not None else q.where(accounts.c.id == account_id)
        with self._store.engine.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            return None
        return LoginAccount(row[0], row[1], row[2], row[3], bool(row[4]), bool(row[5]))

    def epochs(self, account_id: str) -> tuple[int, int] | None:
        """``(credential_epoch, password_epoch)``, or ``None`` once the account is gone (through ``store.read``:
        an IMAP command's check shares the command's read transaction)."""
        with self._store.read() as conn:  # (every IMAP command runs this: on the driver's cursor, Store.sql)
            row = self._store.sql.first(conn, _EPOCHS, {"account_id": account_id})
        return (int(row[0]), int(row[1])) if row is not None else None

    def disabled(self, account_id: str) -> bool | None:
        """Is the account disabled (``None``: it no longer exists)? Asked only once its epoch moved."""
        with self._store.read() as conn:
            row = conn.execute(sa.select(accounts.c.disabled).where(accounts.c.id == account_id)).first()
        return None if row is None else bool(row[0])

    def sequence(self) -> int:
        """The store-wide credential epoch now (a login's baseline)."""
        return current_sequence(self._store.engine)

    @writes
    def set_password(self, account_id: str, password_hash: str, scram_sha256: str | None) -> None:
        """Replace the account password. Sessions logged in with the old one end (``* BYE``) at their next
        command, IDLE ones within seconds: the change is stamped and announced in the same transaction.
        ``NotFound`` when there is no such account."""
        store = self._store
        with store.write(account_id) as tx:
            tx.conn.execute(sa.update(accounts).where(accounts.c.id == account_id)
                            .values(password_hash=password_hash, scram_sha256=scram_sha256))
            record_change(tx.conn, account_id, password=True, node_id=store.node_id)
        store.notifier.publish(event(account_id))

    @writes
    def upgrade_password(self, account_id: str, expected_hash: str | None, *, password_hash: str | None = None,
                         scram_sha256: str | None = None) -> bool:
        """Store a re-hash of the SAME password (a stronger argon2 hash, a missing SCRAM secret) if the stored
        hash is still ``expected_hash``: a compare-and-set that never undoes a concurrent password change.
        No credential epoch is stamped (the password did not change: its sessions stay). True when written."""
        values: dict[str, str] = {}
        if password_hash is not None:
            values["password_hash"] = password_hash
        if scram_sha256 is not None:
            values["scram_sha256"] = scram_sha256
        if not values:
            return False
        same = (accounts.c.password_hash.is_(None) if expected_hash is None
                else accounts.c.password_hash == expected_hash)
        try:
            with self._store.write(account_id) as tx:
                res = tx.conn.execute(sa.update(accounts).where(accounts.c.id == account_id, same).values(**values))
                if res.rowcount == 0:
                    raise _Unchanged
        except (_Unchanged, NotFound):
            return False
        return True


class CredentialWatcher:
    """SQLite only: turn credential changes committed by other processes into notifier events.

    One thread reads ``max(credential_epoch)`` (an index lookup) and the number of accounts every ``interval``
    seconds; when the maximum grew, the accounts stamped since are published. A deleted account has no row
    left to stamp, so the accounts someone listens to are checked to still exist: each new one once, and all
    of them when the number of accounts changed; the missing ones are published. Changes made in this process
    are published by the writer already (a second event is harmless: sessions re-check, find nothing new or
    end once).
    """

    def __init__(self, store: Store, interval: float = 1.0) -> None:
        self.store = store
        self.interval = interval
        self._stop = threading.Event()
        self._seen = 0
        self._count = 0
        self._known: set[str] = set()  # listened-to accounts seen to exist
        self._gone: set[str] = set()  # listened-to accounts announced as deleted (once is enough)
        self._thread = threading.Thread(target=self._run, name="credential-watch", daemon=True)

    def _look(self, conn: sa.Connection) -> tuple[int, int]:
        top, count = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(accounts.c.credential_epoch), 0), sa.func.count())
        ).one()
        return int(top), int(count)

    def start(self) -> None:
        with self.store.engine.connect() as conn:
            self._seen, self._count = self._look(conn)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def poll(self) -> int:
        """One look; returns how many accounts were announced."""
        changed: list[str] = []
        with self.store.engine.connect() as conn:
            top, count = self._look(conn)
            if top > self._seen:
                changed += [r[0] for r in conn.execute(
                    sa.select(accounts.c.id).where(accounts.c.credential_epoch > self._seen))]
            subscribed = self.store.notifier.subscribed_accounts()
            self._gone.intersection_update(subscribed)  # ids are never reused: forget once nobody listens
            listened = [a for a in subscribed if a not in self._gone]
            self._known.intersection_update(listened)
            suspects = listened if count != self._count else [a for a in listened if a not in self._known]
            for i in range(0, len(suspects), 500):  # bounded IN lists
                chunk = suspects[i : i + 500]
                present = {r[0] for r in conn.execute(sa.select(accounts.c.id).where(accounts.c.id.in_(chunk)))}
                self._known.update(present)
                missing = [a for a in chunk if a not in present]
                self._gone.update(missing)
                changed += missing
        self._seen, self._count = max(top, self._seen), count
        for account_id in changed:
            self.store.notifier.deliver(event(account_id))  # seen in the database: every process sees it
        return len(changed)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a locked or vanished database must not end the watcher
                log.warning("credential watcher could not poll", exc_info=True)
