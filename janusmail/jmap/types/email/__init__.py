"""JMAP Email (RFC 8621 §4): Email/get, /changes, /query, /queryChanges, /set, /copy, /import and /parse.

The standard methods run through the engine's generic implementations with ``EmailAdapter`` supplying the
storage hooks; Email/import and Email/parse have their own small handlers. The work is done by this package's
modules: ``props`` (the Email object), ``get`` (reads), ``filters`` (JMAP filters -> the store's search AST),
``query`` (query and queryChanges, run by ``store.search``) and ``set_plan`` (create/update/import validation).

IMAP and JMAP see one mailstore: an email's id is its IMAP EMAILID, its keywords are the IMAP flags
(``$seen`` is ``\\Seen`` — the same bits), a ``\\Deleted`` membership is invisible here, and an email with no
visible membership does not exist for JMAP. The Email state is the modseq of the newest Email change.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from janusmail.jmap.context import JmapContext, parse_state, run_store
from janusmail.jmap.engine import (
    Call,
    ChangeEntry,
    ChangeLog,
    Comparator,
    Engine,
    MethodError,
    QueryChangesResult,
    QueryResult,
    SetError,
    SetResult,
    TypeAdapter,
    invalid_arguments,
    register_standard,
)
from janusmail.jmap.engine.args import check_known_arguments, read_id, read_string
from janusmail.jmap.engine.types import is_creation_ref, is_id
from janusmail.jmap.types.email.filters import SORT_OPTIONS, compile_comparator, compile_condition
from janusmail.jmap.types.email.get import get_emails
from janusmail.jmap.types.email.props import (
    ALL_PROPERTIES,
    DEFAULT_PROPERTIES,
    PARSE_DEFAULT_PROPERTIES,
    EmailBuilder,
    check_properties,
    memory_reader,
    parse_header_prop,
    read_body_options,
)
from janusmail.jmap.types.email.query import QuerySpec, run_query, run_query_changes
from janusmail.jmap.types.email.set_plan import (
    CreatePlan,
    keywords_value,
    mailbox_ids_value,
    parse_update,
    plan_create,
    read_blob,
    read_blobs,
    received_at_value,
    received_from_headers,
    store_error_to_set_error,
)
from janusmail.mime.compose import ComposeError, compose_message
from janusmail.mime.parse import parse_message
from janusmail.store.model import (
    Delivered,
    IngestItem,
    NotFound,
    OverQuota,
    StorageUnavailable,
    StoreError,
    TooLarge,
)
from janusmail.store.visible_emails import SetOutcome

__all__ = ["EMAIL_QUERY_SORT_OPTIONS", "MAIL", "EmailAdapter", "register"]

MAIL = "urn:ietf:params:jmap:mail"
#: Read by the Session resource for ``emailQuerySortOptions``.
EMAIL_QUERY_SORT_OPTIONS = SORT_OPTIONS
#: Sum of attachment sizes allowed in Email/set create (the Session's maxSizeAttachmentsPerEmail default).
MAX_ATTACHMENTS_SIZE = 50_000_000
_OPS = {"c": "created", "u": "updated", "d": "destroyed"}
_BODY_ARGS = frozenset(
    {"bodyProperties", "fetchTextBodyValues", "fetchHTMLBodyValues", "fetchAllBodyValues", "maxBodyValueBytes"}
)


# -- synchronous store-side helpers ---------------------------------------------------------------------------


def _change_log(store: Any, account_id: str, after: int, skip: int, limit: int) -> ChangeLog:
    """The Email change log. An update that left an email with only \\Deleted memberships made it vanish
    for JMAP (Email/get says notFound), so it is reported as destroyed."""
    current = store.changes.kind_state(account_id, "Email")  # read first: never newer than the rows we return
    rows = store.changes.since(account_id, "Email", after, skip + limit)[skip:]
    updated = list({r.object_id for r in rows if r.op == "u"})
    visible = store.visible_emails.among(account_id, updated) if updated else set()
    entries = []
    for r in rows:
        op = _OPS.get(r.op, "updated")
        if r.op == "u" and r.object_id not in visible:
            op = "destroyed"
        entries.append(ChangeEntry(r.modseq, r.object_id, op))
    return ChangeLog(entries, current)


def _set_errors(outcome: SetOutcome) -> dict[str, SetError]:
    """The store's per-email outcome of a /set's writes as SetErrors by id (emails that are not visible:
    unknown, another account's, only \\Deleted, are notFound)."""
    failed = {i: store_error_to_set_error(i, err) for i, err in outcome.update_errors.items()}
    failed.update({i: SetError("notFound") for i in outcome.not_destroyed})
    return failed




def _source_email(store: Any, account_id: str, email_id: str) -> tuple[bytes, dict[str, Any]] | None:
    """Raw bytes plus keywords and receivedAt of a visible email (Email/copy's source)."""
    builder = EmailBuilder(frozenset({"id", "keywords", "receivedAt"}))
    found = get_emails(store, account_id, [email_id], builder)
    if not found:
        return None
    return store.emails.raw(account_id, email_id), found[0]


def _create_inputs(
    store: Any, account_id: str, mailbox_ids: list[str], blob_ids: list[str]
) -> tuple[set[str], dict[str, bytes | None]]:
    """On a reader thread, for the creates of one Email/set: which of their mailboxes the account does not have,
    and the bytes of the blobs their attachments name (None: no such blob)."""
    missing = set(store.mailboxes.unknown(account_id, mailbox_ids)) if mailbox_ids else set()
    return missing, (read_blobs(store, account_id, blob_ids) if blob_ids else {})


def _compose(plan: CreatePlan, missing: set[str], contents: dict[str, bytes | None], domain: str) -> IngestItem:
    """The message one planned create stores, or the SetError that refuses it before the store is asked."""
    gone = [m for m in plan.mailbox_ids if m in missing]
    if gone:
        raise SetError("invalidProperties", f"unknown mailbox {gone[0]}", properties=["mailboxIds"])
    blob_ids = plan.blob_ids()
    if blob_ids:
        not_found = [b for b in blob_ids if contents.get(b) is None]
        if not_found:
            raise SetError("blobNotFound", "no such blob", notFound=not_found)
        if sum(len(contents[b] or b"") for b in blob_ids) > MAX_ATTACHMENTS_SIZE:
            raise SetError("tooLarge", "the attachments are too large")
        plan.fill({b: contents[b] or b"" for b in blob_ids})
    try:
        raw = compose_message(plan.email, domain)
    except ComposeError as exc:
        raise SetError("invalidProperties", str(exc), properties=[exc.prop or "bodyStructure"]) from None
    return IngestItem(raw, tuple(plan.mailbox_ids), tuple(plan.keywords), plan.received_at)


def _account_domain(ctx: JmapContext) -> str:
    """The domain of the caller's address (Message-IDs of composed mail are minted in it)."""
    return ctx.principal.address.rpartition("@")[2] or "localhost"


# -- the adapter ------------------------------------------------------------------------------------------------


class EmailAdapter(TypeAdapter):
    properties = ALL_PROPERTIES | {"id"}
    default_properties = DEFAULT_PROPERTIES
    server_set_properties = frozenset({"id", "blobId", "threadId", "size", "hasAttachment", "preview"})
    query_reports_state = True  # the store reads the Email state in the query's own snapshot
    extra_arguments = {
        "get": _BODY_ARGS,
        "query": frozenset({"collapseThreads"}),
        "queryChanges": frozenset({"collapseThreads"}),
    }

    def __init__(self) -> None:
        # Updates of one /set, keyed by id(call): applied together when its transaction closes (one store
        # transaction and one fsync for "mark 100 read", instead of 100), failures reported by after_set.
        self._pending: dict[int, tuple[dict[str, Any], list[str]]] = {}
        self._failed: dict[int, dict[str, SetError]] = {}

    def is_property(self, name: str) -> bool:
        return name in self.properties or parse_header_prop(name) is not None

    # -- reading ---------------------------------------------------------------------------------------

    async def state(self, call: Call) -> int:
        return await run_store(call.ctx, call.ctx.store.changes.kind_state, call.account_id, "Email")

    async def get(
        self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int
    ) -> list[dict[str, Any]]:
        builder = EmailBuilder(properties, read_body_options(call.extra))
        store = call.ctx.store
        if ids is None:
            ids = await run_store(call.ctx, store.visible_emails.newest, call.account_id, limit)
        if not ids:
            return []
        return await run_store(call.ctx, get_emails, store, call.account_id, list(ids), builder)

    async def change_log(self, call: Call, after_modseq: int, skip: int, limit: int) -> ChangeLog:
        return await run_store(call.ctx, _change_log, call.ctx.store, call.account_id, after_modseq, skip, limit)

    # -- writing ---------------------------------------------------------------------------------------

    async def create(self, call: Call, creation_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        (made,) = await self.create_many(call, [(creation_id, obj)])
        if isinstance(made, SetError):
            raise made
        return made

    async def create_many(
        self, call: Call, creates: list[tuple[str, dict[str, Any]]]
    ) -> list[dict[str, Any] | SetError]:
        """Every create of the wave planned and composed first (pure, each refused alone), their mailboxes and
        blobs looked up in one read, then all stored by ONE ``store.emails.ingest_each``: one write and one
        commit for the call instead of one per email, each email still stored or refused on its own (a full
        quota refuses the ones that no longer fit, in order)."""
        ctx, store, account_id = call.ctx, call.ctx.store, call.account_id
        out: list[dict[str, Any] | SetError | None] = [None] * len(creates)
        plans: dict[int, CreatePlan] = {}
        for i, (_, obj) in enumerate(creates):
            try:
                plans[i] = plan_create(ctx, obj)
            except SetError as exc:
                out[i] = exc
        items: list[tuple[int, IngestItem]] = []
        if plans:
            boxes = sorted({m for plan in plans.values() for m in plan.mailbox_ids})
            blob_ids = list(dict.fromkeys(b for plan in plans.values() for b in plan.blob_ids()))
            missing, contents = await run_store(ctx, _create_inputs, store, account_id, boxes, blob_ids)
            domain = _account_domain(ctx)
            for i, plan in plans.items():
                try:
                    items.append((i, _compose(plan, missing, contents, domain)))
                except SetError as exc:
                    out[i] = exc
        if items:
            stored = await _ingest_each(ctx, account_id, [item for _, item in items])
            for (i, _), res in zip(items, stored, strict=True):
                if isinstance(res, StoreError):
                    out[i] = _ingest_error(res, store.max_message_size)
                else:
                    out[i] = {"id": res.email_id, "blobId": res.blob_id, "threadId": res.thread_id, "size": res.size}
        answers: list[dict[str, Any] | SetError] = []
        for r in out:
            assert r is not None  # every create got its answer above
            answers.append(r)
        return answers

    def set_transaction(self, call: Call) -> contextlib.AbstractAsyncContextManager[Any]:
        return self._batch(call)

    @contextlib.asynccontextmanager
    async def _batch(self, call: Call) -> AsyncIterator[None]:
        key = id(call)
        self._pending[key] = ({}, [])
        try:
            yield
            updates, destroys = self._pending[key]
            if updates or destroys:
                store = call.ctx.store
                outcome = await run_store(call.ctx, store.visible_emails.apply, call.account_id, updates, destroys)
                self._failed[key] = _set_errors(outcome)
        finally:
            self._pending.pop(key, None)

    async def update(self, call: Call, id: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        try:
            upd = parse_update(call.ctx, patch)  # patch errors are reported right away
        except SetError:
            # An unknown record is notFound whatever its patch says (RFC 8620 §5.3): look only on this path.
            store = call.ctx.store
            if not await run_store(call.ctx, store.visible_emails.among, call.account_id, [id]):
                raise SetError("notFound") from None
            raise
        pending = self._pending.get(builtins.id(call))
        if pending is not None:
            pending[0][id] = upd
            return None
        store = call.ctx.store
        failed = _set_errors(await run_store(call.ctx, store.visible_emails.apply, call.account_id, {id: upd}))
        if id in failed:
            raise failed[id]
        return None

    async def after_set(self, call: Call, result: SetResult) -> None:
        failed = self._failed.pop(id(call), {})
        for email_id, err in failed.items():
            if email_id in result.updated:
                del result.updated[email_id]
                result.not_updated[email_id] = err
            elif email_id in result.destroyed:
                result.not_destroyed[email_id] = err
        if failed:
            result.destroyed[:] = [i for i in result.destroyed if i not in failed]

    async def destroy(self, call: Call, id: str) -> None:
        pending = self._pending.get(builtins.id(call))
        if pending is not None:
            pending[1].append(id)
            return
        store = call.ctx.store
        outcome = await run_store(call.ctx, store.visible_emails.apply, call.account_id, None, [id])
        if outcome.not_destroyed:
            raise SetError("notFound")

    async def copy(
        self, call: Call, from_account_id: str, creation_id: str, source_id: str, overrides: dict[str, Any]
    ) -> dict[str, Any]:
        """Copy an email between accounts (RFC 8621 §4.7): only mailboxIds, keywords and receivedAt may be
        set; keywords and receivedAt default to the original's."""
        bad = sorted(k for k in overrides if k not in ("mailboxIds", "keywords", "receivedAt"))
        if bad:
            raise SetError("invalidProperties", "only mailboxIds, keywords and receivedAt may be set", properties=bad)
        ctx, store = call.ctx, call.ctx.store
        source = await run_store(ctx, _source_email, store, from_account_id, source_id)
        if source is None:
            raise SetError("notFound", "no such email in the source account")
        raw, original = source
        if "mailboxIds" not in overrides:
            raise SetError("invalidProperties", "mailboxIds must be given", properties=["mailboxIds"])
        mailbox_ids = mailbox_ids_value(ctx, overrides["mailboxIds"])
        keywords = keywords_value(overrides["keywords"]) if "keywords" in overrides else list(original["keywords"])
        received = (
            received_at_value(overrides["receivedAt"])
            if overrides.get("receivedAt") is not None
            else None
        )
        if received is None:
            from janusmail.jmap.engine.types import parse_utc_date

            received = int(parse_utc_date(original["receivedAt"]).timestamp())
        missing = await run_store(ctx, store.mailboxes.unknown, call.account_id, mailbox_ids)
        if missing:
            raise SetError("invalidProperties", f"unknown mailbox {missing[0]}", properties=["mailboxIds"])
        try:
            done = await store.deliver(call.account_id, raw, tuple(mailbox_ids), tuple(keywords), received)
        except OverQuota:
            raise _over_quota() from None
        return {"id": done.email_id, "blobId": done.blob_id, "threadId": done.thread_id, "size": done.size}

    # -- querying -------------------------------------------------------------------------------------

    async def compile_condition(self, call: Call, condition: dict[str, Any]) -> Any:
        return compile_condition(condition)

    async def compile_comparator(self, call: Call, comparator: Comparator) -> Any:
        return compile_comparator(comparator)

    @staticmethod
    def _collapse(call: Call) -> bool:
        value = call.extra.get("collapseThreads")
        if value is not None and type(value) is not bool:
            raise invalid_arguments("'collapseThreads' must be a boolean")
        return bool(value)

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
        spec = QuerySpec(filter, tuple(sort), self._collapse(call))
        out = await run_query(
            call.ctx, call.account_id, spec, position, limit, anchor, anchor_offset, calculate_total
        )
        return QueryResult(out.ids, out.position, out.total, str(out.state), can_calculate_changes=True)

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
        try:
            since = parse_state(since_query_state)
        except ValueError:
            raise MethodError("cannotCalculateChanges", description="unknown query state") from None
        spec = QuerySpec(filter, tuple(sort), self._collapse(call))
        out = await run_query_changes(call.ctx, call.account_id, spec, since, up_to_id, max_changes)
        return QueryChangesResult(since_query_state, str(out.new_state), out.removed, out.added, out.total)


# -- Email/import (RFC 8621 §4.8) ---------------------------------------------------------------------------------


def _read_imports(
    store: Any, account_id: str, items: dict[str, tuple[str, list[str], list[str], int | None]]
) -> dict[str, IngestItem | SetError]:
    """Per creation id the message to store, or the SetError of a blobId the account has no blob for.

    The blob id is JMAP's (a stored blob or a body part of one: ``janusmail.jmap.blobs``), so the bytes are
    read here, on a reader thread, and the store gets plain messages (``store.emails.ingest_each``). Without
    a receivedAt, an import is dated by its newest Received header field (RFC 8621 §4.8), else by the store."""
    out: dict[str, IngestItem | SetError] = {}
    contents = read_blobs(store, account_id, [blob_id for blob_id, *_ in items.values()])
    for cid, (blob_id, boxes, keywords, received) in items.items():
        raw = contents[blob_id]
        if raw is None:
            # RFC 8621 §4.8: an unknown blobId is an invalid property of the EmailImport, not blobNotFound.
            out[cid] = SetError("invalidProperties", "no such blob", properties=["blobId"])
            continue
        if received is None:
            received = received_from_headers(raw)
        out[cid] = IngestItem(raw, tuple(boxes), tuple(keywords), received)
    return out


def _ingest_error(exc: StoreError, max_size: int) -> SetError:
    """The SetError of an Email/import or Email/set create the store refused (``store.emails.ingest_each``'s
    per-item result)."""
    if isinstance(exc, StorageUnavailable):  # only when imports of this call may be stored already
        return SetError("serverUnavailable", str(exc))
    if isinstance(exc, NotFound):
        return SetError("invalidProperties", "unknown mailbox", properties=["mailboxIds"])
    if isinstance(exc, TooLarge):
        return SetError("tooLarge", "the message is too large", maxSize=max_size)
    if isinstance(exc, OverQuota):
        return _over_quota()
    return store_error_to_set_error("", exc)


def _over_quota() -> SetError:
    """RFC 8620 §5.3 overQuota: the account's quota (janusmail/store/quotas.py, JMAP Quota/get) is full."""
    return SetError("overQuota", "the account's quota would be exceeded (see Quota/get)")


async def _ingest_each(ctx: Any, account_id: str, items: list[IngestItem]) -> list[Delivered | StoreError]:
    """``store.emails.ingest_each`` of these messages, each stored or refused on its own; their parse and their
    bytes' sync run first on the store's ingest threads, so the writer lane (where every write waits its turn
    under SQLite's one write lock) runs their statements only."""
    prepared = await ctx.store.prepare_ingest(account_id, items, each=True)
    return await run_store(ctx, ctx.store.emails.ingest_each, account_id, items, prepared)


async def email_import(ctx: Any, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    check_known_arguments(args, {"accountId", "ifInState", "emails"})
    account_id = read_id(args, "accountId", required=True, nullable=False)
    assert account_id is not None
    await ctx.check_account(account_id, write=True)
    if_in_state = read_string(args, "ifInState")
    requests = args.get("emails")
    if type(requests) is not dict or not all(is_id(k) for k in requests):
        raise invalid_arguments("'emails' must map creation ids to EmailImport objects")
    if len(requests) > ctx.limits.max_objects_in_set:
        raise MethodError("requestTooLarge", description=f"at most {ctx.limits.max_objects_in_set} imports")
    store = ctx.store
    old_state = str(await run_store(ctx, store.changes.kind_state, account_id, "Email"))
    if if_in_state is not None and if_in_state != old_state:
        raise MethodError("stateMismatch")
    not_created: dict[str, SetError] = {}
    items: dict[str, tuple[str, list[str], list[str], int | None]] = {}
    for cid, obj in requests.items():
        try:
            if type(obj) is not dict:
                raise SetError("invalidProperties", "an EmailImport must be an object")
            bad = sorted(k for k in obj if k not in ("blobId", "mailboxIds", "keywords", "receivedAt"))
            if bad:
                raise SetError("invalidProperties", "unknown properties", properties=bad)
            blob_id = obj.get("blobId")
            if is_creation_ref(blob_id):
                blob_id = ctx.resolve_creation_id(blob_id)
            if not is_id(blob_id):
                raise SetError("invalidProperties", "blobId must be an Id", properties=["blobId"])
            boxes = mailbox_ids_value(ctx, obj.get("mailboxIds"))
            keywords = keywords_value(obj["keywords"]) if obj.get("keywords") is not None else []
            received = received_at_value(obj["receivedAt"]) if obj.get("receivedAt") is not None else None
            items[cid] = (blob_id, boxes, keywords, received)
        except SetError as exc:
            not_created[cid] = exc
    created: dict[str, dict[str, Any]] = {}
    loaded = await run_store(ctx, _read_imports, store, account_id, items) if items else {}
    ready = {cid: item for cid, item in loaded.items() if isinstance(item, IngestItem)}
    results = await _ingest_each(ctx, account_id, list(ready.values())) if ready else []
    stored = dict(zip(ready, results, strict=True))
    for cid in items:
        res = stored.get(cid, loaded[cid])
        if isinstance(res, SetError):
            not_created[cid] = res
        elif isinstance(res, StoreError):
            not_created[cid] = _ingest_error(res, store.max_message_size)
        else:
            created[cid] = {"id": res.email_id, "blobId": res.blob_id, "threadId": res.thread_id, "size": res.size}
            ctx.record_creation(cid, res.email_id)
    new_state = str(await run_store(ctx, store.changes.kind_state, account_id, "Email"))
    return [
        (
            "Email/import",
            {
                "accountId": account_id,
                "oldState": old_state,
                "newState": new_state,
                "created": created or None,
                "notCreated": {k: e.to_dict() for k, e in not_created.items()} or None,
            },
        )
    ]


# -- Email/parse (RFC 8621 §4.9) ----------------------------------------------------------------------------------


def _parse_blobs(store: Any, account_id: str, blob_ids: list[str], builder: EmailBuilder) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    not_parsable: list[str] = []
    not_found: list[str] = []
    for blob_id in blob_ids:
        raw = read_blob(store, account_id, blob_id) if is_id(blob_id) else None
        if raw is None:
            not_found.append(blob_id)
            continue
        cache = parse_message(raw)
        if not raw.strip() or cache.get("damaged"):
            not_parsable.append(blob_id)
            continue
        meta = {
            "id": None,
            "blobId": blob_id,
            "threadId": None,
            "mailboxIds": None,
            "keywords": None,
            "size": len(raw),
            "receivedAt": None,
            "preview": cache.get("preview", ""),
            "hasAttachment": bool(cache.get("hasAttachment")),
        }
        parsed[blob_id] = builder.build(meta, cache, memory_reader(raw))
    return {"parsed": parsed or None, "notParsable": not_parsable or None, "notFound": not_found or None}


async def email_parse(ctx: Any, args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    check_known_arguments(args, {"accountId", "blobIds", "properties"} | _BODY_ARGS)
    account_id = read_id(args, "accountId", required=True, nullable=False)
    assert account_id is not None
    await ctx.check_account(account_id, write=False)
    blob_ids = args.get("blobIds")
    if type(blob_ids) is not list or not all(type(b) is str for b in blob_ids):
        raise invalid_arguments("'blobIds' must be an array of Ids")
    if len(blob_ids) > ctx.limits.max_objects_in_get:
        raise MethodError("requestTooLarge", description=f"at most {ctx.limits.max_objects_in_get} blobs")
    names = args.get("properties")
    if names is None:
        properties = PARSE_DEFAULT_PROPERTIES
    else:
        if type(names) is not list or not all(type(n) is str for n in names):
            raise invalid_arguments("'properties' must be an array of strings")
        check_properties(names, ALL_PROPERTIES | {"id"})
        properties = frozenset(names)
    builder = EmailBuilder(properties, read_body_options(args))
    ids = list(dict.fromkeys(blob_ids))
    out = await run_store(ctx, _parse_blobs, ctx.store, account_id, ids, builder)
    return [("Email/parse", {"accountId": account_id, **out})]


def register(engine: Engine) -> None:
    register_standard(
        engine, "Email", MAIL, EmailAdapter(), ("get", "changes", "set", "copy", "query", "queryChanges")
    )
    engine.register("Email/import", MAIL, email_import)
    engine.register("Email/parse", MAIL, email_parse)
