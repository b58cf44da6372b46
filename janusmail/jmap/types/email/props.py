"""Email objects (RFC 8621 §4.1) built from the store's row, the ingest MIME cache and byte-range reads.

Why a builder separate from the method glue: Email/get (stored mail) and Email/parse (uploaded blobs) produce
the same object from the same inputs — a metadata dict, the parse cache and a way to read raw byte ranges —
and only differ in where those come from. Everything here is synchronous and pure apart from calls to the
``reader`` callable, so it runs on the store's worker threads and is tested without a store.

What costs what: metadata, keywords, mailboxIds, preview and hasAttachment come from the row; the shortcut
header properties, ``headers``/``header:*`` and the body structure come from the cache (no blob access);
``bodyValues`` and body part ``headers`` read only the byte ranges of the parts concerned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from janusmail.jmap.blobs import part_blob_id
from janusmail.jmap.engine.errors import invalid_arguments
from janusmail.jmap.engine.types import format_utc_date
from janusmail.mime.content import part_text, truncate_value
from janusmail.mime.headers import FORMS, form_allowed, format_rfc3339, header_property
from janusmail.mime.structure import scan_headers, text_of

__all__ = [
    "ALL_PROPERTIES",
    "BODY_PART_PROPERTIES",
    "DEFAULT_BODY_PROPERTIES",
    "DEFAULT_PROPERTIES",
    "PARSE_DEFAULT_PROPERTIES",
    "BodyOptions",
    "EmailBuilder",
    "HeaderProp",
    "Reader",
    "check_properties",
    "keywords_of",
    "memory_reader",
    "needs_cache",
    "needs_raw",
    "parse_header_prop",
    "read_body_options",
]

#: Reads bytes [start, end) of the raw message.
Reader = Callable[[int, int], bytes]

METADATA = ("id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt")
SHORTCUTS = (
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
)
BODY = ("bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments", "hasAttachment", "preview")
ALL_PROPERTIES = frozenset((*METADATA, *SHORTCUTS, "headers", *BODY))
DEFAULT_PROPERTIES = frozenset(
    (*METADATA, *SHORTCUTS, "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments")
)
#: Email/parse default (§4.9): no id, mailboxIds, keywords, receivedAt, blobId, threadId or size.
PARSE_DEFAULT_PROPERTIES = frozenset(
    (*SHORTCUTS, "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments")
)
BODY_PART_PROPERTIES = frozenset(
    (
        "partId",
        "blobId",
        "size",
        "headers",
        "name",
        "type",
        "charset",
        "disposition",
        "cid",
        "language",
        "location",
        "subParts",
    )
)
DEFAULT_BODY_PROPERTIES = (
    "partId",
    "blobId",
    "size",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
)
#: Properties that need the parse cache (everything but the row's own columns).
_ROW_ONLY = frozenset({*METADATA, "preview", "hasAttachment"})

_SHORTCUT_ADDRESS = {
    "sender": "sender",
    "from": "from",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "replyTo": "reply_to",
}
_SHORTCUT_MSGID = {"messageId": "message-id", "inReplyTo": "in-reply-to", "references": "references"}


@dataclass(frozen=True, slots=True)
class HeaderProp:
    """A parsed ``header:{name}[:{form}][:all]`` property name."""

    name: str
    form: str
    all: bool


def parse_header_prop(prop: str) -> HeaderProp | None:
    """The parts of a ``header:`` property, or None if ``prop`` is not a valid one (syntax or a form that is
    not allowed on that header field, RFC 8621 §4.1.3)."""
    if not prop.startswith("header:"):
        return None
    bits = prop[7:].split(":")
    name = bits[0]
    if not name or any(not ("\x21" <= c <= "\x7e") for c in name):
        return None
    rest = bits[1:]
    all_ = bool(rest) and rest[-1] == "all"
    if all_:
        rest = rest[:-1]
    if len(rest) > 1:
        return None
    form = rest[0] if rest else "asRaw"
    if form not in FORMS or not form_allowed(name, form):
        return None
    return HeaderProp(name, form, all_)


@dataclass(frozen=True, slots=True)
class BodyOptions:
    """The body-related arguments of Email/get and Email/parse (RFC 8621 §4.2)."""

    body_properties: tuple[str, ...] = DEFAULT_BODY_PROPERTIES
    fetch_text: bool = False
    fetch_html: bool = False
    fetch_all: bool = False
    max_bytes: int = 0


def read_body_options(extra: dict[str, Any]) -> BodyOptions:
    """Validate ``bodyProperties``, ``fetch*BodyValues`` and ``maxBodyValueBytes`` (invalidArguments)."""
    props = extra.get("bodyProperties")
    if props is None:
        body_properties = DEFAULT_BODY_PROPERTIES
    else:
        if type(props) is not list or not all(type(p) is str for p in props):
            raise invalid_arguments("'bodyProperties' must be an array of strings")
        bad = [p for p in props if p not in BODY_PART_PROPERTIES and parse_header_prop(p) is None]
        if bad:
            raise invalid_arguments(f"unknown or invalid body properties: {', '.join(sorted(set(bad)))}")
        body_properties = tuple(dict.fromkeys(props))
    flags = {}
    for name in ("fetchTextBodyValues", "fetchHTMLBodyValues", "fetchAllBodyValues"):
        value = extra.get(name)
        if value is not None and type(value) is not bool:
            raise invalid_arguments(f"'{name}' must be a boolean")
        flags[name] = bool(value)
    max_bytes = extra.get("maxBodyValueBytes")
    if max_bytes is None:
        max_bytes = 0
    elif type(max_bytes) is not int or max_bytes < 0 or max_bytes > 2**53 - 1:
        raise invalid_arguments("'maxBodyValueBytes' must be an UnsignedInt")
    return BodyOptions(
        body_properties,
        flags["fetchTextBodyValues"],
        flags["fetchHTMLBodyValues"],
        flags["fetchAllBodyValues"],
        max_bytes,
    )


def needs_cache(properties: Iterable[str]) -> bool:
    return any(p not in _ROW_ONLY for p in properties)


def needs_raw(properties: Iterable[str], options: BodyOptions) -> bool:
    """Whether building these properties may read message bytes (bodyValues, body part headers)."""
    props = set(properties)
    if "bodyValues" in props and (options.fetch_text or options.fetch_html or options.fetch_all):
        return True
    part_lists = props & {"bodyStructure", "textBody", "htmlBody", "attachments"}
    return bool(part_lists) and any(p == "headers" or p.startswith("header:") for p in options.body_properties)


def keywords_of(flags: int, others: Iterable[str]) -> dict[str, bool]:
    from janusmail.store.keywords import bits_to_keywords

    out = {k: True for k in bits_to_keywords(flags)}
    for k in others:
        out[k] = True
    return out


def _parts_by_partid(root: dict) -> dict[str, dict]:
    """Every leaf part of the JMAP tree (not descending into message/rfc822), keyed by partId."""
    out: dict[str, dict] = {}
    stack = [root]
    while stack:
        p = stack.pop()
        children = p.get("children")
        if children:
            stack.extend(reversed(children))
        pid = (p.get("jmap") or {}).get("partId")
        if pid is not None:
            out[pid] = p
    return out


@dataclass
class EmailBuilder:
    """Builds Email objects for one request: the property set and body options are fixed up front."""

    properties: frozenset[str]
    options: BodyOptions = field(default_factory=BodyOptions)

    def __post_init__(self) -> None:
        self.header_props = {p: parse_header_prop(p) for p in self.properties if p.startswith("header:")}
        self.body_header_props = {
            p: parse_header_prop(p) for p in self.options.body_properties if p.startswith("header:")
        }
        self.need_part_headers = "headers" in self.options.body_properties or bool(self.body_header_props)

    # -- the whole object ------------------------------------------------------------------------

    def build(self, meta: dict[str, Any], cache: dict | None, reader: Reader | None) -> dict[str, Any]:
        """One Email. ``meta`` holds what the row gives (id, blobId, threadId, size, receivedAt (epoch),
        flags/keywords, mailboxIds, preview, hasAttachment); absent keys come out as null."""
        props = self.properties
        out: dict[str, Any] = {}
        for p in ("id", "blobId", "threadId", "mailboxIds", "keywords", "size"):
            if p in props:
                out[p] = meta.get(p)
        if "receivedAt" in props:
            ra = meta.get("receivedAt")
            out["receivedAt"] = format_utc_date(ra) if ra is not None else None
        if "preview" in props:
            out["preview"] = meta["preview"] if "preview" in meta else (cache or {}).get("preview", "")
        if "hasAttachment" in props:
            out["hasAttachment"] = (
                bool(meta["hasAttachment"]) if "hasAttachment" in meta else bool((cache or {}).get("hasAttachment"))
            )
        if cache is None:
            return out
        headers = cache.get("headers") or []
        for p, key in _SHORTCUT_ADDRESS.items():
            if p in props:
                out[p] = cache.get(key)
        for p, hname in _SHORTCUT_MSGID.items():
            if p in props:
                out[p] = header_property(headers, hname, "asMessageIds")
        if "subject" in props:
            out["subject"] = cache.get("subject")
        if "sentAt" in props:
            sent = cache.get("sent_at")
            try:
                out["sentAt"] = format_rfc3339(sent, cache.get("sent_offset") or 0) if sent is not None else None
            except (ValueError, OverflowError, OSError):
                out["sentAt"] = None
        if "headers" in props:
            out["headers"] = [{"name": n, "value": v} for n, v in headers]
        for p, hp in self.header_props.items():
            if hp is not None:
                out[p] = header_property(headers, hp.name, hp.form, hp.all)
        root = cache.get("part")
        if root is None:
            return out
        blob_id = meta.get("blobId")
        part_cache: dict[int, dict] = {}
        if "bodyStructure" in props:
            out["bodyStructure"] = self.body_part(root, blob_id, reader, part_cache, tree=True)
        by_id: dict[str, dict] | None = None
        for p, key in (("textBody", "textBody"), ("htmlBody", "htmlBody"), ("attachments", "attachments")):
            if p in props:
                if by_id is None:
                    by_id = _parts_by_partid(root)
                out[p] = [
                    self.body_part(by_id[s], blob_id, reader, part_cache)
                    for s in cache.get(key) or ()
                    if s in by_id
                ]
        if "bodyValues" in props:
            if by_id is None:
                by_id = _parts_by_partid(root)
            out["bodyValues"] = self.body_values(cache, by_id, reader)
        return out

    # -- body parts ------------------------------------------------------------------------------

    def body_part(
        self, part: dict, blob_id: str | None, reader: Reader | None, memo: dict[int, dict], tree: bool = False
    ) -> dict[str, Any]:
        key = id(part) * 2 + tree
        hit = memo.get(key)
        if hit is not None:
            return hit
        j = part.get("jmap") or {}
        out: dict[str, Any] = {}
        raw_headers: list[list[str]] | None = None
        if self.need_part_headers:
            raw_headers = self._part_headers(part, reader)
        for prop in self.options.body_properties:
            if prop == "partId":
                out["partId"] = j.get("partId")
            elif prop == "blobId":
                pid = j.get("partId")
                out["blobId"] = part_blob_id(blob_id, part["section"]) if (pid is not None and blob_id) else None
            elif prop == "size":
                out["size"] = j.get("size", 0)
            elif prop == "headers":
                out["headers"] = [{"name": n, "value": v} for n, v in raw_headers or ()]
            elif prop == "subParts":
                children = part.get("children")
                if children is not None:
                    out["subParts"] = (
                        [self.body_part(c, blob_id, reader, memo, tree=True) for c in children] if tree else []
                    )
                else:
                    out["subParts"] = None
            elif prop.startswith("header:"):
                hp = self.body_header_props.get(prop)
                if hp is not None:
                    out[prop] = header_property(raw_headers or [], hp.name, hp.form, hp.all)
            else:
                out[prop] = j.get(prop)
        if tree and "subParts" not in out and part.get("children") is not None:
            # The default bodyProperties omit subParts, which would make bodyStructure a lone root; the tree
            # is what a client asking for bodyStructure wants, so multipart parts always carry it.
            out["subParts"] = [self.body_part(c, blob_id, reader, memo, tree=True) for c in part["children"]]
        memo[key] = out
        return out

    @staticmethod
    def _part_headers(part: dict, reader: Reader | None) -> list[list[str]]:
        start, end = part.get("header_start", 0), part.get("header_end", 0)
        if reader is None or end <= start:
            return []
        buf = reader(start, end)
        fields, _ = scan_headers(buf, 0, len(buf), top=start == 0)
        return [[n.decode("ascii", "replace"), text_of(v)] for n, v in fields]

    # -- body values -----------------------------------------------------------------------------

    def body_values(self, cache: dict, by_id: dict[str, dict], reader: Reader | None) -> dict[str, Any]:
        opts = self.options
        wanted: list[str] = []
        if opts.fetch_all:
            wanted = list(by_id)
        else:
            if opts.fetch_text:
                wanted.extend(cache.get("textBody") or ())
            if opts.fetch_html:
                wanted.extend(cache.get("htmlBody") or ())
        out: dict[str, Any] = {}
        for pid in dict.fromkeys(wanted):
            part = by_id.get(pid)
            if part is None or not (part.get("jmap") or {}).get("type", "").startswith("text/"):
                continue
            out[pid] = self.body_value(part, reader)
        return out

    def body_value(self, part: dict, reader: Reader | None) -> dict[str, Any]:
        start, end = part.get("body_start", 0), part.get("body_end", 0)
        data = reader(start, end) if (reader is not None and end > start) else b""
        view = {**part, "body_start": 0, "body_end": len(data)}
        text, problem = part_text(data, view)
        is_html = (part.get("jmap") or {}).get("type") == "text/html"
        value, truncated = truncate_value(text, self.options.max_bytes, html=is_html)
        return {"value": value, "isEncodingProblem": problem, "isTruncated": truncated}


def memory_reader(raw: bytes) -> Reader:
    """A Reader over bytes held in memory (Email/parse, tests)."""
    return lambda start, end: raw[start:end]


def check_properties(names: Iterable[str], allowed: frozenset[str]) -> None:
    """invalidArguments for names that are neither in ``allowed`` nor a valid ``header:`` property."""
    bad = sorted({n for n in names if n not in allowed and parse_header_prop(n) is None})
    if bad:
        raise invalid_arguments(f"unknown or invalid properties: {', '.join(bad)}")
