"""The live connections of this process, by door: what the web admin's "connections" page reads.

Why a registry of its own rather than reading each listener's tables: the doors never talk to each other or to
the admin, and their bookkeeping (the IMAP listener's writers, JMAP's per-account push counters) is theirs to
change. Each door registers a connection when it opens and unregisters it when it ends, handing a callable that
says who is logged in on it now (an IMAP connection logs in after it opened, and may UNAUTHENTICATE); the admin
gets frozen :class:`ConnectionInfo` snapshots and never a session object.

With ``serve --workers N``, and with several nodes on one PostgreSQL database, every process has its own
registry: :func:`publish_forever` copies it (and the failed-login throttle's recent failures) into the store
(``store.process_state``) when it changes, and the admin shows its own process live beside every other
process's published state (:func:`everyone`, :func:`failed_logins_elsewhere`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from janusmail.store.process_state import ConnectionInfo, FailedLogins

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.auth.authenticator import AuthResult
    from janusmail.auth.throttle import LoginThrottle
    from janusmail.store.store import Store

__all__ = ["DOORS", "ConnectionInfo", "Connections", "everyone", "failed_logins_elsewhere", "publish_forever"]

log = logging.getLogger("janusmail.connections")

#: How often a publisher looks at its registry (seconds): the most another process's page lags behind.
CHECK_EVERY = 2.0
#: A registry that did not change is published again this often, as a heartbeat (well under STALE_AFTER).
HEARTBEAT_EVERY = 30.0

#: The kinds of connection a door registers (IMAP sessions; JMAP push streams, which stay open).
DOORS = ("imap", "jmap-eventsource", "jmap-websocket")


@dataclass(eq=False, slots=True)
class _Entry:
    door: str
    peer: str
    opened_at: float
    principal: Callable[[], AuthResult | None]
    tls: Callable[[], bool]


class Connections:
    """Thread-safe (the admin reads on a store thread or the loop; doors write on the loop)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._open: dict[int, _Entry] = {}

    def opened(self, door: str, peer: str, *, principal: Callable[[], AuthResult | None],
               tls: Callable[[], bool] | bool = False) -> int:
        """Register a connection; returns the ticket to pass to :meth:`closed`. ``principal`` is asked at
        each snapshot, so logins and logouts after opening show without the door telling anyone."""
        if door not in DOORS:
            raise ValueError(f"unknown door {door!r}")
        is_tls = tls if callable(tls) else (lambda: bool(tls))
        with self._lock:
            ticket = next(self._ids)
            self._open[ticket] = _Entry(door, peer, self._clock(), principal, is_tls)
        return ticket

    def closed(self, ticket: int) -> None:
        with self._lock:
            self._open.pop(ticket, None)

    def snapshot(self) -> list[ConnectionInfo]:
        """Every open connection, oldest first."""
        with self._lock:
            entries = list(self._open.items())
        out = []
        for ticket, e in entries:
            who = e.principal()
            out.append(ConnectionInfo(
                ticket, e.door, e.peer, e.opened_at, e.tls(),
                who.account_id if who else None, who.address if who else None,
                who.method if who else None, who.credential_id if who else None,
            ))
        return out

    def counts(self) -> Counter[tuple[str, str | None]]:
        """Open connections per (door, address); ``None`` for connections not logged in."""
        return Counter((c.door, c.address) for c in self.snapshot())


def process_label() -> str:
    """How the admin names this process among the others: host and pid."""
    return f"{socket.gethostname()} pid {os.getpid()}"


async def everyone(store: Store, connections: Connections) -> list[ConnectionInfo]:
    """This process's connections (live) followed by every other process's (as last published)."""
    others = await store.call(store.process_state.others, store.node_id, int(time.time()))
    return connections.snapshot() + [c for p in others for c in p.connections]


async def failed_logins_elsewhere(store: Store) -> list[FailedLogins]:
    """The recent failed logins the other workers and nodes published (this process's: its throttle, live)."""
    others = await store.call(store.process_state.others, store.node_id, int(time.time()))
    return sorted((f for p in others for f in p.failed_logins), key=lambda f: -f.last_at)


def _failed_logins(throttle: LoginThrottle | None, now: float) -> list[FailedLogins]:
    if throttle is None:
        return []
    view = throttle.snapshot()
    return [FailedLogins(p.client, p.account, p.failures, round(now - p.last_ago, 3), round(now + p.retry_after, 3))
            for p in view.pairs]


async def publish_forever(store: Store, connections: Connections, throttle: LoginThrottle | None = None, *,
                          check_every: float = CHECK_EVERY, heartbeat_every: float = HEARTBEAT_EVERY) -> None:
    """Keep this process's row in ``store.process_state`` current until cancelled, then withdraw it: its open
    connections and its ``throttle``'s recent failed logins. Writes only when either changed since the last
    publish, or for the heartbeat; a failed write (the database away for a moment) is retried at the next
    check, never the end of the task."""
    label, published, last = process_label(), None, 0.0
    try:
        while True:
            now = time.time()
            entries = connections.snapshot()
            failures = _failed_logins(throttle, now)
            # what changed: the connections, or the failures (their counts and last times, not the ages)
            seen = (entries, [(f.client, f.account, f.failures, round(f.last_at)) for f in failures])
            if seen != published or now - last >= heartbeat_every:
                try:
                    await store.call(store.process_state.publish, store.node_id, label, entries, failures, int(now))
                    published, last = seen, now
                except Exception:  # noqa: BLE001 - the next check tries again
                    log.warning("could not publish this process's live state", exc_info=True)
            await asyncio.sleep(check_every)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(store.call(store.process_state.withdraw, store.node_id))
