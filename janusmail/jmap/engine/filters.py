"""Parse the ``filter`` and ``sort`` arguments of /query and /queryChanges (RFC 8620 §5.5).

Why generic: the FilterOperator tree and Comparator objects are the same for every type; only the
leaves (FilterConditions, sortable properties, collations) are type-specific, so the adapter compiles
each leaf and the tree shape is checked here once.
"""

from __future__ import annotations

from typing import Any

from .adapter import Call, Comparator, FilterOperator, TypeAdapter
from .errors import invalid_arguments

__all__ = ["compile_filter", "compile_sort"]

_OPERATORS = frozenset({"AND", "OR", "NOT"})
MAX_FILTER_DEPTH = 64


async def compile_filter(adapter: TypeAdapter, call: Call, value: Any, depth: int = 0) -> Any:
    """None, a FilterOperator of compiled children, or the adapter's compiled FilterCondition."""
    if value is None and depth == 0:
        return None
    if type(value) is not dict:
        raise invalid_arguments("a filter must be a FilterOperator or FilterCondition object")
    if depth > MAX_FILTER_DEPTH:
        raise invalid_arguments("filter is nested too deeply")
    if "operator" in value:
        # A FilterCondition must not have an "operator" member (§5.5), so this is a FilterOperator.
        operator, conditions = value["operator"], value.get("conditions")
        if operator not in _OPERATORS:
            raise invalid_arguments("filter operator must be AND, OR or NOT")
        if type(conditions) is not list:
            raise invalid_arguments("a FilterOperator needs a 'conditions' array")
        if set(value) - {"operator", "conditions"}:
            raise invalid_arguments("a FilterOperator has only 'operator' and 'conditions'")
        children = [await compile_filter(adapter, call, c, depth + 1) for c in conditions]
        return FilterOperator(operator, tuple(children))
    return await adapter.compile_condition(call, value)


async def compile_sort(adapter: TypeAdapter, call: Call, value: Any) -> list[Any]:
    """Compiled comparators in order; null or absent means no particular order (still stable)."""
    if value is None:
        return []
    if type(value) is not list:
        raise invalid_arguments("'sort' must be an array of Comparator objects")
    out = []
    for item in value:
        if type(item) is not dict or type(item.get("property")) is not str:
            raise invalid_arguments("a Comparator needs a string 'property'")
        ascending = item.get("isAscending", True)
        if type(ascending) is not bool:
            raise invalid_arguments("Comparator 'isAscending' must be a boolean")
        collation = item.get("collation")
        if collation is not None and type(collation) is not str:
            raise invalid_arguments("Comparator 'collation' must be a string")
        extra = {k: v for k, v in item.items() if k not in ("property", "isAscending", "collation")}
        out.append(
            await adapter.compile_comparator(call, Comparator(item["property"], ascending, collation, extra))
        )
    return out
