"""The one place that mints object ids, shared by IMAP (RFC 8474 OBJECTID) and JMAP (RFC 8620 Id).

Why this shape: both RFCs allow 1-255 characters of ``A-Za-z0-9_-`` and advise against ids that start with a
digit or a dash, that differ only by case, or that could read as ``NIL``. An id here is one uppercase type
letter followed by lowercase base32 (``a-z2-7``), so the letter names the type (EMAILID and THREADID can never
collide), no id is ``NIL`` (no prefix is ``N``) and case never matters for uniqueness.

The body is 48 bits of milliseconds since the epoch followed by 40 random bits: ids sort roughly by creation
time (kind to B-tree indexes) and stay unique across several server nodes sharing one database without any
coordination. Ids are never derived from content or from anything that can change.
"""

from __future__ import annotations

import os
import re
import threading
import time

MAILBOX = "F"
EMAIL = "M"
THREAD = "T"
BLOB = "G"
ACCOUNT = "A"
APP_PASSWORD = "P"
UPLOAD = "U"
SUBMISSION = "S"
IDENTITY = "I"

_PREFIXES = frozenset({MAILBOX, EMAIL, THREAD, BLOB, ACCOUNT, APP_PASSWORD, UPLOAD, SUBMISSION, IDENTITY})
_ID_RE = re.compile(r"^[A-Z][a-z2-7]{1,60}$")


#: every 10-bit value as its two base32 characters (RFC 4648 alphabet, lowercase): ``base64.b32encode`` is pure
#: Python and cost more than the rest of a delivery's id work together (three ids per message, issue 10)
_PAIRS = tuple(a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567")


#: random bytes of the operating system's generator, drawn this many at a time (see ``_random40``)
_DRAW = 5 * 256


class _Randomness(threading.local):
    """One thread's unused random bytes, and the fork generation they were drawn in."""

    def __init__(self) -> None:
        self.buf = b""
        self.pos = 0
        self.generation = -1


_local = _Randomness()
_generation = 0


def _forked() -> None:
    global _generation
    _generation += 1  # a child must never reuse bytes its parent drew (it would mint the parent's ids)


os.register_at_fork(after_in_child=_forked)


def _random40() -> int:
    """40 bits of the operating system's random generator. Drawn 256 ids' worth at a time: ``os.urandom`` is a
    system call that lets go of the GIL, and on a writer lane (three ids per delivered message) each call let
    the event loop thread take the GIL, which the lane then waited to get back (4% of its samples under
    ``bench/imap.py --profile append``)."""
    r = _local
    if r.pos >= len(r.buf) or r.generation != _generation:
        r.buf, r.pos, r.generation = os.urandom(_DRAW), 0, _generation
    i = r.pos
    r.pos = i + 5
    return int.from_bytes(r.buf[i : i + 5], "big")


def mint(prefix: str) -> str:
    """Return a new, never-before-used id of the given type prefix."""
    if prefix not in _PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    ms = int(time.time() * 1000) & ((1 << 48) - 1)
    # 48 bits of time and 40 random ones, 88 in all: base32 of those 11 bytes is 18 characters (RFC 4648 pads
    # the last with two zero bits), taken here ten bits at a time from the value shifted by those two bits
    n = ((ms << 40 | _random40()) << 2)
    p = _PAIRS
    return (prefix + p[n >> 80] + p[n >> 70 & 1023] + p[n >> 60 & 1023] + p[n >> 50 & 1023] + p[n >> 40 & 1023]
            + p[n >> 30 & 1023] + p[n >> 20 & 1023] + p[n >> 10 & 1023] + p[n & 1023])


def mint_many(prefix: str, n: int) -> list[str]:
    """Mint ``n`` ids at once (import batches)."""
    return [mint(prefix) for _ in range(n)]


def looks_like(prefix: str, value: object) -> bool:
    """Cheap syntactic check used to reject foreign or malformed ids before touching the database."""
    return isinstance(value, str) and value[:1] == prefix and _ID_RE.match(value) is not None
