"""IMAP string primitives shared by every renderer: quoted, literal, atom, astring, nstring.

Kept apart from :mod:`.serializer` so the ENVELOPE/BODYSTRUCTURE renderer can use them without a cycle.
"""

from __future__ import annotations

import re

__all__ = [
    "QUOTED_MAX",
    "astring",
    "atom",
    "is_atom",
    "literal",
    "nstring",
    "quoted",
    "quoted_or_literal",
    "utf8",
]

#: Strings longer than this go out as literals even when they could be quoted.
QUOTED_MAX = 4096

_ATOM_RE = re.compile(r"[\x21\x23\x24\x26\x27\x2b-\x5b\x5e-\x7a\x7c-\x7e]+\Z")
_QUOTABLE_ASCII = re.compile(r"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_QUOTABLE_UTF8 = re.compile(r"[^\r\n\x00]*\Z")
_QUOTABLE_ASCII_B = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*\Z")
_QUOTABLE_UTF8_B = re.compile(rb"[^\r\n\x00]*\Z")
_NOT_PLAIN = re.compile(r"[^\x01-\x09\x0b\x0c\x0e-\x21\x23-\x5b\x5d-\x7f]")


def utf8(s: str) -> bytes:
    """UTF-8 octets of ``s``; never raises (lone surrogates are passed through or replaced)."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        # lone surrogates from surrogateescape decoding: give back the original octets, never crash
        return s.encode("utf-8", "surrogateescape") if _escapable(s) else s.encode("utf-8", "replace")


def _escapable(s: str) -> bool:
    try:
        s.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def _quote_bytes(data: bytes) -> bytes:
    if b"\\" in data or b'"' in data:
        data = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b'"' + data + b'"'


def literal(data: bytes, binary: bool = False) -> bytes:
    """``{n}CRLF data`` (or ``~{n}`` for literal8)."""
    return (b"~{%d}\r\n" if binary else b"{%d}\r\n") % len(data) + data


def quoted(value: str | bytes) -> bytes:
    """Always a quoted string; raises ValueError if the value cannot be quoted (CR, LF, NUL).
    For values that must never be literals, such as the JMAPACCESS URL (RFC 9698 §4)."""
    data = utf8(value) if isinstance(value, str) else bytes(value)
    if not _QUOTABLE_UTF8_B.match(data):
        raise ValueError("value cannot be sent as a quoted string")
    return _quote_bytes(data)


def quoted_or_literal(value: str | bytes, utf8_ok: bool = False) -> bytes:
    """An IMAP ``string``: quoted when that is legal for this client, otherwise a literal."""
    if type(value) is str and len(value) <= QUOTED_MAX and not _NOT_PLAIN.search(value):
        return b'"%b"' % value.encode("ascii")  # the common case: plain ASCII, nothing to escape
    if isinstance(value, str):
        if len(value) <= QUOTED_MAX:
            if _QUOTABLE_ASCII.match(value):
                return _quote_bytes(value.encode("ascii"))
            if utf8_ok and _QUOTABLE_UTF8.match(value):
                try:
                    return _quote_bytes(value.encode("utf-8"))
                except UnicodeEncodeError:
                    pass
        return literal(utf8(value))
    data = bytes(value)
    if len(data) <= QUOTED_MAX:
        if _QUOTABLE_ASCII_B.match(data):
            return _quote_bytes(data)
        if utf8_ok and _QUOTABLE_UTF8_B.match(data):
            try:
                data.decode("utf-8")
                return _quote_bytes(data)
            except UnicodeDecodeError:
                pass
    return literal(data)


def atom(value: str) -> bytes:
    """Verbatim atom or flag (``\\Seen``, ``\\*``); raises ValueError for anything else."""
    if not (_ATOM_RE.match(value[1:] if value.startswith("\\") else value) or value == "\\*"):
        raise ValueError(f"not an atom: {value!r}")
    return value.encode("ascii")


def astring(value: str | bytes, utf8_ok: bool = False) -> bytes:
    """Atom when safe (and not ``NIL``, which a sloppy client could misread), else string."""
    if isinstance(value, str) and is_atom(value):
        return value.encode("ascii")
    return quoted_or_literal(value, utf8_ok)


def nstring(value: str | bytes | None, utf8_ok: bool = False) -> bytes:
    """``NIL`` for None, else a string (never an atom)."""
    if value is None:
        return b"NIL"
    if type(value) is str and len(value) <= QUOTED_MAX and not _NOT_PLAIN.search(value):
        return b'"%b"' % value.encode("ascii")
    return quoted_or_literal(value, utf8_ok)


def is_atom(value: str) -> bool:
    """True when ``value`` can be sent as an atom (and is not ``NIL``)."""
    return bool(_ATOM_RE.match(value)) and value.upper() != "NIL"
