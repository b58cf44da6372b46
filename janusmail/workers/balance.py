"""Spreading new connections evenly over the workers of ``serve --workers`` that share one listening socket.

Why: every worker waits on the same inherited socket, and the kernel wakes them all when a client connects;
whichever calls ``accept`` first takes it, and an event loop accepts everything waiting in one go. Ten clients
that connected together landed 7 and 3 on two workers (issue 10, the logged-in stress profile): the busy
worker's event loop was saturated while the other idled, so the second process added little.

How: the supervisor makes a :class:`LoadBoard`, one 64-bit slot per worker in shared memory (a ``memfd`` the
workers inherit). Each worker writes its own slot only: the IMAP connections it serves plus the ones it
accepted that have not started yet. A worker about to accept while it serves more than the least loaded of
the others steps back for :data:`DEFER` seconds, so a less loaded worker takes the connection; if none did
by then, it accepts anyway (a sibling that is starting, stuck or gone costs a client those milliseconds, never
the connection). One connection is accepted per readiness event, so the workers take turns through a burst.

The supervisor marks a dead worker's slot empty (-1: no worker to leave connections to, so nobody steps back for
it while its replacement starts); the replacement publishes 0 once it serves. Reads of other slots need no lock:
a stale count only moves one connection to the other worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import mmap
import os
import select
import socket
import ssl
import struct
from collections.abc import Callable
from typing import Any

__all__ = ["DEFER", "BalancedServer", "DoorLoad", "LoadBoard"]

log = logging.getLogger("janusmail.workers")

#: Seconds a worker ahead of its least loaded sibling waits before it accepts a waiting connection itself.
DEFER = 0.002
#: Seconds to stop accepting after the process ran out of descriptors (as asyncio's own servers do).
ACCEPT_PAUSE = 1.0
#: accept(2) errors that concern one connection, not the listener (Linux: retry): the next one may do
_RETRY_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNABORTED, errno.EPROTO,
                           errno.ENETDOWN, errno.ENOPROTOOPT, errno.EHOSTDOWN, errno.ENONET, errno.EHOSTUNREACH,
                           errno.EOPNOTSUPP, errno.ENETUNREACH, errno.EPERM})
_PAUSE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: a slot with no worker behind it (the supervisor's mark for a dead one; a fresh board is all empty)
EMPTY = -1

_SLOT = struct.Struct("<q")


class LoadBoard:
    """One slot per worker (see the module docstring). ``fd``: the shared memory (``create`` makes one);
    ``slot``: the slot this process writes (None in the supervisor, which only zeroes)."""

    def __init__(self, fd: int, slots: int, slot: int | None = None) -> None:
        self.fd = fd
        self.slots = slots
        self.slot = slot
        self._map = mmap.mmap(fd, _SLOT.size * slots, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    @classmethod
    def create(cls, slots: int) -> LoadBoard:
        fd = os.memfd_create("janusmail-load", 0)  # (not close-on-exec: the workers inherit it by pass_fds)
        os.ftruncate(fd, _SLOT.size * slots)
        board = cls(fd, slots)
        for slot in range(slots):
            board.clear(slot)
        return board

    def publish(self, load: int) -> None:
        assert self.slot is not None
        if not self._map.closed:  # (a connection that ends while the process stops: nobody reads it any more)
            _SLOT.pack_into(self._map, _SLOT.size * self.slot, load)

    def clear(self, slot: int) -> None:
        """(The supervisor) the worker in ``slot`` is gone: nobody waits for it to take a connection."""
        _SLOT.pack_into(self._map, _SLOT.size * slot, EMPTY)

    def loads(self) -> list[int]:
        return [_SLOT.unpack_from(self._map, _SLOT.size * i)[0] for i in range(self.slots)]

    def ahead(self, mine: int) -> bool:
        """Whether this worker, with ``mine`` connections, serves more than the least loaded other one."""
        others = [load for i, load in enumerate(self.loads()) if i != self.slot and load != EMPTY]
        return bool(others) and mine > min(others)

    def close(self) -> None:
        with contextlib.suppress(ValueError, BufferError):
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class DoorLoad:
    """One worker's count on the board: its live connections (``live()``) and the ones it accepted that have not
    started yet, shared by the listeners of one door (IMAP and IMAPS publish one number)."""

    def __init__(self, board: LoadBoard, live: Callable[[], int]) -> None:
        self.board = board
        self._live = live
        self.starting = 0

    def value(self) -> int:
        return self._live() + self.starting

    def publish(self) -> int:
        now = self.value()
        self.board.publish(now)
        return now


class BalancedServer:
    """Accepts on an inherited listening socket, one connection at a time, stepping back while ahead (see the
    module docstring). ``load``: this worker's count for the door. What ``asyncio.Server`` offers the doors:
    ``sockets``, :meth:`close`, :meth:`wait_closed`."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], load: DoorLoad, *,
                 ssl_context: ssl.SSLContext | None = None, ssl_handshake_timeout: float | None = None) -> None:
        self.sockets = [sock]
        self._sock = sock
        self._factory = factory
        self._load = load
        self._ssl = ssl_context
        self._handshake_timeout = ssl_handshake_timeout
        self._loop = asyncio.get_running_loop()
        self._reading = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        sock.setblocking(False)
        self._listen()

    def publish(self) -> None:
        """Put this worker's count on the board (the doors call it when a connection ends, too)."""
        self._load.publish()

    def _listen(self) -> None:
        if not self._closed and not self._reading:
            self._loop.add_reader(self._sock.fileno(), self._ready)
            self._reading = True

    def _pause(self, seconds: float, then: Callable[[], None]) -> None:
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False
        self._loop.call_later(seconds, then)

    def _ready(self) -> None:
        mine = self._load.publish()
        if self._load.board.ahead(mine):  # let a less loaded worker take it
            self._pause(DEFER, self._after_stepping_back)
            return
        self._accept()

    def _after_stepping_back(self) -> None:
        """``DEFER`` later: a connection still waiting was left by the others (busy, starting, gone): take it.
        Then listen again (unless the accept paused: out of descriptors); the next connection gets a fresh look
        at the board."""
        if self._closed:
            return
        if not _waiting(self._sock) or self._accept():
            self._listen()

    def _accept(self) -> bool:
        """Accept one waiting connection and start it; False when accepting is paused instead (the process is
        out of descriptors or memory: :data:`ACCEPT_PAUSE`). An error of one connection (or one another worker
        took first) is passed over, as asyncio does, and the listener stays."""
        try:
            conn, _addr = self._sock.accept()
        except OSError as exc:
            if exc.errno in _PAUSE_ERRNOS:
                log.error("cannot accept connections (%s); pausing %.0f s", exc, ACCEPT_PAUSE)
                self._pause(ACCEPT_PAUSE, self._listen)
                return False
            if exc.errno not in _RETRY_ERRNOS:
                log.warning("accept failed: %s", exc)
            return True
        conn.setblocking(False)
        self._load.starting += 1
        self._load.publish()
        task = self._loop.create_task(self._start(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _start(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl,
                                                     ssl_handshake_timeout=self._handshake_timeout
                                                     if self._ssl is not None else None)
        except Exception as exc:  # noqa: BLE001 - one client's failed start (a TLS handshake) ends only it
            log.debug("connection could not start: %s", exc)
            conn.close()
        finally:
            self._load.starting -= 1
            self.publish()

    def close(self) -> None:
        """Stop accepting (the socket itself is the supervisor's: it stays open for the other workers)."""
        self._closed = True
        if self._reading:
            self._loop.remove_reader(self._sock.fileno())
            self._reading = False

    async def wait_closed(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task


def _waiting(sock: socket.socket) -> bool:
    """Whether a connection waits in the listening socket's queue (a poll that does not wait)."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))
