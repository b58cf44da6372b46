"""Content-Type / Content-Disposition value parsing, with RFC 2231 parameter decoding.

IMAP BODYSTRUCTURE wants the parameters as written (attribute names such as ``filename*0*`` kept),
while JMAP wants the decoded file name; so we keep the raw list and decode on demand.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from .charsets import decode_text, decode_words

_TYPE = re.compile(r"\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)\s*/\s*([!#$%&'*+\-.^_`|~0-9A-Za-z]+)")
_TOKEN = re.compile(r"\s*([^\s;\"]+)")
_PARAM = re.compile(r';\s*([^\s=;"]+)\s*(?:=\s*("(?:[^"\\]|\\.)*(?:"|$)|[^;]*))?', re.S)
_UNESCAPE = re.compile(r"\\(.)", re.S)


def strip_comments(value: str) -> str:
    """``value`` without its RFC 5322 comments: ``(...)`` outside quoted strings, nested, with quoted-pairs.

    A single left-to-right scan, because comments and quoted strings decide each other's extent: the ``(1)`` in
    ``filename="Invoice (1).pdf"`` is part of the name, and a ``"`` inside a comment opens nothing. A comment
    that never closes is kept as written (damaged mail keeps its text rather than losing the rest).
    """
    if "(" not in value:
        return value
    out: list[str] = []
    i, n = 0, len(value)
    quoted = False
    while i < n:
        ch = value[i]
        if quoted:
            j = i + 2 if ch == "\\" else i + 1
            if ch == '"':
                quoted = False
            out.append(value[i:j])
            i = j
        elif ch == '"':
            quoted = True
            out.append(ch)
            i += 1
        elif ch == "(":
            depth, j = 1, i + 1
            while j < n and depth:
                c = value[j]
                if c == "\\":
                    j += 1
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                j += 1
            if depth:  # unterminated: keep the rest as written
                out.append(value[i:])
                break
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _params(rest: str) -> list[list[str]]:
    out: list[list[str]] = []
    if ";" not in rest:
        return out
    for m in _PARAM.finditer(rest):
        val = m.group(2)
        if val is None:
            continue
        if val.startswith('"'):
            val = val[1:-1] if len(val) > 1 and val.endswith('"') else val[1:]
            if "\\" in val:
                val = _UNESCAPE.sub(r"\1", val)
        else:
            val = val.strip()
        out.append([m.group(1), val])
        if len(out) >= 64:  # a header with thousands of parameters is an attack, not mail
            break
    return out


def parse_content_type(value: str) -> tuple[str | None, str | None, list[list[str]]]:
    """Split a Content-Type value into (type, subtype, params); type/subtype lowercased, or
    (None, None, params) when the media type is unusable and the caller must apply the default."""
    value = value.replace("\r", "").replace("\n", "")
    m = _TYPE.match(value)
    if m is None:
        semi = value.find(";")
        return None, None, _params(value[semi:] if semi >= 0 else "")
    return m.group(1).lower(), m.group(2).lower(), _params(value[m.end() :])


def parse_disposition(value: str) -> tuple[str | None, list[list[str]]]:
    """Split a Content-Disposition value into (type as written, params)."""
    value = value.replace("\r", "").replace("\n", "")
    value = strip_comments(value)
    m = _TOKEN.match(value)
    if m is None:
        semi = value.find(";")
        return None, _params(value[semi:] if semi >= 0 else "")
    return m.group(1), _params(value[m.end() :])


def _decode_ext(value: str, charset: str | None) -> str:
    raw = unquote_to_bytes(value)
    return decode_text(raw, charset)[0]


def param_value(params: list[list[str]], name: str) -> str | None:
    """See _param_value; NUL is removed (it cannot go into a database text column)."""
    v = _param_value(params, name)
    return v.replace("\x00", "") if v and "\x00" in v else v


def _param_value(params: list[list[str]], name: str) -> str | None:
    """The decoded value of parameter `name`: RFC 2231 (``name*``, ``name*0*``...) wins over the
    plain form; RFC 2047 words in a plain value are decoded too (Outlook writes those)."""
    name = name.lower()
    plain: str | None = None
    ext: str | None = None
    pieces: dict[int, tuple[str, bool]] = {}
    star = name + "*"
    for k, v in params:
        kl = k.lower()
        if kl == name:
            if plain is None:
                plain = v
        elif kl == star:
            if ext is None:
                ext = v
        elif kl.startswith(star):
            rest = kl[len(star) :]
            encoded = rest.endswith("*")
            idx = rest[:-1] if encoded else rest
            if idx.isdigit() and len(idx) < 4:
                pieces.setdefault(int(idx), (v, encoded))
    if ext is not None:
        parts = ext.split("'", 2)
        if len(parts) == 3:
            return _decode_ext(parts[2], parts[0] or None)
        return _decode_ext(ext, None)
    if pieces:
        charset: str | None = None
        buf = bytearray()
        i = 0
        while i in pieces:
            v, encoded = pieces[i]
            if encoded:
                if i == 0:
                    parts = v.split("'", 2)
                    if len(parts) == 3:
                        charset = parts[0] or None
                        v = parts[2]
                buf += unquote_to_bytes(v)
            else:
                buf += v.encode("utf-8")
            i += 1
        text = decode_text(bytes(buf), charset)[0]
        return decode_words(text) if charset is None else text
    if plain is not None:
        return decode_words(plain)
    return None


def raw_param(params: list[list[str]], name: str) -> str | None:
    """The first parameter called `name` (case-insensitive), undecoded."""
    name = name.lower()
    for k, v in params:
        if k.lower() == name:
            return v
    return None
