"""Charset decoding and RFC 2047 encoded-word decoding, both tolerant of what real mail does.

Mail names charsets loosely ("utf8", "ks_c_5601-1987", "iso-8859-8-i", "unknown-8bit") and
labels windows-1252 text as iso-8859-1. We map names through a small alias table, refuse codecs
that are not text charsets (Python's codec registry also holds "zlib", "unicode_escape", ...),
and always return a str that orjson can serialise (no lone surrogates).
"""

from __future__ import annotations

import binascii
import codecs
import re
from functools import lru_cache

# Names seen in the wild that Python does not know, or knows as something narrower.
_ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-e": "iso-8859-6",
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "iso-8859-1": "cp1252",  # WHATWG: latin-1 labelled mail is really windows-1252
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "us-ascii": "utf-8",  # 8-bit bytes under a us-ascii label are nearly always UTF-8
    "ascii": "utf-8",
    "ansi_x3.4-1968": "utf-8",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "x-sjis": "cp932",
    "shift_jis": "cp932",
    "sjis": "cp932",
    "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    "x-unknown": "utf-8",
    "unknown-8bit": "utf-8",
    "unknown": "utf-8",
    "default": "utf-8",
    "x-user-defined": "utf-8",
}

# Codecs that exist but must never decode mail text.
_REFUSED = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "palmos", "mbcs", "oem"}
)


def codec_for(charset: str | None) -> str | None:
    """Return the Python codec name for a MIME charset label, or None when unknown/unsafe."""
    if not charset:
        return "utf-8"
    return _codec_for_label(charset.strip().strip('"').lower())


# A pure function of the label; labels come from untrusted mail, so the memo is bounded.
@lru_cache(maxsize=512)
def _codec_for_label(key: str) -> str | None:
    name: str | None = _ALIASES.get(key, key)
    try:
        info = codecs.lookup(name)  # type: ignore[arg-type]
        name = info.name
        if not getattr(info, "_is_text_encoding", True) or name in _REFUSED:
            name = None
    except (LookupError, ValueError, TypeError):
        name = None
    return name


_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrub(text: str) -> str:
    """Drop lone surrogates (utf-7/utf-16 decoders can emit them; orjson rejects them).

    Searched for rather than found by a trial ``encode``: that would copy a large text once more just
    to look at it."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def decode_text(data: bytes, charset: str | None) -> tuple[str, bool]:
    """Decode body or header bytes in `charset`; return (text, is_encoding_problem).

    Unknown charsets fall back to UTF-8 and report a problem; a cp1252 decode that hits an
    unassigned byte retries as true latin-1 (which cannot fail).
    """
    codec = codec_for(charset)
    problem = False
    if codec is None:
        codec = "utf-8"
        problem = True
    if codec == "utf-8":
        try:
            return data.decode("utf-8"), problem
        except UnicodeDecodeError:
            return data.decode("utf-8", "replace"), True
    try:
        return _scrub(data.decode(codec)), problem
    except UnicodeDecodeError:
        if codec == "cp1252":
            return data.decode("latin-1"), problem
        return _scrub(data.decode(codec, "replace")), True
    except Exception:  # noqa: BLE001 - third-party codecs may raise anything
        return data.decode("utf-8", "replace"), True


#: Every byte that is not in the base64 alphabet (deleted by ``bytes.translate`` in one pass).
_B64_JUNK = bytes(
    sorted(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))
)


def b64decode_loose(data: bytes) -> tuple[bytes, bool]:
    """Base64-decode ignoring junk characters and bad padding; return (bytes, was_damaged)."""
    try:
        return binascii.a2b_base64(data.translate(None, b" \t\r\n"), strict_mode=True), False
    except binascii.Error:
        pass
    try:
        return binascii.a2b_base64(data, strict_mode=False), True
    except binascii.Error:
        pass
    clean = data.translate(None, _B64_JUNK)
    rem = len(clean) % 4
    if rem == 1:
        clean = clean[:-1]
    elif rem:
        clean += b"=" * (4 - rem)
    try:
        return binascii.a2b_base64(clean), True
    except binascii.Error:
        return b"", True


# RFC 2047 encoded word; the charset may carry an RFC 2231 "*lang" suffix.
_EW = re.compile(r"=\?([^?\s*]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?]*)\?=")
_WS_ONLY = re.compile(r"[ \t\r\n]*")
_WS = " \t\r\n"
# Control characters that come out of an encoded word are dropped (RFC 8621 asText): they
# would otherwise smuggle line breaks or NULs into a decoded header.
_CONTROLS = dict.fromkeys([*range(0, 9), *range(10, 32), 127])


def decode_words(value: str, strict: bool = False) -> str:
    """Decode RFC 2047 encoded words in `value`.

    Whitespace between adjacent encoded words is dropped (RFC 2047 §6.2), and adjacent words in
    the same charset are joined as bytes before decoding, because mailers split multi-byte
    characters across words. With `strict` (JMAP asText), a word glued to other text, or one
    containing white space, is left alone, as RFC 8621 requires; display names and parameters
    are decoded leniently because real mailers put encoded words inside quotes.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pos = 0
    prev_end = -1
    pending: bytearray | None = None
    pending_cs = ""

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            out.append(decode_text(bytes(pending), pending_cs)[0].translate(_CONTROLS))
            pending = None

    n = len(value)
    for m in _EW.finditer(value):
        start, end = m.start(), m.end()
        payload = m.group(3)
        if strict and (
            (start > 0 and start != prev_end and value[start - 1] not in _WS)
            or (end < n and value[end] not in _WS and not value.startswith("=?", end))
            or any(c in payload for c in _WS)
        ):
            continue
        gap = value[pos:start]
        if pending is None or not _WS_ONLY.fullmatch(gap):
            flush()
            out.append(gap)
        cs, enc = m.group(1), m.group(2)
        raw = payload.encode("utf-8", "surrogateescape")
        if enc in "Bb":
            chunk, _ = b64decode_loose(raw)
        else:
            chunk = binascii.a2b_qp(raw, header=True)
        cs = cs.lower()
        if pending is not None and cs != pending_cs:
            flush()
        if pending is None:
            pending = bytearray()
            pending_cs = cs
        pending += chunk
        pos = prev_end = end
    flush()
    out.append(value[pos:])
    text = _scrub("".join(out))
    return text.replace("\x00", "") if "\x00" in text else text
