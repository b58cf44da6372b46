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

The supervisor zeroes a dead worker's slot; its replacement starts from zero too. Reads of other slots need no
lock: a stale count only moves one connection to the other worker.
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

__all__ = ["DEFER", "BalancedServer", "LoadBoard"]

log = logging.getLogger("janusmail.workers")

#: Seconds a worker ahead of its least loaded sibling waits before it accepts a waiting connection itself.
DEFER = 0.002
#: Seconds to stop accepting after the process ran out of descriptors (as asyncio's own servers do).
ACCEPT_PAUSE = 1.0

_SLOT = struct.Struct("<q")


class LoadBoard:
    """One slot per worker (see the module docstring). ``fd``: the shared memory (``create`` makes one);
    ``slot``: the slot this process writes (None in the supervisor, which only zeroes)."""

    def __init__(self, fd: int, slots: int, slot: int | None = None) -> None:
        self.fd = fd
        self.slots = slots
        self.slot = slot
        self._map = mmap.mmap(fd, _SLOT.size * slots, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        if slot is not None:
            self.publish(0)

    @classmethod
    def create(cls, slots: int) -> LoadBoard:
        fd = os.memfd_create("janusmail-load", 0)  # (not close-on-exec: the workers inherit it by pass_fds)
        os.ftruncate(fd, _SLOT.size * slots)
        return cls(fd, slots)

    def publish(self, load: int) -> None:
        assert self.slot is not None
        if not self._map.closed:  # (a connection that ends while the process stops: nobody reads it any more)
            _SLOT.pack_into(self._map, _SLOT.size * self.slot, load)

    def clear(self, slot: int) -> None:
        """(The supervisor) the worker in ``slot`` is gone: it serves nothing."""
        _SLOT.pack_into(self._map, _SLOT.size * slot, 0)

    def loads(self) -> list[int]:
        return [_SLOT.unpack_from(self._map, _SLOT.size * i)[0] for i in range(self.slots)]

    def ahead(self, mine: int) -> bool:
        """Whether this worker, with ``mine`` connections, serves more than the least loaded other one."""
        others = [load for i, load in enumerate(self.loads()) if i != self.slot]
        return bool(others) and mine > min(others)

    def close(self) -> None:
        with contextlib.suppress(ValueError, BufferError):
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


class BalancedServer:
    """Accepts on an inherited listening socket, one connection at a time, stepping back while ahead (see the
    module docstring). ``load()``: this worker's live connections of this door. What ``asyncio.Server`` offers
    the doors: ``sockets``, :meth:`close`, :meth:`wait_closed`."""

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], board: LoadBoard,
                 load: Callable[[], int], *, ssl_context: ssl.SSLContext | None = None,
                 ssl_handshake_timeout: float | None = None) -> None:
        self.sockets = [sock]
        self._sock = sock
        self._factory = factory
        self._board = board
        self._load = load
        self._ssl = ssl_context
        self._handshake_timeout = ssl_handshake_timeout
        self._loop = asyncio.get_running_loop()
        self._starting = 0  # accepted, connection not made yet (counted on the board already)
        self._reading = False
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        sock.setblocking(False)
        self._listen()

    def publish(self) -> None:
        """Put this worker's count on the board (the doors call it when a connection ends, too)."""
        self._board.publish(self._load() + self._starting)

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
        mine = self._load() + self._starting
        self._board.publish(mine)
        if self._board.ahead(mine):  # let a less loaded worker take it
            self._pause(DEFER, self._after_stepping_back)
            return
        self._accept(mine)

    def _after_stepping_back(self) -> None:
        """``DEFER`` later: a connection still waiting was left by the others (busy, starting, gone): take it.
        Then listen again; the next connection gets a fresh look at the board."""
        if self._closed:
            return
        if _waiting(self._sock):
            self._accept(self._load() + self._starting)
        self._listen()

    def _accept(self, mine: int) -> None:
        try:
            conn, _addr = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                log.error("cannot accept connections (%s); pausing %.0f s", exc, ACCEPT_PAUSE)
                self._pause(ACCEPT_PAUSE, self._listen)
                return
            raise
        conn.setblocking(False)
        self._starting += 1
        self._board.publish(mine + 1)
        task = self._loop.create_task(self._start(conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, conn: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl,
                                                     ssl_handshake_timeout=self._handshake_timeout
                                                     if self._ssl is not None else None)
        except Exception as exc:  # noqa: BLE001 - one client's failed start (a TLS handshake) ends only it
            log.debug("connection could not start: %s", exc)
            conn.close()
        finally:
            self._starting -= 1
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
