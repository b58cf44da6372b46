"""Bringing a cached Email/query result list up to a newer state from the change log instead of listing every
result again.

Why: any write makes a new Email state, and a deep page (or an anchor, or /queryChanges) at the new state used to
list the whole query again: about 0.5 s for a 100k Inbox after each new message or keyword change. A write
touches few emails, so the list of the previous state is patched: every email changed since then (widened to
whole threads when the query is thread-dependent, as /queryChanges does) is taken out, and those of them that
match now are put back where their sort values place them, read with the same statement restricted to them.

The order must be exactly the database's, so a list is patchable only when every sort value is an integer
(receivedAt, sentAt, size and the keyword sorts; strings compare by collation, which Python does not know) and
the tie-break is too (SQLite's rowid). On PostgreSQL the tie-break is the id under the database's collation: a
patch that would need it (an inserted email whose sort values equal a neighbour's) gives up, and the caller
lists the query again.
"""

from __future__ import annotations

import itertools
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import compress

from .ast import SortKey

__all__ = ["INTEGER_SORTS", "Ordered", "ordered", "patch", "patchable"]

#: sort properties whose values are integers in both databases (``EmailSql.sort_expr``)
INTEGER_SORTS = frozenset({"receivedAt", "sentAt", "size", "hasKeyword", "someInThreadHaveKeyword",
                           "allInThreadHaveKeyword"})


@dataclass(frozen=True, slots=True)
class Ordered:
    """A query's results in order. ``cols``: per sort key (then the tie-break when it is an integer), each
    result's value, negated for a descending key so that ascending tuple order is the result order; None when
    the list cannot be patched. Never changed once built: a patch builds new lists."""

    ids: list[str]
    cols: tuple[array, ...] | None

    def key(self, i: int) -> tuple[int, ...]:
        assert self.cols is not None
        return tuple(c[i] for c in self.cols)


def _normal(row: Sequence, signs: Sequence[int]) -> tuple[int, ...] | None:
    values = row[1 : 1 + len(signs)]
    if not all(isinstance(v, int) for v in values):  # as array("q") takes them (bool included)
        return None
    return tuple(v * s for v, s in zip(values, signs, strict=True))


def _signs(ascending: Sequence[bool], int_tiebreak: bool) -> list[int]:
    """The sign of each column: -1 for a descending key; the tie-break follows the first key's direction."""
    signs = [1 if a else -1 for a in ascending]
    if int_tiebreak:
        signs.append(signs[0])
    return signs


def patchable(sort: Sequence[SortKey]) -> bool:
    """Whether every value of this (effective) sort is an integer, so Python orders it as the database does."""
    return all(k.prop in INTEGER_SORTS for k in sort)


def ordered(rows: Sequence[Sequence], sort: Sequence[SortKey], int_tiebreak: bool) -> Ordered:
    """The list of ``rows`` (``(id, s0 .. sk, tb)`` in result order, as ``EmailSql.keyed_list`` gives them for
    the effective ``sort``); ``int_tiebreak``: whether ``tb`` is an integer in the order."""
    ids = [r[0] for r in rows]
    if not patchable(sort):
        return Ordered(ids, None)
    signs = _signs([k.ascending for k in sort], int_tiebreak)
    try:  # column by column: a 100k list costs a few ms, not a tuple per row (~150 ms)
        cols = tuple(array("q", [r[j] for r in rows] if sign > 0 else [-r[j] for r in rows])
                     for j, sign in enumerate(signs, start=1))
    except (TypeError, OverflowError):  # a value that is not a 64-bit integer (NULL, text): not patchable
        return Ordered(ids, None)
    return Ordered(ids, cols)


def _slices(old: Ordered, cuts: Sequence[tuple[int, int]]) -> Ordered:
    """``old`` keeping only the index ranges ``cuts`` (ascending, disjoint)."""
    assert old.cols is not None
    ids: list[str] = []
    cols = tuple(array("q") for _ in old.cols)
    for a, b in cuts:
        ids += old.ids[a:b]
        for out, col in zip(cols, old.cols, strict=True):
            out += col[a:b]
    return Ordered(ids, cols)


def patch(old: Ordered, changed: Collection[str], rows: Sequence[Sequence], sort: Sequence[SortKey],
          int_tiebreak: bool) -> Ordered | None:
    """``old`` with every id of ``changed`` taken out and ``rows`` (``keyed_list`` restricted to ``changed``: the
    results among them now) put in their places. None when the patch cannot be exact (a value that is not an
    integer, or a tie only the database's collation could break): list the query again."""
    if old.cols is None:
        return None
    signs = _signs([k.ascending for k in sort], int_tiebreak)
    fresh: list[tuple[tuple[int, ...], str]] = []
    for r in rows:
        k = _normal(r, signs)
        if k is None:
            return None
        fresh.append((k, r[0]))
    fresh.sort()
    if not int_tiebreak and any(a[0] == b[0] for a, b in itertools.pairwise(fresh)):
        return None
    gone = set(changed)
    n = len(old.ids)
    out = list(compress(range(n), map(gone.__contains__, old.ids)))
    cuts, start = [], 0
    for i in out:
        if i > start:
            cuts.append((start, i))
        start = i + 1
    if start < n:
        cuts.append((start, n))
    kept = _slices(old, cuts) if out else old
    if not fresh:
        return kept
    m = len(kept.ids)
    places = []
    for k, _ in fresh:
        at = bisect_left(range(m), k, key=kept.key)
        if not int_tiebreak and at != bisect_right(range(m), k, key=kept.key):
            return None
        places.append(at)
    assert kept.cols is not None
    ids: list[str] = []
    cols = tuple(array("q") for _ in kept.cols)
    start = 0
    for at, (k, id_) in zip(places, fresh, strict=True):
        ids += kept.ids[start:at]
        ids.append(id_)
        for j, (dst, src) in enumerate(zip(cols, kept.cols, strict=True)):
            dst += src[start:at]
            dst.append(k[j])
        start = at
    ids += kept.ids[start:]
    for dst, src in zip(cols, kept.cols, strict=True):
        dst += src[start:]
    return Ordered(ids, cols)
