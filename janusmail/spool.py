"""Large IMAP literals and JMAP uploads wait in temporary files, never whole in memory.

Why: a client may announce ``APPEND Drafts {62914560+}`` and send 60 MiB, or POST 50 MB to the upload URL,
on as many connections as the caps allow. Gathering those bodies in memory lets a handful of clients exhaust
the server's RAM. Here every body above ``[spool] threshold`` octets is written to an anonymous temporary file
under ``DIR/tmp`` as it arrives (unlinked from the start, so nothing is left behind by a crash; stale names
from a platform without ``O_TMPFILE`` are removed at start), and at most one flush (``FLUSH_BYTES``) plus one
network read stays in memory per body; a client that stalls mid-body holds only its file.

Three limits, one :class:`Spooler` per server process (with ``serve --workers N``, per worker: each limit
below is then N times larger for the whole server; the spool directory is shared, and only the supervisor
cleans it, at start):

* ``max_in_flight``: octets of literals and uploads being received or waiting to be stored, all connections
  together. A body is counted from the moment it is announced (literal header, Content-Length) until its
  command is done, and refused cleanly when it would not fit (IMAP ``NO [LIMIT]``, JMAP 503): the disk under
  ``DIR/tmp`` and the work queued behind it stay bounded.
* ``max_loaded``: octets of spooled bodies mapped for storing at once. The store parses and hashes a message
  as one bytes-like object; a spooled body is handed over as a read-only ``mmap`` of its file (no copy), and
  this gate lets one (or a few small) such bodies be stored at a time, so twelve 60 MiB APPENDs finishing
  together are stored one after the other instead of all at once. The map is closed as soon as the command
  is done, whoever else still holds a reference.
* ``stall_timeout``: a partly received body that gets no data for this long ends its connection, so a
  client cannot hold a reservation by sending a header and going quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from janusmail.store.faults import from_oserror

if TYPE_CHECKING:  # pragma: no cover - janusmail.runtime imports this module
    from janusmail.config import Config
    from janusmail.runtime import Runtime

log = logging.getLogger("janusmail.spool")

__all__ = ["InFlight", "LoadGate", "Spool", "Spooler", "spooler_for"]

#: Pending pieces are handed to a worker thread once this many octets have gathered (bounds memory per body
#: and keeps blocking file writes off the event loop).
FLUSH_BYTES = 256 * 1024
PREFIX = "spool-"
#: Named leftovers older than this are removed at start (a live named temp file exists for microseconds).
STALE_SECONDS = 60


class InFlight:
    """The server-wide budget of octets being received or waiting to be stored. Used on the event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def try_reserve(self, n: int) -> bool:
        if n < 0 or self.used + n > self.limit:
            return False
        self.used += n
        return True

    def release(self, n: int) -> None:
        self.used = max(0, self.used - n)


class LoadGate:
    """At most ``limit`` octets of spooled bodies mapped for storing at once, first come first served; a body
    larger than the limit still goes through when nothing else is mapped (otherwise it never could)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._turn = asyncio.Lock()  # fair: waiters are served in arrival order
        self._freed = asyncio.Event()

    async def acquire(self, n: int) -> None:
        async with self._turn:
            while self.used and self.used + n > self.limit:
                self._freed.clear()
                await self._freed.wait()
            self.used += n

    def release(self, n: int) -> None:
        self.used = max(0, self.used - n)
        self._freed.set()


class Spool:
    """One literal or upload body: kept in memory while small, in an anonymous temporary file once it passes
    the threshold (or from the start when it is announced bigger).

    ``write`` is synchronous and never raises (the IMAP parser calls it); it only queues the piece. ``drain``
    (after each network read) moves queued pieces to the file in a worker thread, which is also the
    back-pressure: the connection reads no more until its data is on its way to disk. A write error (disk
    full) is remembered, later data is dropped, and :meth:`finish` raises ``StorageUnavailable``.
    """

    def __init__(self, spooler: Spooler, reserved: int, expected: int | None = None, *, to_file: bool = False) -> None:
        self.spooler = spooler
        self.reserved = reserved
        self.expected = expected
        self.size = 0
        self.error: OSError | None = None
        self._to_file = to_file or (expected is not None and expected > spooler.threshold)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._file: Any = None
        self._lock = asyncio.Lock()
        # Held while a worker thread writes and while the file is closed: a descriptor is never closed while
        # a write to it is under way (its number could be reused at once by another file, a pack, and the rest
        # of the write would land there). ``close`` runs on the event loop and never waits for it: when a write
        # holds it, the writing thread closes the file once its write is done (see ``_write_pieces``).
        self._file_lock = threading.Lock()
        self._map: mmap.mmap | None = None
        self._loaded = 0  # octets of the load gate this body holds
        self._closed = False

    @property
    def on_disk(self) -> bool:
        """Will (or does) the body live in a file rather than in memory?"""
        return self._to_file

    @property
    def buffered(self) -> int:
        """Octets received but still in memory (queued for the file, or the whole of a small body)."""
        return self._pending_bytes

    # -- receiving --------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        self.size += len(data)
        if self.error is not None:
            return
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self.size > self.spooler.threshold:
            self._to_file = True

    async def drain(self, *, force: bool = False) -> None:
        """Write queued pieces to the file once enough have gathered, or the body is complete (a client that
        stalls after the last octet holds nothing in memory), or with ``force``."""
        if not self._to_file or not self._pending:
            return
        complete = self.expected is not None and self.size >= self.expected
        if not force and not complete and self._pending_bytes < FLUSH_BYTES:
            return
        async with self._lock:
            pieces, self._pending, self._pending_bytes = self._pending, [], 0
            if pieces and self.error is None and not self._closed:
                await asyncio.to_thread(self._write_pieces, pieces)

    def _write_pieces(self, pieces: list[bytes]) -> None:
        try:
            self._write_locked(pieces)
        finally:
            if self._closed:  # closed while we wrote: ``close`` left the file to us (it never waits on the loop)
                self._close_file()

    def _write_locked(self, pieces: list[bytes]) -> None:
        with self._file_lock:
            if self._closed:
                return
            try:
                if self._file is None:
                    self._file = self.spooler.new_file()
                fd = self._file.fileno()
                for piece in pieces:
                    view = memoryview(piece)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
            except OSError as exc:
                log.warning("spooling %d octets to %s failed: %s", self.size, self.spooler.directory, exc)
                self.error = exc

    async def finish(self) -> None:
        """Everything received is on disk (or in memory for a small body); raises ``StorageUnavailable``
        if the disk refused part of it."""
        await self.drain(force=True)
        if self.error is not None:
            raise from_oserror(self.error)

    # -- handing over ---------------------------------------------------------------------------------------

    def _view(self) -> bytes | mmap.mmap:
        if not self._to_file:
            data = b"".join(self._pending)
            self._pending = [data] if data else []
            return data
        if self._file is None:  # announced big, nothing arrived
            return b""
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        return self._map

    def close(self) -> None:
        """Done with the body: unmap, delete the file, give back the budget and the load gate. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a worker still reads it (connection dropped mid-store): the GC unmaps it
                log.debug("spool map still in use at close")
            self._map = None
        self._close_file(wait=False)  # a write under way (a worker thread) closes it when done instead
        self._pending = []
        self._pending_bytes = 0
        if self._loaded:
            self.spooler.gate.release(self._loaded)
            self._loaded = 0
        if self.reserved:
            self.spooler.budget.release(self.reserved)
            self.reserved = 0

    def _close_file(self, *, wait: bool = True) -> None:
        """Close the file unless a write holds it; with ``wait=False`` (the event loop: a flush of up to
        ``FLUSH_BYTES`` to a slow disk must not stall every connection) leave it to that write, which closes it
        after its own write because ``_closed`` was set before this was called."""
        if not self._file_lock.acquire(blocking=wait):
            return
        try:
            if self._file is not None:
                with contextlib.suppress(OSError):
                    self._file.close()
                self._file = None
        finally:
            self._file_lock.release()

    def reserve_more(self, n: int) -> bool:
        """Count ``n`` more octets against the budget (bodies of unannounced length, counted as they come)."""
        if not self.spooler.budget.try_reserve(n):
            return False
        self.reserved += n
        return True


class Spooler:
    """The process's spool directory, in-flight budget and load gate (see the module docstring)."""

    def __init__(self, directory: Path, *, threshold: int = 256 * 1024, max_in_flight: int = 1 << 30,
                 max_loaded: int = 64 << 20, stall_timeout: float = 120.0, clean: bool = True) -> None:
        if threshold < 0 or max_in_flight < 0 or max_loaded < 0 or stall_timeout <= 0:
            raise ValueError("spool settings must be positive")
        self.directory = directory
        self.threshold = threshold
        self.budget = InFlight(max_in_flight)
        self.gate = LoadGate(max_loaded)
        self.stall_timeout = float(stall_timeout)
        directory.mkdir(parents=True, exist_ok=True)
        if clean:
            self.clean()

    @classmethod
    def from_config(cls, config: Config, *, clean: bool = True) -> Spooler:
        """The spooler ``config`` describes. ``clean=False`` in a worker of ``serve --workers``: the
        supervisor removed the previous run's leftovers once before starting any worker, and a worker that
        starts later (a replacement) must not scan a directory its siblings are spooling into."""
        sc = config.spool
        return cls(Path(config.data_dir) / "tmp", threshold=int(sc.threshold), max_in_flight=int(sc.max_in_flight),
                   max_loaded=int(sc.max_loaded), stall_timeout=float(sc.stall_timeout), clean=clean)

    def clean(self) -> int:
        """Remove spool files a previous run left behind; returns how many."""
        removed = 0
        cutoff = time.time() - STALE_SECONDS
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.directory):
                if not entry.name.startswith(PREFIX):
                    continue
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
        if removed:
            log.info("removed %d stale spool files from %s", removed, self.directory)
        return removed

    def new_file(self) -> Any:
        """An anonymous file under the spool directory (``O_TMPFILE`` where available)."""
        return tempfile.TemporaryFile(dir=self.directory, prefix=PREFIX, buffering=0)

    def open(self, size: int | None, *, to_file: bool = False) -> Spool | None:
        """A spool for a body of ``size`` octets (None: unknown, reserve as it arrives), or None when the
        in-flight budget cannot take it. ``to_file``: a file even for a small body (the caller has no memory
        left for it, e.g. an IMAP command already holding its share)."""
        reserve = size or 0
        if not self.budget.try_reserve(reserve):
            return None
        return Spool(self, reserve, size, to_file=to_file)

    async def load(self, spools: Sequence[Spool]) -> list[bytes | mmap.mmap]:
        """The bodies as bytes-like objects for the store (small ones as bytes, spooled ones as read-only
        maps), after waiting for the load gate. What is held is given back when each spool is closed."""
        for sp in spools:
            await sp.finish()
        need = sum(sp.size for sp in spools if sp.on_disk and sp._loaded == 0)
        if need:
            await self.gate.acquire(need)
            for sp in spools:
                if sp.on_disk and sp._loaded == 0:
                    sp._loaded = sp.size
        return [sp._view() for sp in spools]


def spooler_for(rt: Runtime) -> Spooler:
    """The Spooler shared by every listener of this server process: ``rt.spooler`` (janusmail.runtime makes it
    on first use). Kept so callers written against this helper keep working; new code reads ``rt.spooler``."""
    return rt.spooler
