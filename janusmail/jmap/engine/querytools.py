"""Helpers for adapters that can produce a complete ordered id list (in memory, or small tables).

Why separate: a SQL-backed type windows in the database, but small types (Identity, Mailbox) and tests
just sort a list; the RFC 8620 §5.5/§5.6 arithmetic (negative positions, anchors, clamping, the
removed/added rules) then lives here once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from janusmail.store.search.service import SearchError, diff_lists
from janusmail.store.search.service import window as store_window

from .adapter import AddedItem, FilterOperator
from .errors import MethodError

__all__ = ["diff_query", "matches", "window"]


def window(
    ids: Sequence[str], position: int, limit: int | None, anchor: str | None = None, anchor_offset: int = 0
) -> tuple[list[str], int]:
    """Slice a full result list as /query defines: returns ``(window_ids, resolved_position)``.

    The arithmetic is the store's (one definition for every /query, Email's included: janusmail.store.search);
    here an unknown anchor becomes the method error ``anchorNotFound``.
    """
    try:
        return store_window(ids, position, limit, anchor, anchor_offset)
    except SearchError as exc:
        raise MethodError(exc.code) from None


def matches(filter: Any, test: Callable[[Any], bool]) -> bool:
    """Evaluate a compiled filter tree: ``test`` judges one compiled condition; None matches everything."""
    if filter is None:
        return True
    if isinstance(filter, FilterOperator):
        results = (matches(c, test) for c in filter.conditions)
        if filter.operator == "AND":
            return all(results)
        if filter.operator == "OR":
            return any(results)
        return not any(results)  # NOT: none of the conditions may match
    return test(filter)


def diff_query(
    old_ids: Sequence[str],
    new_ids: Sequence[str],
    *,
    changed: Iterable[str] = (),
    up_to_id: str | None = None,
    mutable: bool = True,
) -> tuple[list[str], list[AddedItem]]:
    """The ``removed`` and ``added`` of /queryChanges (§5.6) between two complete result lists.

    ``changed`` are ids whose records changed between the states. When the filter or sort uses mutable
    properties (``mutable``), each changed id still in the results is reported removed and re-added, since
    its position may have moved. With only immutable properties and an ``up_to_id`` present in the new
    results, additions past it are omitted (the client does not cache that far).
    """
    removed, added = diff_lists(old_ids, new_ids, changed=tuple(changed), up_to_id=up_to_id, mutable=mutable)
    return removed, [AddedItem(id_, i) for id_, i in added]
