"""SEARCH, SORT and THREAD argument grammar (RFC 9051 §6.4.4, RFC 4731, RFC 5182, RFC 5256, RFC 5267,
RFC 7162, RFC 8474, RFC 9394, RFC 5032, RFC 8514)."""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from .args import SearchArgs, SortArgs, SortCriterion, ThreadArgs
from .cursor import Cursor, SyntaxFault
from .searchkeys import (
    AllKey,
    And,
    BodyKey,
    DateKey,
    EmailIdKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SequenceKey,
    SizeKey,
    TextKey,
    ThreadIdKey,
    WithinKey,
)

__all__ = ["parse_search", "parse_sort", "parse_thread", "partial_range", "search_keys"]

SUPPORTED_CHARSETS = "BADCHARSET (UTF-8 US-ASCII)"
_OBJECTID_RE = re.compile(rb"[A-Za-z0-9_-]+")
#: UPDATE and CONTEXT are RFC 5267's (CONTEXT=SEARCH): UPDATE asks for live results, CONTEXT is a hint.
_RETURN_OPTS = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE", "UPDATE", "CONTEXT"})
_SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO"})

_FLAG_KEYS: dict[str, SearchKey] = {
    "ANSWERED": FlagKey("\\Answered"),
    "DELETED": FlagKey("\\Deleted"),
    "DRAFT": FlagKey("\\Draft"),
    "FLAGGED": FlagKey("\\Flagged"),
    "SEEN": FlagKey("\\Seen"),
    "RECENT": FlagKey("\\Recent"),
    "UNANSWERED": FlagKey("\\Answered", False),
    "UNDELETED": FlagKey("\\Deleted", False),
    "UNDRAFT": FlagKey("\\Draft", False),
    "UNFLAGGED": FlagKey("\\Flagged", False),
    "UNSEEN": FlagKey("\\Seen", False),
    "OLD": FlagKey("\\Recent", False),
    "NEW": And((FlagKey("\\Recent"), FlagKey("\\Seen", False))),
    "ALL": AllKey(),
    "SAVEDATESUPPORTED": AllKey(),  # RFC 8514: every mailbox here keeps save dates
}
_HEADER_KEYS = {"BCC": "bcc", "CC": "cc", "FROM": "from", "SUBJECT": "subject", "TO": "to"}
_DATE_KEYS = {
    "BEFORE": ("internal", "before"),
    "ON": ("internal", "on"),
    "SINCE": ("internal", "since"),
    "SENTBEFORE": ("sent", "before"),
    "SENTON": ("sent", "on"),
    "SENTSINCE": ("sent", "since"),
    "SAVEDBEFORE": ("saved", "before"),  # RFC 8514
    "SAVEDON": ("saved", "on"),
    "SAVEDSINCE": ("saved", "since"),
}


def _keyword_flag(cur: Cursor) -> str:
    flag = cur.flag()
    if flag.startswith("\\"):
        raise cur.fail("KEYWORD needs a keyword, not a system flag")
    return flag


def _objectid(cur: Cursor) -> str:
    raw = cur.token(_OBJECTID_RE, "object id")
    if len(raw) > 255:
        raise cur.fail("Object id too long")
    return raw.decode("ascii")


def _modseq(cur: Cursor) -> SearchKey:
    entry = None
    if cur.peek() == 0x22:
        name = cur.string()
        cur.sp()
        kind = cur.keyword("entry type")
        if kind not in ("PRIV", "SHARED", "ALL"):
            raise cur.fail("MODSEQ entry type must be priv, shared or all")
        cur.sp()
        entry = (name.lower(), kind.lower())
    return ModSeqKey(cur.number64("mod-sequence"), entry)


def _with_arg(parse: Callable[[Cursor], SearchKey]) -> Callable[[Cursor], SearchKey]:
    def run(cur: Cursor) -> SearchKey:
        cur.sp()
        return parse(cur)

    return run


def _not(cur: Cursor) -> SearchKey:
    cur.enter()
    key = search_key(cur)
    cur.leave()
    return Not(key)


def _or(cur: Cursor) -> SearchKey:
    cur.enter()
    left = search_key(cur)
    cur.sp()
    right = search_key(cur)
    cur.leave()
    return Or(left, right)


def _header(cur: Cursor) -> SearchKey:
    name = cur.astring("header field name")
    cur.sp()
    return HeaderKey(name.lower(), cur.search_string())


_ARG_KEYS: dict[str, Callable[[Cursor], SearchKey]] = {
    "KEYWORD": _with_arg(lambda c: FlagKey(_keyword_flag(c))),
    "UNKEYWORD": _with_arg(lambda c: FlagKey(_keyword_flag(c), False)),
    "BODY": _with_arg(lambda c: BodyKey(c.search_string())),
    "TEXT": _with_arg(lambda c: TextKey(c.search_string())),
    "HEADER": _with_arg(_header),
    "LARGER": _with_arg(lambda c: SizeKey("larger", c.number64("size"))),
    "SMALLER": _with_arg(lambda c: SizeKey("smaller", c.number64("size"))),
    "UID": _with_arg(lambda c: SequenceKey(c.sequence_set(), uid=True)),
    "NOT": _with_arg(_not),
    "OR": _with_arg(_or),
    "MODSEQ": _with_arg(_modseq),
    "EMAILID": _with_arg(lambda c: EmailIdKey(_objectid(c))),
    "THREADID": _with_arg(lambda c: ThreadIdKey(_objectid(c))),
    "OLDER": _with_arg(lambda c: WithinKey("older", c.nz_number("interval"))),
    "YOUNGER": _with_arg(lambda c: WithinKey("younger", c.nz_number("interval"))),
}
for _name, _field in _HEADER_KEYS.items():
    _ARG_KEYS[_name] = _with_arg(lambda c, f=_field: HeaderKey(f, c.search_string()))
for _name, (_fld, _op) in _DATE_KEYS.items():
    _ARG_KEYS[_name] = _with_arg(lambda c, f=_fld, o=_op: DateKey(f, o, c.date()))  # type: ignore[arg-type]


def search_key(cur: Cursor) -> SearchKey:
    c = cur.peek()
    if c == 0x28:  # "("
        keys = cur.paren_list(lambda: search_key(cur))
        return keys[0] if len(keys) == 1 else And(tuple(keys))
    if 0x30 <= c <= 0x39 or c == 0x2A or c == 0x24:  # digit, "*", "$"
        return SequenceKey(cur.sequence_set())
    name = cur.keyword("search key")
    simple = _FLAG_KEYS.get(name)
    if simple is not None:
        return simple
    parse = _ARG_KEYS.get(name)
    if parse is None:
        raise cur.fail(f"Unknown search key {name}")
    return parse(cur)


def search_keys(cur: Cursor) -> SearchKey:
    """``1*(SP search-key)`` up to the end of the command; several keys become one :class:`And`."""
    keys = [search_key(cur)]
    while not cur.at_end():
        cur.sp()
        keys.append(search_key(cur))
    return keys[0] if len(keys) == 1 else And(tuple(keys))


def _set_charset(cur: Cursor) -> str:
    charset = cur.astring("charset")
    try:
        info = codecs.lookup(charset)
    except LookupError:
        info = None
    # bytes-to-bytes codecs (hex, base64, rot13...) are not charsets
    if info is None or not getattr(info, "_is_text_encoding", True):
        raise SyntaxFault(f"Unsupported charset {charset}", code=SUPPORTED_CHARSETS, status="NO")
    cur.charset = charset
    return charset.upper()


def partial_range(cur: Cursor) -> tuple[int, int]:
    """RFC 9394 ``partial-range``: ``first:last`` or ``-first:-last``."""
    neg = cur.maybe(b"-")
    a = cur.nz_number("partial range")
    cur.expect(b":")
    if neg:
        cur.expect(b"-")
    b = cur.nz_number("partial range")
    if neg:
        a, b = -a, -b
    return (a, b) if abs(a) <= abs(b) else (b, a)


def _return_opts(cur: Cursor) -> tuple[tuple[str, ...], tuple[int, int] | None]:
    """``RETURN (...)`` after the caller consumed RETURN and SP."""
    partial: list[tuple[int, int]] = []

    def option() -> str:
        opt = cur.keyword("return option")
        if opt == "PARTIAL":
            cur.sp()
            partial.append(partial_range(cur))
        elif opt not in _RETURN_OPTS:
            raise cur.fail(f"Unknown return option {opt}")
        return opt

    opts = cur.paren_list(option, allow_empty=True)
    paging = [o for o in opts if o in ("PARTIAL", "ALL")]
    if len(paging) > 1:  # RFC 9394 §3.1: at most one PARTIAL or ALL in a command
        raise cur.fail("At most one PARTIAL or ALL return option")
    # UPDATE with PARTIAL is allowed (RFC 9394 §3.1, RFC 5267 §4.4): the window is answered once, and the updates
    # then cover every match, not the window.
    return (tuple(opts) or ("ALL",)), (partial[-1] if partial else None)


def parse_search(cur: Cursor, uid: bool) -> SearchArgs:
    cur.sp()
    return_opts = None
    partial = None
    if cur.try_keyword("RETURN"):
        cur.sp()
        return_opts, partial = _return_opts(cur)
        cur.sp()
    charset = None
    if cur.try_keyword("CHARSET"):
        cur.sp()
        charset = _set_charset(cur)
        cur.sp()
    return SearchArgs(search_keys(cur), charset, return_opts, partial)


def _sort_criterion(cur: Cursor) -> SortCriterion:
    key = cur.keyword("sort key")
    reverse = key == "REVERSE"
    if reverse:
        cur.sp()
        key = cur.keyword("sort key")
    if key not in _SORT_KEYS:
        raise cur.fail(f"Unknown sort key {key}")
    return SortCriterion(key, reverse)


def _sort_criteria(cur: Cursor) -> tuple[SortCriterion, ...]:
    return tuple(cur.paren_list(lambda: _sort_criterion(cur)))


def parse_sort(cur: Cursor, uid: bool) -> SortArgs:
    cur.sp()
    return_opts = None
    partial = None
    if cur.try_keyword("RETURN"):
        cur.sp()
        return_opts, partial = _return_opts(cur)
        cur.sp()
    criteria = _sort_criteria(cur)
    cur.sp()
    charset = _set_charset(cur)
    cur.sp()
    return SortArgs(criteria, charset, search_keys(cur), return_opts, partial)


def parse_thread(cur: Cursor, uid: bool) -> ThreadArgs:
    cur.sp()
    algorithm = cur.keyword("threading algorithm")
    cur.sp()
    charset = _set_charset(cur)
    cur.sp()
    return ThreadArgs(algorithm, charset, search_keys(cur))
