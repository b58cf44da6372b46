"""IMAP sequence sets as ranges, never as expanded lists.

A client may say ``1:*`` against a 100k-message mailbox, or ``UID FETCH 1:4294967295``; both must cost
the same as ``1``. So a :class:`SequenceSet` keeps the ranges exactly as the client wrote them (with ``*``
unresolved and ``$`` as a marker), and :meth:`SequenceSet.resolve` turns them into a :class:`NumberSet`:
sorted, merged, clipped ranges that the store can hand straight to ``BETWEEN`` clauses.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator

__all__ = ["MAX_NUMBER", "NumberSet", "SequenceSet"]

#: Largest value an IMAP ``nz-number`` can take (32-bit unsigned).
MAX_NUMBER = 4294967295

_RANGE_RE = re.compile(r"([1-9][0-9]{0,9}|\*)(?::([1-9][0-9]{0,9}|\*))?\Z")

Bound = int | None  # None stands for "*"


class NumberSet:
    """A resolved set of positive integers stored as sorted, disjoint, non-adjacent inclusive ranges.

    Used for resolved sequence sets, saved SEARCH results (``$``) and UID lists in responses. Membership
    is a binary search and iteration is lazy, so a set covering 100k numbers stays a single tuple.
    """

    __slots__ = ("_ranges", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted((lo, hi) if lo <= hi else (hi, lo) for lo, hi in ranges):
            if merged and lo <= merged[-1][1] + 1:
                if hi > merged[-1][1]:
                    merged[-1] = (merged[-1][0], hi)
            else:
                merged.append((lo, hi))
        self._ranges: tuple[tuple[int, int], ...] = tuple(merged)
        self._starts: list[int] | None = None

    @classmethod
    def from_numbers(cls, numbers: Iterable[int]) -> NumberSet:
        """Build from arbitrary integers (any order, duplicates allowed)."""
        out: list[tuple[int, int]] = []
        for n in sorted(set(numbers)):
            if out and n == out[-1][1] + 1:
                out[-1] = (out[-1][0], n)
            else:
                out.append((n, n))
        ns = cls.__new__(cls)
        ns._ranges = tuple(out)
        ns._starts = None
        return ns

    @property
    def ranges(self) -> tuple[tuple[int, int], ...]:
        """The inclusive ``(low, high)`` ranges, ascending."""
        return self._ranges

    def __contains__(self, n: object) -> bool:
        if not isinstance(n, int):
            return False
        if self._starts is None:
            self._starts = [lo for lo, _ in self._ranges]
        i = bisect_right(self._starts, n) - 1
        return i >= 0 and n <= self._ranges[i][1]

    def __iter__(self) -> Iterator[int]:
        for lo, hi in self._ranges:
            yield from range(lo, hi + 1)

    def __len__(self) -> int:
        return sum(hi - lo + 1 for lo, hi in self._ranges)

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NumberSet) and self._ranges == other._ranges

    def __hash__(self) -> int:
        return hash(self._ranges)

    def __repr__(self) -> str:
        return f"NumberSet({self.to_string() or '<empty>'})"

    @property
    def min(self) -> int | None:
        return self._ranges[0][0] if self._ranges else None

    @property
    def max(self) -> int | None:
        return self._ranges[-1][1] if self._ranges else None

    def to_string(self) -> str:
        """Wire form, e.g. ``"1:3,5"``; the empty set gives ``""`` (callers decide how to say "none")."""
        return ",".join(str(lo) if lo == hi else f"{lo}:{hi}" for lo, hi in self._ranges)


class SequenceSet:
    """A sequence set exactly as the client sent it: ``1:*``, ``2,4:7``, ``*`` or ``$``.

    The same type serves message sequence numbers and UIDs; the command name says which. Resolution needs
    the session's view of the mailbox (largest number in use, saved search result), so it is deferred.
    """

    __slots__ = ("_items", "_saved")

    def __init__(self, items: Iterable[tuple[Bound, Bound]] = (), *, saved: bool = False) -> None:
        self._items: tuple[tuple[Bound, Bound], ...] = tuple(items)
        self._saved = saved
        if saved and self._items:
            raise ValueError("'$' cannot be combined with other ranges")
        if not saved and not self._items:
            raise ValueError("empty sequence set")

    @classmethod
    def parse(cls, text: str) -> SequenceSet:
        """Parse the wire form; raises ValueError on anything that is not a valid ``sequence-set``."""
        if text == "$":
            return cls(saved=True)
        items: list[tuple[Bound, Bound]] = []
        for part in text.split(","):
            m = _RANGE_RE.match(part)
            if m is None:
                raise ValueError(f"invalid sequence set {text!r}")
            a = _bound(m.group(1))
            b = _bound(m.group(2)) if m.group(2) is not None else a
            items.append((a, b))
        return cls(items)

    @classmethod
    def of(cls, numbers: Iterable[int]) -> SequenceSet:
        """A set of explicit numbers, compressed into ranges."""
        ranges = NumberSet.from_numbers(numbers).ranges
        if not ranges:
            raise ValueError("empty sequence set")
        return cls(ranges)

    @property
    def is_saved(self) -> bool:
        """True for ``$`` (RFC 5182 SEARCHRES): the session substitutes its saved search result."""
        return self._saved

    @property
    def items(self) -> tuple[tuple[Bound, Bound], ...]:
        """Ranges as written; ``None`` is ``*``. Empty for ``$``."""
        return self._items

    @property
    def uses_star(self) -> bool:
        return any(a is None or b is None for a, b in self._items)

    def max_number(self) -> int | None:
        """Largest explicit number in the set (ignoring ``*``), so a session can reject sequence
        numbers beyond the mailbox size with BAD."""
        nums = [n for item in self._items for n in item if n is not None]
        return max(nums) if nums else None

    def resolve(self, largest: int, saved: NumberSet | None = None) -> NumberSet:
        """Resolve against the largest number in use (``*``), clip to ``1..largest``.

        Follows RFC 9051 §9: ``n:*`` with ``n`` above ``largest`` still covers ``largest`` because a range
        is unordered. ``$`` resolves to ``saved`` (empty when nothing was saved), also clipped.
        """
        if self._saved:
            if not saved or largest < 1:
                return NumberSet()
            return NumberSet((lo, min(hi, largest)) for lo, hi in saved.ranges if lo <= largest)
        out: list[tuple[int, int]] = []
        for a, b in self._items:
            x = largest if a is None else a
            y = largest if b is None else b
            lo, hi = (x, y) if x <= y else (y, x)
            if hi > largest:
                hi = largest
            if lo < 1:
                lo = 1
            if lo <= hi:
                out.append((lo, hi))
        return NumberSet(out)

    def contains(self, n: int, largest: int, saved: NumberSet | None = None) -> bool:
        """Membership without building anything large (resolution is O(number of ranges))."""
        return n in self.resolve(largest, saved)

    def to_string(self) -> str:
        if self._saved:
            return "$"
        return ",".join(_fmt(a) if a == b else f"{_fmt(a)}:{_fmt(b)}" for a, b in self._items)

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"SequenceSet({self.to_string()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequenceSet) and self._saved == other._saved and self._items == other._items

    def __hash__(self) -> int:
        return hash((self._saved, self._items))


def _bound(token: str) -> Bound:
    if token == "*":
        return None
    n = int(token)
    if n > MAX_NUMBER:
        raise ValueError(f"number {token} out of range")
    return n


def _fmt(b: Bound) -> str:
    return "*" if b is None else str(b)
