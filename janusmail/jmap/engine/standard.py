"""One generic implementation of the standard methods (RFC 8620 §5.1-§5.6), parameterised by a TypeAdapter.

Why: Mailbox/get and Email/get differ only in how records are read; /set's bookkeeping (ifInState,
limits, creation ids, willDestroy, SetError maps, old/new state) is the same for every type. Each function
here is ``async (adapter, type_name, ctx, args) -> [(name, response)]``; ``register_standard`` binds
them to names like ``Note/get`` on an Engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .adapter import Call, SetResult, TypeAdapter
from .args import (
    check_known_arguments,
    read_bool,
    read_id,
    read_int,
    read_object,
    read_string,
    read_string_list,
    read_unsigned_int,
)
from .changes import compute_changes
from .dispatch import CallContext, Engine
from .errors import MethodError, SetError, invalid_arguments
from .filters import compile_filter, compile_sort
from .patch import validate_patch
from .types import is_creation_ref, is_id

__all__ = [
    "STANDARD_METHODS",
    "changes_method",
    "copy_method",
    "get_method",
    "query_changes_method",
    "query_method",
    "register_standard",
    "set_method",
]

Response = tuple[str, dict[str, Any]]

_KNOWN = {
    "get": frozenset({"accountId", "ids", "properties"}),
    "changes": frozenset({"accountId", "sinceState", "maxChanges"}),
    "set": frozenset({"accountId", "ifInState", "create", "update", "destroy"}),
    "copy": frozenset(
        {
            "fromAccountId",
            "ifFromInState",
            "accountId",
            "ifInState",
            "create",
            "onSuccessDestroyOriginal",
            "destroyFromIfInState",
        }
    ),
    "query": frozenset(
        {"accountId", "filter", "sort", "position", "anchor", "anchorOffset", "limit", "calculateTotal"}
    ),
    "queryChanges": frozenset(
        {"accountId", "filter", "sort", "sinceQueryState", "maxChanges", "upToId", "calculateTotal"}
    ),
}
STANDARD_METHODS = tuple(_KNOWN)


async def _begin(
    adapter: TypeAdapter,
    type_name: str,
    suffix: str,
    ctx: CallContext,
    args: dict[str, Any],
    *,
    write: bool,
    account_arg: str = "accountId",
) -> Call:
    """Common prologue: refuse unknown arguments, read accountId, ask the account policy."""
    extra_names = adapter.extra_arguments.get(suffix, frozenset())
    check_known_arguments(args, _KNOWN[suffix] | extra_names)
    account_id = read_id(args, account_arg, required=True, nullable=False)
    assert account_id is not None
    await ctx.check_account(account_id, write=write)
    extra = {k: args[k] for k in extra_names if k in args}
    return Call(ctx, type_name, f"{type_name}/{suffix}", account_id, extra)


def _finish(call: Call, response: dict[str, Any]) -> list[Response]:
    response.update(call.response_extra)
    return [(call.method, response), *call.followups]


def _resolve(ctx: CallContext, value: str) -> str | None:
    """A plain id stays; ``#k1`` becomes the created id, or None if nothing was created as k1."""
    return ctx.resolve_creation_id(value) if is_creation_ref(value) else value


# -- /get -------------------------------------------------------------------------------------------


async def get_method(
    adapter: TypeAdapter, type_name: str, ctx: CallContext, args: dict[str, Any]
) -> list[Response]:
    call = await _begin(adapter, type_name, "get", ctx, args, write=False)
    max_objects = ctx.limits.max_objects_in_get
    raw_ids = args.get("ids")
    if raw_ids is not None:
        if type(raw_ids) is not list or not all(is_id(i) or is_creation_ref(i) for i in raw_ids):
            raise invalid_arguments("'ids' must be an array of Ids")
        if len(raw_ids) > max_objects:
            raise MethodError("requestTooLarge", description=f"at most {max_objects} ids per /get")
    names = read_string_list(args, "properties")
    if names is None:
        properties = frozenset(adapter.default_properties or adapter.properties)
    else:
        unknown = sorted({n for n in names if not adapter.is_property(n)})
        if unknown:
            raise invalid_arguments(f"unknown properties: {', '.join(unknown)}")
        properties = frozenset(names)
    properties |= {"id"}

    # The state is read before the data: a client must never hold data older than the state it was told.
    state = await adapter.state(call)
    not_found: list[str] = []
    seen: set[str] = set()
    wanted: list[str] | None = None
    if raw_ids is None:
        if not adapter.can_get_all:
            raise MethodError("requestTooLarge", description="'ids' must be given for this type")
        records = await adapter.get(call, None, properties, max_objects + 1)
        if len(records) > max_objects:
            raise MethodError("requestTooLarge", description=f"more than {max_objects} records; give 'ids'")
    else:
        wanted = []
        for given in raw_ids:
            real = _resolve(ctx, given)
            key = real if real is not None else given
            if key in seen:
                continue  # a duplicate id is returned once (§5.1)
            seen.add(key)
            if real is None:
                not_found.append(given)
            else:
                wanted.append(real)
        records = await adapter.get(call, wanted, properties, len(wanted)) if wanted else []

    by_id: dict[str, dict[str, Any]] = {}
    for record in records:
        rid = record.get("id")
        if rid is not None and rid not in by_id and (wanted is None or rid in seen):
            by_id[rid] = {k: v for k, v in record.items() if k in properties}
    if wanted is not None:
        not_found.extend(i for i in wanted if i not in by_id)
        listing = [by_id[i] for i in wanted if i in by_id]
    else:
        listing = list(by_id.values())
    response = {"accountId": call.account_id, "state": str(state), "list": listing, "notFound": not_found}
    return _finish(call, response)


# -- /changes ---------------------------------------------------------------------------------------


async def changes_method(
    adapter: TypeAdapter, type_name: str, ctx: CallContext, args: dict[str, Any]
) -> list[Response]:
    call = await _begin(adapter, type_name, "changes", ctx, args, write=False)
    since = read_string(args, "sinceState", required=True, nullable=False)
    max_changes = read_unsigned_int(args, "maxChanges")
    if max_changes is not None and max_changes < 1:
        raise invalid_arguments("'maxChanges' must be greater than 0")
    cap = ctx.limits.max_changes
    page = await compute_changes(adapter, call, since, cap if max_changes is None else min(max_changes, cap))
    response: dict[str, Any] = {
        "accountId": call.account_id,
        "oldState": since,
        "newState": page.new_state,
        "hasMoreChanges": page.has_more,
        "created": page.created,
        "updated": page.updated,
        "destroyed": page.destroyed,
    }
    await adapter.decorate_changes(call, response, page.ops)
    return _finish(call, response)


# -- /set -------------------------------------------------------------------------------------------


def _read_set_args(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    create = read_object(args, "create") or {}
    update = read_object(args, "update") or {}
    destroy = args.get("destroy")
    if destroy is None:
        destroy = []
    elif type(destroy) is not list or not all(is_id(i) or is_creation_ref(i) for i in destroy):
        raise invalid_arguments("'destroy' must be an array of Ids")
    if not all(is_id(k) for k in create):
        raise invalid_arguments("'create' keys must be creation ids (Id syntax)")
    if not all(is_id(k) or is_creation_ref(k) for k in update):
        raise invalid_arguments("'update' keys must be Ids")
    return create, update, list(dict.fromkeys(destroy))


def _creation_waves(create: dict[str, Any]) -> list[list[str]]:
    """The creation ids in the order they must be created, cut into waves whose members do not refer to each
    other: the records of one wave can be created together (``TypeAdapter.create_many``, one store write).

    Creates that reference other creates of the same call (``"parentId": "#k1"``) must come after them
    (§5.3). We find ``#k`` strings anywhere in each object and order depth-first; a create that refers to one of
    the current wave starts the next. Cycles fall back to the client's order and the adapter reports the
    unresolvable reference."""

    def refs(value: Any, out: set[str]) -> set[str]:
        if type(value) is str:
            if value.startswith("#") and value[1:] in create:
                out.add(value[1:])
        elif type(value) is dict:
            for v in value.values():
                refs(v, out)
        elif type(value) is list:
            for v in value:
                refs(v, out)
        return out

    deps = {cid: refs(obj, set()) - {cid} for cid, obj in create.items()}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(cid: str) -> None:
        stack = [(cid, iter(sorted(deps[cid])))]
        state[cid] = 1
        while stack:
            node, it = stack[-1]
            for dep in it:
                if state.get(dep) is None:
                    state[dep] = 1
                    stack.append((dep, iter(sorted(deps[dep]))))
                    break
            else:
                stack.pop()
                state[node] = 2
                order.append(node)

    for cid in create:
        if state.get(cid) is None:
            visit(cid)
    waves: list[list[str]] = []
    current: set[str] = set()
    for cid in order:
        if not waves or deps[cid] & current:
            waves.append([])
            current = set()
        waves[-1].append(cid)
        current.add(cid)
    return waves


def _unknown_or_server_set(
    adapter: TypeAdapter, obj: dict[str, Any], echo: frozenset[str] = frozenset()
) -> None:
    server_set = adapter.server_set_properties - echo
    bad = sorted(k for k in obj if not adapter.is_property(k) or k in server_set)
    if bad:
        raise SetError("invalidProperties", "unknown or server-set properties", properties=bad)


async def _create_wave(
    adapter: TypeAdapter, call: Call, wave: list[str], create: dict[str, Any], result: SetResult
) -> None:
    """Create the records of one wave (see ``_creation_waves``): the engine's checks per record, then the
    adapter's ``create_many`` for those that passed, each record's outcome kept under its creation id."""
    ready: list[tuple[str, dict[str, Any]]] = []
    for creation_id in wave:
        obj = create[creation_id]
        try:
            if type(obj) is not dict:
                raise SetError("invalidProperties", "a created record must be an object")
            _unknown_or_server_set(adapter, obj, adapter.create_may_echo)
        except SetError as exc:
            result.not_created[creation_id] = exc
            continue
        ready.append((creation_id, obj))
    if not ready:
        return
    outcomes = await adapter.create_many(call, ready)
    if len(outcomes) != len(ready):
        raise TypeError(f"{call.type_name} adapter create_many() must answer every record")
    for (creation_id, _), created in zip(ready, outcomes, strict=True):
        if isinstance(created, SetError):
            result.not_created[creation_id] = created
            continue
        if type(created) is not dict or not is_id(created.get("id")):
            raise TypeError(f"{call.type_name} adapter create() must return a dict with a valid 'id'")
        result.created[creation_id] = created
        call.ctx.record_creation(creation_id, created["id"])


async def set_method(
    adapter: TypeAdapter, type_name: str, ctx: CallContext, args: dict[str, Any]
) -> list[Response]:
    call = await _begin(adapter, type_name, "set", ctx, args, write=True)
    if_in_state = read_string(args, "ifInState")
    create, update, destroy = _read_set_args(args)
    total = len(create) + len(update) + len(destroy)
    if total > ctx.limits.max_objects_in_set:
        raise MethodError(
            "requestTooLarge", description=f"at most {ctx.limits.max_objects_in_set} changes per /set"
        )

    result = SetResult()
    async with adapter.set_transaction(call):
        old_state = str(await adapter.state(call))
        if if_in_state is not None and if_in_state != old_state:
            raise MethodError("stateMismatch")

        for wave in _creation_waves(create):
            await _create_wave(adapter, call, wave, create, result)

        # Ids (or #refs) to destroy, resolved after the creates so "#k1" works in both lists.
        destroy_ids = {_resolve(ctx, d) for d in destroy} - {None}
        for key, patch in update.items():
            real = _resolve(ctx, key)
            try:
                if real is None:
                    raise SetError("notFound", "no record was created with that creation id")
                if real in destroy_ids:
                    raise SetError("willDestroy", "the record is destroyed by this same call")
                top = {tokens[0] for tokens, _ in validate_patch(patch)}
                bad = sorted(p for p in top if not adapter.is_property(p))
                if bad:
                    raise SetError("invalidProperties", "unknown properties", properties=bad)
                async with adapter.record_transaction(call):
                    changed = await adapter.update(call, real, patch)
                result.updated[real] = changed if changed else None
            except SetError as exc:
                result.not_updated[real or key] = exc

        for key in destroy:
            real = _resolve(ctx, key)
            try:
                if real is None:
                    raise SetError("notFound", "no record was created with that creation id")
                async with adapter.record_transaction(call):
                    await adapter.destroy(call, real)
                result.destroyed.append(real)
            except SetError as exc:
                result.not_destroyed[real or key] = exc
    new_state = str(await adapter.state(call))
    await adapter.after_set(call, result)
    response = {
        "accountId": call.account_id,
        "oldState": old_state,
        "newState": new_state,
        "created": result.created or None,
        "updated": result.updated or None,
        "destroyed": result.destroyed or None,
        "notCreated": {k: e.to_dict() for k, e in result.not_created.items()} or None,
        "notUpdated": {k: e.to_dict() for k, e in result.not_updated.items()} or None,
        "notDestroyed": {k: e.to_dict() for k, e in result.not_destroyed.items()} or None,
    }
    return _finish(call, response)


# -- /copy ------------------------------------------------------------------------------------------


async def copy_method(
    adapter: TypeAdapter, type_name: str, ctx: CallContext, args: dict[str, Any]
) -> list[Response]:
    call = await _begin(adapter, type_name, "copy", ctx, args, write=True)
    from_account = read_id(args, "fromAccountId", required=True, nullable=False)
    assert from_account is not None
    if from_account == call.account_id:
        raise invalid_arguments("'fromAccountId' and 'accountId' must differ")
    try:
        await ctx.check_account(from_account, write=False)
    except MethodError as exc:
        if exc.type in ("accountNotFound", "accountNotSupportedByMethod"):
            raise MethodError("from" + exc.type[0].upper() + exc.type[1:]) from None
        raise
    if_from = read_string(args, "ifFromInState")
    if_in = read_string(args, "ifInState")
    destroy_original = read_bool(args, "onSuccessDestroyOriginal")
    destroy_if = read_string(args, "destroyFromIfInState")
    create = read_object(args, "create", nullable=False)
    assert create is not None
    if not all(is_id(k) for k in create):
        raise invalid_arguments("'create' keys must be creation ids (Id syntax)")
    if len(create) > ctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", description=f"at most {ctx.limits.max_objects_in_set} copies")

    from_call = call.for_account(from_account)
    result = SetResult()
    originals: list[str] = []
    async with adapter.set_transaction(call):
        if if_from is not None and if_from != str(await adapter.state(from_call)):
            raise MethodError("stateMismatch", description="ifFromInState does not match")
        old_state = str(await adapter.state(call))
        if if_in is not None and if_in != old_state:
            raise MethodError("stateMismatch")
        for creation_id, obj in create.items():
            try:
                if type(obj) is not dict:
                    raise SetError("invalidProperties", "a copy entry must be an object")
                source = obj.get("id")
                real_source = _resolve(ctx, source) if (is_id(source) or is_creation_ref(source)) else None
                if real_source is None:
                    raise SetError(
                        "invalidProperties", "'id' must name the record to copy", properties=["id"]
                    )
                overrides = {k: v for k, v in obj.items() if k != "id"}
                _unknown_or_server_set(adapter, overrides)
                async with adapter.record_transaction(call):
                    created = await adapter.copy(call, from_account, creation_id, real_source, overrides)
                if type(created) is not dict or not is_id(created.get("id")):
                    raise TypeError(f"{type_name} adapter copy() must return a dict with a valid 'id'")
                result.created[creation_id] = created
                ctx.record_creation(creation_id, created["id"])
                originals.append(real_source)
            except SetError as exc:
                result.not_created[creation_id] = exc
    new_state = str(await adapter.state(call))
    response = {
        "fromAccountId": from_account,
        "accountId": call.account_id,
        "oldState": old_state,
        "newState": new_state,
        "created": result.created or None,
        "notCreated": {k: e.to_dict() for k, e in result.not_created.items()} or None,
    }
    out = _finish(call, response)
    if destroy_original and originals:
        # The implicit Foo/set in the source account (§5.4), emitted after the /copy response.
        set_args: dict[str, Any] = {"accountId": from_account, "destroy": originals}
        if destroy_if is not None:
            set_args["ifInState"] = destroy_if
        out.extend(await ctx.invoke(f"{type_name}/set", set_args))
    return out


# -- /query and /queryChanges -------------------------------------------------------------------------


async def query_method(
    adapter: TypeAdapter, type_name: str, ctx: CallContext, args: dict[str, Any]
) -> list[Response]:
    call = await _begin(adapter, type_name, "query", ctx, args, write=False)
    position = read_int(args, "position", 0)
    anchor = read_id(args, "anchor", allow_creation_ref=True)
    anchor_offset = read_int(args, "anchorOffset", 0)
    limit = read_unsigned_int(args, "limit")
    calculate_total = read_bool(args, "calculateTotal")
    filter_ = await compile_filter(adapter, call, args.get("filter"))
    sort = await compile_sort(adapter, call, args.get("sort"))

    cap = ctx.limits.max_query_limit
    clamped = limit is None or limit > cap
    effective_limit = cap if clamped else limit
    if anchor is not None:
        resolved = _resolve(ctx, anchor)
        if resolved is None:
            raise MethodError("anchorNotFound")
        anchor = resolved
    state = None if adapter.query_reports_state else await adapter.state(call)
    result = await adapter.query(
        call, filter_, sort, position, effective_limit, anchor, anchor_offset, calculate_total
    )
    if result.query_state is None and state is None:  # an adapter that promised a state and gave none
        state = await adapter.state(call)
    response: dict[str, Any] = {
        "accountId": call.account_id,
        "queryState": result.query_state if result.query_state is not None else str(state),
        "canCalculateChanges": result.can_calculate_changes,
        "position": result.position,
        "ids": list(result.ids[:effective_limit]),
    }
    if calculate_total:
        if result.total is None:
            raise RuntimeError(f"{type_name} adapter query() gave no total although asked")
        response["total"] = result.total
    if clamped:
        response["limit"] = effective_limit
    return _finish(call, response)


async def query_changes_method(
    adapter: TypeAdapter, type_name: str, ctx: CallContext, args: dict[str, Any]
) -> list[Response]:
    call = await _begin(adapter, type_name, "queryChanges", ctx, args, write=False)
    since = read_string(args, "sinceQueryState", required=True, nullable=False)
    max_changes = read_unsigned_int(args, "maxChanges")
    up_to = read_id(args, "upToId", allow_creation_ref=True)
    if up_to is not None:
        up_to = _resolve(ctx, up_to)
    calculate_total = read_bool(args, "calculateTotal")
    filter_ = await compile_filter(adapter, call, args.get("filter"))
    sort = await compile_sort(adapter, call, args.get("sort"))
    result = await adapter.query_changes(call, filter_, sort, since, max_changes, up_to, calculate_total)
    if max_changes is not None and len(result.removed) + len(result.added) > max_changes:
        raise MethodError("tooManyChanges")
    response: dict[str, Any] = {
        "accountId": call.account_id,
        "oldQueryState": result.old_query_state,
        "newQueryState": result.new_query_state,
        "removed": list(result.removed),
        "added": [{"id": a.id, "index": a.index} for a in sorted(result.added, key=lambda a: a.index)],
    }
    if calculate_total:
        if result.total is None:
            raise RuntimeError(f"{type_name} adapter query_changes() gave no total although asked")
        response["total"] = result.total
    return _finish(call, response)


_IMPLEMENTATIONS = {
    "get": get_method,
    "changes": changes_method,
    "set": set_method,
    "copy": copy_method,
    "query": query_method,
    "queryChanges": query_changes_method,
}


def register_standard(
    engine: Engine,
    type_name: str,
    capability: str,
    adapter: TypeAdapter,
    methods: Iterable[str] = ("get", "changes", "set", "query", "queryChanges"),
) -> None:
    """Register ``{type_name}/{m}`` for each m in ``methods`` (get, changes, set, copy, query,
    queryChanges), all served by ``adapter`` and gated by ``capability``."""
    for suffix in methods:
        impl = _IMPLEMENTATIONS.get(suffix)
        if impl is None:
            raise ValueError(f"unknown standard method {suffix!r}")
        engine.register(f"{type_name}/{suffix}", capability, _bind(impl, adapter, type_name))


def _bind(impl: Any, adapter: TypeAdapter, type_name: str) -> Any:
    async def handler(ctx: CallContext, args: dict[str, Any]) -> list[Response]:
        return await impl(adapter, type_name, ctx, args)

    handler.__qualname__ = f"{type_name}.{impl.__name__}"
    return handler
