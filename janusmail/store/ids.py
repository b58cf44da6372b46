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

import base64
import os
import re
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


def mint(prefix: str) -> str:
    """Return a new, never-before-used id of the given type prefix."""
    if prefix not in _PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    ms = int(time.time() * 1000) & ((1 << 48) - 1)
    raw = ms.to_bytes(6, "big") + os.urandom(5)  # 88 bits -> 18 base32 chars, no padding needed (11 bytes -> 18 + pad)
    body = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    return prefix + body


def mint_many(prefix: str, n: int) -> list[str]:
    """Mint ``n`` ids at once (import batches)."""
    return [mint(prefix) for _ in range(n)]


def looks_like(prefix: str, value: object) -> bool:
    """Cheap syntactic check used to reject foreign or malformed ids before touching the database."""
    return isinstance(value, str) and value[:1] == prefix and _ID_RE.match(value) is not None
