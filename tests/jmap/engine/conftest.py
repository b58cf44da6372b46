"""Toy data types served by the generic engine, for the engine's own tests.

``Note`` is a full read/write type over an in-memory store with a change log keyed by an integer modseq
(one modseq per transaction, like the real store). ``Prefs`` is a singleton type. ``Email``/``Thread`` are
read-only stand-ins so the RFC 8620 §3.7 result-reference chain can run end to end.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from janusmail.jmap.engine import (
    CORE,
    AccountAccess,
    Call,
    CallContext,
    ChangeEntry,
    ChangeLog,
    Comparator,
    Engine,
    Limits,
    MethodError,
    QueryChangesResult,
    QueryResult,
    SetError,
    StaticAccounts,
    TypeAdapter,
    apply_patch,
    diff_query,
    invalid_arguments,
    matches,
    register_standard,
    window,
)
from janusmail.jmap.engine.types import JmapTypeError, format_utc_date, is_creation_ref, is_id, parse_utc_date

NOTES = "urn:example:notes"
MAIL = "urn:ietf:params:jmap:mail"


@dataclass
class ToyAccount:
    modseq: int = 0
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    log: list[ChangeEntry] = field(default_factory=list)
    #: id -> [(modseq, record or None)], to rebuild old query results for /queryChanges.
    versions: dict[str, list[tuple[int, dict[str, Any] | None]]] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)  # copied note id -> source id
    log_floor: int = 0  # log rows at or below this modseq were pruned
    in_txn: bool = False
    txn_modseq: int | None = None


class ToyStore:
    def __init__(self) -> None:
        self.accounts: dict[str, ToyAccount] = {}
        self._ids = itertools.count(1)
        self.clock = 1_700_000_000

    def account(self, account_id: str) -> ToyAccount:
        return self.accounts.setdefault(account_id, ToyAccount())

    def new_id(self) -> str:
        return f"N{next(self._ids):04d}x"

    @contextlib.asynccontextmanager
    async def transaction(self, account_id: str) -> AsyncIterator[None]:
        """All writes inside share one modseq (like one store transaction); an exception rolls back."""
        acc = self.account(account_id)
        if acc.in_txn:  # nested: join the outer transaction
            yield
            return
        snapshot = copy.deepcopy(acc)
        acc.in_txn = True
        try:
            yield
        except BaseException:
            self.accounts[account_id] = snapshot
            raise
        finally:
            self.account(account_id).in_txn = False
            self.account(account_id).txn_modseq = None

    def write(self, account_id: str, id_: str, record: dict[str, Any] | None, op: str) -> None:
        acc = self.account(account_id)
        if acc.in_txn and acc.txn_modseq is not None:
            stamp = acc.txn_modseq
        else:
            acc.modseq += 1
            stamp = acc.modseq
            if acc.in_txn:
                acc.txn_modseq = stamp
        if record is None:
            acc.records.pop(id_, None)
        else:
            acc.records[id_] = copy.deepcopy(record)
        acc.log.append(ChangeEntry(stamp, id_, op))
        acc.versions.setdefault(id_, []).append((stamp, copy.deepcopy(record)))

    def records_at(self, account_id: str, modseq: int) -> dict[str, dict[str, Any]]:
        acc = self.account(account_id)
        out = {}
        for id_, versions in acc.versions.items():
            current = None
            for stamp, record in versions:
                if stamp <= modseq:
                    current = record
            if current is not None:
                out[id_] = current
        return out


NOTE_DEFAULTS: dict[str, Any] = {"body": "", "tags": {}, "pinned": False, "parentId": None}
MAX_BODY = 1000


class NoteAdapter(TypeAdapter):
    properties = frozenset({"id", "title", "body", "tags", "pinned", "parentId", "created", "size"})
    default_properties = frozenset({"id", "title", "tags", "pinned", "parentId", "created", "size"})
    server_set_properties = frozenset({"id", "created", "size"})
    extra_arguments = {"get": frozenset({"bodyMaxLength"})}
    _IMMUTABLE = frozenset({"id", "created"})

    def __init__(self, store: ToyStore, quota: int = 50) -> None:
        self.store = store
        self.quota = quota

    # -- reading
    async def state(self, call: Call) -> int:
        return self.store.account(call.account_id).modseq

    async def get(self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int):
        records = self.store.account(call.account_id).records
        chosen = list(records.values())[:limit] if ids is None else [records[i] for i in ids if i in records]
        max_len = call.extra.get("bodyMaxLength")
        if max_len is not None and (type(max_len) is not int or max_len < 0):
            raise invalid_arguments("bodyMaxLength must be an UnsignedInt")
        out = []
        for record in chosen:
            record = dict(record)
            if max_len is not None:
                record["body"] = record["body"][:max_len]
            out.append(record)
        return out

    async def change_log(self, call: Call, after_modseq: int, skip: int, limit: int) -> ChangeLog:
        acc = self.store.account(call.account_id)
        if after_modseq < acc.log_floor:
            raise MethodError("cannotCalculateChanges")
        rows = [e for e in acc.log if e.modseq > after_modseq]
        return ChangeLog(rows[skip : skip + limit], acc.modseq)

    # -- writing
    def set_transaction(self, call: Call):
        return self.store.transaction(call.account_id)

    def _validate(self, call: Call, record: dict[str, Any]) -> None:
        bad = []
        if type(record.get("title")) is not str or not record["title"]:
            bad.append("title")
        if type(record.get("body")) is not str:
            bad.append("body")
        tags = record.get("tags")
        if type(tags) is not dict or not all(v is True for v in tags.values()):
            bad.append("tags")
        if type(record.get("pinned")) is not bool:
            bad.append("pinned")
        parent = record.get("parentId")
        if parent is not None:
            real = call.ctx.resolve_creation_id(parent) if is_creation_ref(parent) else parent
            if not is_id(real) or real not in self.store.account(call.account_id).records:
                bad.append("parentId")
            else:
                record["parentId"] = real
        if bad:
            raise SetError("invalidProperties", "invalid values", properties=bad)
        if len(record["body"]) > MAX_BODY:
            raise SetError("tooLarge", f"body is longer than {MAX_BODY}")

    async def create(self, call: Call, creation_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        acc = self.store.account(call.account_id)
        if len(acc.records) >= self.quota:
            raise SetError("overQuota")
        record = {**copy.deepcopy(NOTE_DEFAULTS), **obj}
        self._validate(call, record)
        new_id = self.store.new_id()
        self.store.clock += 1
        record.update(id=new_id, created=format_utc_date(self.store.clock), size=len(record["body"]))
        self.store.write(call.account_id, new_id, record, "created")
        server = {"id": new_id, "created": record["created"], "size": record["size"]}
        server.update({k: record[k] for k in NOTE_DEFAULTS if k not in obj})
        return server

    async def update(self, call: Call, id: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        acc = self.store.account(call.account_id)
        current = acc.records.get(id)
        if current is None:
            raise SetError("notFound")
        new = apply_patch(current, patch, defaults=NOTE_DEFAULTS)
        changed_server = sorted(p for p in self.server_set_properties if new.get(p) != current.get(p))
        if changed_server:
            raise SetError("invalidProperties", "server-set", properties=changed_server)
        self._validate(call, new)
        new["size"] = len(new["body"])
        self.store.write(call.account_id, id, new, "updated")
        return {"size": new["size"]} if new["size"] != current["size"] else None

    async def destroy(self, call: Call, id: str) -> None:
        acc = self.store.account(call.account_id)
        record = acc.records.get(id)
        if record is None:
            raise SetError("notFound")
        if record["pinned"]:
            raise SetError("forbidden", "pinned notes cannot be destroyed")
        self.store.write(call.account_id, id, None, "destroyed")

    async def copy(self, call, from_account_id, creation_id, source_id, overrides):
        source = self.store.account(from_account_id).records.get(source_id)
        if source is None:
            raise SetError("notFound")
        acc = self.store.account(call.account_id)
        for existing, origin in acc.origins.items():
            if origin == source_id and existing in acc.records:
                raise SetError("alreadyExists", existingId=existing)
        obj = {k: v for k, v in source.items() if k not in self.server_set_properties and k != "parentId"}
        obj.update(overrides)
        created = await self.create(call, creation_id, obj)
        acc.origins[created["id"]] = source_id
        return created

    # -- querying
    async def compile_condition(self, call: Call, condition: dict[str, Any]):
        tests = []
        for key, value in condition.items():
            if key == "text":
                if type(value) is not str:
                    raise invalid_arguments("text must be a string")
                needle = value.lower()
                tests.append(lambda r, n=needle: n in r["title"].lower() or n in r["body"].lower())
            elif key == "hasTag":
                if type(value) is not str:
                    raise invalid_arguments("hasTag must be a string")
                tests.append(lambda r, t=value: t in r["tags"])
            elif key == "pinned":
                if type(value) is not bool:
                    raise invalid_arguments("pinned must be a boolean")
                tests.append(lambda r, p=value: r["pinned"] is p)
            elif key == "after":
                try:
                    when = parse_utc_date(value, "after")
                except JmapTypeError as exc:
                    raise invalid_arguments(str(exc)) from None
                tests.append(lambda r, w=when: parse_utc_date(r["created"]) > w)
            else:
                raise MethodError("unsupportedFilter", description=f"cannot filter on {key!r}")
        return ("cond", frozenset(k for k in condition if k != "after"), tests)

    async def compile_comparator(self, call: Call, comparator: Comparator):
        prop = comparator.property
        if prop not in ("title", "created", "size") or comparator.extra:
            raise MethodError("unsupportedSort", description=f"cannot sort on {prop!r}")
        if comparator.collation not in (None, "i;ascii-casemap", "i;unicode-casemap"):
            raise MethodError("unsupportedSort", description="unknown collation")
        return (prop, comparator.is_ascending)

    def _run(self, records: dict[str, dict[str, Any]], filter_: Any, sort: list[Any]) -> list[str]:
        chosen = [r for r in records.values() if matches(filter_, lambda c, r=r: all(t(r) for t in c[2]))]
        chosen.sort(key=lambda r: (r["created"], r["id"]))  # default stable order
        for prop, ascending in reversed(sort):
            key = (lambda r: r["title"].lower()) if prop == "title" else (lambda r, p=prop: r[p])
            chosen.sort(key=key, reverse=not ascending)
        return [r["id"] for r in chosen]

    async def query(self, call, filter, sort, position, limit, anchor, anchor_offset, calculate_total):
        acc = self.store.account(call.account_id)
        ids = self._run(acc.records, filter, sort)
        page, start = window(ids, position, limit, anchor, anchor_offset)
        return QueryResult(page, start, len(ids), str(acc.modseq), can_calculate_changes=True)

    def _mutable(self, filter_: Any, sort: list[Any]) -> bool:
        def props(f: Any) -> set[str]:
            if f is None:
                return set()
            if hasattr(f, "conditions"):
                return set().union(*(props(c) for c in f.conditions)) if f.conditions else set()
            return set(f[1])

        used = props(filter_) | {p for p, _ in sort}
        return bool(used - self._IMMUTABLE)

    async def query_changes(
        self, call, filter, sort, since_query_state, max_changes, up_to_id, calculate_total
    ):
        acc = self.store.account(call.account_id)
        if not since_query_state.isdigit() or int(since_query_state) > acc.modseq:
            raise MethodError("cannotCalculateChanges")
        since = int(since_query_state)
        if since < acc.log_floor:
            raise MethodError("cannotCalculateChanges")
        old_ids = self._run(self.store.records_at(call.account_id, since), filter, sort)
        new_ids = self._run(acc.records, filter, sort)
        changed = {e.id for e in acc.log if e.modseq > since}
        removed, added = diff_query(
            old_ids, new_ids, changed=changed, up_to_id=up_to_id, mutable=self._mutable(filter, sort)
        )
        return QueryChangesResult(since_query_state, str(acc.modseq), removed, added, len(new_ids))


class PrefsAdapter(TypeAdapter):
    """A singleton type (like VacationResponse): exactly one record whose id is ``singleton``."""

    properties = frozenset({"id", "theme"})

    def __init__(self) -> None:
        self.record = {"id": "singleton", "theme": "light"}
        self.modseq = 1

    async def state(self, call: Call) -> int:
        return self.modseq

    async def get(self, call, ids, properties, limit):
        return [self.record]

    async def create(self, call, creation_id, obj):
        raise SetError("singleton", "there is only one Prefs object")

    async def update(self, call, id, patch):
        if id != "singleton":
            raise SetError("notFound")
        new = apply_patch(self.record, patch)
        if type(new.get("theme")) is not str:
            raise SetError("invalidProperties", properties=["theme"])
        self.record = new
        self.modseq += 1
        return None

    async def destroy(self, call, id):
        raise SetError("singleton", "the Prefs object cannot be destroyed")


class StaticAdapter(TypeAdapter):
    """A read-only type over a fixed list of records (the RFC example's Email and Thread)."""

    def __init__(self, records: list[dict[str, Any]], properties: set[str]) -> None:
        self.records = {r["id"]: r for r in records}
        self.properties = frozenset(properties)

    async def state(self, call: Call) -> int:
        return 7

    async def get(self, call, ids, properties, limit):
        if ids is None:
            return list(self.records.values())[:limit]
        return [self.records[i] for i in ids if i in self.records]


class ToyEmailAdapter(StaticAdapter):
    extra_arguments = {"query": frozenset({"collapseThreads"})}

    async def compile_condition(self, call, condition):
        if set(condition) != {"inMailbox"}:
            raise MethodError("unsupportedFilter")
        return condition["inMailbox"]

    async def compile_comparator(self, call, comparator):
        if comparator.property != "receivedAt":
            raise MethodError("unsupportedSort")
        return comparator.is_ascending

    async def query(self, call, filter, sort, position, limit, anchor, anchor_offset, calculate_total):
        rows = [r for r in self.records.values() if matches(filter, lambda m, r=r: m in r["mailboxIds"])]
        for ascending in reversed(sort):
            rows.sort(key=lambda r: r["receivedAt"], reverse=not ascending)
        if call.extra.get("collapseThreads"):
            seen: set[str] = set()
            rows = [r for r in rows if not (r["threadId"] in seen or seen.add(r["threadId"]))]
        ids = [r["id"] for r in rows]
        page, start = window(ids, position, limit, anchor, anchor_offset)
        return QueryResult(page, start, len(ids))


EMAILS = [
    {
        "id": "Mf1",
        "threadId": "Ta",
        "mailboxIds": {"Finbox": True},
        "receivedAt": "2024-01-01T10:00:00Z",
        "subject": "hello",
        "from": [{"name": "Joe", "email": "joe@example.com"}],
    },
    {
        "id": "Mf2",
        "threadId": "Tb",
        "mailboxIds": {"Finbox": True},
        "receivedAt": "2024-01-02T10:00:00Z",
        "subject": "second",
        "from": [{"name": "Ann", "email": "ann@example.com"}],
    },
    {
        "id": "Mf3",
        "threadId": "Ta",
        "mailboxIds": {"Finbox": True},
        "receivedAt": "2024-01-03T10:00:00Z",
        "subject": "Re: hello",
        "from": [{"name": "Bob", "email": "bob@example.com"}],
    },
    {
        "id": "Mf4",
        "threadId": "Tc",
        "mailboxIds": {"Fother": True},
        "receivedAt": "2024-01-04T10:00:00Z",
        "subject": "elsewhere",
        "from": [],
    },
]
THREADS = [
    {"id": "Ta", "emailIds": ["Mf1", "Mf3"]},
    {"id": "Tb", "emailIds": ["Mf2"]},
    {"id": "Tc", "emailIds": ["Mf4"]},
]

ACCOUNTS = StaticAccounts(
    {
        "A1": AccountAccess(),
        "A2": AccountAccess(),
        "RO": AccountAccess(read_only=True),
        "NS": AccountAccess(capabilities=frozenset({CORE})),
    }
)


class Harness:
    """An engine with the toy types registered, plus helpers to run requests."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.store = ToyStore()
        self.engine = Engine(limits or Limits())
        self.notes = NoteAdapter(self.store)
        self.prefs = PrefsAdapter()
        register_standard(
            self.engine, "Note", NOTES, self.notes, ("get", "changes", "set", "copy", "query", "queryChanges")
        )
        register_standard(self.engine, "Prefs", NOTES, self.prefs, ("get", "set"))
        register_standard(
            self.engine,
            "Email",
            MAIL,
            ToyEmailAdapter(EMAILS, {"id", "threadId", "mailboxIds", "receivedAt", "subject", "from"}),
            ("get", "query"),
        )
        register_standard(self.engine, "Thread", MAIL, StaticAdapter(THREADS, {"id", "emailIds"}), ("get",))

    def ctx_factory(self, info):
        return CallContext(info, accounts=ACCOUNTS, app=self.store)

    async def request(self, calls: list[list[Any]], using=(CORE, NOTES, MAIL), created_ids=None) -> dict:
        body: dict[str, Any] = {"using": list(using), "methodCalls": calls}
        if created_ids is not None:
            body["createdIds"] = created_ids
        return await self.engine.run(body, self.ctx_factory, session_state="S1")

    async def call(self, name: str, args: dict[str, Any], **kw: Any) -> list[Any]:
        """Run one call; return its single response ``[name, args, callId]``."""
        out = await self.request([[name, args, "c0"]], **kw)
        assert len(out["methodResponses"]) == 1, out
        return out["methodResponses"][0]

    async def ok(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        resp = await self.call(name, args)
        assert resp[0] == name, resp
        return resp[1]

    async def error(self, name: str, args: dict[str, Any]) -> str:
        resp = await self.call(name, args)
        assert resp[0] == "error", resp
        return resp[1]["type"]

    async def create_notes(self, *titles: str, account: str = "A1", **props: Any) -> list[str]:
        create = {f"k{i}": {"title": t, **props} for i, t in enumerate(titles)}
        res = await self.ok("Note/set", {"accountId": account, "create": create})
        assert res["notCreated"] is None, res
        return [res["created"][f"k{i}"]["id"] for i in range(len(titles))]


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
def make_harness() -> type[Harness]:
    """For tests that need their own Limits: ``make_harness(Limits(...))``."""
    return Harness
