"""A counter every process on one SQLite store shares, bumped after each committed credential change.

Why: an IMAP session asks before every command whether its credential is still good (janusmail.auth.revocation:
one primary-key read of the account's credential epoch). Under the logged-in stress profile that read was 7.5% of
the event loop's time and 3.4% of the writer lane's (issue 10), to learn almost always that nothing changed.
Credential changes are rare; what a session needs first is "did ANY credential change since I last looked?", and
a word of shared memory answers that without a statement.

How: ``<database>-credentials`` holds one 64-bit counter, mapped into every process that opens the store (the
server's workers, ``janusmail user passwd`` and the other commands). The store bumps it after the COMMIT of each
credential change (a notifier watcher sees the change's event, published only after its commit; the SQLite
credential watcher's poll delivers changes a process made without it, such as one that died between its commit
and its bump, within a second). A session keeps the value it read *before* its last good check: while the
counter still shows that value, nothing committed since could have changed its credential, and the check is
skipped; any other value sends it to the database as before. A torn or racing read can only show a value other
than the remembered one, which costs one ordinary check. Bumps take an exclusive ``flock`` around the
read-modify-write, so two processes bumping at once never lose one.

PostgreSQL stores serve several hosts, which share no memory: there :meth:`read` is ``None`` and every command
reads the epoch, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

__all__ = ["CredentialSignal", "bump_for", "signal_path"]

log = logging.getLogger("janusmail.store.credentials")

_WORD = struct.Struct("<Q")


class CredentialSignal:
    """The shared counter of one store (see the module docstring); ``path`` None: no sharing, :meth:`read` is
    always ``None``."""

    def __init__(self, path: str | None) -> None:
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        if path is None:
            return
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # (a read-only data directory): every command reads the epoch, as before
            log.warning("no credential signal file %s (%s): sessions read the credential epoch every command",
                        path, exc)
            return
        try:
            with _locked(fd):
                if os.fstat(fd).st_size < _WORD.size:
                    os.pwrite(fd, bytes(_WORD.size), 0)
            self._map = mmap.mmap(fd, _WORD.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            log.warning("credential signal %s unusable (%s): sessions read the epoch every command", path, exc)
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
        """A credential change committed: move the counter (every process sees it at once)."""
        m, fd = self._map, self._fd
        if m is None or fd is None:
            return
        try:
            with _locked(fd):
                _WORD.pack_into(m, 0, (_WORD.unpack_from(m, 0)[0] + 1) & 0xFFFF_FFFF_FFFF_FFFF)
        except (OSError, ValueError):  # closed meanwhile: nobody reads it any more
            log.debug("credential signal bump failed", exc_info=True)

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


def signal_path(engine: sa.Engine) -> str | None:
    """``<database>-credentials`` for a SQLite file, else ``None`` (PostgreSQL, an in-memory database)."""
    if engine.dialect.name != "sqlite":
        return None
    path = engine.url.database
    return path + "-credentials" if path and path != ":memory:" else None


def bump_for(engine: sa.Engine) -> None:
    """Bump the signal of the store behind ``engine`` after a credential change committed by a tool that holds
    only an engine (no Store, so no notifier watcher to do it)."""
    path = signal_path(engine)
    if path is not None and os.path.exists(os.path.dirname(path) or "."):
        signal = CredentialSignal(path)
        try:
            signal.bump()
        finally:
            signal.close()
