"""Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3).

IMAP4rev1 clients that have not enabled UTF8=ACCEPT exchange mailbox names in this encoding. Decoding is
strict and canonical: a name is accepted only if re-encoding it gives back exactly the same text. That
matters because two spellings of one name (say ``&AGE-&AGE-`` and ``&AGEA4Q-``) must never reach the store
as two different mailboxes.
"""

from __future__ import annotations

import base64
import binascii
import re

__all__ = ["decode", "encode"]

_DIRECT_RE = re.compile(r"[\x20-\x25\x27-\x7e]*\Z")  # printable ASCII except "&"
_B64_RE = re.compile(r"[A-Za-z0-9+,]*\Z")


def encode(name: str) -> str:
    """Encode a Unicode mailbox name. Raises ValueError for strings Python cannot encode as UTF-16
    (lone surrogates)."""
    if _DIRECT_RE.match(name):
        return name
    out: list[str] = []
    pending: list[str] = []
    for ch in name:
        if "\x20" <= ch <= "\x7e":
            if pending:
                out.append(_shift("".join(pending)))
                pending.clear()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    if pending:
        out.append(_shift("".join(pending)))
    return "".join(out)


def _shift(chars: str) -> str:
    try:
        raw = chars.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise ValueError("mailbox name contains an unencodable character") from exc
    b64 = base64.b64encode(raw).rstrip(b"=").replace(b"/", b",")
    return "&" + b64.decode("ascii") + "-"


def decode(text: str) -> str:
    """Decode a modified UTF-7 name; raises ValueError unless ``text`` is valid and canonical."""
    if _DIRECT_RE.match(text):
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "&":
            j = text.find("-", i + 1)
            if j < 0:
                raise ValueError("unterminated modified UTF-7 shift sequence")
            if j == i + 1:
                out.append("&")
            else:
                out.append(_unshift(text[i + 1 : j]))
            i = j + 1
        elif "\x20" <= ch <= "\x7e":
            out.append(ch)
            i += 1
        else:
            raise ValueError(f"invalid character {ch!r} in modified UTF-7 name")
    result = "".join(out)
    if encode(result) != text:
        raise ValueError("non-canonical modified UTF-7 name")
    return result


def _unshift(chunk: str) -> str:
    if not _B64_RE.match(chunk) or len(chunk) % 4 == 1:
        raise ValueError("invalid modified BASE64 in mailbox name")
    b64 = chunk.replace(",", "/") + "=" * (-len(chunk) % 4)
    try:
        raw = base64.b64decode(b64, validate=True)
    except binascii.Error as exc:
        raise ValueError("invalid modified BASE64 in mailbox name") from exc
    if len(raw) % 2:
        raise ValueError("odd number of UTF-16 octets in mailbox name")
    try:
        return raw.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise ValueError("invalid UTF-16 in mailbox name") from exc
