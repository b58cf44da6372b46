"""A 64-bit counter in shared memory that every process on one SQLite store sees: "did anything of this kind
commit since I last looked?" answered without a statement.

Why: some reads are repeated on almost every IMAP command to learn, almost always, that nothing changed (the
session's credential epoch, the account's mailbox tree). Changes of those kinds are rare; a word of shared
memory that moves after each one lets a reader keep what it read while the word has not moved.

How: ``<database><suffix>`` holds the counter, mapped into every process that opens the store (the server's
workers and the command-line tools). Writers bump it after the COMMIT of a change (a notifier watcher sees the
change's event, published only after its commit). A reader remembers the value it read *before* it read the
database: while the counter still shows that value, nothing committed since could have changed what it read. A
torn or racing read can only show some other value, which costs one ordinary read. Bumps take an exclusive
``flock`` around the read-modify-write, so two processes bumping at once never lose one.

PostgreSQL stores serve several hosts, which share no memory: there :meth:`SharedCounter.read` is ``None`` and
readers go to the database every time.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

    from .notifier import ChangeEvent

__all__ = ["SharedCounter", "counter_path"]

log = logging.getLogger("janusmail.store.shared_counter")

_WORD = struct.Struct("<Q")


class SharedCounter:
    """The shared counter at ``path`` (see the module docstring); ``path`` None: no sharing, :meth:`read` is
    always ``None``. ``what`` names the counter in warnings."""

    def __init__(self, path: str | None, what: str = "shared counter") -> None:
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        if path is None:
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # (a read-only data directory): readers go to the database every time
            log.warning("no %s file %s (%s): every read goes to the database", what, path, exc)
            return
        try:
            with _locked(fd):
                if os.fstat(fd).st_size < _WORD.size:
                    os.pwrite(fd, bytes(_WORD.size), 0)
            self._map = mmap.mmap(fd, _WORD.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            log.warning("%s %s unusable (%s): every read goes to the database", what, path, exc)
            os.close(fd)
            return
        self._fd = fd

    @property
    def enabled(self) -> bool:
        return self._map is not None

    def read(self) -> int | None:
        """The counter now (no system call), ``None`` when there is none to share."""
        m = self._map
        return None if m is None else _WORD.unpack_from(m, 0)[0]

    def bump(self) -> None:
        """A change committed: move the counter (every process sees it at once)."""
        m, fd = self._map, self._fd
        if m is None or fd is None:
            return
        try:
            with _locked(fd):
                _WORD.pack_into(m, 0, (_WORD.unpack_from(m, 0)[0] + 1) & 0xFFFF_FFFF_FFFF_FFFF)
        except (OSError, ValueError):  # closed meanwhile: nobody reads it any more
            log.debug("shared counter bump failed", exc_info=True)

    def watcher(self, kind: str) -> Callable[[ChangeEvent], None]:
        """A notifier watcher that bumps this counter for each event of ``kind``: watchers run after the
        COMMIT of a change made here (before its caller is answered) and for changes heard from elsewhere."""

        def heard(ev: ChangeEvent) -> None:
            if kind in ev.kinds:
                self.bump()

        return heard

    def close(self) -> None:
        m, fd, self._map, self._fd = self._map, self._fd, None, None
        if m is not None:
            m.close()
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def _locked(fd: int):  # noqa: ANN202
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def counter_path(engine: sa.Engine, suffix: str) -> str | None:
    """``<database><suffix>`` for a SQLite file, else ``None`` (PostgreSQL, an in-memory database)."""
    if engine.dialect.name != "sqlite":
        return None
    path = engine.url.database
    return path + suffix if path and path != ":memory:" else None
