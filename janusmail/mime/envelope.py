"""IMAP ENVELOPE (RFC 9051 §7.5.2) from a header block.

Strings are the raw values, unfolded and trimmed; RFC 2047 words stay encoded because IMAP
clients decode them themselves. The first instance of a repeated field is used.
"""

from __future__ import annotations

from .addresses import imap_addresses, parse_address_list
from .structure import text_of

_WANTED = (
    b"date",
    b"subject",
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"bcc",
    b"in-reply-to",
    b"message-id",
)
_WANTED_SET = frozenset(_WANTED)
_ADDRESS = frozenset({b"from", b"sender", b"reply-to", b"to", b"cc", b"bcc"})


def _unfold_trim(s: str) -> str:
    if "\n" in s or "\r" in s:
        s = s.replace("\r", "").replace("\n", "")
    return s.strip()


def envelope_from_fields(
    fields: list[tuple[bytes, bytes]], parsed: dict | None = None, budget: list[int] | None = None
) -> list:
    """``[date, subject, from, sender, reply_to, to, cc, bcc, in_reply_to, message_id]``.

    `parsed` (unfolded value -> parse_address_list result) lets the caller share address
    parses with the JMAP fields, which usually read the very same header values. `budget`
    ([characters left]) is shared by all encapsulated messages of one message: once spent,
    their address fields are read from the first 256 characters only, so thousands of attached
    messages with huge To: lists cannot make one ingest take seconds."""
    first: dict[bytes, bytes] = {}
    for name, value in fields:
        ln = name.lower()
        if ln in _WANTED_SET and ln not in first:
            first[ln] = value
    out: list = []
    for key in _WANTED:
        v = first.get(key)
        if v is None:
            out.append(None)
            continue
        s = _unfold_trim(text_of(v))
        if key in _ADDRESS:
            if not s:
                out.append(None)
                continue
            if budget is not None:
                if budget[0] <= 0 and len(s) > 256:
                    cut = s.rfind(",", 0, 256)
                    s = s[: cut if cut > 0 else 256]
                budget[0] -= len(s)
            items = parsed.get(s) if parsed is not None else None
            if items is None:
                items = parse_address_list(s)
                if parsed is not None:
                    parsed[s] = items
            out.append(imap_addresses(items))
        else:
            out.append(s)
    if out[3] is None:
        out[3] = out[2]
    if out[4] is None:
        out[4] = out[2]
    return out
