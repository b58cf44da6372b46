"""Raw messages and uploads on disk, in append-only pack files, written durably before they are referenced.

Why packs and not one file per message: on the filesystems we run on, creating a file and its directory costs
more than parsing the message, and every file needs its own fsync. A pack is appended to and synced once per
batch: an import of 500 messages costs one ``fdatasync``; a lone LMTP delivery costs one as well.

Durability: data is appended and synced BEFORE the transaction that records its (pack, offset) commits, so a
committed row never points at missing bytes; a crash in between leaves unreferenced bytes at the end of a pack
(harmless). Each process opens a fresh pack at start and never appends to a pack another run wrote, so a torn
tail is never extended. Pack names are random, so several nodes can share one blob directory.

Content addressing: rows carry the SHA-256 of their bytes (dedup per account, integrity checks); the pack
location is just where the bytes live.
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

PACK_LIMIT = 256 * 1024 * 1024


class BlobStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pack: str | None = None
        self._fd: int | None = None
        self._size = 0
        self._readers: dict[str, int] = {}
        self._readers_lock = threading.Lock()

    def _path(self, pack: str) -> Path:
        return self.root / pack[:2] / f"{pack}.pack"

    def _open_new_pack(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        pack = secrets.token_hex(12)
        path = self._path(pack)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        if self.fsync:  # make the new file's directory entry durable once
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self._pack, self._size = pack, 0

    def append_many(self, items: list[bytes]) -> list[tuple[str, int]]:
        """Append blobs durably; returns (pack, offset) for each, in order."""
        if not items:
            return []
        with self._lock:
            if self._fd is None or self._size >= PACK_LIMIT:
                self._open_new_pack()
            assert self._fd is not None and self._pack is not None
            out: list[tuple[str, int]] = []
            offset = self._size
            for data in items:
                out.append((self._pack, offset))
                offset += len(data)
            buf = b"".join(items)
            view = memoryview(buf)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if self.fsync:
                os.fdatasync(self._fd)
            self._size = offset
            return out

    def append(self, data: bytes) -> tuple[str, int]:
        return self.append_many([data])[0]

    def _reader(self, pack: str) -> int:
        with self._readers_lock:
            fd = self._readers.get(pack)
            if fd is None:
                if len(self._readers) > 256:
                    for old in self._readers.values():
                        os.close(old)
                    self._readers.clear()
                fd = os.open(self._path(pack), os.O_RDONLY)
                self._readers[pack] = fd
            return fd

    def read(self, pack: str, offset: int, size: int, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start:end]`` of the blob stored at (pack, offset) with the given size."""
        end = size if end is None else min(end, size)
        start = max(0, min(start, end))
        return os.pread(self._reader(pack), end - start, offset + start)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
        with self._readers_lock:
            for fd in self._readers.values():
                os.close(fd)
            self._readers.clear()
