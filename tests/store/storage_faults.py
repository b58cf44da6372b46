"""Fault injection for the mail store's write path, shared by the disk-full tests of every door.

The faults act on this process only (the servers under test run in a thread of it) and only on what they
target: pack files (recognised by their path under /proc/self/fd) and write transactions that insert mail
rows, so the test's own reads and the server's other work are untouched. Each fault fires a given number of
times and then the disk "has space again". Both ``os.write`` and ``os.pwrite`` are covered, so the tests do
not depend on which one the blob store uses.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from janusmail.store.schema import blobs, emails


def _is_pack(fd: int) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").endswith(".pack")
    except OSError:
        return False


def _oserror(err: int) -> OSError:
    return OSError(err, os.strerror(err))


def db_disk_full(engine: sa.Engine) -> Exception:
    """The DBAPI exception the backend raises when its disk is full."""
    if engine.dialect.name == "sqlite":
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = 13  # type: ignore[attr-defined] - SQLITE_FULL, as sqlite3 sets it
        exc.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
        return exc
    import psycopg.errors

    return psycopg.errors.DiskFull("could not extend file \"base/1/2\": No space left on device")


class Faults:
    """Arm faults with the methods below; ``fired`` counts the faults that actually happened."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._mp = monkeypatch
        self._lock = threading.Lock()
        self.fired = 0
        self._write: list[tuple[str, int]] = []  # ("partial"|"fail"|"lie", errno), consumed in order
        self._half_done = False
        self._sync: list[int] = []
        self._open: list[int] = []
        self._trackers: dict[int, set[int]] = {}
        real_write, real_pwrite, real_sync, real_open = os.write, os.pwrite, os.fdatasync, os.open

        def next_write(fd: int) -> tuple[str, int] | None:
            if not self._write or not _is_pack(fd):
                return None
            with self._lock:
                return self._write[0] if self._write else None

        def consume() -> None:
            with self._lock:
                self._write.pop(0)
                self.fired += 1

        def fake_write(fd: int, data: Any, *offset: int) -> int:
            fault = next_write(fd)
            if fault is None:
                return real_pwrite(fd, data, *offset) if offset else real_write(fd, data)
            kind, err = fault
            n = len(data)
            if kind == "lie":  # the disk claims success and keeps nothing
                consume()
                return n
            if kind == "partial" and not self._half_done and n > 1:
                # A real short write: half lands and the call returns; the next call hits the full disk.
                self._half_done = True
                half = memoryview(data)[: n // 2]
                return real_pwrite(fd, half, *offset) if offset else real_write(fd, half)
            self._half_done = False
            consume()
            raise _oserror(err)

        def fake_sync(fd: int) -> None:
            if self._sync and _is_pack(fd):
                with self._lock:
                    err = self._sync.pop(0)
                    self.fired += 1
                raise _oserror(err)
            real_sync(fd)

        def fake_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
            if self._open and flags & os.O_CREAT and str(path).endswith(".pack"):
                with self._lock:
                    err = self._open.pop(0)
                    self.fired += 1
                raise _oserror(err)
            return real_open(path, flags, *args, **kw)

        monkeypatch.setattr(os, "write", lambda fd, data: fake_write(fd, data))
        monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: fake_write(fd, data, offset))
        monkeypatch.setattr(os, "fdatasync", fake_sync)
        monkeypatch.setattr(os, "open", fake_open)

    # -- the pack files -----------------------------------------------------------------------------------

    def short_write_then_enospc(self, times: int = 1) -> None:
        """Half of the batch is written, then the disk is full (the torn-tail case of issue 8)."""
        self._write += [("partial", errno.ENOSPC)] * times

    def write_error(self, err: int = errno.ENOSPC, times: int = 1) -> None:
        """The first write of a batch fails outright."""
        self._write += [("fail", err)] * times

    def lying_write(self, times: int = 1) -> None:
        """A write that reports success but leaves nothing in the file (caught only by checking the length)."""
        self._write += [("lie", 0)] * times

    def sync_error(self, err: int = errno.EIO, times: int = 1) -> None:
        self._sync += [err] * times

    def new_pack_error(self, err: int = errno.ENOSPC, times: int = 1) -> None:
        """Creating a new pack file fails (no room for the file or its directory entry)."""
        self._open += [err] * times

    # -- the database -------------------------------------------------------------------------------------

    def _mail_tx_tracker(self, engine: sa.Engine) -> set[int]:
        """Ids of DBAPI connections whose open transaction inserted mail rows (emails or blobs)."""
        marked = self._trackers.get(id(engine))
        if marked is None:
            marked = self._trackers[id(engine)] = set()

            def mark(conn, cursor, statement, params, context, executemany):  # noqa: ANN001, ANN202
                if statement.startswith(("INSERT INTO emails ", "INSERT INTO blobs ")):
                    marked.add(id(conn.connection))  # what the dialect's do_commit is handed

            sa.event.listen(engine, "before_cursor_execute", mark)
        return marked

    def commit_disk_full(self, engine: sa.Engine, times: int = 1) -> None:
        """COMMIT of a transaction that stores mail fails because the database's disk is full."""
        marked = self._mail_tx_tracker(engine)
        dialect = engine.dialect
        real_commit = dialect.do_commit
        left = [times]

        def fake_commit(dbapi_conn: Any) -> None:
            key = id(dbapi_conn)
            if key in marked:
                marked.discard(key)
                if left[0] > 0:
                    left[0] -= 1
                    self.fired += 1
                    raise db_disk_full(engine)
            real_commit(dbapi_conn)

        self._mp.setattr(dialect, "do_commit", fake_commit)

    def insert_disk_full(self, engine: sa.Engine, table: str = "emails", times: int = 1) -> None:
        """An INSERT into ``table`` fails because the database's disk is full."""
        dialect = engine.dialect
        real_exec, real_many = dialect.do_execute, dialect.do_executemany
        left = [times]
        prefix = f"INSERT INTO {table} "

        def check(statement: str) -> None:
            if statement.startswith(prefix) and left[0] > 0:
                left[0] -= 1
                self.fired += 1
                raise db_disk_full(engine)

        def fake_exec(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
            check(statement)
            real_exec(cursor, statement, parameters, context)

        def fake_many(cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
            check(statement)
            real_many(cursor, statement, parameters, context)

        self._mp.setattr(dialect, "do_execute", fake_exec)
        self._mp.setattr(dialect, "do_executemany", fake_many)


def every_stored_email(store: Any) -> list[bytes]:
    """The bytes of every email row, after checking each one's blob has its recorded size and SHA-256."""
    with store.read() as conn:
        rows = conn.execute(sa.select(blobs.c.sha256, blobs.c.size, blobs.c.pack, blobs.c.offset)
                            .join(emails, emails.c.blob_id == blobs.c.id).order_by(emails.c.id)).all()
    out = []
    for r in rows:
        raw = store.packs.read(r.pack, r.offset, r.size)
        assert len(raw) == r.size, f"blob at {r.pack}+{r.offset} is torn"
        assert hashlib.sha256(raw).hexdigest() == r.sha256, f"blob at {r.pack}+{r.offset} holds other bytes"
        out.append(raw)
    return out


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "20m") -> Iterator[Path]:
    """A real size-limited filesystem at ``path`` (unmounted afterwards); skips when mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount"):
        pytest.skip("no mount command: cannot create a small tmpfs for the disk-full test")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs was refused (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path, leave: int) -> Path:
    """Fill the filesystem holding ``path`` until about ``leave`` bytes are free; returns the filler file."""
    filler = path / "filler"
    st = os.statvfs(path)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as fh:
        chunk = b"\0" * (1 << 20)
        todo = max(0, free - leave)
        while todo > 0:
            fh.write(chunk[: min(len(chunk), todo)])
            todo -= min(len(chunk), todo)
        fh.flush()
        os.fsync(fh.fileno())
    return filler
