"""GETMETADATA and SETMETADATA argument grammar (RFC 5464 §4.2, §4.3, §5).

Entry names are checked here, where the RFC's syntax rules for them live (§3.2): they start with
``/private/`` or ``/shared/`` (a bare ``/private`` or ``/shared`` only as a GETMETADATA root), are 7-bit
printable without ``*`` and ``%``, have no empty component and do not end with ``/``. Names are
case-insensitive, so they leave the parser in lower case. Values are octets (``nstring`` or ``literal8``):
``NIL`` removes an entry.
"""

from __future__ import annotations

import re

from .args import GetMetadataArgs, SetMetadataArgs
from .cursor import Cursor

__all__ = ["ENTRY_ROOTS", "parse_getmetadata", "parse_setmetadata", "valid_entry"]

ENTRY_ROOTS = ("/private", "/shared")
_ENTRY_RE = re.compile(r"/[\x21-\x7e]*\Z")
#: the longest entry name accepted (the store keeps up to 1024 characters)
MAX_ENTRY = 1024


def valid_entry(name: str, *, root_ok: bool = False) -> bool:
    """An entry name RFC 5464 §3.2 allows (``root_ok``: ``/private`` and ``/shared`` themselves too)."""
    low = name.lower()
    if len(low) > MAX_ENTRY or not _ENTRY_RE.match(low) or "*" in low or "%" in low:
        return False
    if low in ENTRY_ROOTS:
        return root_ok
    return low.startswith(("/private/", "/shared/")) and not low.endswith("/") and "//" not in low


def _entry(cur: Cursor, *, root_ok: bool) -> str:
    name = cur.astring("entry name")
    if not valid_entry(name, root_ok=root_ok):
        raise cur.fail(f"Invalid entry name {name[:80]!r}")
    return name.lower()


def _value(cur: Cursor) -> bytes | None:
    """``nstring / literal8`` as octets."""
    c = cur.peek()
    if c == 0:
        data, _ = cur.literal(allow8=True)
        if not isinstance(data, bytes):  # streamed to a sink: only APPEND messages may be that large
            raise cur.fail("Literal too large here")
        return data
    if c == 0x22:
        return cur.string_bytes()
    if c < 0:
        raise cur.eof("value")
    if cur.keyword("value") != "NIL":
        raise cur.fail("Expected a string, a literal or NIL")
    return None


def parse_getmetadata(cur: Cursor, uid: bool) -> GetMetadataArgs:
    cur.sp()
    maxsize: int | None = None
    depth: int | None = 0
    if cur.peek() == 0x28:  # "(" options: a mailbox name never starts with one

        def option() -> None:
            nonlocal maxsize, depth
            name = cur.keyword("GETMETADATA option")
            cur.sp()
            if name == "MAXSIZE":
                maxsize = cur.number("MAXSIZE")
            elif name == "DEPTH":
                value = cur.keyword("DEPTH")
                if value not in ("0", "1", "INFINITY"):
                    raise cur.fail("DEPTH must be 0, 1 or infinity")
                depth = None if value == "INFINITY" else int(value)
            else:
                raise cur.fail(f"Unknown GETMETADATA option {name}")

        cur.paren_list(option)
        cur.sp()
    mailbox = cur.mailbox()
    cur.sp()
    if cur.peek() == 0x28:
        entries = cur.paren_list(lambda: _entry(cur, root_ok=True))
    else:
        entries = [_entry(cur, root_ok=True)]
    cur.finish()
    return GetMetadataArgs(mailbox, tuple(dict.fromkeys(entries)), maxsize, depth)


def parse_setmetadata(cur: Cursor, uid: bool) -> SetMetadataArgs:
    cur.sp()
    mailbox = cur.mailbox()
    cur.sp()

    def pair() -> tuple[str, bytes | None]:
        name = _entry(cur, root_ok=False)
        cur.sp()
        return name, _value(cur)

    entries = cur.paren_list(pair)
    cur.finish()
    return SetMetadataArgs(mailbox, tuple(entries))
