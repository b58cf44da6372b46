"""The JMAP method dispatcher (RFC 8620 §3): runs a Request's method calls in order and builds the Response.

Why this shape: the engine knows nothing of HTTP, stores or data types. It owns only what is the same for
every method: the registry (which names exist under which capability), result references, the request-wide
creation-id map, error wrapping, and the response envelope. Everything a handler needs from the outside
world (the store, the principal, account permissions) reaches it through the ``CallContext`` that the
caller's ``ctx_factory`` builds, so the HTTP layer decides what a context carries and tests pass a fake.
The one storage fact it knows is ``StorageUnavailable`` (disk full, I/O error), whichever method hits it: it
is the method-level ``serverUnavailable`` (try again later) rather than ``serverFail`` (a bug).
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from janusmail.store.model import StorageUnavailable

from .errors import LIMIT, UNKNOWN_CAPABILITY, MethodError, ProblemDetails
from .limits import CORE, DEFAULT_LIMITS, Limits
from .refs import resolve_references
from .request import Invocation, Request, parse_request, validate_request

__all__ = [
    "AccountAccess",
    "AccountPolicy",
    "CallContext",
    "CallInfo",
    "CtxFactory",
    "Engine",
    "Handler",
    "RequestState",
    "StaticAccounts",
]

log = logging.getLogger("janusmail.jmap.engine")

Response = tuple[str, dict[str, Any]]
Handler = Callable[["CallContext", dict[str, Any]], Awaitable[list[Response]]]


class AccountPolicy(Protocol):
    """Answers "may this call use this account?" (RFC 8620 §3.6.2).

    Raise ``MethodError("accountNotFound")`` when the account does not exist or is invisible to the user,
    ``"accountNotSupportedByMethod"`` when the account lacks ``capability``, ``"accountReadOnly"`` when
    ``write`` is true and the account cannot be changed. Return None when the call may go on.
    """

    async def check(self, account_id: str, capability: str, *, write: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class AccountAccess:
    read_only: bool = False
    #: Capabilities this account supports (its Session ``accountCapabilities`` keys); None means all.
    capabilities: frozenset[str] | None = None


@dataclass(slots=True)
class StaticAccounts:
    """An AccountPolicy from a fixed map, e.g. built from the user's Session object."""

    accounts: dict[str, AccountAccess]

    async def check(self, account_id: str, capability: str, *, write: bool) -> None:
        access = self.accounts.get(account_id)
        if access is None:
            raise MethodError("accountNotFound")
        if access.capabilities is not None and capability not in access.capabilities:
            raise MethodError("accountNotSupportedByMethod")
        if write and access.read_only:
            raise MethodError("accountReadOnly")


@dataclass(slots=True)
class RequestState:
    """What lives for one whole request and is shared by all its calls."""

    engine: Engine
    using: frozenset[str]
    #: creation id -> server id; seeded from the request's ``createdIds`` and grown by every create (§3.3).
    created_ids: dict[str, str]
    #: ``[name, arguments, callId]`` triples produced so far: the target of result references.
    responses: list[list[Any]] = field(default_factory=list)
    ctx_factory: CtxFactory | None = None


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the engine tells ``ctx_factory`` about the call it needs a context for."""

    method: str
    call_id: str
    capability: str
    request: RequestState


class CallContext:
    """Everything a handler may use beyond its arguments. Subclass it to carry the store, principal, etc.

    ``accounts`` defaults to None, which refuses every account (deny unless the HTTP layer says otherwise).
    ``app`` is an opaque slot for whatever the type layer needs, if you would rather not subclass.
    """

    def __init__(self, info: CallInfo, *, accounts: AccountPolicy | None = None, app: Any = None) -> None:
        self.info = info
        self.accounts = accounts
        self.app = app

    @property
    def method(self) -> str:
        return self.info.method

    @property
    def call_id(self) -> str:
        return self.info.call_id

    @property
    def capability(self) -> str:
        return self.info.capability

    @property
    def using(self) -> frozenset[str]:
        return self.info.request.using

    @property
    def limits(self) -> Limits:
        return self.info.request.engine.limits

    @property
    def created_ids(self) -> dict[str, str]:
        """The request-wide creation-id map (creation id without '#' -> id). Shared, so writes are seen."""
        return self.info.request.created_ids

    def resolve_creation_id(self, value: str) -> str | None:
        """``"#k1"`` -> the id created as ``k1`` earlier in this request, or None if there is none.

        Any other value is returned unchanged, so a type module can pass every id-typed value through it.
        Creation ids are not scoped by type: if a client reuses one, the latest creation wins (§5.3).
        """
        if type(value) is str and value.startswith("#"):
            return self.created_ids.get(value[1:])
        return value

    def record_creation(self, creation_id: str, new_id: str) -> None:
        """Remember a creation so later records and calls can say ``#creation_id``."""
        self.created_ids[creation_id] = new_id

    async def check_account(
        self, account_id: str, *, write: bool = False, capability: str | None = None
    ) -> None:
        """Raise accountNotFound / accountNotSupportedByMethod / accountReadOnly, or return."""
        if self.accounts is None:
            raise MethodError("accountNotFound")
        await self.accounts.check(account_id, capability or self.capability, write=write)

    async def invoke(self, name: str, args: dict[str, Any]) -> list[Response]:
        """Run another registered method as an *implicit* call (e.g. Foo/set after Foo/copy, §5.4).

        Its responses carry this call's id. It never raises: a failure becomes an ``"error"`` response,
        because the calling method has already succeeded and its response stands.
        """
        return await self.info.request.engine.run_implicit(name, args, self)


CtxFactory = Callable[[CallInfo], "CallContext | Awaitable[CallContext]"]


async def _echo(ctx: CallContext, args: dict[str, Any]) -> list[Response]:
    """Core/echo (§4): the arguments come back unchanged."""
    return [("Core/echo", args)]


@dataclass(frozen=True, slots=True)
class _Method:
    capability: str
    handler: Handler


class Engine:
    """Method registry plus the request loop. One Engine serves all requests; it keeps no per-request state."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS, capabilities: Iterable[str] = ()) -> None:
        self.limits = limits
        self._methods: dict[str, _Method] = {}
        self._capabilities: set[str] = {CORE, *capabilities}
        self.register("Core/echo", CORE, _echo)
        #: Told of every method call of a request when set (the server's metrics): the method's name (``unknown``
        #: for one not registered), ``ok`` or the error type of its response, and its seconds.
        self.observer: Callable[[str, str, float], None] | None = None

    def register(self, name: str, capability: str, handler: Handler) -> None:
        """Make ``name`` callable by requests whose ``using`` includes ``capability``."""
        if name in self._methods:
            raise ValueError(f"method {name!r} is already registered")
        if not callable(handler):
            raise TypeError("handler must be an async callable")
        self._methods[name] = _Method(capability, handler)
        self._capabilities.add(capability)

    def add_capability(self, capability: str) -> None:
        """Accept ``capability`` in ``using`` even if no method belongs to it (e.g. a pure marker)."""
        self._capabilities.add(capability)

    @property
    def capabilities(self) -> frozenset[str]:
        return frozenset(self._capabilities)

    def methods(self) -> dict[str, str]:
        """Registered method name -> capability, e.g. for assembling the Session from what exists."""
        return {name: m.capability for name, m in self._methods.items()}

    # -- the request loop -------------------------------------------------------------------------

    async def run(
        self,
        request: Request | dict[str, Any],
        ctx_factory: CtxFactory | None = None,
        *,
        session_state: str = "",
    ) -> dict[str, Any]:
        """Run every method call in order and return the Response object (not yet serialised).

        Raises ProblemDetails for request-level failures (unknown capability, too many calls).
        """
        if not isinstance(request, Request):
            request = validate_request(request, self.limits)
        unknown = sorted(request.using - self._capabilities)
        if unknown:
            raise ProblemDetails(400, UNKNOWN_CAPABILITY, f"Unsupported capability: {', '.join(unknown)}")
        if len(request.method_calls) > self.limits.max_calls_in_request:
            raise ProblemDetails(
                400,
                LIMIT,
                f"At most {self.limits.max_calls_in_request} method calls are allowed",
                limit="maxCallsInRequest",
            )
        state = RequestState(
            engine=self,
            using=request.using,
            created_ids=dict(request.created_ids or {}),
            ctx_factory=ctx_factory,
        )
        observe = self.observer
        for invocation in request.method_calls:
            started = time.perf_counter()
            out = await self._run_call(invocation, state)
            if observe is not None:
                method = invocation.name if invocation.name in self._methods else "unknown"
                first = out[0] if out else ("error", {})
                result = first[1].get("type", "serverFail") if first[0] == "error" else "ok"
                observe(method, str(result), time.perf_counter() - started)
            for name, args in out:
                state.responses.append([name, args, invocation.call_id])
        response: dict[str, Any] = {"methodResponses": state.responses, "sessionState": session_state}
        if request.created_ids is not None:
            response["createdIds"] = dict(state.created_ids)
        return response

    async def handle(
        self, body: bytes, ctx_factory: CtxFactory | None = None, *, session_state: str = ""
    ) -> bytes:
        """Bytes in, bytes out: parse, run, serialise. Raises ProblemDetails for request-level failures."""
        request = parse_request(body, self.limits)
        return self.serialize(await self.run(request, ctx_factory, session_state=session_state))

    @staticmethod
    def serialize(response: dict[str, Any]) -> bytes:
        """orjson bytes. A handler that returned something JSON cannot hold (a set, 255+ levels) costs only
        its own response, which becomes serverFail, rather than the whole request."""
        try:
            return orjson.dumps(response)
        except orjson.JSONEncodeError:
            fixed = []
            for name, args, call_id in response["methodResponses"]:
                try:
                    orjson.dumps(args)
                except orjson.JSONEncodeError:
                    log.error("JMAP response %s (call %r) is not serialisable", name, call_id)
                    name, args = "error", {"type": "serverFail"}
                fixed.append([name, args, call_id])
            return orjson.dumps({**response, "methodResponses": fixed})

    async def _make_ctx(self, info: CallInfo) -> CallContext:
        factory = info.request.ctx_factory
        if factory is None:
            return CallContext(info)
        ctx = factory(info)
        if inspect.isawaitable(ctx):
            ctx = await ctx
        return ctx  # type: ignore[return-value]

    async def _run_call(self, invocation: Invocation, state: RequestState) -> list[Response]:
        method = self._methods.get(invocation.name)
        # A method whose capability the client did not ask for does not exist for it (§3.6.2, §1.8).
        if method is None or method.capability not in state.using:
            return [("error", {"type": "unknownMethod"})]
        try:
            args = resolve_references(invocation.arguments, state.responses)
        except MethodError as exc:
            return [("error", exc.to_dict())]
        info = CallInfo(invocation.name, invocation.call_id, method.capability, state)
        return await self._call_handler(method.handler, info, args, None)

    async def run_implicit(self, name: str, args: dict[str, Any], parent: CallContext) -> list[Response]:
        """See ``CallContext.invoke``."""
        method = self._methods.get(name)
        if method is None:
            log.error("implicit call to unregistered method %s", name)
            return [("error", {"type": "serverFail"})]
        info = CallInfo(name, parent.call_id, method.capability, parent.info.request)
        return await self._call_handler(method.handler, info, args, parent)

    async def _call_handler(
        self, handler: Handler, info: CallInfo, args: dict[str, Any], parent: CallContext | None
    ) -> list[Response]:
        try:
            ctx = await self._make_ctx(info)
            out = await handler(ctx, args)
            if type(out) is not list or not all(
                type(r) in (tuple, list) and len(r) == 2 and type(r[0]) is str and type(r[1]) is dict
                for r in out
            ):
                raise TypeError(
                    f"handler for {info.method} returned {type(out).__name__}, not [(name, dict)]"
                )
            return [(r[0], r[1]) for r in out]
        except MethodError as exc:
            return [("error", exc.to_dict())]
        except StorageUnavailable as exc:
            # Disk full or a disk I/O error: nothing was written, and it is temporary (§3.6.2 serverUnavailable).
            log.warning("JMAP method %s (call %r): %s", info.method, info.call_id, exc)
            return [("error", {"type": "serverUnavailable", "description": str(exc)})]
        except Exception:
            # Internals stay in the log; the client learns only that the server failed (§3.6.2).
            log.exception("JMAP method %s (call %r) failed", info.method, info.call_id)
            return [("error", {"type": "serverFail"})]
