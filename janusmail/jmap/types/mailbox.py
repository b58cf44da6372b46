"""JMAP Mailbox (RFC 8621 §2) over the shared store: /get /changes /query /queryChanges /set.

Why a TypeAdapter: the engine's standard methods own the argument parsing and bookkeeping; this module only
maps store rows to Mailbox objects, store refusals to SetErrors, and implements the Mailbox query rules
(sortAsTree, filterAsTree). Mailbox names are single path components; the store enforces the tree rules, so
IMAP and JMAP refuse the same things.

States: the Mailbox state is the modseq of the newest Mailbox change row (``store.changes.kind_state``), and counts
changes are logged as op ``"k"``, so the state moves whenever a count moves (RFC 8620 §5.1: the state covers
all data of the type) and /changes can say ``updatedProperties`` = the four counts when only those moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from janusmail.jmap import collation
from janusmail.jmap.context import JmapContext, parse_state, run_store
from janusmail.jmap.engine import (
    AddedItem,
    Call,
    ChangeEntry,
    ChangeLog,
    Comparator,
    Engine,
    MethodError,
    QueryChangesResult,
    QueryResult,
    SetError,
    TypeAdapter,
    invalid_arguments,
    matches,
    register_standard,
    validate_patch,
    window,
)
from janusmail.jmap.engine.patch import escape_token, server_set_mismatches
from janusmail.jmap.engine.standard import set_method
from janusmail.jmap.engine.types import is_creation_ref, is_id
from janusmail.store import mailboxes as store_mailboxes
from janusmail.store.model import (
    AlreadyExists,
    HasChildren,
    HasEmails,
    InboxProtected,
    InvalidName,
    Mailbox,
    MailboxCounts,
    NotFound,
    RoleTaken,
    StorageUnavailable,
    StoreError,
)

__all__ = ["MAIL", "MailboxAdapter", "register"]

MAIL = "urn:ietf:params:jmap:mail"

COUNT_PROPERTIES = ("totalEmails", "unreadEmails", "totalThreads", "unreadThreads")
#: The owner of an account may do everything (no ACLs/sharing yet).
RIGHTS = {
    "mayReadItems": True,
    "mayAddItems": True,
    "mayRemoveItems": True,
    "maySetSeen": True,
    "maySetKeywords": True,
    "mayCreateChild": True,
    "mayRename": True,
    "mayDelete": True,
    "maySubmit": True,
}
SETTABLE = frozenset({"name", "parentId", "role", "sortOrder", "isSubscribed"})
SORT_ORDER_MAX = 2**31 - 1
_NO_COUNTS = MailboxCounts()


def to_record(box: Mailbox, counts: MailboxCounts | None) -> dict[str, Any]:
    c = counts or _NO_COUNTS
    return {
        "id": box.id,
        "name": box.name,
        "parentId": box.parent_id,
        "role": box.role,
        "sortOrder": box.sort_order,
        "totalEmails": c.total_emails,
        "unreadEmails": c.unread_emails,
        "totalThreads": c.total_threads,
        "unreadThreads": c.unread_threads,
        "myRights": dict(RIGHTS),
        "isSubscribed": box.subscribed,
    }


# -- store work (runs on the store's worker threads) --------------------------------------------------------


def _read(store: Any, account_id: str, ids: Sequence[str] | None, with_counts: bool) -> list[dict[str, Any]]:
    boxes = store.mailboxes.list(account_id)
    if ids is not None:
        wanted = set(ids)
        boxes = [b for b in boxes if b.id in wanted]
    counts: dict[str, MailboxCounts] = {}
    if with_counts and boxes:
        # the counters the store keeps on each mailbox row, read with the rows (Mailbox.counts): no query
        counts = {b.id: b.counts for b in boxes if b.counts is not None}
        if len(counts) < len(boxes):
            counts = store.mailboxes.counts(account_id)
    return [to_record(b, counts.get(b.id)) for b in boxes]


def _change_log(store: Any, account_id: str, after: int, skip: int, limit: int) -> ChangeLog:
    current = store.changes.kind_state(account_id, "Mailbox")  # before the rows: never newer than what we return
    rows = store.changes.since(account_id, "Mailbox", after, skip + limit)[skip:]
    return ChangeLog([ChangeEntry(r.modseq, r.object_id, _OPS.get(r.op, r.op)) for r in rows], current)


_OPS = {"c": "created", "u": "updated", "d": "destroyed"}


def _query_changes_data(store: Any, account_id: str, since: int) -> tuple[int, list[Any], list[dict[str, Any]]]:
    current = store.changes.kind_state(account_id, "Mailbox")
    rows = store.changes.since(account_id, "Mailbox", since) if since <= current else []
    return current, rows, _read(store, account_id, None, False)


# -- validation -------------------------------------------------------------------------------------------


def _bad(prop: str, why: str) -> SetError:
    return SetError("invalidProperties", why, properties=[prop])


def _check_name(value: Any) -> str:
    if type(value) is not str:
        raise _bad("name", "name must be a string")
    try:
        return store_mailboxes.check_name(value)
    except InvalidName as exc:
        raise _bad("name", str(exc)) from None


def _check_role(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is not str or value not in store_mailboxes.ROLES:
        raise _bad("role", "role must be null or a registered mailbox role (lowercase)")
    return value


def _check_sort_order(value: Any) -> int:
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= SORT_ORDER_MAX:
        raise _bad("sortOrder", "sortOrder must be an integer from 0 to 2^31-1")
    return value


def _check_subscribed(value: Any) -> bool:
    if type(value) is not bool:
        raise _bad("isSubscribed", "isSubscribed must be a boolean")
    return value


def _check_parent(call: Call, value: Any) -> str | None:
    if value is None:
        return None
    if is_creation_ref(value):
        resolved = call.ctx.resolve_creation_id(value)
        if resolved is None:
            raise _bad("parentId", "no mailbox was created with that creation id")
        return resolved
    if not is_id(value):
        raise _bad("parentId", "parentId must be null or a Mailbox id")
    return value


_ABSENT = object()


def _mismatches(tokens: tuple[str, ...], value: Any, record: dict[str, Any]) -> list[str]:
    """Where a patch entry on a server-set property would change it (the paths to name in the SetError)."""
    current: Any = record
    for token in tokens:
        current = current.get(token, _ABSENT) if type(current) is dict else _ABSENT
    path = "/".join(escape_token(t) for t in tokens)
    return [path] if current is _ABSENT else server_set_mismatches(path, value, current)


def _store_error(exc: StoreError, mailbox_id: str | None = None) -> SetError:
    """The SetError for a store refusal of a write to ``mailbox_id`` (None: a create)."""
    if isinstance(exc, StorageUnavailable):  # not this object's fault: the whole method is serverUnavailable
        raise exc
    if isinstance(exc, NotFound) and mailbox_id is not None and exc.args[:1] == (mailbox_id,):
        return SetError("notFound")  # the mailbox itself (or another account's), not its new parent
    if isinstance(exc, AlreadyExists):
        return _bad("name", "a sibling mailbox already has this name")
    if isinstance(exc, RoleTaken):
        return _bad("role", "another mailbox already has this role")
    if isinstance(exc, NotFound):
        return _bad("parentId", "the parent mailbox does not exist")
    if isinstance(exc, InvalidName):  # names were checked already: the store refused the tree shape
        return _bad("parentId", str(exc))
    if isinstance(exc, HasChildren):
        return SetError("mailboxHasChild", "the mailbox has child mailboxes")
    if isinstance(exc, HasEmails):
        return SetError("mailboxHasEmail", "the mailbox is not empty (use onDestroyRemoveEmails)")
    return SetError("forbidden", str(exc) or exc.code)


# -- query compilation ------------------------------------------------------------------------------------

_CONDITIONS = frozenset({"parentId", "name", "role", "hasAnyRole", "isSubscribed"})


@dataclass(frozen=True, slots=True)
class _Cond:
    conditions: tuple[tuple[str, Any], ...]

    def test(self, rec: dict[str, Any]) -> bool:
        for key, value in self.conditions:
            if key == "parentId":
                if rec["parentId"] != value:
                    return False
            elif key == "name":
                if not collation.contains(rec["name"], value):
                    return False
            elif key == "role":
                if rec["role"] != value:
                    return False
            elif key == "hasAnyRole":
                if (rec["role"] is not None) != value:
                    return False
            elif key == "isSubscribed" and rec["isSubscribed"] != value:
                return False
        return True


@dataclass(frozen=True, slots=True)
class _Sort:
    property: str
    ascending: bool
    key: Callable[[Any], Any]


def _sorted(records: list[dict[str, Any]], sort: list[_Sort]) -> list[dict[str, Any]]:
    """Stable multi-key sort; ids (creation-ordered) break every tie so the order never wobbles."""
    out = sorted(records, key=lambda r: r["id"])
    for s in reversed(sort):
        out.sort(key=lambda r, s=s: s.key(r[s.property]), reverse=not s.ascending)
    return out


def _tree_order(ordered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Depth-first, parents before children, siblings in ``ordered``'s order (RFC 8621 sortAsTree)."""
    ids = {r["id"] for r in ordered}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for r in ordered:
        parent = r["parentId"] if r["parentId"] in ids else None
        children.setdefault(parent, []).append(r)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    stack = list(reversed(children.get(None, [])))
    while stack:
        r = stack.pop()
        if r["id"] in seen:
            continue
        seen.add(r["id"])
        out.append(r)
        stack.extend(reversed(children.get(r["id"], [])))
    out.extend(r for r in ordered if r["id"] not in seen)  # a parent loop cannot exist, but never drop rows
    return out


def _ancestors(rec: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    cur = rec["parentId"]
    while cur is not None and cur in by_id and len(out) < 256:
        out.append(cur)
        cur = by_id[cur]["parentId"]
    return out


class MailboxAdapter(TypeAdapter):
    properties = frozenset(
        {"id", "name", "parentId", "role", "sortOrder", *COUNT_PROPERTIES, "myRights", "isSubscribed"}
    )
    server_set_properties = frozenset({"id", *COUNT_PROPERTIES, "myRights"})
    create_may_echo = frozenset({*COUNT_PROPERTIES, "myRights"})
    extra_arguments = {
        "set": frozenset({"onDestroyRemoveEmails"}),
        "query": frozenset({"sortAsTree", "filterAsTree"}),
        "queryChanges": frozenset({"sortAsTree", "filterAsTree"}),
    }

    async def state(self, call: Call) -> int:
        return await run_store(call.ctx, call.ctx.store.changes.kind_state, call.account_id, "Mailbox")

    async def get(
        self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int
    ) -> list[dict[str, Any]]:
        with_counts = bool(properties & set(COUNT_PROPERTIES))
        records = await run_store(call.ctx, _read, call.ctx.store, call.account_id, ids, with_counts)
        return records[:limit]

    async def change_log(self, call: Call, after_modseq: int, skip: int, limit: int) -> ChangeLog:
        return await run_store(call.ctx, _change_log, call.ctx.store, call.account_id, after_modseq, skip, limit)

    async def decorate_changes(self, call: Call, response: dict[str, Any], ops: dict[str, set[str]]) -> None:
        updated = response["updated"]
        only_counts = bool(updated) and all(ops.get(i, set()) <= {"k"} for i in updated)
        response["updatedProperties"] = list(COUNT_PROPERTIES) if only_counts else None

    # -- /set --------------------------------------------------------------------------------------------

    async def create(self, call: Call, creation_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        # Server-set values a new mailbox will have: a client may echo them (RFC 8620 §5.3), not choose them.
        fresh: dict[str, Any] = {**dict.fromkeys(COUNT_PROPERTIES, 0), "myRights": RIGHTS}
        echoed = sorted(self.create_may_echo & obj.keys())
        bad = [p for k in echoed for p in server_set_mismatches(k, obj[k], fresh[k])]
        if bad:
            raise SetError("invalidProperties", "server-set properties cannot be chosen", properties=bad)
        if "name" not in obj:
            raise _bad("name", "name is required")
        name = _check_name(obj["name"])
        parent = _check_parent(call, obj.get("parentId"))
        role = _check_role(obj.get("role"))
        sort_order = _check_sort_order(obj.get("sortOrder"))
        subscribed = _check_subscribed(obj["isSubscribed"]) if "isSubscribed" in obj else True
        store = call.ctx.store
        try:
            box = await run_store(
                call.ctx, store.mailboxes.create, call.account_id, name, parent,
                role=role, sort_order=sort_order, subscribed=subscribed,
            )  # fmt: skip
        except StoreError as exc:
            raise _store_error(exc) from None
        record = to_record(box, None)
        # Server-set and defaulted properties go back to the client (RFC 8620 §5.3 "created").
        return {k: v for k, v in record.items() if k not in obj or obj[k] != v}

    async def update(self, call: Call, id: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        values: dict[str, Any] = {}
        server_set: list[tuple[tuple[str, ...], Any]] = []
        for tokens, value in validate_patch(patch):
            prop = tokens[0]
            if prop not in SETTABLE:
                # A server-set property may be "set" only to the value it already has (RFC 8620 §5.3),
                # whole (``myRights``) or member by member (``myRights/mayDelete``).
                server_set.append((tokens, value))
                continue
            if len(tokens) > 1:
                raise SetError("invalidPatch", f"{prop} is not an object")
            if prop == "name":
                values["name"] = _check_name(value)
            elif prop == "parentId":
                values["parent_id"] = _check_parent(call, value)
            elif prop == "role":
                values["role"] = _check_role(value)
            elif prop == "sortOrder":
                values["sort_order"] = _check_sort_order(value)
            else:
                values["subscribed"] = _check_subscribed(value)
        store = call.ctx.store
        if server_set:
            current = await run_store(call.ctx, _read, store, call.account_id, [id], True)
            if not current:
                raise SetError("notFound")
            bad = sorted(p for tokens, v in server_set for p in _mismatches(tokens, v, current[0]))
            if bad:
                raise SetError("invalidProperties", "server-set properties cannot be changed", properties=bad)
        try:
            await run_store(call.ctx, store.mailboxes.update, call.account_id, id, **values)
        except InboxProtected as exc:
            prop = exc.prop or "role"
            why = "the inbox keeps its role" if prop == "role" else "the inbox stays at the top level"
            raise SetError("invalidProperties", why, properties=[prop]) from None
        except StoreError as exc:
            raise _store_error(exc, id) from None
        return None

    async def destroy(self, call: Call, id: str) -> None:
        remove = call.extra.get("onDestroyRemoveEmails") is True
        store = call.ctx.store
        try:
            await run_store(call.ctx, store.mailboxes.destroy, call.account_id, id, remove_emails=remove)
        except InboxProtected:
            raise SetError("forbidden", "the inbox cannot be destroyed") from None
        except StoreError as exc:
            raise _store_error(exc, id) from None

    # -- /query ------------------------------------------------------------------------------------------

    async def compile_condition(self, call: Call, condition: dict[str, Any]) -> Any:
        unknown = sorted(set(condition) - _CONDITIONS)
        if unknown:
            raise MethodError("unsupportedFilter", description=f"unknown condition(s): {', '.join(unknown)}")
        out: list[tuple[str, Any]] = []
        for key, value in condition.items():
            if key == "parentId":
                if value is not None:
                    if not (is_id(value) or is_creation_ref(value)):
                        raise invalid_arguments("filter parentId must be null or an Id")
                    value = call.ctx.resolve_creation_id(value) or value
            elif key == "name":
                if type(value) is not str:
                    raise invalid_arguments("filter name must be a string")
            elif key == "role":
                if value is not None and type(value) is not str:
                    raise invalid_arguments("filter role must be null or a string")
            elif type(value) is not bool:
                raise invalid_arguments(f"filter {key} must be a boolean")
            out.append((key, value))
        return _Cond(tuple(out))

    async def compile_comparator(self, call: Call, comparator: Comparator) -> Any:
        if comparator.extra:
            raise MethodError("unsupportedSort", description="unknown Comparator members")
        if comparator.property == "sortOrder":
            if comparator.collation is not None and not collation.supported(comparator.collation):
                raise MethodError("unsupportedSort", description="unknown collation")
            return _Sort("sortOrder", comparator.is_ascending, lambda v: v)
        if comparator.property == "name":
            if not collation.supported(comparator.collation):
                raise MethodError("unsupportedSort", description="unknown collation")
            return _Sort("name", comparator.is_ascending, collation.key_function(comparator.collation))
        raise MethodError("unsupportedSort", description="Mailbox sorts by sortOrder or name")

    @staticmethod
    def _tree_flags(call: Call) -> tuple[bool, bool]:
        flags = []
        for name in ("sortAsTree", "filterAsTree"):
            value = call.extra.get(name, False)
            if value is None:
                value = False
            if type(value) is not bool:
                raise invalid_arguments(f"'{name}' must be a boolean")
            flags.append(value)
        return flags[0], flags[1]

    def _results(
        self, call: Call, records: list[dict[str, Any]], filter: Any, sort: list[Any]
    ) -> list[dict[str, Any]]:
        sort_as_tree, filter_as_tree = self._tree_flags(call)
        by_id = {r["id"]: r for r in records}
        hits = {r["id"] for r in records if matches(filter, lambda c, r=r: c.test(r))}
        if filter_as_tree:
            hits = {i for i in hits if all(a in hits for a in _ancestors(by_id[i], by_id))}
        ordered = _sorted(records, sort)
        if sort_as_tree:
            ordered = _tree_order(ordered)
        return [r for r in ordered if r["id"] in hits]

    async def query(
        self,
        call: Call,
        filter: Any,
        sort: list[Any],
        position: int,
        limit: int,
        anchor: str | None,
        anchor_offset: int,
        calculate_total: bool,
    ) -> QueryResult:
        self._tree_flags(call)  # argument errors before any work
        records = await run_store(call.ctx, _read, call.ctx.store, call.account_id, None, False)
        ids = [r["id"] for r in self._results(call, records, filter, sort)]
        page, start = window(ids, position, limit, anchor, anchor_offset)
        return QueryResult(page, start, len(ids), None, True)

    async def query_changes(
        self,
        call: Call,
        filter: Any,
        sort: list[Any],
        since_query_state: str,
        max_changes: int | None,
        up_to_id: str | None,
        calculate_total: bool,
    ) -> QueryChangesResult:
        sort_as_tree, filter_as_tree = self._tree_flags(call)
        try:
            since = parse_state(since_query_state)
        except ValueError:
            raise MethodError("cannotCalculateChanges", description="unknown query state") from None
        current, rows, records = await run_store(
            call.ctx, _query_changes_data, call.ctx.store, call.account_id, since
        )
        if since > current:
            raise MethodError("cannotCalculateChanges", description="query state is newer than the server's")
        # Counts ("k") are neither filterable nor sortable: they never move a mailbox in the results.
        changed = {r.object_id for r in rows if r.modseq <= current and r.op != "k"}
        if changed and (sort_as_tree or filter_as_tree):
            by_id = {r["id"]: r for r in records}
            for r in records:
                if any(a in changed for a in _ancestors(r, by_id)):
                    changed.add(r["id"])
        new_ids = [r["id"] for r in self._results(call, records, filter, sort)]
        # Every changed id is reported removed (it may have been in the old results) and, when it is in
        # the new results, re-added at its new index: RFC 8620 §5.6 allows the extra removals.
        removed = sorted(changed)
        added = [AddedItem(i, n) for n, i in enumerate(new_ids) if i in changed]
        return QueryChangesResult(since_query_state, str(current), removed, added, len(new_ids))


def _destroy_order(store: Any, account_id: str, ids: list[str]) -> list[str]:
    """Children before parents, so destroying a whole subtree in one call does not trip mailboxHasChild."""
    boxes = {b.id: b for b in store.mailboxes.list(account_id)}

    def depth(i: str) -> int:
        d = 0
        cur = boxes.get(i)
        while cur is not None and cur.parent_id is not None and d < 256:
            d += 1
            cur = boxes.get(cur.parent_id)
        return d

    return sorted(ids, key=lambda i: -depth(i))


def register(engine: Engine) -> None:
    adapter = MailboxAdapter()
    register_standard(engine, "Mailbox", MAIL, adapter, ("get", "changes", "query", "queryChanges"))

    async def mailbox_set(ctx: JmapContext, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        remove = args.get("onDestroyRemoveEmails", False)
        if remove is not None and type(remove) is not bool:
            raise invalid_arguments("'onDestroyRemoveEmails' must be a boolean")
        destroy = args.get("destroy")
        account_id = args.get("accountId")
        if (
            type(destroy) is list
            and len(destroy) > 1
            and all(is_id(i) for i in destroy)
            and type(account_id) is str
            and ctx.account_id == account_id  # the caller's own account: order its mailboxes only
        ):
            ordered = await run_store(ctx, _destroy_order, ctx.store, account_id, destroy)
            args = {**args, "destroy": ordered}
        return await set_method(adapter, "Mailbox", ctx, args)

    engine.register("Mailbox/set", MAIL, mailbox_set)
