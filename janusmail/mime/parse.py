"""parse_message: the one parse every message gets, at ingest.

The result is a plain JSON-able dict (stored with orjson) from which IMAP ENVELOPE,
BODYSTRUCTURE and BODY[section], and JMAP Email properties, are served later without parsing
the message again. Offsets in it index the raw bytes exactly as given here, so the caller must
store those same bytes.

Shape (keys): headers, envelope, part, textBody, htmlBody, attachments, hasAttachment, preview,
message_ids, in_reply_to, references, subject, base_subject, sent_at, sent_offset, from, to,
cc, bcc, reply_to, sender, search_text, size, damaged, and for a delivery report (MDN or DSN) report
(reports.py: which message it answers; ingest uses it and does not keep it). See structure.py for the part dict.
"""

from __future__ import annotations

import logging
from typing import Any

from .addresses import jmap_addresses, parse_address_list
from .bodies import body_lists, has_attachment
from .buffer import Raw, scannable
from .content import part_text
from .envelope import envelope_from_fields
from .headers import as_message_ids, as_text, parse_date, unfold
from .htmltext import html_to_text
from .reports import report_reference
from .structure import parse_structure, text_of
from .subject import base_subject

log = logging.getLogger(__name__)

PREVIEW_CHARS = 256
SEARCH_TEXT_CAP = 1_000_000
_NESTED_SEARCH_DEPTH = 3


_ADDRESS_KEYS = (
    ("from", "from"),
    ("to", "to"),
    ("cc", "cc"),
    ("bcc", "bcc"),
    ("reply-to", "reply_to"),
    ("sender", "sender"),
)


def _limited(part: dict, max_bytes: int) -> dict:
    """A view of `part` whose body is cut to max_bytes, so huge text parts cost bounded work."""
    if part["body_end"] - part["body_start"] <= max_bytes:
        return part
    view = dict(part)
    view["body_end"] = part["body_start"] + max_bytes
    return view


def _visible_text(raw: Raw, part: dict, max_chars: int) -> str:
    """At most max_chars of the part's visible text: at most 4 octets per character are decoded (the
    UTF-8 worst case), so a huge text part costs a bounded window, and only max_chars are kept."""
    text, _ = part_text(raw, _limited(part, max_chars * 4 + 1024))
    if part["jmap"]["type"] == "text/html":
        text = html_to_text(text)
    # NUL is legal in a JMAP body value but not in a PostgreSQL text column or a search index
    if "\x00" in text:
        text = text.replace("\x00", "")
    # nothing past max_chars can reach the preview or the search text, so it need not be kept
    return text[:max_chars] if len(text) > max_chars else text


class _Texts:
    """Decoded text per part, so preview and search text decode each part once."""

    def __init__(self, raw: Raw) -> None:
        self.raw = raw
        self.cache: dict[int, str] = {}

    def get(self, part: dict, max_chars: int = SEARCH_TEXT_CAP) -> str:
        key = id(part)
        hit = self.cache.get(key)
        if hit is None:
            hit = _visible_text(self.raw, part, max_chars)
            self.cache[key] = hit
        return hit


def _preview(texts: _Texts, text_body: list[dict]) -> str:
    chunks: list[str] = []
    have = 0
    for p in text_body:
        if not p["jmap"]["type"].startswith("text/"):
            continue
        s = " ".join(texts.get(p)[: PREVIEW_CHARS * 4].split())
        if s:
            chunks.append(s)
            have += len(s) + 1
            if have > PREVIEW_CHARS:
                break
    return " ".join(chunks)[:PREVIEW_CHARS].rstrip()


def _search_text(
    texts: _Texts, root: dict, text_body: list[dict], attachments: list[dict], depth: int = 0
) -> list[str]:
    out: list[str] = []
    budget = SEARCH_TEXT_CAP
    for p in text_body:
        if p["jmap"]["type"].startswith("text/"):
            out.append(texts.get(p))
            budget -= len(out[-1])
            if budget <= 0:
                return out
    for p in attachments:
        jt = p["jmap"]["type"]
        if jt.startswith("text/"):
            out.append(texts.get(p))
            budget -= len(out[-1])
        elif "message" in p and depth < _NESTED_SEARCH_DEPTH:
            inner = p["message"]["part"]
            t, _h, a = body_lists(inner)
            env = p["message"]["envelope"]
            if env[1]:
                out.append(as_text(env[1]))
            nested = _search_text(texts, inner, t, a, depth + 1)
            out.extend(nested)
            budget -= sum(len(x) for x in nested)
        if budget <= 0:
            break
    return out


def _sections(parts: list[dict]) -> list[str]:
    return [p["section"] for p in parts]


def parse_message(raw: Any) -> dict:
    """Parse a whole RFC 5322 message into the ingest cache. Never raises on any bytes.

    `raw` may be any bytes-like object; an ``mmap`` of a spool file is scanned in place, never copied,
    so memory stays bounded whatever the message's size (a window per part at most, see ``buffer`` and
    ``transfer``), and no reference to it outlives the call."""
    with scannable(raw) as buf:
        try:
            return _parse(buf)
        except Exception:  # noqa: BLE001 - ingest must accept every message; flag and degrade
            log.exception("mime parse failed; storing a degraded cache")
            return _degraded(buf)


def _parse(raw: Raw) -> dict:
    root, fields = parse_structure(raw)
    parsed: dict[str, list] = {}
    headers = [[n.decode("ascii", "replace"), text_of(v)] for n, v in fields]
    last: dict[str, str] = {}
    for n, v in headers:
        last[n.lower()] = v

    text_body, html_body, attachments = body_lists(root)
    texts = _Texts(raw)
    search = "\n".join(x for x in _search_text(texts, root, text_body, attachments) if x)
    if len(search) > SEARCH_TEXT_CAP:
        search = search[:SEARCH_TEXT_CAP]

    subject = as_text(last["subject"]) if "subject" in last else None
    date = parse_date(last["date"]) if "date" in last else None

    cache: dict = {
        "size": len(raw),
        "headers": headers,
        "envelope": envelope_from_fields(fields, parsed),
        "part": root,
        "textBody": _sections(text_body),
        "htmlBody": _sections(html_body),
        "attachments": _sections(attachments),
        "hasAttachment": has_attachment(attachments),
        "preview": _preview(texts, text_body),
        "message_ids": (as_message_ids(last["message-id"]) or []) if "message-id" in last else [],
        "in_reply_to": (as_message_ids(last["in-reply-to"]) or []) if "in-reply-to" in last else [],
        "references": (as_message_ids(last["references"]) or []) if "references" in last else [],
        "subject": subject,
        "base_subject": base_subject(subject) if subject else "",
        "sent_at": date[0] if date else None,
        "sent_offset": date[1] if date else None,
        "search_text": search,
        "damaged": False,
    }
    for hname, key in _ADDRESS_KEYS:
        v = last.get(hname)
        if v is None:
            cache[key] = None
            continue
        v = unfold(v).strip()
        items = parsed.get(v)
        if items is None:
            items = parsed[v] = parse_address_list(v)
        cache[key] = jmap_addresses(items)
    report = report_reference(raw, root, cache)  # (one look at the root's type for anything but a report)
    if report is not None:
        cache["report"] = report
    return cache


def _degraded(raw: Raw) -> dict:
    """Minimal, always-valid cache: one text/plain body covering everything after the header."""
    end = len(raw)
    sep = raw.find(b"\r\n\r\n")
    body_start = sep + 4 if sep >= 0 else end
    part = {
        "section": "1",
        "type": "text",
        "subtype": "plain",
        "params": [["charset", "us-ascii"]],
        "id": None,
        "description": None,
        "encoding": "7BIT",
        "size": end - body_start,
        "lines": raw.count(b"\n", body_start),
        "md5": None,
        "disposition": None,
        "language": None,
        "location": None,
        "header_start": 0,
        "header_end": body_start,
        "body_start": body_start,
        "body_end": end,
        "jmap": {
            "partId": "1",
            "type": "text/plain",
            "name": None,
            "charset": "us-ascii",
            "disposition": None,
            "cid": None,
            "language": None,
            "location": None,
            "size": end - body_start,
        },
    }
    return {
        "size": end,
        "headers": [],
        "envelope": [None] * 10,
        "part": part,
        "textBody": ["1"],
        "htmlBody": ["1"],
        "attachments": [],
        "hasAttachment": False,
        "preview": "",
        "message_ids": [],
        "in_reply_to": [],
        "references": [],
        "subject": None,
        "base_subject": "",
        "sent_at": None,
        "sent_offset": None,
        "from": None,
        "to": None,
        "cc": None,
        "bcc": None,
        "reply_to": None,
        "sender": None,
        "search_text": "",
        "damaged": True,
    }
