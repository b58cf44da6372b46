"""The contract a data type implements so the generic standard methods (RFC 8620 §5) can serve it.

Why a base class with hooks rather than per-type handlers: argument parsing, state checks, limits,
creation ids, SetError bookkeeping, change folding and query windowing are identical for Mailbox, Email,
Thread, Identity, ... and easy to get subtly wrong. A type module subclasses ``TypeAdapter``, declares its
properties and overrides only the storage hooks for the methods it registers. Every hook receives a ``Call``
(context + account + type-specific arguments) first, so new per-call facts can be added without changing
any signature.

States: the type's state is an integer modification sequence (the store's per-account ``modseq``) and is
shown to clients as its decimal string. See ``changes.py`` for the intermediate states ``/changes`` emits.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .dispatch import CallContext
from .errors import MethodError, SetError

__all__ = [
    "AddedItem",
    "Call",
    "ChangeEntry",
    "ChangeLog",
    "Comparator",
    "FilterOperator",
    "QueryChangesResult",
    "QueryResult",
    "SetResult",
    "TypeAdapter",
]

Response = tuple[str, dict[str, Any]]


@dataclass(slots=True)
class Call:
    """One standard-method call as the adapter sees it."""

    ctx: CallContext
    type_name: str
    #: Full method name, e.g. ``"Mailbox/set"``.
    method: str
    account_id: str
    #: The type-specific arguments the client gave (only names listed in ``extra_arguments``), unvalidated.
    extra: dict[str, Any] = field(default_factory=dict)
    #: Members to add to this method's response object (e.g. Mailbox/changes ``updatedProperties``).
    response_extra: dict[str, Any] = field(default_factory=dict)
    #: Responses to emit after this method's own one, e.g. from ``ctx.invoke("Email/set", ...)``.
    followups: list[Response] = field(default_factory=list)
    #: What the adapter's hooks of this one call hand each other (e.g. EmailSubmission's ``destroy`` leaves the
    #: email ids of the records it removed for ``after_set``, which can no longer read them).
    scratch: dict[str, Any] = field(default_factory=dict)

    def for_account(self, account_id: str) -> Call:
        """The same call aimed at another account (``/copy`` reads the source account's state this way)."""
        return replace(self, account_id=account_id, response_extra={}, followups=[], scratch={})


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    """One row of the change log: object ``id`` was touched by the transaction that wrote ``modseq``.

    ``op`` is ``"created"``, ``"updated"`` or ``"destroyed"``; any other string (e.g. Mailbox's
    counts-only change) counts as updated and is passed through to ``decorate_changes``.
    """

    modseq: int
    id: str
    op: str


@dataclass(frozen=True, slots=True)
class ChangeLog:
    entries: list[ChangeEntry]
    #: The type's current state. Read it no later than the entries (same transaction is best): entries newer
    #: than it are ignored, so a too-new value would hide changes.
    current_modseq: int


@dataclass(frozen=True, slots=True)
class FilterOperator:
    """``{"operator": "AND"|"OR"|"NOT", "conditions": [...]}``; conditions are FilterOperators or whatever
    ``compile_condition`` returned for each FilterCondition."""

    operator: str
    conditions: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Comparator:
    """One sort criterion (§5.5); ``extra`` holds type-specific members such as Email's ``keyword``."""

    property: str
    is_ascending: bool = True
    collation: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class QueryResult:
    #: The window of ids, starting at ``position``; at most ``limit`` of them.
    ids: list[str]
    #: Zero-based index of ``ids[0]`` in the full result list (after resolving a negative position/anchor).
    position: int
    #: Total number of results; required when ``calculate_total`` was true, else may be None.
    total: int | None = None
    #: None means "the type's state as a string" (read before the query ran).
    query_state: str | None = None
    can_calculate_changes: bool = False


@dataclass(frozen=True, slots=True)
class AddedItem:
    id: str
    index: int


@dataclass(slots=True)
class QueryChangesResult:
    old_query_state: str
    new_query_state: str
    removed: list[str]
    #: Sorted by index, lowest first.
    added: list[AddedItem]
    total: int | None = None


@dataclass(slots=True)
class SetResult:
    """What a ``/set`` did, handed to ``after_set`` (e.g. for EmailSubmission's onSuccess* implicit calls)."""

    created: dict[str, dict[str, Any]] = field(default_factory=dict)
    updated: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    destroyed: list[str] = field(default_factory=list)
    not_created: dict[str, SetError] = field(default_factory=dict)
    not_updated: dict[str, SetError] = field(default_factory=dict)
    not_destroyed: dict[str, SetError] = field(default_factory=dict)


class TypeAdapter:
    """Subclass per data type. Class attributes describe the type; async hooks reach the store.

    Required for each registered method:
      get            -> ``state``, ``get``
      changes        -> ``change_log``
      set            -> ``state``, ``create`` (or ``create_many``) / ``update`` / ``destroy`` (the default raises
                        forbidden)
      query          -> ``state``, ``compile_condition``, ``compile_comparator``, ``query``
      queryChanges   -> the query compilers plus ``query_changes``
      copy           -> ``state``, ``copy``
    Errors: raise ``MethodError`` from any hook to fail the whole call (before changing anything), or
    ``SetError`` from create/update/destroy/copy to fail one record.
    """

    #: Every property name of the type, ``"id"`` included.
    properties: frozenset[str] = frozenset({"id"})
    #: Returned by /get when ``properties`` is null; None means all of ``properties``.
    default_properties: frozenset[str] | None = None
    #: Properties only the server sets: a /set create that includes one fails with invalidProperties.
    server_set_properties: frozenset[str] = frozenset({"id"})
    #: Server-set properties a /set create may nevertheless include: RFC 8620 §5.3 allows a server-set property
    #: whose value is the one the server would set, so ``create`` receives them and must refuse any other value
    #: (naming the property path, e.g. ``myRights/mayDelete``). The others are refused by the engine.
    create_may_echo: frozenset[str] = frozenset()
    #: Whether /get with ``ids: null`` returns everything (still capped by maxObjectsInGet).
    can_get_all: bool = True
    #: Whether ``query`` always reports the state it read in its own snapshot (QueryResult.query_state): then
    #: /query does not read ``state`` first, saving a store round trip per request.
    query_reports_state: bool = False
    #: Type-specific argument names per method suffix, e.g. ``{"get": frozenset({"bodyProperties"})}``.
    extra_arguments: dict[str, frozenset[str]] = {}

    def is_property(self, name: str) -> bool:
        """Override for open-ended names (Email's ``header:X-Foo:asText``)."""
        return name in self.properties

    # -- state and reading ------------------------------------------------------------------------

    async def state(self, call: Call) -> int:
        """Current state (modseq) of this type in ``call.account_id``."""
        raise NotImplementedError

    async def get(
        self, call: Call, ids: Sequence[str] | None, properties: frozenset[str], limit: int
    ) -> list[dict[str, Any]]:
        """Records with these ids (skip unknown ids; no need to keep order or dedupe), or all records when
        ``ids`` is None (return at most ``limit``; the engine passes maxObjectsInGet + 1 to detect excess).
        Each record must include ``"id"``; extra properties are trimmed by the engine, so returning whole
        records is fine, but ``properties`` says what is needed."""
        raise NotImplementedError

    async def change_log(self, call: Call, after_modseq: int, skip: int, limit: int) -> ChangeLog:
        """Log rows with modseq > ``after_modseq`` in log order (modseq ascending, then a fixed tie-break
        such as the row's sequence number), skipping the first ``skip`` and returning at most ``limit``.
        SQL: ``WHERE modseq > :after ORDER BY modseq, seq LIMIT :limit OFFSET :skip``.
        Raise ``MethodError("cannotCalculateChanges")`` if the log no longer reaches back that far."""
        raise MethodError("cannotCalculateChanges")

    async def decorate_changes(self, call: Call, response: dict[str, Any], ops: dict[str, set[str]]) -> None:
        """Optional: add type-specific members to a /changes response. ``ops`` maps each id in
        created/updated/destroyed to the set of ops seen for it in this window."""

    # -- writing ----------------------------------------------------------------------------------

    def set_transaction(self, call: Call) -> contextlib.AbstractAsyncContextManager[Any]:
        """Wraps a whole /set or /copy. An exception escaping it (anything but SetError) must roll back:
        the engine then answers serverFail, and a failed method must have changed nothing."""
        return _noop()

    def record_transaction(self, call: Call) -> contextlib.AbstractAsyncContextManager[Any]:
        """Wraps one create/update/destroy; a SetError escapes through it, so a SAVEPOINT here undoes the
        part of the record's change already written (each record change is atomic, §5.3)."""
        return _noop()

    async def create(self, call: Call, creation_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Create one record. ``obj`` holds only known, client-settable properties; resolve any ``#ref``
        values with ``call.ctx.resolve_creation_id``. Return ``{"id": ..., **server-set/defaulted}``."""
        raise SetError("forbidden", "this type cannot be created")

    async def create_many(
        self, call: Call, creates: list[tuple[str, dict[str, Any]]]
    ) -> list[dict[str, Any] | SetError]:
        """Create records of one /set that do not refer to each other (the engine passes each wave of the
        creation order: every ``#creationId`` they name was resolved before). Returns, in order, what ``create``
        would for each record, or the SetError that refused it; the engine records the creation ids.

        The default creates them one by one, each in its ``record_transaction``. Override it when the records
        can be checked first and then stored in one write (one commit for the call, as Email's do); each record
        still succeeds or fails alone (§5.3), and an exception other than SetError fails the whole call."""
        out: list[dict[str, Any] | SetError] = []
        for creation_id, obj in creates:
            try:
                async with self.record_transaction(call):
                    out.append(await self.create(call, creation_id, obj))
            except SetError as exc:
                out.append(exc)
        return out

    async def update(self, call: Call, id: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        """Apply a PatchObject (already checked: valid pointers, no prefix conflicts, known top-level
        properties). ``apply_patch`` implements §5.3 on a dict. Raise SetError("notFound") for unknown ids.
        Return the server-set properties that changed, or None."""
        raise SetError("forbidden", "this type cannot be updated")

    async def destroy(self, call: Call, id: str) -> None:
        raise SetError("forbidden", "this type cannot be destroyed")

    async def after_set(self, call: Call, result: SetResult) -> None:
        """Optional: runs after the /set transaction; append implicit responses to ``call.followups``."""

    async def copy(
        self, call: Call, from_account_id: str, creation_id: str, source_id: str, overrides: dict[str, Any]
    ) -> dict[str, Any]:
        """Copy record ``source_id`` of ``from_account_id`` into ``call.account_id``, with ``overrides``
        replacing properties. Return ``{"id": ..., **server-set}``. Duplicates:
        ``SetError("alreadyExists", existingId=...)``."""
        raise SetError("forbidden", "this type cannot be copied")

    # -- querying ---------------------------------------------------------------------------------

    async def compile_condition(self, call: Call, condition: dict[str, Any]) -> Any:
        """Turn one FilterCondition into whatever ``query`` understands. Raise
        ``MethodError("unsupportedFilter")`` for valid-but-unsupported ones, invalidArguments for bad ones."""
        raise MethodError("unsupportedFilter")

    async def compile_comparator(self, call: Call, comparator: Comparator) -> Any:
        """Check one Comparator (property and collation) and compile it; ``MethodError("unsupportedSort")``."""
        raise MethodError("unsupportedSort")

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
        """Run the query and return the requested window. ``filter`` is None, a FilterOperator or a compiled
        condition; ``sort`` is the compiled comparators (maybe empty: any stable order). ``position`` may be
        negative (from the end); with ``anchor`` set, position is ignored and ``anchorOffset`` applies;
        unknown anchor -> ``MethodError("anchorNotFound")``. ``querytools.window`` does all of that for a
        complete in-memory id list."""
        raise NotImplementedError

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
        """Changes to a query's results since ``since_query_state``; ``querytools.diff_query`` computes
        them from old and new id lists. The engine enforces ``max_changes`` (tooManyChanges)."""
        raise MethodError("cannotCalculateChanges")


@contextlib.asynccontextmanager
async def _noop() -> AsyncIterator[None]:
    yield None
