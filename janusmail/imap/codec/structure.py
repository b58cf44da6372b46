"""ENVELOPE and BODYSTRUCTURE rendering from the MIME layer's plain Python structures (RFC 9051 §7.5.2).

The MIME layer parses once at ingest and hands over lists/dicts; rendering them is pure formatting, so
it lives in the codec. Malformed-but-real mail (an empty multipart, missing fields) renders to something
valid instead of raising, because one odd message must not break ``FETCH 1:* BODYSTRUCTURE``.

ENVELOPE input: ``[date, subject, from, sender, reply_to, to, cc, bcc, in_reply_to, message_id]`` where
address fields are None or ``[[name, adl, mailbox, host], ...]`` (group markers included as the MIME
layer produces them). Per RFC 9051 the MIME layer fills sender/reply-to from From when absent.

Part dict keys: ``type subtype params id description encoding size lines md5 disposition language
location children message``; ``params`` is ``[[k, v], ...]``, ``disposition`` None or ``[type, params]``,
``language`` None, a string or a list, ``message`` ``{"envelope": [...], "part": {...}}`` for
message/rfc822 and message/global.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .strings import nstring, quoted_or_literal

__all__ = ["MAX_BODY_DEPTH", "body_structure", "envelope"]

#: Nesting beyond this is rendered as an opaque part (the MIME layer should cap it earlier).
MAX_BODY_DEPTH = 100

_EMPTY_TEXT_PART = b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0)'


def _addresses(value: Sequence[Sequence[Any]] | None, utf8_ok: bool) -> bytes:
    if not value:
        return b"NIL"
    out = []
    for addr in value:
        if len(addr) == 4:
            name, adl, mailbox, host = addr
        else:
            name, adl, mailbox, host = (list(addr)[:4] + [None] * 4)[:4]
        out.append(
            b"(%b %b %b %b)"
            % (
                nstring(name, utf8_ok),
                nstring(adl, utf8_ok),
                nstring(mailbox, utf8_ok),
                nstring(host, utf8_ok),
            )
        )
    return b"(" + b"".join(out) + b")"


def envelope(env: Sequence[Any], utf8_ok: bool = False) -> bytes:
    """``(date subject from sender reply-to to cc bcc in-reply-to message-id)``."""
    if len(env) != 10:
        env = (list(env)[:10] + [None] * 10)[:10]
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = env
    return b"(%b %b %b %b %b %b %b %b %b %b)" % (
        nstring(date, utf8_ok),
        nstring(subject, utf8_ok),
        _addresses(from_, utf8_ok),
        _addresses(sender, utf8_ok),
        _addresses(reply_to, utf8_ok),
        _addresses(to, utf8_ok),
        _addresses(cc, utf8_ok),
        _addresses(bcc, utf8_ok),
        nstring(in_reply_to, utf8_ok),
        nstring(message_id, utf8_ok),
    )


def _params(value: Sequence[Sequence[Any]] | None, utf8_ok: bool) -> bytes:
    if not value:
        return b"NIL"
    out = []
    for pair in value:
        if len(pair) >= 2:
            out.append(quoted_or_literal(pair[0] or "", utf8_ok))
            out.append(quoted_or_literal(pair[1] if pair[1] is not None else "", utf8_ok))
    return b"(" + b" ".join(out) + b")" if out else b"NIL"


def _disposition(value: Sequence[Any] | None, utf8_ok: bool) -> bytes:
    if not value:
        return b"NIL"
    params = value[1] if len(value) > 1 else None
    return b"(" + quoted_or_literal(value[0] or "", utf8_ok) + b" " + _params(params, utf8_ok) + b")"


def _language(value: str | Sequence[str] | None, utf8_ok: bool) -> bytes:
    if not value:
        return b"NIL"
    if isinstance(value, str):
        return quoted_or_literal(value, utf8_ok)
    if len(value) == 1:
        return quoted_or_literal(value[0], utf8_ok)
    return b"(" + b" ".join(quoted_or_literal(v, utf8_ok) for v in value) + b")"


def _number(value: Any) -> bytes:
    return b"%d" % value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else b"0"


def _extension(part: Mapping[str, Any], utf8_ok: bool) -> list[bytes]:
    return [
        _disposition(part.get("disposition"), utf8_ok),
        _language(part.get("language"), utf8_ok),
        nstring(part.get("location"), utf8_ok),
    ]


def _part(part: Mapping[str, Any], extended: bool, utf8_ok: bool, depth: int) -> bytes:
    ctype = part.get("type") or "text"
    subtype = part.get("subtype") or "plain"
    if depth > MAX_BODY_DEPTH:
        return b'("APPLICATION" "OCTET-STREAM" NIL NIL NIL "7BIT" ' + _number(part.get("size")) + b")"
    if ctype.lower() == "multipart":
        children = part.get("children") or ()
        inner = b"".join(_part(c, extended, utf8_ok, depth + 1) for c in children) or _EMPTY_TEXT_PART
        out = [inner + b" " + quoted_or_literal(subtype, utf8_ok)]
        if extended:
            out.append(_params(part.get("params"), utf8_ok))
            out += _extension(part, utf8_ok)
        return b"(" + b" ".join(out) + b")"
    fields = [
        quoted_or_literal(ctype, utf8_ok),
        quoted_or_literal(subtype, utf8_ok),
        _params(part.get("params"), utf8_ok),
        nstring(part.get("id"), utf8_ok),
        nstring(part.get("description"), utf8_ok),
        quoted_or_literal(part.get("encoding") or "7BIT", utf8_ok),
        _number(part.get("size")),
    ]
    lowered = ctype.lower()
    message = part.get("message")
    if lowered == "message" and subtype.lower() in ("rfc822", "global") and message:
        fields.append(envelope(message.get("envelope") or [], utf8_ok))
        inner_part = message.get("part") or {"type": "text", "subtype": "plain"}
        fields.append(_part(inner_part, extended, utf8_ok, depth + 1))
        fields.append(_number(part.get("lines")))
    elif lowered == "text":
        fields.append(_number(part.get("lines")))
    if extended:
        fields.append(nstring(part.get("md5"), utf8_ok))
        fields += _extension(part, utf8_ok)
    return b"(" + b" ".join(fields) + b")"


def body_structure(part: Mapping[str, Any], extended: bool = True, utf8_ok: bool = False) -> bytes:
    """BODYSTRUCTURE (``extended=True``) or BODY (``extended=False``) for a part dict."""
    return _part(part, extended, utf8_ok, 0)
