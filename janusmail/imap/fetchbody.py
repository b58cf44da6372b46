"""BODY[section]<partial>, BINARY[part]<partial> and BINARY.SIZE[part] from the ingest cache plus byte-range
reads of the stored message.

The MIME cache (``emails.cache``, see :mod:`janusmail.mime`) holds byte offsets for every part, so a section is
one ``pread`` of exactly its bytes: ``BODY[1.2]`` of a 30 MB message reads only part 1.2, a partial
``BODY[]<0.1024>`` reads 1024 octets. Nothing is parsed again; ``HEADER.FIELDS`` only splits the header block
into fields.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

from janusmail.imap.codec import FetchBinarySize, FetchBody, Section
from janusmail.mime.charsets import b64decode_loose
from janusmail.mime.content import find_part
from janusmail.mime.transfer import qp_decode

__all__ = [
    "MISSING",
    "RangeReader",
    "UnknownCte",
    "base64_lines",
    "binary_size",
    "body_section",
    "filter_header_fields",
    "needs_cache",
]

#: Transfer encodings BINARY[] can undo (RFC 3516 §4.2: others get NO [UNKNOWN-CTE]).
_IDENTITY = frozenset({"7BIT", "8BIT", "BINARY", ""})
_KNOWN = _IDENTITY | {"BASE64", "QUOTED-PRINTABLE"}


class UnknownCte(Exception):
    """BINARY of a part whose Content-Transfer-Encoding we cannot decode (NO [UNKNOWN-CTE])."""


class _Missing:
    """A section that does not exist in this message: rendered as NIL."""

    __slots__ = ()


MISSING = _Missing()

ReadFn = Callable[[int, int], bytes]


class RangeReader:
    """Reads byte ranges of one stored message, at most once for the whole message.

    ``read(start, end)`` goes to disk for just that range unless the whole message was already read (several
    items of one FETCH asking for BODY[] and BODY[1] read the blob once)."""

    __slots__ = ("_read", "size", "_whole")

    def __init__(self, read: ReadFn, size: int) -> None:
        self._read = read
        self.size = size
        self._whole: bytes | None = None

    def read(self, start: int, end: int) -> bytes:
        start = max(0, min(start, self.size))
        end = max(start, min(end, self.size))
        if self._whole is not None:
            return self._whole[start:end]
        if start == 0 and end == self.size:
            self._whole = self._read(0, self.size)
            return self._whole
        return self._read(start, end)


def _clip(start: int, end: int, partial: tuple[int, int] | None) -> tuple[int, int]:
    """Absolute byte range of ``<offset.length>`` inside ``[start, end)``."""
    if partial is None:
        return start, end
    off, length = partial
    a = min(start + off, end)
    return a, min(a + length, end)


def _root(cache: dict[str, Any]) -> dict[str, Any]:
    return cache.get("part") or {}


def body_section(item: FetchBody, cache: dict[str, Any] | None, reader: RangeReader) -> bytes | _Missing:
    """Content of a ``BODY[...]``/``BINARY[...]``/RFC822* item (partial applied), or :data:`MISSING`.

    ``cache`` may be None only for whole-message items (``BODY[]``, ``RFC822``, ``BINARY[]``)."""
    sec: Section = item.section
    if not sec.part and sec.text is None:
        return reader.read(*_clip(0, reader.size, item.partial))
    assert cache is not None
    if not sec.part:
        root = _root(cache)
        hdr_end = int(root.get("header_end", 0))
        body_start, body_end = int(root.get("body_start", hdr_end)), int(root.get("body_end", reader.size))
        return _text_item(sec, item, 0, hdr_end, body_start, body_end, reader)
    part = find_part(cache, ".".join(str(p) for p in sec.part))
    if part is None:
        return MISSING
    if item.binary:
        return _binary(part, item.partial, reader)
    if sec.text is None:
        if _maybe_nul(part):
            return _nul_safe(part, item.partial, reader)
        return reader.read(*_clip(part["body_start"], part["body_end"], item.partial))
    if sec.text == "MIME":
        return reader.read(*_clip(part["header_start"], part["header_end"], item.partial))
    msg = part.get("message")
    if not msg:
        # HEADER/TEXT of a part that is not an encapsulated message: nothing there (an empty string, as the
        # section exists but has no such sub-part).
        return b""
    return _text_item(sec, item, msg["header_start"], msg["header_end"], msg["body_start"], msg["body_end"],
                      reader)


def _maybe_nul(part: dict[str, Any]) -> bool:
    """A leaf part whose Content-Transfer-Encoding lets it carry NUL (``binary``, RFC 2045 §6.2), i.e. one a
    client appended with a literal8 (RFC 3516 §4.4)."""
    return (str(part.get("encoding") or "").upper() == "BINARY" and part.get("children") is None
            and not part.get("message"))


def _nul_safe(part: dict[str, Any], partial: tuple[int, int] | None, reader: RangeReader) -> bytes:
    """``BODY[n]`` of a ``binary`` part: as stored when it has no NUL, else base64-encoded.

    Why: a BODY section is an nstring, and no IMAP string but literal8 may hold NUL (RFC 9051 §4.3), which
    only BINARY responses may use (RFC 3516 §4.3). Dovecot converts such parts to base64 when the message is
    appended; Janus keeps the stored bytes exact (BINARY[n] returns them raw, in a literal8) and converts on
    the way out instead. The partial applies to the encoded form, which is what the client receives."""
    data = reader.read(part["body_start"], part["body_end"])
    if b"\x00" in data:
        data = base64_lines(data)
    if partial is not None:
        a, b = _clip(0, len(data), partial)
        data = data[a:b]
    return data


def base64_lines(data: bytes) -> bytes:
    """Base64 in CRLF-terminated lines of 76 characters (RFC 2045 §6.8)."""
    enc = binascii.b2a_base64(data, newline=False)
    return b"".join(enc[i : i + 76] + b"\r\n" for i in range(0, len(enc), 76))


def _text_item(sec: Section, item: FetchBody, hdr_start: int, hdr_end: int, body_start: int, body_end: int,
               reader: RangeReader) -> bytes:
    if sec.text == "TEXT":
        return reader.read(*_clip(body_start, body_end, item.partial))
    if sec.text == "HEADER":
        return reader.read(*_clip(hdr_start, hdr_end, item.partial))
    # HEADER.FIELDS / HEADER.FIELDS.NOT: filter, then apply the partial to the result
    block = reader.read(hdr_start, hdr_end)
    data = filter_header_fields(block, sec.fields, sec.text == "HEADER.FIELDS.NOT")
    if item.partial is not None:
        a, b = _clip(0, len(data), item.partial)
        data = data[a:b]
    return data


def filter_header_fields(block: bytes, names: tuple[str, ...] | list[str], exclude: bool) -> bytes:
    """The fields of a header block whose names are (``exclude``: are not) in ``names``, byte-exact with
    their continuation lines, followed by the blank line that ends a header (RFC 9051 §6.4.5)."""
    wanted = {n.lower().encode("utf-8", "replace") for n in names}
    out: list[bytes] = []
    keep = False
    blank = b"\r\n"
    for line in block.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            blank = line
            break
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        colon = line.find(b":")
        name = (line[:colon] if colon >= 0 else line).strip().lower()
        keep = (name in wanted) != exclude
        if keep:
            if not line.endswith(b"\n"):
                line += b"\r\n"
            out.append(line)
    out.append(blank)
    return b"".join(out)


def _decode(data: bytes, encoding: str) -> bytes:
    if encoding == "BASE64":
        return b64decode_loose(data)[0]
    if encoding == "QUOTED-PRINTABLE":
        try:
            return qp_decode(data)
        except (binascii.Error, ValueError):
            return data
    return data


def _encoding(part: dict[str, Any]) -> str:
    enc = str(part.get("encoding") or "7BIT").upper()
    if part.get("children") is not None:
        return "7BIT"  # a multipart body is sent as is
    if enc not in _KNOWN:
        raise UnknownCte(enc)
    return enc


def _binary(part: dict[str, Any], partial: tuple[int, int] | None, reader: RangeReader) -> bytes:
    enc = _encoding(part)
    if enc in _IDENTITY:
        return reader.read(*_clip(part["body_start"], part["body_end"], partial))
    data = _decode(reader.read(part["body_start"], part["body_end"]), enc)
    if partial is not None:
        a, b = _clip(0, len(data), partial)
        data = data[a:b]
    return data


def binary_size(item: FetchBinarySize, cache: dict[str, Any] | None, reader: RangeReader) -> int | _Missing:
    """``BINARY.SIZE[part]``: the decoded size, from the cache (the parser recorded it at ingest) when it
    can, else by decoding."""
    if not item.part:
        return reader.size
    assert cache is not None
    part = find_part(cache, ".".join(str(p) for p in item.part))
    if part is None:
        return MISSING
    enc = _encoding(part)
    if enc in _IDENTITY:
        return int(part["body_end"]) - int(part["body_start"])
    jmap = part.get("jmap") or {}
    size = jmap.get("size")
    if isinstance(size, int) and part.get("message") is None:
        return size
    return len(_decode(reader.read(part["body_start"], part["body_end"]), enc))


def needs_cache(item: FetchBody | FetchBinarySize) -> bool:
    """Whether the item needs the part offsets (everything except the whole message)."""
    if isinstance(item, FetchBinarySize):
        return bool(item.part)
    return bool(item.section.part) or item.section.text is not None
