"""FETCH data: one query for the rows, one for their keywords, then rendering in batches.

The plan (:class:`FetchPlan`) decides what a FETCH needs from the store, which reads it
(:meth:`janusmail.store.message_views.MessageViews.fetch_rows`, asked with :meth:`FetchPlan.wants`):

* every item reads one row per message from ``messages`` joined to ``emails`` (flags bits, internal date, size,
  ids, MODSEQ) — one SQL query for the whole sequence set, UID ranges as ``BETWEEN`` clauses;
* FLAGS adds one query for the keywords of those emails;
* ENVELOPE / BODY / BODYSTRUCTURE come from the MIME cache (``emails.cache``) rendered once and kept in the
  Store's memo tables (:class:`RenderCaches`, ``store.messages.render_cache``): message content is immutable,
  so a rendered ENVELOPE never goes stale, and a repeated ``FETCH 1:* ENVELOPE`` does not read or decode the
  cache column again;
* body sections (``BODY[1.2]``, ``HEADER.FIELDS``...) read the cache column for part offsets in the row query
  and then only the bytes of the sections asked for (:mod:`janusmail.imap.fetchbody`).

Everything here is synchronous and runs on the store's worker threads; the handler writes each rendered
batch to the client as soon as it is ready, so ``FETCH 1:*`` of 100k messages never exists as one string.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import CodeType, MappingProxyType
from typing import Any

import orjson

from janusmail.imap.codec import FetchAttr, FetchBinarySize, FetchBody, FetchItem, serializer
from janusmail.imap.codec.serializer import FetchRenderer, Raw
from janusmail.imap.codec.strings import nstring
from janusmail.imap.codec.structure import body_structure
from janusmail.imap.fetchbody import MISSING, RangeReader, binary_size, body_section, needs_cache
from janusmail.imap.flags import imap_flags
from janusmail.store.memo import Memo, Memos
from janusmail.store.message_views import FetchRows
from janusmail.store.model import BlobLocation

__all__ = [
    "FetchPlan",
    "FetchRows",
    "RenderCaches",
    "RenderContext",
    "Row",
    "fill_and_render",
    "fill_structs",
    "flags_bytes",
    "internal_date",
    "render_batch",
    "uid_ranges",
]

# Row layout: defined by the store (janusmail.store.mailbox_rows), re-exported for the renderers here.
from janusmail.store.mailbox_rows import (  # noqa: E402
    CACHE,
    DELETED,
    EMAIL_ID,
    FLAGS,
    MODSEQ,
    RECEIVED,
    SIZE,
    THREAD_ID,
    UID,
    Row,
)


def uid_ranges(uids: Iterable[int]) -> list[tuple[int, int]]:
    """Ascending UIDs -> inclusive ranges, for store calls."""
    out: list[tuple[int, int]] = []
    for u in uids:
        if out and u == out[-1][1] + 1:
            out[-1] = (out[-1][0], u)
        else:
            out.append((u, u))
    return out


# -- the plan ------------------------------------------------------------------------------------------------

#: Items rendered once per email and kept in the render memo (content is immutable). PREVIEW (RFC 8970) is the
#: preview computed at ingest (``emails.preview``), read per render batch: the message is never parsed again.
_STRUCT_ITEMS = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE", "PREVIEW"})
#: RFC 8970 §3: at most 256 characters of preview.
PREVIEW_MAX = 256


@dataclass
class FetchPlan:
    """What one FETCH command needs, derived once from its items."""

    items: tuple[FetchItem, ...]
    names: tuple[str, ...]
    flags: bool = False
    structs: frozenset[str] = frozenset()
    cache: bool = False  # part offsets needed (body sections)
    blob: bool = False  # message bytes needed
    sets_seen: bool = False
    modseq: bool = False
    saved: bool = False  # SAVEDATE (RFC 8514): the memberships' save dates are read with the rows

    @classmethod
    def build(cls, requested: Sequence[FetchItem], *, uid: bool, modseq: bool = False) -> FetchPlan:
        """``uid``: a UID FETCH (UID is always returned, first); ``modseq``: CHANGEDSINCE was given, which
        implies the MODSEQ item (RFC 7162 §3.1.4.1)."""
        items: list[FetchItem] = []
        seen: set[str] = set()
        if uid:
            items.append(FetchAttr("UID"))
            seen.add("UID")
        extra = [FetchAttr("MODSEQ")] if modseq else []
        for it in [*requested, *extra]:
            key = it.response_key()
            if key in seen:
                continue
            seen.add(key)
            items.append(it)
        plan = cls(tuple(items), tuple(it.response_key() for it in items))
        structs = set()
        for it in items:
            if isinstance(it, FetchAttr):
                if it.name == "FLAGS":
                    plan.flags = True
                elif it.name in _STRUCT_ITEMS:
                    structs.add(it.name)
                elif it.name == "MODSEQ":
                    plan.modseq = True
                elif it.name == "SAVEDATE":
                    plan.saved = True
            else:
                plan.blob = True
                if needs_cache(it):
                    plan.cache = True
                if isinstance(it, FetchBody) and not it.peek:
                    plan.sets_seen = True
        plan.structs = frozenset(structs)
        return plan

    def wants(self) -> dict[str, bool]:
        """What to ask ``store.messages.fetch_rows`` for: keywords for FLAGS (an implicit ``\\Seen`` reports
        FLAGS too), part offsets for body sections, blob locations for any message bytes, save dates for
        SAVEDATE."""
        return {"keywords": self.flags or self.sets_seen, "part_offsets": self.cache, "blob": self.blob,
                "saved": self.saved}


# -- rendered ENVELOPE / BODY / BODYSTRUCTURE --------------------------------------------------------------


def _struct_cost(value: bytes) -> int:
    return len(value) + 120  # key tuple + dict entry overhead, roughly


@dataclass(frozen=True)
class RenderCaches:
    """The memo tables FETCH rendering uses, all owned by one Store (``store.messages.render_cache``) and all
    keyed by immutable data, so none is ever invalidated:

    * ``structs``: rendered ENVELOPE/BODY/BODYSTRUCTURE by (email id, item, utf8), bounded by bytes;
    * ``addrs``: ENVELOPE address lists by value (a mailbox has few distinct senders and recipients, and the
      codec's general renderer costs ~1 us per string);
    * ``flags``: a rendered FLAGS list by (bits, keywords, deleted, recent);
    * ``days``: the quoted date part of INTERNALDATE by day number;
    * ``code``: the light renderer's compiled code by its source (compiling it cost a small FETCH more than
      the rows did: issue 10 item 0)."""

    structs: Memo[tuple[str, str, bool], Raw]
    addrs: Memo[tuple, bytes]
    flags: Memo[tuple, bytes]
    days: Memo[int, bytes]
    code: Memo[str, CodeType]

    @classmethod
    def of(cls, store: Any) -> RenderCaches:
        """The tables of ``store`` (created on first use)."""
        return cls.using(store.messages.render_cache)

    @classmethod
    def using(cls, memos: Memos) -> RenderCaches:
        return cls(
            memos.memo("imap.structs", 64 * 1024 * 1024, _struct_cost),
            memos.memo("imap.addrs", 50_000),
            memos.memo("imap.flags", 8192),
            memos.memo("imap.days", 100_000),
            memos.memo("imap.light_code", 256),
        )


def _render_struct(name: str, cache: dict[str, Any], utf8: bool, addrs: Memo[tuple, bytes] | None) -> Raw:
    if name == "ENVELOPE":
        return Raw(fast_envelope(cache.get("envelope") or [None] * 10, utf8, addrs))
    part = cache.get("part") or {"type": "text", "subtype": "plain"}
    return Raw(body_structure(part, extended=name == "BODYSTRUCTURE", utf8_ok=utf8))


def _addr_list(value: Any, utf8: bool, memo: Memo[tuple, bytes] | None) -> bytes:
    """An ENVELOPE address list, memoised in ``memo`` when given (see :class:`RenderCaches`)."""
    if not value:
        return b"NIL"
    key: tuple | None = None
    hit = None
    if memo is not None:
        try:
            key = (utf8, *(tuple(a) for a in value))
            hit = memo.get(key)
        except TypeError:  # something unhashable in a malformed cache: render without the memo
            key, hit = None, None
    if hit is None:
        out = []
        for a in value:
            name, adl, mailbox, host = (list(a)[:4] + [None] * 4)[:4]
            out.append(b"(%b %b %b %b)" % (nstring(name, utf8), nstring(adl, utf8), nstring(mailbox, utf8),
                                             nstring(host, utf8)))
        hit = b"(" + b"".join(out) + b")"
        if key is not None and memo is not None:
            memo.put(key, hit)
    return hit


def fast_envelope(env: Sequence[Any], utf8: bool = False, addrs: Memo[tuple, bytes] | None = None) -> bytes:
    """Byte-for-byte the codec's :func:`~janusmail.imap.codec.structure.envelope`, with address lists
    memoised in ``addrs`` (the tests check the two agree)."""
    if len(env) != 10:
        env = (list(env)[:10] + [None] * 10)[:10]
    date, subject, from_, sender, reply_to, to, cc, bcc, in_reply_to, message_id = env
    return b"(%b %b %b %b %b %b %b %b %b %b)" % (
        nstring(date, utf8), nstring(subject, utf8), _addr_list(from_, utf8, addrs), _addr_list(sender, utf8, addrs),
        _addr_list(reply_to, utf8, addrs), _addr_list(to, utf8, addrs), _addr_list(cc, utf8, addrs),
        _addr_list(bcc, utf8, addrs),
        nstring(in_reply_to, utf8), nstring(message_id, utf8),
    )


def fill_structs(store: Any, rows: Sequence[Row], plan: FetchPlan, utf8: bool,
                 pinned: dict[tuple[str, str, bool], Raw] | None = None) -> dict[tuple[str, str, bool], Raw]:
    """Every ENVELOPE/BODY/BODYSTRUCTURE these rows need, by (email id, item, utf8), in ``pinned`` (returned).

    The store's memo makes repeated FETCHes cheap, but it is bounded and shared by every session: an entry found
    (or put) there can be evicted before the renderer reads it. So the renderer reads ``pinned``, which this
    call fills for the rows of ONE render batch (bounded memory), from the memo or by decoding each missing
    email's MIME cache once (the rows' cache column when the row query read it).
    Synchronous (it may read the MIME caches of the missing emails): run it through ``store.call``."""
    if pinned is None:
        pinned = {}
    if not plan.structs:
        return pinned
    caches = RenderCaches.of(store)
    sget = caches.structs.get
    names = tuple(plan.structs)
    missing: dict[str, bytes | None] = {}
    no_preview: list[str] = []
    for r in rows:
        eid = r[EMAIL_ID]
        for name in names:
            key = (eid, name, utf8)
            v = sget(key)
            if v is not None:
                pinned[key] = v
            elif name == "PREVIEW":
                no_preview.append(eid)
            else:
                missing[eid] = r[CACHE] if plan.cache else None
    if no_preview:
        for eid, text in store.messages.previews(no_preview).items():
            key, v = (eid, "PREVIEW", utf8), Raw(preview_string(text, utf8))
            pinned[key] = v
            caches.structs.put(key, v)
    if not missing:
        return pinned
    need = [eid for eid, c in missing.items() if c is None]
    if need:
        missing.update(store.messages.mime_caches(need))
    only_envelope = plan.structs - {"PREVIEW"} == {"ENVELOPE"}
    for eid, blob in missing.items():
        env = _envelope_only(blob) if only_envelope and blob else None
        cache = {"envelope": env} if env is not None else (orjson.loads(blob) if blob else {})
        for name in names:
            key = (eid, name, utf8)
            if key not in pinned and name != "PREVIEW":
                v = _render_struct(name, cache, utf8, caches.addrs)
                pinned[key] = v
                caches.structs.put(key, v)
    return pinned


def preview_string(text: str, utf8: bool) -> bytes:
    """The PREVIEW value (RFC 8970 §3): whitespace runs as single spaces, at most :data:`PREVIEW_MAX`
    characters; UTF-8 text goes out quoted to a UTF-8 client and as a literal to others."""
    return nstring(" ".join(text.split())[:PREVIEW_MAX], utf8)


def fill_and_render(ctx: RenderContext, rows: Sequence[Row], seqs: Sequence[int]) -> bytes:
    """One render batch of a FETCH that needs rendered structures: pin them for these rows, then render.
    Synchronous (see :func:`fill_structs`)."""
    ctx.pinned.clear()
    fill_structs(ctx.store, rows, ctx.plan, ctx.utf8, ctx.pinned)
    return render_batch(ctx, rows, seqs)


_ENV_KEY = b'"envelope":'
_PART_KEY = b',"part":'


def _envelope_only(blob: bytes) -> list | None:
    """The top-level ENVELOPE list without decoding the whole cache (5x faster on a cold ``FETCH 1:* ALL``).

    The cache is orjson output of a dict whose keys come in parse order (size, headers, envelope, part, ...):
    keys and string values never contain an unescaped quote, so the first ``"envelope":`` that comes before
    the first ``,"part":`` is the top-level key and the text up to that ``,"part":`` is the list. Anything
    unexpected returns None and the caller decodes everything."""
    i = blob.find(_ENV_KEY)
    if i < 0:
        return None
    j = blob.find(_PART_KEY)
    if j < i:
        return None
    try:
        env = orjson.loads(blob[i + len(_ENV_KEY) : j])
    except orjson.JSONDecodeError:
        return None
    return env if isinstance(env, list) and len(env) == 10 else None


# -- rendering ----------------------------------------------------------------------------------------------------

#: FLAGS of every no-keyword combination (four system bits, \\Deleted, \\Recent): a constant table, built once.
_SYSTEM_ONLY: Mapping[tuple[int, bool, bool], tuple[str, ...]] = MappingProxyType({
    (bits, deleted, recent): tuple(imap_flags(bits, (), deleted, recent))
    for bits in range(16) for deleted in (False, True) for recent in (False, True)
})


def flags_bytes(bits: int, keywords: tuple[str, ...], deleted: bool, recent: bool) -> tuple[str, ...]:
    """The FLAGS value for the renderer (a tuple: the codec caches its rendering by value); the common
    no-keyword combinations come from a constant table."""
    if not keywords:
        hit = _SYSTEM_ONLY.get((bits, deleted, recent))
        if hit is not None:
            return hit
    return tuple(imap_flags(bits, keywords, deleted, recent))


_MONTHS = (b"", b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")


def internal_date(ts: int, days: Memo[int, bytes] | None = None) -> Raw:
    """``"17-Jul-1996 02:44:25 +0000"``: the store keeps internal dates as UTC epoch seconds."""
    return Raw(_idate_bytes(ts, days))


@dataclass
class RenderContext:
    """Per-command inputs of :func:`render_batch` besides the rows."""

    plan: FetchPlan
    utf8: bool
    keywords: dict[str, tuple[str, ...]]
    locations: dict[str, BlobLocation]
    is_recent: Callable[[int], bool] | None = None
    #: UIDs whose flags this FETCH changed (\Seen): their lines also carry FLAGS (and MODSEQ if ``condstore``).
    changed: set[int] = field(default_factory=set)
    condstore: bool = False
    store: Any = None
    #: the memo tables to use; default: the store's (a private set when there is no store, e.g. in tests)
    caches: RenderCaches | None = None
    #: rendered structures of the batch being rendered (:func:`fill_structs`); read before the memo
    pinned: dict[tuple[str, str, bool], Raw] = field(default_factory=dict)
    #: SAVEDATE: save date (epoch seconds) by UID, read with the rows when the plan asks for it
    saved: dict[int, int] = field(default_factory=dict)
    _renderers: dict[Any, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.caches is None:
            self.caches = RenderCaches.of(self.store) if self.store is not None else RenderCaches.using(Memos())

    def renderer(self, changed: bool) -> tuple[FetchRenderer, list[Callable[..., object]]]:
        hit = self._renderers.get(changed)
        if hit is None:
            items = list(self.plan.items)
            if changed:
                names = {it.response_key() for it in items}
                if "FLAGS" not in names:
                    items.append(FetchAttr("FLAGS"))
                if self.condstore and "MODSEQ" not in names:
                    items.append(FetchAttr("MODSEQ"))
            names_t = [it.response_key() for it in items]
            hit = (FetchRenderer(names_t, self.utf8), [self._getter(it) for it in items])
            self._renderers[changed] = hit
        return hit

    @property
    def _caches(self) -> RenderCaches:
        assert self.caches is not None  # set by __post_init__
        return self.caches

    def _getter(self, item: FetchItem) -> Callable[..., object]:
        """A function (row, reader) -> value for one item."""
        if isinstance(item, FetchAttr):
            name = item.name
            if name == "UID":
                return lambda r, rd: r[UID]
            if name == "FLAGS":
                kws = self.keywords
                recent = self.is_recent
                if recent is None:
                    return lambda r, rd: flags_bytes(r[FLAGS], kws.get(r[EMAIL_ID], ()), bool(r[DELETED]), False)
                return lambda r, rd: flags_bytes(r[FLAGS], kws.get(r[EMAIL_ID], ()), bool(r[DELETED]),
                                                 recent(r[UID]))
            if name == "INTERNALDATE":
                days = self._caches.days
                return lambda r, rd: internal_date(r[RECEIVED], days)
            if name == "RFC822.SIZE":
                return lambda r, rd: r[SIZE]
            if name == "MODSEQ":
                return lambda r, rd: r[MODSEQ]
            if name == "SAVEDATE":
                saved, days = self.saved, self._caches.days
                return lambda r, rd: internal_date(saved[r[UID]], days) if r[UID] in saved else None
            if name == "EMAILID":
                return lambda r, rd: Raw(b"(" + r[EMAIL_ID].encode("ascii") + b")")
            if name == "THREADID":
                return lambda r, rd: Raw(b"(" + r[THREAD_ID].encode("ascii") + b")") if r[THREAD_ID] else None
            if name in _STRUCT_ITEMS:
                utf8 = self.utf8
                pget, mget = self.pinned.get, self._caches.structs.get
                return lambda r, rd: pget((r[EMAIL_ID], name, utf8)) or mget((r[EMAIL_ID], name, utf8)) or Raw(b"NIL")
            raise ValueError(f"unsupported FETCH item {name}")
        if isinstance(item, FetchBinarySize):
            def get_size(r: Row, rd: Any) -> object:
                v = binary_size(item, _cache_of(r, rd) if item.part else None, rd.reader)
                return 0 if v is MISSING else v  # the item is a number; a missing part has no octets

            return get_size

        def get_body(r: Row, rd: Any) -> object:
            v = body_section(item, _cache_of(r, rd) if needs_cache(item) else None, rd.reader)
            if v is MISSING:
                return None
            return serializer.Binary(v) if item.binary else bytes(v)  # type: ignore[arg-type]

        return get_body


class _RowData:
    """Lazily decoded per-row state shared by the items of one message (cache dict, blob reader)."""

    __slots__ = ("row", "cache", "reader")

    def __init__(self, row: Row, reader: RangeReader | None) -> None:
        self.row = row
        self.cache: dict[str, Any] | None = None
        self.reader = reader


def _cache_of(r: Row, rd: _RowData) -> dict[str, Any]:
    if rd.cache is None:
        rd.cache = orjson.loads(r[CACHE]) if r[CACHE] else {}
    return rd.cache


def render_batch(ctx: RenderContext, rows: Sequence[Row], seqs: Sequence[int]) -> bytes:
    """``* n FETCH (...)`` lines for ``rows`` (with their sequence numbers), joined."""
    if not ctx.plan.blob and not ctx.changed:
        return _light_renderer(ctx)(rows, seqs)
    out: list[bytes] = []
    changed = ctx.changed
    plain, plain_get = ctx.renderer(False)
    need_rd = ctx.plan.blob
    store = ctx.store
    for r, seq in zip(rows, seqs, strict=True):
        if changed and r[UID] in changed:
            render, getters = ctx.renderer(True)
        else:
            render, getters = plain, plain_get
        rd = None
        if need_rd:
            loc = ctx.locations[r[EMAIL_ID]]
            rd = _RowData(r, RangeReader(_reader(store, loc), loc.size))
        out.append(render(seq, [g(r, rd) for g in getters]))
    return b"".join(out)


# -- the fast path: metadata-only FETCH ---------------------------------------------------------------------

def _flags_out(memo: Memo[tuple, bytes]) -> Callable[[int, tuple[str, ...], bool, bool], bytes]:
    """A rendered-FLAGS function memoised in ``memo`` (few distinct combinations per mailbox)."""
    get, put = memo.get, memo.put

    def flags_out(bits: int, keywords: tuple[str, ...], deleted: bool, recent: bool) -> bytes:
        key = (bits, keywords, deleted, recent)
        hit = get(key)
        if hit is None:
            hit = serializer.flag_list(tuple(imap_flags(bits, keywords, bool(deleted), recent)))
            put(key, hit)
        return hit

    return flags_out


#: The rendered FLAGS of a message with system flags only, by its flag bits (every combination of the four).
_SYSTEM_ONLY: dict[int, bytes] = {
    bits: serializer.flag_list(tuple(imap_flags(bits, (), False))) for bits in range(16)}


def _paren_id(value: str | None) -> bytes:
    return b"(" + value.encode("ascii") + b")" if value else b"NIL"


_MINSEC = tuple(b"%02d:%02d" % divmod(i, 60) for i in range(3600))


def _idate_bytes(ts: int, days: Memo[int, bytes] | None = None) -> bytes:
    """Quoted INTERNALDATE; the date part is memoised per day in ``days`` (this runs once per row of
    ``FETCH 1:* ALL``)."""
    day_no, rem = divmod(ts, 86400)
    day = days.get(day_no) if days is not None else None
    if day is None:
        t = time.gmtime(ts)
        day = b'"%02d-%b-%04d ' % (t.tm_mday, _MONTHS[t.tm_mon], t.tm_year)
        if days is not None:
            days.put(day_no, day)
    hour, rem = divmod(rem, 3600)
    return b'%b%02d:%b +0000"' % (day, hour, _MINSEC[rem])


def _idate_fn(days: Memo[int, bytes]) -> Callable[[int], bytes]:
    """:func:`_idate_bytes` bound to ``days``, inlined (the light renderer calls it once per row)."""
    get, put, minsec, months, gmtime = days.get, days.put, _MINSEC, _MONTHS, time.gmtime

    def idate(ts: int) -> bytes:
        day_no, rem = divmod(ts, 86400)
        day = get(day_no)
        if day is None:
            t = gmtime(ts)
            day = b'"%02d-%b-%04d ' % (t.tm_mday, months[t.tm_mon], t.tm_year)
            put(day_no, day)
        hour, rem = divmod(rem, 3600)
        return b'%b%02d:%b +0000"' % (day, hour, minsec[rem])

    return idate


def _light_renderer(ctx: RenderContext) -> Callable[[Sequence[Row], Sequence[int]], bytes]:
    """A straight-line renderer for metadata items, generated per command (like the codec's FetchRenderer,
    but reading the row tuples directly, which halves the per-message cost of ``FETCH 1:* (UID FLAGS)``).
    The generated source contains only fixed snippets chosen by item name, never client input."""
    cached = ctx._renderers.get("light")  # type: ignore[call-overload]
    if cached is not None:
        return cached  # type: ignore[return-value]
    caches = ctx._caches
    env: dict[str, Any] = {
        "FL": _flags_out(caches.flags), "FLS": _SYSTEM_ONLY, "KW": ctx.keywords.get, "REC": ctx.is_recent,
        "ID": _idate_fn(caches.days), "PID": _paren_id, "SD": ctx.saved.get, "SG": ctx.pinned.get,
        "MG": caches.structs.get, "NIL": b"NIL", "EMPTY": (),
    }
    pieces: list[bytes] = []
    exprs: list[str] = []
    for i, name in enumerate(ctx.plan.names):
        label = name.encode("ascii").replace(b"%", b"%%")
        if name in ("UID", "RFC822.SIZE"):
            pieces.append(label + b" %d")
            exprs.append(f"r[{UID}]" if name == "UID" else f"r[{SIZE}]")
        elif name == "MODSEQ":
            pieces.append(b"MODSEQ (%d)")
            exprs.append(f"r[{MODSEQ}]")
        else:
            pieces.append(label + b" %b")
            if name == "FLAGS":
                # most rows have system flags only: their list comes from a table by the flag bits, and only
                # rows with keywords, \\Deleted or \\Recent go through the memoised general case
                recent = f"REC(r[{UID}])" if ctx.is_recent is not None else "False"
                plain = f"(k := KW(r[{EMAIL_ID}])) is None and not r[{DELETED}] and r[{FLAGS}] in FLS" + (
                    f" and not {recent}" if ctx.is_recent is not None else "")
                exprs.append(f"(FLS[r[{FLAGS}]] if {plain} else FL(r[{FLAGS}], k or EMPTY, r[{DELETED}], {recent}))")
            elif name == "INTERNALDATE":
                exprs.append(f"ID(r[{RECEIVED}])")
            elif name == "SAVEDATE":  # NIL for a message whose save date is unknown
                exprs.append(f"(ID(SD(r[{UID}])) if SD(r[{UID}]) is not None else NIL)")
            elif name == "EMAILID":
                exprs.append(f"PID(r[{EMAIL_ID}])")
            elif name == "THREADID":
                exprs.append(f"PID(r[{THREAD_ID}])")
            elif name in _STRUCT_ITEMS:
                env[f"K{i}"] = name
                exprs.append(f"(SG((r[{EMAIL_ID}], K{i}, UTF8)) or MG((r[{EMAIL_ID}], K{i}, UTF8)) or NIL)")
            else:
                raise ValueError(f"not a metadata item: {name}")
    env["UTF8"] = ctx.utf8
    env["FMT"] = b"* %d FETCH (" + b" ".join(pieces) + b")\r\n"
    src = (
        "def render(rows, seqs):\n"
        "    out = []\n"
        "    app = out.append\n"
        "    for r, seq in zip(rows, seqs):\n"
        f"        app(FMT % (seq, {', '.join(exprs)}))\n"
        "    return b''.join(out)\n"
    )
    code = caches.code.get(src)
    if code is None:
        code = compile(src, "<fetch light renderer>", "exec")
        caches.code.put(src, code)
    exec(code, env)  # noqa: S102
    fn = env["render"]
    ctx._renderers["light"] = fn  # type: ignore[index]
    return fn


def _reader(store: Any, loc: BlobLocation) -> Callable[[int, int], bytes]:
    return lambda start, end: store.blobs.read_location(loc, start, end)
