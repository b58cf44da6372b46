"""The live connections of this process, by door: what the web admin's "connections" page reads.

Why a registry of its own rather than reading each listener's tables: the doors never talk to each other or to
the admin, and their bookkeeping (the IMAP listener's writers, JMAP's per-account push counters) is theirs to
change. Each door registers a connection when it opens and unregisters it when it ends, handing a callable that
says who is logged in on it now (an IMAP connection logs in after it opened, and may UNAUTHENTICATE); the admin
gets frozen :class:`ConnectionInfo` snapshots and never a session object.

With ``serve --workers N`` every worker process has its own registry: the admin page shows the connections of
the worker that served it (the page says so).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.auth.authenticator import AuthResult

__all__ = ["DOORS", "ConnectionInfo", "Connections"]

#: The kinds of connection a door registers (IMAP sessions; JMAP push streams, which stay open).
DOORS = ("imap", "jmap-eventsource", "jmap-websocket")


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One open connection as the admin sees it; ``account_id`` etc. are ``None`` before login."""

    id: int
    door: str
    peer: str
    opened_at: float
    tls: bool
    account_id: str | None
    address: str | None
    method: str | None
    credential_id: str | None


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
