"""UID ranges as SQL: inclusive ``[(lo, hi), ...]`` so that ``1:*`` over 100k messages is one SQL condition,
not 100k parameters. Shared by the memberships service, the IMAP read views and the search compiler."""

from __future__ import annotations

from collections.abc import Iterable

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
