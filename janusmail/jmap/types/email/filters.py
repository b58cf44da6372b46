"""Email/query's FilterCondition and Comparator (RFC 8621 §4.4.1, §4.4.2), validated and built into the store's
query AST (:mod:`janusmail.store.search.ast`).

Why here, SQL-free: the engine compiles each FilterCondition as it walks the filter tree, before anything
runs; validating here gives the client invalidArguments/unsupportedFilter/unsupportedSort up front. What
JMAP's conditions *mean* is decided here too, as AST nodes: text fields are terms ("quoted phrases" stay
whole) that must all occur as words of the index; ``from``/``to``/... terms are substrings of that address
field that are also words of the address index; a ``$recent`` keyword can never be set. The store compiles
the tree (the same compiler IMAP SEARCH uses), runs it, and highlights SearchSnippets from it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from janusmail.jmap.engine import Comparator, FilterOperator, MethodError, invalid_arguments
from janusmail.jmap.engine.types import JmapTypeError, is_id, parse_utc_date
from janusmail.jmap.settings import COLLATIONS
from janusmail.store import keywords as kwmod
from janusmail.store.model import InvalidKeyword
from janusmail.store.search import ast as q
from janusmail.store.search.ast import SortKey

__all__ = [
    "SORT_OPTIONS",
    "SortKey",
    "compile_comparator",
    "compile_condition",
    "normalize_keyword",
    "search_terms",
    "to_condition",
]

#: Sort properties we implement (advertised as the Session's ``emailQuerySortOptions``).
SORT_OPTIONS = (
    "receivedAt",
    "sentAt",
    "size",
    "from",
    "to",
    "subject",
    "hasKeyword",
    "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
)
_KEYWORD_SORTS = frozenset({"hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"})
#: The collations the Session advertises; string sorts use a case-insensitive order for all of them.
_COLLATIONS = frozenset(COLLATIONS)

_TEXT_FIELDS = ("text", "from", "to", "cc", "bcc", "subject", "body")
_KEYWORD_FIELDS = (
    "hasKeyword",
    "notKeyword",
    "allInThreadHaveKeyword",
    "someInThreadHaveKeyword",
    "noneInThreadHaveKeyword",
)
_KNOWN = frozenset(
    {
        "inMailbox",
        "inMailboxOtherThan",
        "before",
        "after",
        "minSize",
        "maxSize",
        "hasAttachment",
        "header",
        *_TEXT_FIELDS,
        *_KEYWORD_FIELDS,
    }
)
# -- text terms -------------------------------------------------------------------------------------------

_TERM = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w", re.UNICODE)


def search_terms(text: str) -> tuple[str, ...]:
    """Split search text into terms: ``"quoted phrases"`` stay whole, other words are separate terms
    (all must match, RFC 8621 §4.4.1). Terms without any letter or digit are dropped (they match
    nothing a word index can find, so they must not constrain the search either)."""
    out = []
    for m in _TERM.finditer(text):
        term = " ".join((m.group(1) if m.group(1) is not None else m.group(2)).split())
        if term and _WORD.search(term):
            out.append(term)
    return tuple(dict.fromkeys(out))


# -- conditions -------------------------------------------------------------------------------------------


def normalize_keyword(value: Any, what: str) -> str | None:
    """A keyword argument as its lowercase key; None for ``$recent`` (valid syntax, never set)."""
    if type(value) is not str:
        raise invalid_arguments(f"'{what}' must be a string")
    if value.lower() in kwmod.RESERVED:
        return None
    try:
        return kwmod.validate(value)
    except InvalidKeyword:
        raise invalid_arguments(f"'{what}' is not a valid keyword") from None


def _date(value: Any, what: str) -> int:
    try:
        dt = parse_utc_date(value, f"'{what}'")
    except JmapTypeError as exc:
        raise invalid_arguments(str(exc)) from None
    # receivedAt is whole seconds: "< 10:00:00.5" is "<= 10:00:00", i.e. "< ceil".
    return math.ceil(dt.timestamp())


def _size(value: Any, what: str) -> int:
    if type(value) is not int or value < 0 or value > 2**53 - 1:
        raise invalid_arguments(f"'{what}' must be an UnsignedInt")
    return value


def _keyword(kind: str, keyword: str | None) -> q.Condition:
    """A keyword condition; ``None`` (``$recent``) is a keyword no email can have."""
    if kind == "hasKeyword":
        return q.Keyword(keyword) if keyword is not None else q.Nothing()
    if kind == "notKeyword":
        return q.Not(q.Keyword(keyword)) if keyword is not None else q.All()
    quantifier = {"someInThreadHaveKeyword": "some", "allInThreadHaveKeyword": "all",
                  "noneInThreadHaveKeyword": "none"}[kind]
    if keyword is None:
        return q.All() if quantifier == "none" else q.Nothing()
    return q.ThreadKeyword(keyword, quantifier)  # type: ignore[arg-type]


def _text(kind: str, terms: tuple[str, ...]) -> q.Condition:
    if not terms:
        return q.All()
    if kind in q.ADDRESS_FIELDS:
        return q.Address(kind, terms, words=True)  # type: ignore[arg-type]
    return q.Text("all" if kind == "text" else kind, terms)  # type: ignore[arg-type]


def compile_condition(condition: dict[str, Any]) -> q.Condition:  # noqa: C901 - one branch per property
    """Validate one FilterCondition (RFC 8621 §4.4.1) into an AST condition (its properties ANDed, in a
    canonical order so equal filters are equal cache keys)."""
    unknown = sorted(set(condition) - _KNOWN)
    if unknown:
        raise MethodError("unsupportedFilter", description=f"unknown filter properties: {', '.join(unknown)}")
    parts: list[q.Condition] = []
    for key, value in condition.items():
        if key == "inMailbox":
            if not is_id(value):
                raise invalid_arguments("'inMailbox' must be an Id")
            parts.append(q.InMailbox(value))
        elif key == "inMailboxOtherThan":
            if type(value) is not list or not all(is_id(v) for v in value):
                raise invalid_arguments("'inMailboxOtherThan' must be an array of Ids")
            parts.append(q.InMailboxOtherThan(tuple(sorted(set(value)))))
        elif key in ("before", "after"):
            parts.append(q.Date("received", "lt" if key == "before" else "ge", _date(value, key)))
        elif key in ("minSize", "maxSize"):
            parts.append(q.Size("ge" if key == "minSize" else "lt", _size(value, key)))
        elif key in _KEYWORD_FIELDS:
            parts.append(_keyword(key, normalize_keyword(value, key)))
        elif key == "hasAttachment":
            if type(value) is not bool:
                raise invalid_arguments("'hasAttachment' must be a boolean")
            parts.append(q.HasAttachment(value))
        elif key in _TEXT_FIELDS:
            if type(value) is not str:
                raise invalid_arguments(f"'{key}' must be a string")
            if "\x00" in value:  # no indexed text holds a NUL (and PostgreSQL text cannot)
                raise invalid_arguments(f"'{key}' must not contain NUL")
            parts.append(_text(key, search_terms(value)))
        elif key == "header":
            if (
                type(value) is not list
                or not 1 <= len(value) <= 2
                or not all(type(v) is str for v in value)
                or not value[0]
                or any(not ("\x21" <= c <= "\x7e") or c == ":" for c in value[0])
            ):
                raise invalid_arguments("'header' must be [name] or [name, text]")
            if len(value) == 2 and "\x00" in value[1]:
                raise invalid_arguments("'header' text must not contain NUL")
            parts.append(q.Header(value[0].lower(), value[1] if len(value) == 2 else None))
    parts = sorted((p for p in parts if not isinstance(p, q.All)), key=repr)
    if not parts:
        return q.All()
    return parts[0] if len(parts) == 1 else q.And(tuple(parts))


def compile_comparator(comparator: Comparator) -> SortKey:
    """Validate one Comparator (RFC 8621 §4.4.2); ``keyword`` is required for the keyword sorts."""
    prop = comparator.property
    if prop not in SORT_OPTIONS:
        raise MethodError("unsupportedSort", description=f"cannot sort on {prop!r}")
    if comparator.collation is not None and comparator.collation not in _COLLATIONS:
        raise MethodError("unsupportedSort", description=f"unsupported collation {comparator.collation!r}")
    extra = dict(comparator.extra)
    keyword = None
    if prop in _KEYWORD_SORTS:
        if "keyword" not in extra:
            raise invalid_arguments(f"sorting on {prop} needs a 'keyword'")
        keyword = normalize_keyword(extra.pop("keyword"), "keyword")
        if keyword is None:
            keyword = "$recent"  # nothing has it: every email sorts equal, which is the right answer
    if extra:
        raise invalid_arguments(f"unknown Comparator properties: {', '.join(sorted(extra))}")
    return SortKey(prop, comparator.is_ascending, keyword)


# -- the whole filter ------------------------------------------------------------------------------------------


def to_condition(flt: Any) -> q.Condition:
    """The AST of a compiled filter tree (the engine's FilterOperators over :func:`compile_condition`'s nodes);
    None is every email. ``NOT`` is "none of the conditions" (RFC 8620 §5.5)."""
    if flt is None:
        return q.All()
    if isinstance(flt, FilterOperator):
        items = tuple(to_condition(c) for c in flt.conditions)
        if flt.operator == "AND":
            return q.And(items)
        if flt.operator == "OR":
            return q.Or(items)
        return q.Not(q.Or(items))
    return flt
