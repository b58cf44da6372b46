"""JMAP over WebSocket (RFC 8887): requests, responses and push on one connection.

Why it sits beside the HTTP API rather than inside it: the same Engine runs the method calls, but the framing
differs (``@type``-tagged messages, ``requestId`` echo, ``RequestError`` instead of HTTP problem details) and
push is switched on and off by messages rather than by opening an EventSource. Authentication happens once,
on the HTTP upgrade request, with the same Authorization rules as every other route.

A connection lives no longer than its credential (README, "Sessions end with their credential"; RFC 8887 §4.2
lets the server either treat later requests as unauthenticated or close with 1008, Policy Violation; we do
both, in that order). Before each ``Request`` and ``WebSocketPushEnable`` the credential is checked
(:mod:`janusmail.jmap.credential_watch`, one primary-key read): if it was revoked, replaced or expired, or
the account was deleted, that message is not executed but answered with a ``RequestError`` (status 401,
the reason as ``detail``, the request's ``requestId``), and the socket is closed with 1008 and the reason.
Between messages (idle, or only pushing), the store's ``Credential`` change events wake the connection, and a
dead credential closes it the same way within seconds (an API request still running then is cancelled, as
at shutdown). A token's expiry closes it with 1008 too, at ``exp``.

Requests on one connection are answered in order; push StateChanges (with a ``pushState`` that encodes every
type's state, the same encoding as EventSource ids) interleave with responses under one send lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from janusmail.auth import revocation
from janusmail.jmap import push
from janusmail.jmap.credential_watch import CredentialWatch
from janusmail.jmap.engine import Engine, ProblemDetails
from janusmail.jmap.engine.errors import NOT_REQUEST
from janusmail.jmap.engine.request import loads_ijson, validate_request

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = ["SUBPROTOCOL", "WEBSOCKET", "WebSocketSession", "websocket_available"]

log = logging.getLogger("janusmail.jmap.websocket")

WEBSOCKET = "urn:ietf:params:jmap:websocket"
SUBPROTOCOL = "jmap"
#: RFC 6455 close code "Policy Violation", which RFC 8887 §4.2 names for a credential that is no longer good.
POLICY_VIOLATION = 1008
#: A close frame's reason is at most 123 octets (RFC 6455 §5.5: 125 octets of payload, 2 for the code).
MAX_CLOSE_REASON = 123


def websocket_available() -> bool:
    """uvicorn needs the ``websockets`` package to speak WebSocket; without it the capability is not offered."""
    try:
        import websockets  # noqa: F401
    except ImportError:
        return False
    return True


def request_error(exc: ProblemDetails, request_id: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"@type": "RequestError", **exc.to_dict()}
    if type(request_id) is str:
        out["requestId"] = request_id
    return out


class WebSocketSession:
    """One accepted connection for one principal."""

    def __init__(
        self,
        ws: WebSocket,
        *,
        engine: Engine,
        store: Store,
        account_id: str,
        ctx_factory: Callable[[Any], Any],
        session_state: str,
        max_size: int,
        closing: asyncio.Event,
        expires_at: float | None,
        credential: CredentialWatch | None = None,
    ) -> None:
        self.ws = ws
        self.engine = engine
        self.store = store
        self.account_id = account_id
        self.ctx_factory = ctx_factory
        self.session_state = session_state
        self.max_size = max_size
        self.closing = closing
        self.expires_at = expires_at
        self.credential = credential
        #: Why the connection is being closed for its credential (closed with 1008 and this reason).
        self.ended_for: str | None = None
        self._send_lock = asyncio.Lock()
        self._push: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any] | bytes) -> None:
        data = message if isinstance(message, bytes) else orjson.dumps(message)
        async with self._send_lock:
            await self.ws.send_text(data.decode("utf-8"))

    async def run(self) -> None:
        """Receive and answer until the client closes, the server shuts down or the credential dies."""
        receiver = asyncio.ensure_future(self._receive_loop())
        closing = asyncio.ensure_future(self.closing.wait())
        dead = asyncio.ensure_future(self.credential.dead()) if self.credential is not None else None
        waits = {receiver, closing} if dead is None else {receiver, closing, dead}
        timeout = None if self.expires_at is None else max(0.0, self.expires_at - time.time())
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if dead is not None and dead in done and self.ended_for is None:
                self.ended_for = dead.result()
            elif not done and self.ended_for is None:
                self.ended_for = revocation.TOKEN_EXPIRED
        finally:
            for task in (receiver, closing, dead, self._push):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            if self.ended_for is not None:
                code, reason = POLICY_VIOLATION, _close_reason(self.ended_for)
            else:
                code, reason = (1000 if not self.closing.is_set() else 1001), None
            with contextlib.suppress(Exception):
                await self.ws.close(code, reason)

    async def _receive_loop(self) -> None:
        while True:
            try:
                message = await self.ws.receive()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            data = text.encode("utf-8") if text is not None else message.get("bytes")
            if data is None:
                continue
            # RFC 8887 clients send text frames; a binary frame holding the same UTF-8 JSON is accepted too
            # (I-JSON parsing refuses anything that is not UTF-8).
            await self._handle(data)
            if self.ended_for is not None:
                return  # the credential died: run() closes the socket with 1008

    async def _handle(self, data: bytes) -> None:
        if len(data) > self.max_size:
            await self.send(request_error(ProblemDetails(
                400, "urn:ietf:params:jmap:error:limit", f"Message is larger than {self.max_size} octets",
                limit="maxSizeRequest",
            )))  # fmt: skip
            return
        try:
            obj = loads_ijson(data)
        except ProblemDetails as exc:
            await self.send(request_error(exc))
            return
        kind = obj.get("@type") if type(obj) is dict else None
        request_id = obj.get("id") if type(obj) is dict else None
        if kind in ("Request", "WebSocketPushEnable") and not await self._credential_good(request_id):
            return
        if kind == "Request":
            await self._request(obj, request_id)
        elif kind == "WebSocketPushEnable":
            await self._push_enable(obj)
        elif kind == "WebSocketPushDisable":
            self._stop_push()
        else:
            await self.send(request_error(ProblemDetails(400, NOT_REQUEST, "unknown or missing @type"), request_id))

    async def _request(self, obj: dict[str, Any], request_id: Any) -> None:
        try:
            if request_id is not None and type(request_id) is not str:
                raise ProblemDetails(400, NOT_REQUEST, "'id' must be a string")
            request = validate_request(obj, self.engine.limits)
            response = await self.engine.run(request, self.ctx_factory, session_state=self.session_state)
        except ProblemDetails as exc:
            await self.send(request_error(exc, request_id))
            return
        envelope: dict[str, Any] = {"@type": "Response"}
        if request_id is not None:
            envelope["requestId"] = request_id
        await self.send(self.engine.serialize({**envelope, **response}))

    async def _credential_good(self, request_id: Any) -> bool:
        """Check the credential before doing what a message asks. A dead one gets the message refused as
        unauthenticated (RequestError, 401) and ends the connection (``ended_for``)."""
        if self.credential is None:
            return True
        reason = await self.credential.problem()
        if reason is None:
            return True
        self.ended_for = reason
        with contextlib.suppress(Exception):  # the client may be gone already; the close follows regardless
            await self.send(request_error(ProblemDetails(401, "about:blank", reason), request_id))
        return False

    def _stop_push(self) -> None:
        if self._push is not None and not self._push.done():
            self._push.cancel()
        self._push = None

    async def _push_enable(self, obj: dict[str, Any]) -> None:
        data_types = obj.get("dataTypes")
        if data_types is None:
            types = frozenset(push.PUSH_TYPES)
        elif type(data_types) is list and all(type(t) is str for t in data_types):
            types = frozenset(t for t in data_types if t in push.PUSH_TYPES)
        else:
            await self.send(request_error(ProblemDetails(400, NOT_REQUEST, "'dataTypes' must be null or strings")))
            return
        push_state = obj.get("pushState")
        previous = push.decode_event_id(push_state) if type(push_state) is str else None
        self._stop_push()
        ready = asyncio.Event()
        self._push = asyncio.ensure_future(self._push_loop(types, previous, ready))
        # Subscribed before we read the next message: a change made by the client's next request is pushed.
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({self._push, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()

    async def _push_loop(self, types: frozenset[str], previous: dict[str, int] | None, ready: asyncio.Event) -> None:
        events = push.watch(self.store, self.account_id, types, previous=previous, closing=self.closing)
        try:
            async for ev in events:
                if ev.kind == "open":
                    ready.set()
                elif ev.kind == "state" and ev.change is not None:
                    await self.send({**ev.change, "pushState": push.encode_event_id(ev.states)})
        except Exception:  # noqa: BLE001 - a failed push must not take the connection's requests down
            log.exception("WebSocket push failed")
        finally:
            ready.set()
            await events.aclose()


def _close_reason(reason: str) -> str:
    """``reason`` cut to what fits a close frame, on a character boundary."""
    data = reason.encode("utf-8")[:MAX_CLOSE_REASON]
    return data.decode("utf-8", "ignore")
