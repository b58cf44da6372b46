"""Email/query's FilterCondition and Comparator (RFC 8621 §4.4.1, §4.4.2), validated into plain values.

Why a separate, SQL-free step: the engine compiles each FilterCondition as it walks the filter tree, before
anything runs; validating here gives the client invalidArguments/unsupportedFilter/unsupportedSort up front,
and the resulting small frozen objects serve three consumers — the SQL builder (email_sql), SearchSnippet
(the text terms to highlight) and /queryChanges (which properties are mutable, and a canonical cache key).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from janusmail.jmap.engine import Comparator, FilterOperator, MethodError, invalid_arguments
from janusmail.jmap.engine.types import JmapTypeError, is_id, parse_utc_date
from janusmail.jmap.settings import COLLATIONS
from janusmail.store import keywords as kwmod
from janusmail.store.model import InvalidKeyword

__all__ = [
    "SORT_OPTIONS",
    "Condition",
    "Leaf",
    "SortKey",
    "compile_comparator",
    "compile_condition",
    "filter_key",
    "filter_leaves",
    "normalize_keyword",
    "plain_mailbox",
    "search_terms",
    "text_terms",
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
#: Leaves whose truth can change without the email being recreated (so /queryChanges must re-place them).
MUTABLE_KINDS = frozenset({"inMailbox", "inMailboxOtherThan", *_KEYWORD_FIELDS})
#: Leaves whose truth for one email depends on other emails of its thread.
THREAD_KINDS = frozenset({"allInThreadHaveKeyword", "someInThreadHaveKeyword", "noneInThreadHaveKeyword"})


@dataclass(frozen=True, slots=True)
class Leaf:
    """One property of a FilterCondition. ``value`` is already converted: epoch seconds for dates, a
    lowercase keyword (None = a reserved keyword nothing can carry), search terms for text fields."""

    kind: str
    value: Any


@dataclass(frozen=True, slots=True)
class Condition:
    """A FilterCondition: its leaves are ANDed; no leaves matches every email."""

    leaves: tuple[Leaf, ...]


@dataclass(frozen=True, slots=True)
class SortKey:
    prop: str
    ascending: bool
    keyword: str | None = None


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


def compile_condition(condition: dict[str, Any]) -> Condition:
    """Validate one FilterCondition (RFC 8621 §4.4.1) into a Condition."""
    unknown = sorted(set(condition) - _KNOWN)
    if unknown:
        raise MethodError("unsupportedFilter", description=f"unknown filter properties: {', '.join(unknown)}")
    leaves: list[Leaf] = []
    for key, value in condition.items():
        if key == "inMailbox":
            if not is_id(value):
                raise invalid_arguments("'inMailbox' must be an Id")
            leaves.append(Leaf(key, value))
        elif key == "inMailboxOtherThan":
            if type(value) is not list or not all(is_id(v) for v in value):
                raise invalid_arguments("'inMailboxOtherThan' must be an array of Ids")
            leaves.append(Leaf(key, tuple(sorted(set(value)))))
        elif key in ("before", "after"):
            leaves.append(Leaf(key, _date(value, key)))
        elif key in ("minSize", "maxSize"):
            leaves.append(Leaf(key, _size(value, key)))
        elif key in _KEYWORD_FIELDS:
            leaves.append(Leaf(key, normalize_keyword(value, key)))
        elif key == "hasAttachment":
            if type(value) is not bool:
                raise invalid_arguments("'hasAttachment' must be a boolean")
            leaves.append(Leaf(key, value))
        elif key in _TEXT_FIELDS:
            if type(value) is not str:
                raise invalid_arguments(f"'{key}' must be a string")
            leaves.append(Leaf(key, search_terms(value)))
        elif key == "header":
            if (
                type(value) is not list
                or not 1 <= len(value) <= 2
                or not all(type(v) is str for v in value)
                or not value[0]
                or any(not ("\x21" <= c <= "\x7e") or c == ":" for c in value[0])
            ):
                raise invalid_arguments("'header' must be [name] or [name, text]")
            leaves.append(Leaf(key, (value[0].lower(), value[1] if len(value) == 2 else None)))
    return Condition(tuple(sorted(leaves, key=lambda leaf: (leaf.kind, repr(leaf.value)))))


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


# -- facts about a compiled filter tree ---------------------------------------------------------------------


def filter_leaves(flt: Any) -> list[Leaf]:
    """Every leaf of a compiled filter tree."""
    if flt is None:
        return []
    if isinstance(flt, FilterOperator):
        return [leaf for c in flt.conditions for leaf in filter_leaves(c)]
    return list(flt.leaves)


def filter_key(flt: Any) -> Any:
    """A hashable, canonical form of a compiled filter (cache keys)."""
    if flt is None:
        return None
    if isinstance(flt, FilterOperator):
        return (flt.operator, tuple(filter_key(c) for c in flt.conditions))
    return tuple((leaf.kind, leaf.value) for leaf in flt.leaves)


def plain_mailbox(flt: Any) -> str | None:
    """The mailbox id when the filter is exactly ``{"inMailbox": id}`` (its totals are Mailbox counts)."""
    if isinstance(flt, Condition) and len(flt.leaves) == 1 and flt.leaves[0].kind == "inMailbox":
        return flt.leaves[0].value
    return None


def text_terms(flt: Any, negated: bool = False) -> dict[str, list[str]]:
    """The positive search terms of a filter per field (text/subject/body), for SearchSnippet highlights:
    terms under NOT describe what must be absent, so they are never highlighted."""
    out: dict[str, list[str]] = {"text": [], "subject": [], "body": []}
    if flt is None:
        return out
    if isinstance(flt, FilterOperator):
        inner = negated != (flt.operator == "NOT")
        for c in flt.conditions:
            for k, v in text_terms(c, inner).items():
                out[k].extend(v)
        return out
    if not negated:
        for leaf in flt.leaves:
            if leaf.kind in out:
                out[leaf.kind].extend(leaf.value)
    return out
