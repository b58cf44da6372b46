"""Telling "the disk refused" apart from bugs, for every backend: OSError, SQLite and PostgreSQL errors.

Why one place: a full disk shows up as ``ENOSPC`` from a pack write, as SQLite's ``SQLITE_FULL`` ("database or
disk is full") at an INSERT or at COMMIT, or as PostgreSQL's ``disk_full`` (SQLSTATE 53100). The protocol doors
must not care which: each of them turns ``StorageUnavailable`` into its own "try again later" answer, and
anything not recognised here stays what it was (a bug is still reported as a bug).
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Iterator

import sqlalchemy as sa

from .model import StorageUnavailable

#: errno values that mean "no space" (as opposed to an I/O failure).
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})

_SQLITE_FULL = 13
_SQLITE_IOERR = 10
_PG_DISK_FULL = "53100"
_PG_IO_ERROR = "58030"

FULL_TEXT = "not enough disk space on the mail store"
IO_TEXT = "the mail store cannot write to disk"


def from_oserror(exc: OSError) -> StorageUnavailable:
    """The StorageUnavailable for an OSError raised while writing or syncing mail data."""
    full = exc.errno in FULL_ERRNOS
    return StorageUnavailable(FULL_TEXT if full else IO_TEXT, full=full)


def from_db_error(exc: BaseException) -> StorageUnavailable | None:
    """The StorageUnavailable a database error stands for (disk full, I/O error), or None for anything else."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary == _SQLITE_FULL or (primary is None and "database or disk is full" in str(orig)):
            return StorageUnavailable(FULL_TEXT, full=True)
        if primary == _SQLITE_IOERR or (primary is None and "disk I/O error" in str(orig)):
            return StorageUnavailable(IO_TEXT, full=False)
        return None
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg errors carry their SQLSTATE
    if sqlstate == _PG_DISK_FULL:
        return StorageUnavailable(FULL_TEXT, full=True)
    if sqlstate == _PG_IO_ERROR:
        return StorageUnavailable(IO_TEXT, full=False)
    return None


@contextlib.contextmanager
def mapped() -> Iterator[None]:
    """Re-raise a database's disk-full or I/O error inside the block as StorageUnavailable (chained)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        su = from_db_error(exc)
        if su is None:
            raise
        raise su from exc
