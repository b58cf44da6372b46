"""``janusmail serve --workers N``: one supervisor process and N worker processes sharing the listeners and the
store, so the server uses every core (one Python process uses about one).

Why a supervisor that binds, rather than each worker binding with ``SO_REUSEPORT``: the supervisor knows the
bound ports before any worker exists (port 0 in tests, the banner printed once), a connection waiting in the
accept queue survives the worker that would have taken it, and the sockets work the same on every platform.
The workers are started with ``subprocess`` (a fresh interpreter each: no ``fork`` of a process that has
threads) and inherit the listening sockets by descriptor; :mod:`.supervisor` replaces a worker that dies and
stops them all on SIGTERM/SIGINT (each drains: its listeners close, its store waits for in-flight writes).

What each worker has of its own: connection caps per IP and per account (``[imap] max_connections_*``), the
JMAP request limits, the failed-login throttle and the spool budget (``[spool]``) all count per worker, so a
server with N workers allows up to N times each. What they share: the store (SQLite waits on another
process's write lock for up to ``busy_timeout``, 30 s; PostgreSQL locks rows), the pack directory (each
process appends to packs of its own), the spool directory (cleaned once, by the supervisor), and change
events: PostgreSQL NOTIFY reaches every worker; on SQLite the supervisor's change bus
(:mod:`janusmail.store.changebus`) does.
"""

from __future__ import annotations

import os

__all__ = ["default_workers"]


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - platforms without affinity
        return max(1, os.cpu_count() or 1)
