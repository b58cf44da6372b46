"""The local change bus: worker processes of ``janusmail serve --workers N`` on SQLite tell each other about
their writes, so an IDLE session or a JMAP event stream in one worker hears a write made in another at once.

Why: with several processes on one SQLite file, nothing tells process B that process A committed (PostgreSQL
has LISTEN/NOTIFY, :mod:`.pgnotify`; SQLite has nothing), and B's sessions would only notice at their next
poll (``[imap] idle_poll_interval``, 30 s). The supervisor owns the bus: it gives each worker one end of a
``SOCK_SEQPACKET`` socket pair (one message per event, no framing, no path in the file system, nobody but
its children on it) and keeps the other end in a :class:`BusHub`, which sends every worker's events to all
the other workers.

A worker's :class:`BusLink` is the store notifier's ``relay``: after each commit it sends the event (the
:mod:`.change_payload` JSON that PostgreSQL NOTIFY carries too), and one thread delivers the events of the
other workers to the local notifier with ``Notifier.deliver``, the path the PostgreSQL listener feeds. An
event is a hint, not the data: the change log in the database stays the truth, and a session that missed
one (a worker restarting, a full socket buffer) catches up from the log at its next look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from . import change_payload
from .notifier import ChangeEvent

if TYPE_CHECKING:
    from .store import Store

__all__ = ["BusHub", "BusLink", "socket_pair"]

log = logging.getLogger("janusmail.store.changebus")

#: Largest message read (an event is well under 2 KiB: at most ``change_payload.MAX_BOXES`` mailbox ids).
MAX_MESSAGE = 64 * 1024
#: Socket buffer per end: room for thousands of events while a peer is briefly busy.
BUFFER = 1 << 20
#: A worker's send waits at most this long for room (then the event is dropped: peers catch up by polling).
SEND_TIMEOUT = 1.0


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """``(hub_end, worker_end)``: one bus connection, made by the supervisor before it starts a worker."""
    hub, worker = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for end in (hub, worker):
        with contextlib.suppress(OSError):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    return hub, worker


class BusLink:
    """A worker's end of the bus (see the module docstring). ``on_lost`` runs (on the link's thread) when the
    supervisor's end closes: the supervisor is gone, and a worker without it should stop."""

    def __init__(self, store: Store, sock: socket.socket, on_lost: Callable[[], None] | None = None) -> None:
        self.store = store
        self._sock = sock
        self._sock.settimeout(SEND_TIMEOUT)  # sends never hang a writer; the reader wakes to see ``_stop``
        self._on_lost = on_lost
        self._send_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="change-bus", daemon=True)

    def start(self) -> None:
        self.store.notifier.relay = self.send
        self._thread.start()

    def stop(self) -> None:
        """Stop relaying and hearing (after the store is closed: its last commits were still relayed)."""
        if self.store.notifier.relay == self.send:
            self.store.notifier.relay = None
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(SEND_TIMEOUT + 1)
        self._sock.close()

    def send(self, ev: ChangeEvent) -> None:
        """Tell the other workers (on the committing thread, after the commit; never raises)."""
        data = change_payload.encode(ev, self.store.node_id)
        try:
            with self._send_lock:
                self._sock.send(data)
        except OSError as exc:  # a full buffer past the timeout, or the supervisor gone: peers will poll
            if not self._stop.is_set():
                log.warning("change bus: event of %s not sent (%s)", ev.account_id, exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(MAX_MESSAGE)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            if not data:
                if not self._stop.is_set():
                    log.warning("change bus closed by the supervisor")
                    if self._on_lost is not None:
                        self._on_lost()
                return
            try:
                payload = orjson.loads(data)
                if payload.get("n") != self.store.node_id:
                    self.store.notifier.deliver(change_payload.decode(payload, self.store))
            except Exception:  # noqa: BLE001 - one bad message must not stop the bus
                log.exception("bad change bus message")


class BusHub:
    """The supervisor's side: every message from one worker goes to every other worker, on the supervisor's
    event loop, never blocking (a worker whose buffer is full misses the event and catches up by polling)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ends: dict[object, socket.socket] = {}
        self.dropped = 0

    def add(self, key: object, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._ends[key] = sock
        self._loop.add_reader(sock.fileno(), self._readable, key, sock)

    def remove(self, key: object) -> None:
        sock = self._ends.pop(key, None)
        if sock is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(sock.fileno())
            sock.close()

    def close(self) -> None:
        for key in list(self._ends):
            self.remove(key)

    def _readable(self, key: object, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the worker exited: its end is done (a new worker gets a new pair)
                if self._ends.get(key) is sock:
                    self.remove(key)
                return
            for other, end in list(self._ends.items()):
                if other == key:
                    continue
                try:
                    end.send(data)
                except BlockingIOError:
                    self.dropped += 1
                    if self.dropped & (self.dropped - 1) == 0:  # 1, 2, 4, 8, ...: say so without flooding
                        log.warning("change bus: a busy worker missed %d events (it catches up by polling)",
                                    self.dropped)
                except OSError:
                    pass  # that worker is exiting; its own end reports it
