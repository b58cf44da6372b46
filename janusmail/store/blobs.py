"""Raw messages and uploads on disk, content-addressed by SHA-256 and written durably.

A blob is written to a temporary file in the same directory, fsynced, renamed into place and the directory
fsynced, all BEFORE the metadata transaction that references it commits: a crash can leave an unreferenced
file (harmless, collectable) but never a row pointing at a missing or half-written file. Files are shared by
identical content; the per-account ``blobs`` rows (and their ids) are what JMAP and IMAP see.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class BlobStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` durably and return its SHA-256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        self.put_with_digest(digest, data)
        return digest

    def put_with_digest(self, digest: str, data: bytes) -> None:
        target = self.path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        if self.fsync:
            self._fsync_dir(target.parent)

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        """Write a batch, then fsync each touched directory once (import speed without losing durability)."""
        dirs: set[Path] = set()
        for digest, data in items:
            target = self.path(digest)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
            dirs.add(target.parent)
        if self.fsync:
            for d in dirs:
                self._fsync_dir(d)

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def read_range(self, sha256: str, start: int, end: int) -> bytes:
        with open(self.path(sha256), "rb") as fh:
            fh.seek(start)
            return fh.read(max(0, end - start))

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
