"""Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5): the door's part.

The filter and sort are built into the store's query AST (:mod:`janusmail.jmap.types.email.filters`); the store runs
the query (``store.search.email_query`` / ``query_changes``: SQL windows, the full-list cache, the change log)
in one call and one read snapshot. Here only the JMAP shapes remain: the store's refusals become method
errors, added items become :class:`AddedItem`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from janusmail.jmap.context import run_store
from janusmail.jmap.engine import AddedItem, MethodError
from janusmail.store.search.ast import EmailQuery, SortKey
from janusmail.store.search.service import ChangesOutcome, QueryOutcome, SearchError

from .filters import to_condition

__all__ = ["QuerySpec", "run_query", "run_query_changes"]


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """A compiled filter (engine FilterOperators over AST conditions), sort and collapseThreads."""

    filter: Any
    sort: tuple[SortKey, ...]
    collapse: bool

    def query(self) -> EmailQuery:
        return EmailQuery(to_condition(self.filter), tuple(self.sort), self.collapse)


def _method_error(exc: SearchError) -> MethodError:
    return MethodError(exc.code, description=exc.description) if exc.description else MethodError(exc.code)


async def run_query(ctx: Any, account_id: str, spec: QuerySpec, position: int, limit: int, anchor: str | None,
                    anchor_offset: int, calculate_total: bool) -> QueryOutcome:
    """One window of the results with the Email state they belong to (one store call)."""
    try:
        return await run_store(ctx, ctx.store.search.email_query, account_id, spec.query(), position, limit,
                               anchor, anchor_offset, calculate_total)
    except SearchError as exc:
        raise _method_error(exc) from None


@dataclass(slots=True)
class ChangesResult:
    old_state: int
    new_state: int
    removed: list[str]
    added: list[AddedItem]
    total: int


async def run_query_changes(ctx: Any, account_id: str, spec: QuerySpec, since: int, up_to_id: str | None,
                            max_changes: int | None) -> ChangesResult:
    """The removed/added of the results since ``since`` (one store call)."""
    try:
        out: ChangesOutcome = await run_store(ctx, ctx.store.search.query_changes, account_id, spec.query(), since,
                                              up_to_id, max_changes)
    except SearchError as exc:
        raise _method_error(exc) from None
    return ChangesResult(out.old_state, out.new_state, out.removed, [AddedItem(i, n) for i, n in out.added],
                         out.total)
