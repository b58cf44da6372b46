"""JMAP Quota (RFC 9425, ``urn:ietf:params:jmap:quota``): Quota/get, /changes, /query and /queryChanges over the
store's one quota model (janusmail/store/quotas.py), the same limits and usage IMAP GETQUOTA reports.

The objects: one per limited resource of the account (``hardLimit`` is mandatory, so a resource without a limit
has no Quota), with the fixed ids ``storage`` (resourceType ``octets``) and ``messages`` (``count``), scope
``account``, data type ``Mail``. Usage counts every mailbox membership (a message in two mailboxes counts
twice), as IMAP QUOTA does; a client sees exactly what the server enforces. The state is the modseq of the
newest Quota change: a limit set, changed or removed, or usage moving (the store logs those).

Refusals: the store raises ``OverQuota`` when a write would grow usage past a limit; Email/set create,
Email/import and Email/copy answer the SetError ``overQuota`` for that record (janusmail/jmap/types/email).
/query is in memory (an account has at most two Quotas); /queryChanges reports every Quota changed since the
old state as removed and re-added where it now is, which RFC 8620 §5.6 allows (over-reporting is correct).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from janusmail.jmap import collation
from janusmail.jmap.context import parse_state, run_store
from janusmail.jmap.engine import (
    Call,
    ChangeEntry,
    ChangeLog,
    Engine,
    MethodError,
    TypeAdapter,
    register_standard,
)
from janusmail.jmap.engine.adapter import (
    AddedItem,
    Comparator,
    FilterOperator,
    QueryChangesResult,
    QueryResult,
)
from janusmail.jmap.engine.errors import invalid_arguments
from janusmail.jmap.engine.querytools import matches, window
from janusmail.jmap.session_resource import QUOTA
from janusmail.store.quotas import KIND, STORAGE, QuotaUsage

__all__ = ["QUOTA", "QuotaAdapter", "records", "register"]

_OPS = {"c": "created", "u": "updated", "d": "destroyed"}
_NAMES = {"storage": "Mail storage", "messages": "Mail messages"}
_FILTERS = frozenset({"name", "scope", "resourceType", "type"})
_SORTS = frozenset({"name", "used"})


def records(usage: QuotaUsage) -> list[dict[str, Any]]:
    """The account's Quota objects (RFC 9425 §4.1), in id order."""
    out = []
    for resource in usage.limited():
        out.append({
            "id": resource,
            "resourceType": "octets" if resource == STORAGE else "count",
            "used": usage.used(resource),
            "hardLimit": usage.limit(resource),
            "scope": "account",
            "name": _NAMES[resource],
            "types": ["Mail"],
            "warnLimit": None,
            "softLimit": None,
            "description": None,
        })
    return out


def _change_log(store: Any, account_id: str, after: int, skip: int, limit: int) -> ChangeLog:
    current = store.changes.kind_state(account_id, KIND)  # before the rows: never newer than them
    rows = store.changes.since(account_id, KIND, after, skip + limit)[skip:]
    return ChangeLog([ChangeEntry(r.modseq, r.object_id, _OPS.get(r.op, "updated")) for r in rows], current)


def _test(record: dict[str, Any], condition: tuple[str, Any]) -> bool:
    key, value = condition
    if key == "name":
        return collation.contains(record["name"], value)
    if key == "scope":
        return record["scope"] in value
    if key == "resourceType":
        return record["resourceType"] == value
    return value in record["types"]  # "type"


def _ordered(found: list[dict[str, Any]], filter: Any, sort: list[Any]) -> list[str]:
    """Ids of the matching records, sorted (stable: id order breaks ties)."""
    hits = sorted((r for r in found if matches(filter, lambda c, r=r: _test(r, c))), key=lambda r: r["id"])
    for prop, ascending, key in reversed(sort):
        hits.sort(key=lambda r, p=prop, k=key: k(r[p]) if k else r[p], reverse=not ascending)
    return [r["id"] for r in hits]


class QuotaAdapter(TypeAdapter):
    properties = frozenset({"id", "resourceType", "used", "hardLimit", "scope", "name", "types", "warnLimit",
                            "softLimit", "description"})
    server_set_properties = properties
    query_reports_state = True

    async def state(self, call: Call) -> int:
        return await run_store(call.ctx, call.ctx.store.changes.kind_state, call.account_id, KIND)

    async def _read(self, call: Call) -> tuple[list[dict[str, Any]], int]:
        usage, state = await run_store(call.ctx, call.ctx.store.quotas.with_state, call.account_id)
        return records(usage), state

    async def get(
        self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int
    ) -> list[dict[str, Any]]:
        found, _ = await self._read(call)
        if ids is not None:
            wanted = set(ids)
            found = [r for r in found if r["id"] in wanted]
        return found[:limit]

    async def change_log(self, call: Call, after_modseq: int, skip: int, limit: int) -> ChangeLog:
        return await run_store(call.ctx, _change_log, call.ctx.store, call.account_id, after_modseq, skip, limit)

    # -- /query ------------------------------------------------------------------------------------------

    async def compile_condition(self, call: Call, condition: dict[str, Any]) -> Any:
        unknown = set(condition) - _FILTERS
        if unknown:
            raise MethodError("unsupportedFilter", description=f"unknown filter property {sorted(unknown)[0]}")
        if len(condition) != 1:  # several properties in one condition: all must hold
            return FilterOperator("AND", tuple([await self.compile_condition(call, {k: v})
                                                for k, v in sorted(condition.items())]))
        key, value = next(iter(condition.items()))
        if key == "scope":
            if type(value) is not list or not all(type(v) is str for v in value):
                raise invalid_arguments("'scope' must be an array of strings")
        elif type(value) is not str:
            raise invalid_arguments(f"'{key}' must be a string")
        return (key, value)

    async def compile_comparator(self, call: Call, comparator: Comparator) -> Any:
        if comparator.property not in _SORTS or comparator.extra:
            raise MethodError("unsupportedSort", description=f"cannot sort by {comparator.property!r}")
        key = None
        if comparator.property == "name":
            if not collation.supported(comparator.collation):
                raise MethodError("unsupportedSort", description="unknown collation")
            key = collation.key_function(comparator.collation)
        elif comparator.collation is not None and not collation.supported(comparator.collation):
            raise MethodError("unsupportedSort", description="unknown collation")
        return (comparator.property, comparator.is_ascending, key)

    async def query(
        self, call: Call, filter: Any, sort: list[Any], position: int, limit: int, anchor: str | None,
        anchor_offset: int, calculate_total: bool,
    ) -> QueryResult:
        found, state = await self._read(call)
        ids = _ordered(found, filter, sort)
        page, start = window(ids, position, limit, anchor, anchor_offset)
        return QueryResult(page, start, len(ids) if calculate_total else None, str(state), can_calculate_changes=True)

    async def query_changes(
        self, call: Call, filter: Any, sort: list[Any], since_query_state: str, max_changes: int | None,
        up_to_id: str | None, calculate_total: bool,
    ) -> QueryChangesResult:
        try:
            since = parse_state(since_query_state)
        except ValueError:
            raise MethodError("cannotCalculateChanges", description="not a query state of this server") from None
        found, state = await self._read(call)
        if since > state:
            raise MethodError("cannotCalculateChanges", description="that state is newer than the server's")
        log = await run_store(call.ctx, call.ctx.store.changes.since, call.account_id, KIND, since)
        changed = sorted({r.object_id for r in log if r.modseq <= state})
        ids = _ordered(found, filter, sort)
        added = [AddedItem(i, n) for n, i in enumerate(ids) if i in changed]
        return QueryChangesResult(since_query_state, str(state), changed, added,
                                  len(ids) if calculate_total else None)


def register(engine: Engine) -> None:
    register_standard(engine, "Quota", QUOTA, QuotaAdapter(), ("get", "changes", "query", "queryChanges"))
