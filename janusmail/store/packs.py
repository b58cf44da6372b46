"""Raw messages and uploads on disk, in append-only pack files, written durably before they are referenced.

Why packs and not one file per message: on the filesystems we run on, creating a file and its directory costs
more than parsing the message, and every file needs its own fsync. A pack is appended to and synced once per
batch: an import of 500 messages costs one ``fdatasync``; a lone LMTP delivery costs one as well.

Durability: data is appended and synced BEFORE the transaction that records its (pack, offset) commits, so a
committed row never points at missing bytes; a crash in between leaves unreferenced bytes at the end of a pack
(harmless). Each process opens a fresh pack at start and never appends to a pack another run wrote, so a torn
tail is never extended. Pack names are random, so several nodes can share one blob directory.

The rule for failed writes (disk full, quota, I/O error): an offset is handed out only for bytes that were
written at exactly that offset, synced, and found there. Writes go to explicit offsets (``os.pwrite``, never
``O_APPEND``), so a write that fails part way cannot shift where the next batch lands. After ANY failed write
or sync the pack is abandoned: its torn tail is cut off (best effort, it frees the space), it is closed, and
the next batch starts a new pack. Abandoning rather than retrying in place matters because after a failed
``fsync`` the kernel may have dropped the dirty pages and reported the error once: the page cache no longer
tells what is on disk, so nothing more is ever written to or vouched for in that file. The caller gets
``StorageUnavailable`` (``full`` for ENOSPC/EDQUOT), records nothing and acknowledges nothing; bytes that were
synced earlier in the pack stay valid and readable.

Content addressing: rows carry the SHA-256 of their bytes (dedup per account, integrity checks); the pack
location is just where the bytes live.

This is the ``local`` blob store (``blobstore.py`` holds the interface and the other backend): it answers
``put_many`` / ``read_range`` / ``holds`` on top of ``append_many`` / ``read``. Pack names never contain a
``:``, which every other backend's locations start with.

Readers share one cached read-only descriptor per pack. A descriptor is closed only when no read is using it
(reference counts), because closing a descriptor another thread is about to ``pread`` lets the number be reused
by an unrelated file: that read would fail with EBADF, or worse, return another file's bytes.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .blobstore import BlobRef
from .faults import from_oserror

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

    from .model import BlobLocation

log = logging.getLogger("janusmail.store")

PACK_LIMIT = 256 * 1024 * 1024
#: Idle read descriptors kept open at most (descriptors in use are never closed, so this can be exceeded
#: briefly by as many packs as are being read at once).
MAX_READERS = 256


class _Reader:
    __slots__ = ("fd", "users", "retired")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 0
        self.retired = False  # dropped from the cache: close when the last user is done


class PackStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pack: str | None = None
        self._fd: int | None = None
        self._size = 0  # bytes of the current pack that are written, synced and may be referenced
        self._readers: OrderedDict[str, _Reader] = OrderedDict()  # least recently used first
        self._readers_lock = threading.Lock()

    def _path(self, pack: str) -> Path:
        return self.root / pack[:2] / f"{pack}.pack"

    # -- writing ------------------------------------------------------------------------------------------

    def _open_new_pack(self) -> None:
        pack = secrets.token_hex(12)
        path = self._path(pack)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        try:
            if self.fsync:  # make the new file's directory entry durable once
                dfd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        except OSError:
            os.close(fd)
            _try(os.unlink, path)
            raise
        self._pack, self._fd, self._size = pack, fd, 0

    def _close_pack(self) -> None:
        fd = self._fd
        self._pack, self._fd, self._size = None, None, 0
        if fd is not None:
            os.close(fd)

    def _abandon_pack(self) -> None:
        """After a failed write or sync: cut the torn tail, close, and never write to this pack again."""
        fd, pack, good = self._fd, self._pack, self._size
        self._pack, self._fd, self._size = None, None, 0
        if fd is None or pack is None:
            return
        _try(os.ftruncate, fd, good)
        _try(os.close, fd)
        if good == 0:  # nothing in it was ever handed out: do not leave empty packs behind on a full disk
            _try(os.unlink, self._path(pack))

    def append_many(self, items: list[bytes]) -> list[tuple[str, int]]:
        """Append blobs durably; returns (pack, offset) for each, in order.

        Raises StorageUnavailable when the disk refuses (nothing returned may be recorded then)."""
        if not items:
            return []
        with self._lock:
            try:
                if self._fd is not None and self._size >= PACK_LIMIT:
                    self._close_pack()
                if self._fd is None:
                    self._open_new_pack()
                fd, pack, start = self._fd, self._pack, self._size
                assert fd is not None and pack is not None
                out: list[tuple[str, int]] = []
                end = start
                for data in items:
                    out.append((pack, end))
                    end += len(data)
                at = start
                for data in items:  # one by one, not joined: a large message is never copied in memory
                    at = _write_at(fd, data, at)
                if self.fsync:
                    os.fdatasync(fd)
                size = os.fstat(fd).st_size
                if size != end:  # someone else wrote to or cut our pack: vouch for nothing in it
                    raise OSError(errno.EIO, f"pack {pack} is {size} bytes, expected {end}")
            except OSError as exc:
                log.error("blob write failed (pack abandoned): %s", exc)
                self._abandon_pack()
                raise from_oserror(exc) from exc
            self._size = end
            return out

    def append(self, data: bytes) -> tuple[str, int]:
        return self.append_many([data])[0]

    #: The blob store interface: bytes are durable when ``put_many`` returns, without any transaction.
    transactional = False

    def put_many(self, conn: sa.Connection | None, items: Sequence[tuple[str, bytes]]) -> list[BlobRef]:
        """The blob store interface: synced here, BEFORE the transaction that names them can commit (``conn``
        is not used); the blob ids do not matter to a pack."""
        return [BlobRef(pack, offset) for pack, offset in self.append_many([data for _, data in items])]

    def holds(self, pack: str) -> bool:
        return ":" not in pack

    # -- reading ------------------------------------------------------------------------------------------

    def _acquire(self, pack: str) -> _Reader:
        with self._readers_lock:
            r = self._readers.get(pack)
            if r is None:
                r = _Reader(os.open(self._path(pack), os.O_RDONLY | os.O_CLOEXEC))
                self._readers[pack] = r
            else:
                self._readers.move_to_end(pack)
            r.users += 1
            if len(self._readers) > MAX_READERS:
                self._evict_idle()
            return r

    def _evict_idle(self) -> None:
        """Close least recently used descriptors that no read is using, down to the limit."""
        excess = len(self._readers) - MAX_READERS
        for pack in [p for p, r in self._readers.items() if r.users == 0][:excess]:
            os.close(self._readers.pop(pack).fd)

    def _release(self, r: _Reader) -> None:
        with self._readers_lock:
            r.users -= 1
            if r.users == 0 and r.retired:
                os.close(r.fd)

    def read(self, pack: str, offset: int, size: int, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start:end]`` of the blob stored at (pack, offset) with the given size."""
        end = size if end is None else min(end, size)
        start = max(0, min(start, end))
        r = self._acquire(pack)
        try:
            return os.pread(r.fd, end - start, offset + start)
        finally:
            self._release(r)

    def read_range(self, loc: BlobLocation, start: int = 0, end: int | None = None) -> bytes:
        """The blob store interface: bytes ``[start, end)`` of a blob whose row names a pack."""
        return self.read(loc.pack, loc.offset, loc.size, start, end)

    def close(self) -> None:
        with self._lock:
            self._close_pack()
        with self._readers_lock:
            for r in self._readers.values():
                if r.users == 0:
                    os.close(r.fd)
                else:
                    r.retired = True
            self._readers.clear()


def _write_at(fd: int, data: bytes, at: int) -> int:
    """Write all of ``data`` at offset ``at`` (short writes continue where they stopped); returns the end."""
    with memoryview(data) as whole:  # released even on error, so the caller may close a mapping behind it
        done, total = 0, whole.nbytes
        while done < total:
            n = os.pwrite(fd, whole[done:], at + done)
            if n <= 0:
                raise OSError(errno.EIO, "the pack write made no progress")
            done += n
    return at + total


def _try(fn, *args: object) -> None:  # noqa: ANN001 - os functions
    """Best-effort clean-up after a failure that is already being reported."""
    try:
        fn(*args)
    except OSError as exc:
        log.warning("blob clean-up %s failed: %s", getattr(fn, "__name__", fn), exc)
