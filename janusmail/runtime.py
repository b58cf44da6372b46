"""What every listener of one server process shares: config, store, authenticator, spool budget, bound addresses.

Why its own module: the doors (:mod:`janusmail.imap`, :mod:`janusmail.jmap`) need the type, and the process
frame (:mod:`janusmail.server`) needs the doors' starters. With the type in the frame, each door imported the
frame that imports the door (an import cycle through both). Here it depends only on what sits below the doors
(config, store, auth, spool), so doors import this module and this module imports no door.

Every field is always present and typed: listeners use ``rt.auth.throttle`` or ``rt.spooler.budget`` as they
are, never probing whether a part was built. A test that needs a different part replaces the attribute.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from janusmail.auth.authenticator import Authenticator
from janusmail.config import Config, parse_hostport
from janusmail.connections import Connections
from janusmail.observability.metrics import Metrics
from janusmail.spool import Spooler
from janusmail.store.store import Store
from janusmail.workers.balance import LoadBoard

__all__ = ["Closer", "Runtime"]

#: Stops one listener (registered by its starter, run in reverse order at shutdown).
Closer = Callable[[], Awaitable[None]]


@dataclass(eq=False)
class Runtime:
    """The shared parts. ``bound`` records the addresses actually bound (port 0 in tests), by listener name
    (``imap``, ``imaps``, ``jmap``, ``lmtp``); ``closers`` are the listeners' shutdown steps."""

    config: Config
    store: Store
    auth: Authenticator
    bound: dict[str, tuple[str, int]] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)
    #: Listening sockets bound by the supervisor of ``serve --workers`` (janusmail.workers) and inherited by
    #: this worker process, by listener name: every worker serves on the same sockets. Empty: bind your own.
    listeners: dict[str, socket.socket] = field(default_factory=dict)
    #: The open connections of this process by door (janusmail.connections): the web admin's view of them.
    connections: Connections = field(default_factory=Connections)
    #: The metrics facade the doors report to (janusmail.observability.metrics): the no-op one unless
    #: ``[metrics] listen`` is set (janusmail.server builds the Prometheus one then).
    metrics: Metrics = field(default_factory=Metrics)
    #: The supervisor's load board (janusmail.workers.balance) of a worker of ``serve --workers N`` (N > 1):
    #: the IMAP listeners accept through it, so new connections go to the least loaded worker. None: alone.
    board: LoadBoard | None = None

    def listen_args(self, name: str, address: str) -> dict[str, Any]:
        """Where listener ``name`` (configured at ``address``, ``H:P``) accepts: keyword arguments for
        ``asyncio.start_server`` / ``loop.create_server`` (the inherited socket, else host and port)."""
        sock = self.listeners.get(name)
        if sock is not None:
            return {"sock": sock}
        host, port = parse_hostport(address)
        return {"host": host, "port": port}

    @cached_property
    def spooler(self) -> Spooler:
        """The one spool budget of this process (janusmail.spool), made from ``config.spool`` on first use
        (the IMAP starter asks at start, which also removes a previous run's leftovers; a JMAP-only server at
        its first upload). A test wanting other limits assigns its own before that."""
        return Spooler.from_config(self.config)
