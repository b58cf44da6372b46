"""Issued bearer tokens as store facts (``store.tokens``): the record behind "list an account's tokens, revoke one".

Why a record at all: the built-in issuer's access tokens are signed JWTs (janusmail/auth/tokens.py), valid by
their signature until ``exp``. That is what makes them cheap to check, and also why, without a record, an
operator could neither see which tokens an account has nor take one back before it expires. Issuing now writes
one row per token (its ``jti``, never the token itself); revoking stamps ``revoked_at``.

Why revocation is a credential change: revoking stamps the account's credential epoch in the same transaction
and announces a ``Credential`` event (:mod:`.credentials`), exactly as revoking an app password does. So the
sessions already logged in with the token learn it the way every other session learns its credential died:
IMAP sessions at their next command (IDLE ones within seconds), SMTP at the next MAIL, JMAP push streams and the
admin's own session at once; :func:`janusmail.auth.revocation.check` asks :meth:`IssuedTokens.state` only once
the epoch moved.

Why a cache for new requests: JMAP authenticates every request, and a database read per request just to learn
"not revoked" (the answer nearly every time) would add a round trip to the hot path. :class:`RevokedSet` keeps the
revoked, not yet expired ids of this process in memory, so :meth:`IssuedTokens.is_revoked` costs a set lookup.
It is kept current by the same ``Credential`` events (a watcher on the store's notifier, which hears this
process's commits, the other workers' through the change bus, other nodes' through PostgreSQL NOTIFY and other
processes' on SQLite through the credential watcher's poll): an event marks its account stale, and the next
lookup re-reads that account's revoked tokens (one indexed query). A full re-read every
:data:`FULL_REFRESH` seconds bounds the damage of an event that never arrived (a listener reconnecting).
The window in which another process may still accept a token it just revoked is the event's travel time: none
in the revoking process (the event is delivered on the committing thread before the caller is answered),
milliseconds over the change bus and NOTIFY, up to the watcher's poll interval (1 s) on SQLite from the CLI.

Tokens the store has no record of (signed before migration 0017, the admin's short-lived JMAPACCESS probes, or
from an external issuer) are never "revoked": they live until their ``exp``, as before.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import credentials, writer_calls
from .model import NotFound
from .notifier import ChangeEvent
from .schema import ID, accounts, metadata
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = ["FULL_REFRESH", "IssuedToken", "IssuedTokens", "RevokedSet", "issued_tokens_table"]

log = logging.getLogger("janusmail.store.issued_tokens")

#: Seconds between full re-reads of the revoked set (the safety net under the events).
FULL_REFRESH = 60.0
#: A token's last use is stamped at most once per this many seconds (a JMAP client makes many requests).
LAST_USED_GRANULARITY = 60
#: Rows of tokens expired longer ago than this are deleted when the account gets a new token: the list stays
#: about live tokens, and the table cannot grow without bound.
KEEP_EXPIRED = 7 * 86400

# The table of migration 0017, declared beside the only code that reads and writes it.
issued_tokens_table = sa.Table(
    "issued_tokens",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),  # the token's own id claim
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),  # what it is for (operator's words)
    sa.Column("scopes", sa.String(100), nullable=False),  # space separated: imap jmap smtp
    sa.Column("issued_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
    sa.Column("last_used_at", sa.BigInteger, nullable=True),
    sa.Index("ix_issued_tokens_account", "account_id", "expires_at"),
    sa.Index("ix_issued_tokens_revoked", "revoked_at"),
)
_t = issued_tokens_table


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """One issued token as listed to an operator (never the token itself)."""

    jti: str
    account_id: str
    label: str
    scopes: frozenset[str]
    issued_at: int
    expires_at: int
    revoked_at: int | None
    last_used_at: int | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def active(self, now: float) -> bool:
        """Not revoked and not expired at ``now``."""
        return self.revoked_at is None and now < self.expires_at


def _row(row: Any) -> IssuedToken:
    return IssuedToken(row.jti, row.account_id, row.label, frozenset(row.scopes.split()), int(row.issued_at),
                       int(row.expires_at), row.revoked_at, row.last_used_at)


class RevokedSet:
    """The revoked, unexpired token ids of the store, in memory (see the module docstring). Thread-safe: logins
    ask on their own threads, events arrive on the committing thread or a listener's."""

    def __init__(self, load: Callable[[Iterable[str] | None, int], list[tuple[str, str, int]]],
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        #: ``load(accounts, now)``: (jti, account_id, expires_at) of the revoked tokens of those accounts
        #: (``None``: of every account) still unexpired at ``now``.
        self._load = load
        self._clock, self._monotonic = clock, monotonic
        self._lock = threading.Lock()
        self._revoked: dict[str, tuple[str, int]] = {}  # jti -> (account_id, expires_at)
        self._stale: set[str] = set()
        self._loaded_at: float | None = None
        self._reloading = False
        self._reload_lock = threading.Lock()

    def changed(self, account_id: str) -> None:
        """A credential of ``account_id`` changed (an event): re-read its revoked tokens at the next lookup."""
        with self._lock:
            self._stale.add(account_id)

    def contains(self, jti: str) -> bool:
        """Is ``jti`` a revoked token? Memory only, unless an event or the refresh period asks for a re-read.
        A lookup that meets a re-read in progress waits for it: it may be about the token just revoked."""
        with self._lock:
            if not self._due() and not self._reloading:
                return jti in self._revoked
        with self._reload_lock:  # one re-read at a time; the others wait for it and read its result
            with self._lock:
                full = self._loaded_at is None or self._monotonic() - self._loaded_at >= FULL_REFRESH
                stale = self._stale
                self._stale = set()
                self._reloading = reload = full or bool(stale)
            if reload:
                try:
                    self._reload(None if full else stale)
                except Exception:
                    with self._lock:  # keep the marks for the next lookup (the caller sees the error)
                        self._stale |= stale
                    raise
                finally:
                    with self._lock:
                        self._reloading = False
        with self._lock:
            return jti in self._revoked

    def _due(self) -> bool:
        """(Under ``_lock``.) Is a re-read needed: never loaded, refresh period over, or accounts marked?"""
        return (self._loaded_at is None or self._monotonic() - self._loaded_at >= FULL_REFRESH
                or bool(self._stale))

    def _reload(self, accounts: set[str] | None) -> None:
        now = int(self._clock())
        started = self._monotonic()
        rows = self._load(sorted(accounts) if accounts is not None else None, now)
        fresh = {jti: (account_id, expires_at) for jti, account_id, expires_at in rows}
        with self._lock:
            if accounts is None:
                self._revoked = fresh
                self._loaded_at = started
            else:
                kept = {j: v for j, v in self._revoked.items() if v[0] not in accounts and v[1] > now}
                kept.update(fresh)
                self._revoked = kept

    def __len__(self) -> int:
        with self._lock:
            return len(self._revoked)


class IssuedTokens:
    """``store.tokens``: the record of issued bearer tokens (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.revoked = RevokedSet(self._revoked_rows)
        self._lock = threading.Lock()
        self._stamped: dict[str, int] = {}  # jti -> the last-used stamp this process last queued
        self._pending: set[Future[bool]] = set()
        store.notifier.watchers.append(self._heard)

    def _heard(self, ev: ChangeEvent) -> None:
        if credentials.is_credential_event(ev):
            self.revoked.changed(ev.account_id)

    def _revoked_rows(self, accounts: Iterable[str] | None, now: int) -> list[tuple[str, str, int]]:
        q = sa.select(_t.c.jti, _t.c.account_id, _t.c.expires_at).where(_t.c.revoked_at.is_not(None),
                                                                        _t.c.expires_at > now)
        out: list[tuple[str, str, int]] = []
        with self._store.read() as conn:
            if accounts is None:
                return [(r[0], r[1], int(r[2])) for r in conn.execute(q)]
            chosen = list(accounts)
            for i in range(0, len(chosen), 500):  # bounded IN lists
                rows = conn.execute(q.where(_t.c.account_id.in_(chosen[i : i + 500])))
                out += [(r[0], r[1], int(r[2])) for r in rows]
        return out

    # -- issuing -------------------------------------------------------------------------------------------

    @writes
    def record(self, account_id: str, jti: str, scopes: Iterable[str], issued_at: int, expires_at: int, *,
               label: str = "") -> IssuedToken:
        """Record a token the issuer signed (before it is handed out). Rows of this account's tokens expired
        more than :data:`KEEP_EXPIRED` ago go in the same transaction. ``NotFound``: no such account. A plain
        transaction: issuing is no mail change and ends no session."""
        scope_text = " ".join(sorted(set(scopes)))
        label = label.strip()[:200]
        with self._store.transaction() as conn:
            if conn.execute(sa.select(accounts.c.id).where(accounts.c.id == account_id)).first() is None:
                raise NotFound(account_id)
            conn.execute(sa.delete(_t).where(_t.c.account_id == account_id,
                                             _t.c.expires_at < issued_at - KEEP_EXPIRED))
            conn.execute(sa.insert(_t).values(jti=jti, account_id=account_id, label=label, scopes=scope_text,
                                              issued_at=issued_at, expires_at=expires_at))
        return IssuedToken(jti, account_id, label, frozenset(scope_text.split()), issued_at, expires_at, None, None)

    # -- reads ---------------------------------------------------------------------------------------------

    def list(self, account_id: str, *, include_expired: bool = False, now: int | None = None) -> list[IssuedToken]:
        """The account's tokens, newest first; without ``include_expired`` only those not yet expired (revoked
        ones included: the list shows they were revoked)."""
        q = sa.select(_t).where(_t.c.account_id == account_id)
        if not include_expired:
            q = q.where(_t.c.expires_at > (int(time.time()) if now is None else now))
        with self._store.read() as conn:
            return [_row(r) for r in conn.execute(q.order_by(_t.c.issued_at.desc(), _t.c.jti))]

    def get(self, jti: str) -> IssuedToken | None:
        with self._store.read() as conn:
            row = conn.execute(sa.select(_t).where(_t.c.jti == jti)).first()
        return _row(row) if row is not None else None

    def state(self, jti: str) -> tuple[str, bool] | None:
        """``(account_id, not revoked)``, ``None`` when the store has no record of the token (see the module
        docstring). What :func:`janusmail.auth.revocation.check` asks once a session's epoch moved."""
        with self._store.read() as conn:
            row = conn.execute(sa.select(_t.c.account_id, _t.c.revoked_at).where(_t.c.jti == jti)).first()
        return (row[0], row[1] is None) if row is not None else None

    def is_revoked(self, jti: str) -> bool:
        """Was this token revoked? The per-request question: answered from memory (:class:`RevokedSet`)."""
        return self.revoked.contains(jti)

    # -- revoking ------------------------------------------------------------------------------------------

    @writes
    def revoke(self, jti: str, *, account_id: str | None = None, now: int | None = None) -> IssuedToken | None:
        """Revoke the token ``jti`` (of ``account_id``, when given: the admin's page names the account); returns
        it as it was, or ``None`` when there is no such active token. One transaction revokes it and stamps the
        account's credential epoch; after the commit the change is announced (see the module docstring), which
        ends its sessions and refreshes every process's revoked set."""
        found = self.get(jti)
        if found is None or found.revoked or (account_id is not None and found.account_id != account_id):
            return None
        store = self._store
        stamp = int(time.time()) if now is None else now
        try:
            with store.write(found.account_id) as tx:
                res = tx.conn.execute(sa.update(_t).where(_t.c.jti == jti, _t.c.revoked_at.is_(None))
                                      .values(revoked_at=stamp))
                done = res.rowcount > 0
                if done:
                    credentials.record_change(tx.conn, found.account_id, node_id=store.node_id)
        except NotFound:  # the account went meanwhile (its tokens with it)
            return None
        if not done:
            return None
        store.notifier.publish(credentials.event(found.account_id))  # held until a group commit is done
        return found

    # -- last use ------------------------------------------------------------------------------------------

    @writes
    def touch(self, jti: str, now: int, *, not_since: int) -> bool:
        """Stamp ``last_used_at = now`` unless it is already ``>= not_since``; True when written (a plain
        transaction: no modseq, nothing to announce)."""
        with self._store.transaction() as conn:
            res = conn.execute(sa.update(_t).where(_t.c.jti == jti, sa.or_(_t.c.last_used_at.is_(None),
                                                                             _t.c.last_used_at < not_since))
                               .values(last_used_at=now))
        return bool(res.rowcount)

    def touch_soon(self, jti: str, now: int) -> None:
        """Queue :meth:`touch` without waiting, at most once per :data:`LAST_USED_GRANULARITY` per token and
        process: a burst of JMAP requests with one token is one write a minute, and no request waits for it."""
        with self._lock:
            last = self._stamped.get(jti)
            if last is not None and now - last < LAST_USED_GRANULARITY:
                return
            if len(self._stamped) > 50_000:  # forget old stamps rather than grow (the row keeps the truth)
                self._stamped.clear()
            self._stamped[jti] = now
        try:
            fut = writer_calls.submit(self._store, self.touch, jti, now,
                                      not_since=now - LAST_USED_GRANULARITY + 1)
        except RuntimeError:  # the store is closing: the stamp is best effort
            return
        with self._lock:
            self._pending.add(fut)
        fut.add_done_callback(self._finished)

    def _finished(self, fut: Future[bool]) -> None:
        with self._lock:
            self._pending.discard(fut)
        exc = fut.exception()
        if exc is not None:
            log.warning("could not record a token's use: %s", exc)

    def settle(self) -> None:
        """Wait until the stamps queued so far are written (tests; tools before they exit)."""
        with self._lock:
            pending = list(self._pending)
        for fut in pending:
            with contextlib.suppress(Exception):
                fut.result()
