"""UID ranges as SQL: inclusive ``[(lo, hi), ...]`` so that ``1:*`` over 100k messages is one SQL condition,
not 100k parameters. Shared by the memberships service, the IMAP read views and the search compiler."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

UidRanges = list[tuple[int, int]]


def merge_ranges(ranges: Iterable[tuple[int, int]]) -> UidRanges:
    """Inclusive ranges (either end first) sorted, with overlapping and adjacent ones joined."""
    merged: list[list[int]] = []
    for lo, hi in sorted((min(a, b), max(a, b)) for a, b in ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def uid_condition(col: sa.ColumnElement, ranges: UidRanges) -> sa.ColumnElement[bool]:
    """SQL for ``col`` in any of the inclusive ranges (merged first)."""
    merged = merge_ranges(ranges)
    if not merged:
        return sa.false()
    singles = [lo for lo, hi in merged if lo == hi]
    spans = [(lo, hi) for lo, hi in merged if lo != hi]
    parts: list[sa.ColumnElement[bool]] = [col.between(lo, hi) for lo, hi in spans]
    for i in range(0, len(singles), 500):
        parts.append(col.in_(singles[i : i + 500]))
    return sa.or_(*parts) if len(parts) > 1 else parts[0]


def bound_params(ranges: UidRanges) -> tuple[tuple[int, int], dict[str, Any]]:
    """The *shape* of :func:`uid_condition` for these ranges, (spans, single UIDs), and its values as bound
    parameters (``lo0``/``hi0``..., ``s0``...): for statements compiled once per shape (``SqlText.rows``)."""
    params: dict[str, Any] = {}
    nspans = nsingles = 0
    for lo, hi in merge_ranges(ranges):
        if lo == hi:
            params[f"s{nsingles}"] = lo
            nsingles += 1
        else:
            params[f"lo{nspans}"], params[f"hi{nspans}"] = lo, hi
            nspans += 1
    return (nspans, nsingles), params


def bound_condition(col: sa.ColumnElement, shape: tuple[int, int]) -> sa.ColumnElement[bool]:
    """:func:`uid_condition` of the shape :func:`bound_params` gave, with bound parameters for the values."""
    nspans, nsingles = shape
    p = sa.bindparam
    parts: list[Any] = [col.between(p(f"lo{i}"), p(f"hi{i}")) for i in range(nspans)]
    for start in range(0, nsingles, 500):
        parts.append(col.in_([p(f"s{j}") for j in range(start, min(nsingles, start + 500))]))
    if not parts:
        return sa.false()
    return sa.or_(*parts) if len(parts) > 1 else parts[0]
