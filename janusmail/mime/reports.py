"""Which sent message a delivery report answers: read at ingest, from the parts the scan already found.

JMAP EmailSubmission lists the reports received for a submission (RFC 8621 §7: ``mdnBlobIds``, ``dsnBlobIds``).
To link a report to its submission the store needs the Message-ID of the message it is about; this module finds
it, once, while the message is parsed (``parse.parse_message`` stores the answer under the cache key ``report``,
which ingest uses and does not keep). Why here: the MIME layer already holds the part tree with byte offsets,
so only the one small machine-readable part (or the returned header block) is read again; nothing is parsed
again when the report is fetched, and an ordinary message costs one look at its top-level content type.

What counts (RFC 6522 ``multipart/report``):

* an MDN (RFC 8098, ``report-type=disposition-notification``): the ``Original-Message-ID`` field of its
  ``message/disposition-notification`` part (§3.2.5); else the Message-ID of the returned original
  (``message/rfc822`` or ``text/rfc822-headers``, as some agents include it); else the report's own
  ``In-Reply-To``, or the last ``References`` entry (the direct parent; earlier ones are older messages of the
  thread, which this report does not answer);
* a DSN (RFC 3464, ``report-type=delivery-status``): the Message-ID of the returned message or header block.
  (Janus sends no ENVID, so ``Original-Envelope-Id`` would name nothing of ours.)

The RFC 6533 ``global`` variants of those parts are read the same way. Anything malformed yields no reference
(never an error): the message is then stored as any other.
"""

from __future__ import annotations

from typing import Any

from .buffer import Raw
from .content import decode_body
from .headers import as_message_ids
from .params import raw_param
from .structure import scan_headers, text_of

__all__ = ["DSN", "MDN", "report_reference"]

MDN = "mdn"
DSN = "dsn"

_KINDS = {"disposition-notification": MDN, "delivery-status": DSN}
_NOTIFICATION = frozenset({"message/disposition-notification", "message/global-disposition-notification"})
_RETURNED = frozenset({"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"})
_IDENTITY = frozenset({"7BIT", "8BIT", "BINARY"})
#: Octets of a report part read for its fields: real ones are a few hundred (a returned header block a few
#: KiB); anything past this is not what we look for, and a crafted report must not cost more.
PART_LIMIT = 64 * 1024
#: The longest Message-ID (octets) worth looking up, and the longest a submission keeps
#: (``janusmail.store.submissions.MAX_MESSAGE_ID``: an indexed column; RFC 5322 lines stop at 998 octets anyway).
MAX_ID = 998


def _fields(raw: Raw, part: dict) -> list[tuple[bytes, bytes]]:
    """The first header block of a leaf part's body (the report fields, or the returned header section):
    a bounded slice, transfer-decoded when it is encoded."""
    start, end = part["body_start"], part["body_end"]
    if part.get("encoding", "7BIT") in _IDENTITY:
        data = raw[start : min(end, start + PART_LIMIT)]
    elif end - start > PART_LIMIT:
        return []
    else:
        data = decode_body(raw, part)[0][:PART_LIMIT]  # (a slice of a ByteSource is bytes too)
    return scan_headers(bytes(data), 0, len(data), limit=PART_LIMIT)[0]


def _first_id(fields: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for n, v in fields:
        if n.lower() == name:
            ids = as_message_ids(text_of(v))
            return ids[0] if ids else None
    return None


def _returned_id(raw: Raw, part: dict) -> str | None:
    """The Message-ID of a returned message (its envelope, already parsed) or header block."""
    message = part.get("message")
    if message is not None:
        value = message["envelope"][9]
        ids = as_message_ids(value) if value else None
        return ids[0] if ids else None
    return _first_id(_fields(raw, part), b"message-id")


def report_reference(raw: Raw, root: dict, cache: dict[str, Any]) -> dict[str, str] | None:
    """``{"kind": "mdn" | "dsn", "message_id": ...}`` for a delivery report: the id from the first source of
    the module docstring's list that names one. None for anything else, or a report that names no message.
    ``cache`` is the message's parse so far (its ``in_reply_to`` and ``references``)."""
    if root.get("type") != "multipart" or root.get("subtype") != "report":
        return None
    rtype = (raw_param(root.get("params") or [], "report-type") or "").strip().strip('"').lower()
    kind = _KINDS.get(rtype)
    if kind is None:
        return None
    original: str | None = None
    returned: str | None = None
    seen: dict[str, str] = {}
    for child in root.get("children") or ():
        if "children" in child:
            continue
        ctype = (child.get("jmap") or {}).get("type", "").lower()
        if kind == MDN and original is None and ctype in _NOTIFICATION:
            fields = _fields(raw, child)
            original = _first_id(fields, b"original-message-id")
            seen = _disposition(fields)
        elif returned is None and ctype in _RETURNED:
            returned = _returned_id(raw, child)
    candidates = [original, returned]
    if kind == MDN:
        candidates += [*(cache.get("in_reply_to") or [])[:1], *(cache.get("references") or [])[-1:]]
    for c in candidates:
        if c:
            return {"kind": kind, "message_id": c, **seen} if len(c.encode()) <= MAX_ID else None
    return None


def _value_after_semicolon(fields: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for n, v in fields:
        if n.lower() == name:
            _, sep, rest = text_of(v).partition(";")
            return rest.strip() if sep else None
    return None


def _disposition(fields: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """What an MDN says happened, and to whom (RFC 8098 §3.2.4 ``Final-Recipient: rfc822; addr`` and §3.2.6
    ``Disposition: mode; type[/modifier]``): ``{"disposition": "displayed", "recipient": "bob@example.org"}``, for
    EmailSubmission's ``deliveryStatus[rcpt].displayed`` (RFC 8621 §7). Empty when either is missing."""
    recipient = _value_after_semicolon(fields, b"final-recipient")
    disposition = _value_after_semicolon(fields, b"disposition")
    if not recipient or not disposition:
        return {}
    kind = disposition.split("/", 1)[0].strip().lower()
    address = recipient.strip().strip("<>").strip()
    if not kind or not address or len(address) > 320:
        return {}
    return {"disposition": kind, "recipient": address}
