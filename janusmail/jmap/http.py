"""The JMAP HTTP front (RFC 8620): Starlette on uvicorn, on the same asyncio loop as IMAP and LMTP.

Routes (all relative to ``public_url``'s path, and also served at the root so a proxy may strip the prefix):

  GET  /.well-known/jmap, /jmap/session     Session resource (the JMAPACCESS URL answers it directly)
  POST /jmap/api                            method calls -> Engine.handle
  POST /jmap/upload/{accountId}             blob upload
  GET  /jmap/download/{accountId}/{blobId}/{name}?type=   blob download (whole or body-part blobs)
  GET  /jmap/eventsource?types=&closeafter=&ping=         push (text/event-stream)
  GET  /.well-known/jwks.json, /.well-known/openid-configuration   the token issuer's public keys
  /admin/...                                the web admin for admin accounts (janusmail/admin)

Why authenticate in each handler instead of a middleware: every JMAP route needs the principal, the
well-known key routes and CORS preflights need none, and a 401 must say nothing about accounts. Each
request is authenticated from its own Authorization header (no cookies, no server-side HTTP session).

Who the client is: the TCP peer, unless it is one of ``[http] trusted_proxies`` (then the one header named by
``[http] forwarded_header`` names it, see :mod:`janusmail.auth.proxies`); uvicorn's own proxy-header handling
is off, since it trusts loopback peers by default. That address feeds the shared failed-login throttle
(:mod:`janusmail.auth.throttle`): failures only, per (client, account) and per client; a correct credential is
never delayed by other accounts' failures, a pair that keeps failing gets 429 with ``Retry-After`` without
being checked, and a full hashing queue 503.

Uploads are streamed, never read whole into memory: the body goes to a spool (a temporary file above
``[spool] threshold``) as it arrives, counted against the server-wide in-flight budget (503 with Retry-After
when full), and reaches the store as a read-only map of that file (:mod:`janusmail.spool`).

Why uvicorn's Server is subclassed: ``serve()`` would install its own SIGINT/SIGTERM handlers, but in
``janusmail serve`` the process frame (janusmail.server) owns the signals and shuts every listener down in
order; JMAP is just one closer among them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from janusmail.admin import AdminMount, AdminRoot
from janusmail.auth.authenticator import AuthResult, parse_basic
from janusmail.auth.proxies import TrustedProxies
from janusmail.auth.throttle import LoginRefused
from janusmail.config import parse_hostport
from janusmail.jmap import blobs, push
from janusmail.jmap.context import JmapContext
from janusmail.jmap.credential_watch import CredentialWatch, read_baseline
from janusmail.jmap.engine import CallInfo, Engine, ProblemDetails
from janusmail.jmap.engine.errors import LIMIT, NOT_JSON
from janusmail.jmap.observe import ObserveMiddleware
from janusmail.jmap.session_resource import (
    MAIL,
    PATHS,
    SessionDocument,
    SessionDocuments,
    Urls,
    base_path,
)
from janusmail.jmap.settings import JmapSettings
from janusmail.jmap.types import register_all
from janusmail.jmap.types.email import EMAIL_QUERY_SORT_OPTIONS
from janusmail.jmap.webpush import PushDispatcher
from janusmail.jmap.websocket import SUBPROTOCOL, WEBSOCKET, WebSocketSession, websocket_available
from janusmail.observability import logs
from janusmail.spool import Spool, Spooler
from janusmail.store.model import StorageUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.runtime import Runtime  # the doors import the runtime; it imports no door

__all__ = ["JmapApp", "content_disposition", "start_jmap"]

log = logging.getLogger("janusmail.jmap")

_NO_STORE = "no-cache, no-store, must-revalidate"
_DOWNLOAD_CACHE = "private, immutable, max-age=31536000"
_CHUNK = 1 << 20
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}(\s*;[\x20-\x7e]*)?")


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def _problem(status: int, type_: str, detail: str, limit: str | None = None) -> Response:
    return Response(
        ProblemDetails(status, type_, detail, limit).to_json(), status, media_type="application/problem+json"
    )


def _problem_of(exc: ProblemDetails) -> Response:
    return Response(exc.to_json(), exc.status, media_type="application/problem+json")


def _not_found() -> Response:
    return _problem(404, "about:blank", "Not found")


def content_disposition(name: str) -> str:
    """RFC 6266 ``attachment`` with an ASCII ``filename`` fallback and the exact name in ``filename*``."""
    fallback = "".join(c if 0x20 <= ord(c) < 0x7F and c not in '"\\' else "_" for c in name) or "download"
    header = f'attachment; filename="{fallback}"'
    if fallback != name:
        header += "; filename*=UTF-8''" + quote(name, safe="!#$&+-.^_`|~")
    return header


def _media_type(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value if _MEDIA_TYPE.fullmatch(value) else None


class _CountedStream(StreamingResponse):
    """A streaming response that gives back its concurrency slot however the stream ends."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None], **kw: Any) -> None:
        super().__init__(content, **kw)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                # When the client hangs up, Starlette cancels the sender while the stream is suspended at a
                # ``yield``: the generator (and its notifier subscription) would live on until the garbage
                # collector finds it. Close it now so its ``finally`` blocks run.
                aclose = getattr(self.body_iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
            finally:
                self._release()


class _TooLarge(Exception):
    pass


class _Busy(Exception):
    """The server-wide budget of uploads in flight (janusmail.spool) has no room for this body now."""


class _Stalled(Exception):
    pass


BUSY_TEXT = "Too much mail is being uploaded to this server right now; try again later"


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes:
    return await chunks.__anext__()


async def _spool_body(request: Request, spooler: Spooler, limit: int) -> Spool:
    """The request body in a spool: memory up to the spool threshold, then a temporary file, written as it
    arrives (never the whole body in memory). It is counted against the server-wide in-flight budget from the
    announced Content-Length (or chunk by chunk when none is given); refuses without reading on past
    ``limit`` octets, and gives up after ``[spool] stall_timeout`` seconds without data."""
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    if size is not None and size > limit:
        raise _TooLarge
    spool = spooler.open(size)
    if spool is None:
        raise _Busy
    try:
        chunks = request.stream().__aiter__()
        while True:
            try:
                chunk = await asyncio.wait_for(_next_chunk(chunks), spooler.stall_timeout)
            except StopAsyncIteration:
                break
            except TimeoutError:
                raise _Stalled from None
            if not chunk:
                continue
            if spool.size + len(chunk) > limit:
                raise _TooLarge
            if size is None and not spool.reserve_more(len(chunk)):
                raise _Busy
            spool.write(chunk)
            await spool.drain()
        await spool.finish()
    except BaseException:
        spool.close()
        raise
    return spool


async def _read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (without reading on) as soon as it passes ``limit`` octets."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


class JmapApp:
    """The ASGI application plus the per-server state it needs (engine, limits, concurrency counters)."""

    def __init__(self, rt: Runtime, settings: JmapSettings | None = None) -> None:
        self.rt = rt
        self.store = rt.store
        self.auth = rt.auth
        http_cfg = rt.config.http
        self.proxies = TrustedProxies(http_cfg.trusted_proxies, header=http_cfg.forwarded_header)
        self.settings = settings or JmapSettings.from_config(rt.config)
        self.engine = Engine(self.settings.limits(), capabilities=[MAIL])
        if rt.metrics.enabled:
            self.engine.observer = rt.metrics.jmap_call
        self.types = register_all(self.engine)
        blobs.register(self.engine)
        self.urls = Urls(rt.config.public_url)
        self.sort_options = sorted(EMAIL_QUERY_SORT_OPTIONS)  # what emailQuerySortOptions promises
        self.websocket_enabled = websocket_available()
        #: Each principal's Session document and state, built once (see SessionDocuments).
        self.sessions = SessionDocuments(
            settings=self.settings,
            urls=self.urls,
            capabilities=lambda: self.engine.capabilities,
            sort_options=self.sort_options,
        )
        if self.websocket_enabled:
            self.engine.add_capability(WEBSOCKET)
            self.sessions.add_session_capability(WEBSOCKET, {"url": self.urls.websocket, "supportsPush": True})
        self.closing = asyncio.Event()
        #: POSTs StateChanges to PushSubscription URLs (started with the listener: start_jmap).
        self.push: PushDispatcher | None = None
        #: Per-account slots for API requests and uploads: over the limit a request waits briefly in its
        #: account's queue before a 429 (janusmail/jmap/slots.py).
        self.request_slots = self.settings.slots(self.settings.max_concurrent_requests)
        self.upload_slots = self.settings.slots(self.settings.max_concurrent_upload)
        self._event_sources: Counter[str] = Counter()
        routes = self._routes()
        prefix = base_path(rt.config.public_url)
        if prefix:
            routes = [Mount(prefix, routes=list(routes)), *routes]
        self.asgi = Starlette(
            routes=routes,
            middleware=[
                # outermost: ids, counts and latency of everything, CORS preflights included
                Middleware(ObserveMiddleware, metrics=rt.metrics),
                Middleware(
                    CORSMiddleware,
                    allow_origins=["*"],
                    allow_methods=["GET", "POST", "OPTIONS"],
                    allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "Accept"],
                    max_age=3600,
                )
            ],
        )

    def _routes(self) -> list[BaseRoute]:
        return [
            Route(PATHS["well_known"], self.session, methods=["GET"]),
            Route(PATHS["session"], self.session, methods=["GET"]),
            Route(PATHS["api"], self.api, methods=["POST"]),
            Route(PATHS["upload"], self.upload, methods=["POST"]),
            Route("/jmap/download/{accountId}/{blobId}/{name:path}", self.download, methods=["GET"]),
            Route(PATHS["eventsource"], self.eventsource, methods=["GET"]),
            Route(PATHS["jwks"], self.jwks, methods=["GET"]),
            Route(PATHS["openid"], self.openid_configuration, methods=["GET"]),
            WebSocketRoute(PATHS["websocket"], self.websocket),
            *_admin_routes(AdminMount(self)),  # the web admin (janusmail/admin), imported on first use
        ]

    # -- authentication ----------------------------------------------------------------------------------

    async def _authenticate(self, request: Request | WebSocket) -> AuthResult | Response:
        """The AuthResult, or a 401 Response carrying one WWW-Authenticate challenge per accepted scheme."""
        header = request.headers.get("authorization")
        scheme, _, param = (header or "").strip().partition(" ")
        scheme, param = scheme.lower(), param.strip()
        ip = self.client_ip(request)
        address: str | None = None
        if scheme == "basic" and header is not None and self.auth.policy.jmap_accepts_basic:
            remembered = self.auth.http_memo.get(header)  # no credential changed since it was accepted
            if remembered is not None:
                creds = parse_basic(param)
                if creds:  # a success clears its own pair's failures, as a checked one does
                    self.auth.throttle.succeeded(ip, creds[0])
                logs.bind(account=remembered.account_id)
                return remembered
        try:
            if scheme == "basic":
                creds = parse_basic(param)
                address = creds[0] if creds else ""
                # a pair that keeps failing is refused here, unchecked, unless the cache may remember the
                # credential (then only a real hit gets in: verify_password)
                self.auth.precheck(ip, address, creds[1] if creds else None)
            result = await self.auth.run(self.auth.http_authenticate, header, client_ip=ip) if header else None
        except LoginRefused as exc:
            self._auth_failed(exc.kind, ip, address)
            if exc.kind == "busy":  # a short hold, so a flood cannot turn 503s into a busy loop
                await self._pause(exc.retry_after)
            return self._refused(exc)
        if result is not None:
            if address is not None:
                self.auth.throttle.succeeded(ip, address)  # clears this pair's count, never the client's
            logs.bind(account=result.account_id)  # the rest of this request's lines name the account
            return result
        error = None
        if scheme == "bearer":
            error = await self.auth.run(self._bearer_error, param)
        if header:  # (no Authorization at all is a client asking for the challenge, not a failed login)
            kind = ("bad_credentials" if scheme == "basic" else "unsupported_scheme" if scheme != "bearer"
                    else "token_expired" if error is not None and error.reason == "expired" else "token_invalid")
            self._auth_failed(kind, ip, address)
        if address is not None:  # failures only: the tarpit delays this 401, never anyone's success
            await self._pause(self.auth.throttle.failed(ip, address))
        response = _problem(401, "about:blank", "Authentication required")
        for challenge in self.auth.www_authenticate(error):
            response.headers.append("WWW-Authenticate", challenge)
        return response

    def _auth_failed(self, kind: str, ip: str, address: str | None) -> None:
        """Count and log a refused request's credential: its kind, the client, the name; never the secret."""
        self.rt.metrics.auth_failure("jmap", kind)
        logs.event(log, logging.INFO, "auth.failure", door="jmap", kind=kind, peer=ip, user=address)

    def client_ip(self, request: Request | WebSocket) -> str:
        """The client's address for the throttle: the peer, or what a trusted proxy says it forwarded."""
        peer = request.client.host if request.client else None
        return self.proxies.client_ip(
            peer,
            forwarded=request.headers.getlist("forwarded"),
            x_forwarded_for=request.headers.getlist("x-forwarded-for"),
        )

    @staticmethod
    def _refused(exc: LoginRefused) -> Response:
        """429 (this client failed for this account too recently) or 503 (hashing busy), with Retry-After."""
        status = 429 if exc.kind == "throttled" else 503
        response = _problem(status, "about:blank", exc.reason)
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    async def _pause(self, seconds: float) -> None:
        """The failure tarpit, cut short when the server shuts down (a held 401 must not delay the exit)."""
        if seconds <= 0:
            return
        pause = asyncio.ensure_future(self.auth.throttle.pause(seconds))
        closing = asyncio.ensure_future(self.closing.wait())
        try:
            await asyncio.wait({pause, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (pause, closing):
                fut.cancel()

    def _bearer_error(self, token: str) -> Any:
        from janusmail.auth.tokens import TokenError

        if not token:
            return None
        try:
            self.auth.check_bearer(token, "jmap")
        except TokenError as exc:
            return exc
        except Exception:  # noqa: BLE001 - the challenge is a courtesy; never fail the 401 over it
            return None
        return None

    # -- session -----------------------------------------------------------------------------------------

    def session_document(self, principal: AuthResult) -> SessionDocument:
        """The principal's Session (object, state, JSON), from the app's cache: no rebuild, no hashing."""
        return self.sessions.get(principal.account_id, principal.address)

    def session_for(self, principal: AuthResult) -> dict[str, Any]:
        """The principal's Session object (shared with the cache: read it, never change it)."""
        return self.session_document(principal).data

    async def session(self, request: Request) -> Response:
        principal = await self._authenticate(request)
        if isinstance(principal, Response):
            return principal
        body = self.session_document(principal).body
        return Response(body, media_type="application/json", headers={"Cache-Control": _NO_STORE})

    # -- API ---------------------------------------------------------------------------------------------

    async def api(self, request: Request) -> Response:
        principal = await self._authenticate(request)
        if isinstance(principal, Response):
            return principal
        ctype = request.headers.get("content-type")
        if ctype is not None:
            media = ctype.split(";", 1)[0].strip().lower()
            if media != "application/json" and not media.endswith("+json"):
                return _problem(400, NOT_JSON, "Content-Type must be application/json")
        async with self.request_slots.hold(principal.account_id) as ok:
            if not ok:
                return _problem(
                    429, LIMIT, "Too many concurrent requests", limit="maxConcurrentRequests"
                )
            try:
                body = await _read_body(request, self.settings.max_size_request)
            except _TooLarge:
                return _problem(
                    400, LIMIT, f"Request is larger than {self.settings.max_size_request} octets",
                    limit="maxSizeRequest",
                )  # fmt: skip
            except ClientDisconnect:
                return Response(status_code=400)

            def ctx_factory(info: CallInfo) -> JmapContext:
                return JmapContext(info, store=self.store, rt=self.rt, principal=principal, app=self)

            state = self.session_document(principal).state  # read once for the whole request
            try:
                out = await self.engine.handle(body, ctx_factory, session_state=state)
            except ProblemDetails as exc:
                return _problem_of(exc)
        return Response(out, media_type="application/json", headers={"Cache-Control": "no-store"})

    # -- blobs -------------------------------------------------------------------------------------------

    async def upload(self, request: Request) -> Response:
        principal = await self._authenticate(request)
        if isinstance(principal, Response):
            return principal
        account_id = request.path_params["accountId"]
        if account_id != principal.account_id:
            return _not_found()
        async with self.upload_slots.hold(principal.account_id) as ok:
            if not ok:
                return _problem(429, LIMIT, "Too many concurrent uploads", limit="maxConcurrentUpload")
            return await self._upload(request, account_id)

    async def _upload(self, request: Request, account_id: str) -> Response:
        """The upload itself, with the account's upload slot held."""
        with contextlib.ExitStack() as cleanup:
            spooler = self.rt.spooler
            try:
                body = await _spool_body(request, spooler, self.settings.max_size_upload)
                cleanup.callback(body.close)  # the spool file and the budget share go when the answer is made
                (data,) = await spooler.load([body])  # a large body reaches the store as a map of its file
            except _TooLarge:
                return _problem(
                    413, LIMIT, f"Uploads are limited to {self.settings.max_size_upload} octets",
                    limit="maxSizeUpload",
                )  # fmt: skip
            except _Busy:
                response = _problem(503, "about:blank", BUSY_TEXT)
                response.headers["Retry-After"] = "10"
                return response
            except _Stalled:
                return _problem(408, "about:blank", "No upload data for too long")
            except StorageUnavailable as exc:  # the spool file could not take the body
                log.warning("upload for %s refused: %s", account_id, exc)
                return _problem(507 if exc.full else 503, "about:blank", f"{exc}; try again later")
            except ClientDisconnect:
                return Response(status_code=400)
            type_ = _media_type(request.headers.get("content-type")) or "application/octet-stream"
            try:
                blob_id, size = await self.store.call(self.store.blobs.upload, account_id, data, type_)
            except StorageUnavailable as exc:  # a normal answer (keep-alive intact), not a 500 that resets it
                log.warning("upload for %s refused: %s", account_id, exc)
                return _problem(507 if exc.full else 503, "about:blank", f"{exc}; try again later")
        return _json({"accountId": account_id, "blobId": blob_id, "type": type_, "size": size}, 201)

    async def download(self, request: Request) -> Response:
        principal = await self._authenticate(request)
        if isinstance(principal, Response):
            return principal
        account_id = request.path_params["accountId"]
        blob_id = request.path_params["blobId"]
        name = request.path_params["name"]
        if account_id != principal.account_id:
            return _not_found()
        located = await self.store.call(blobs.locate, self.store, account_id, blob_id)
        if located is None:
            return _not_found()
        headers = {
            "Content-Disposition": content_disposition(name),
            "Cache-Control": _DOWNLOAD_CACHE,
            # The bytes are the user's mail: never let a browser run them as a page of this origin.
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        }
        media = _media_type(request.query_params.get("type")) or located.type or "application/octet-stream"
        # Exactly the type the client asked for (RFC 8620 §6.2): given as a header, Starlette adds no
        # "; charset=utf-8" to text/* types (the bytes are the user's, in whatever charset they are).
        headers["Content-Type"] = media
        if located.size is not None and located.size > _CHUNK:
            headers["Content-Length"] = str(located.size)
            return StreamingResponse(self._chunks(located), headers=headers)
        data = await self.store.call(blobs.read_located, self.store, located)
        return Response(data, headers=headers)

    async def _chunks(self, located: blobs.Located) -> AsyncIterator[bytes]:
        assert located.size is not None
        for start in range(0, located.size, _CHUNK):
            yield await self.store.call(blobs.read_located, self.store, located, start, start + _CHUNK)

    # -- push --------------------------------------------------------------------------------------------

    async def eventsource(self, request: Request) -> Response:
        baseline = await read_baseline(self.store)  # before authenticating: no credential change is missed
        principal = await self._authenticate(request)
        if isinstance(principal, Response):
            return principal
        if baseline is None:  # a stream we could not end when its credential dies is not opened
            return _problem(503, "about:blank", "The account store is unavailable; try again later")
        try:
            params = push.parse_params(
                dict(request.query_params), self.settings.min_ping, self.settings.max_ping
            )
        except push.BadParams as exc:
            return _problem(400, "about:blank", str(exc))
        key = principal.account_id
        if self._event_sources[key] >= self.settings.max_event_sources:
            return _problem(429, "about:blank", "Too many open event sources")
        self._event_sources[key] += 1
        ticket = self.rt.connections.opened("jmap-eventsource", self.client_ip(request), principal=lambda: principal,
                                            tls=request.url.scheme == "https")

        def release() -> None:
            self.rt.connections.closed(ticket)
            self._event_sources[key] -= 1
            if self._event_sources[key] <= 0:
                del self._event_sources[key]

        stream = push.event_stream(
            self.store,
            principal.account_id,
            params,
            last_event_id=request.headers.get("last-event-id"),
            closing=self.closing,
            expires_at=principal.expires_at,
            credential=CredentialWatch(self.store, principal, baseline, auth=self.auth, metrics=self.rt.metrics),
        )
        return _CountedStream(
            stream,
            release,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"},
        )

    async def websocket(self, ws: WebSocket) -> None:
        """RFC 8887: authenticate the upgrade request, require the ``jmap`` subprotocol, then serve (until the
        credential dies, among other ends: see :mod:`janusmail.jmap.websocket`)."""
        baseline = await read_baseline(self.store)  # before authenticating: no credential change is missed
        principal = await self._authenticate(ws)
        if isinstance(principal, Response):
            await self._deny(ws, principal)
            return
        if baseline is None:
            await self._deny(ws, _problem(503, "about:blank", "The account store is unavailable; try again later"))
            return
        if not self.websocket_enabled or SUBPROTOCOL not in ws.scope.get("subprotocols", []):
            await self._deny(ws, _problem(400, "about:blank", "The WebSocket subprotocol must be 'jmap'"))
            return
        key = principal.account_id
        if self._event_sources[key] >= self.settings.max_event_sources:
            await self._deny(ws, _problem(429, "about:blank", "Too many open push connections"))
            return
        self._event_sources[key] += 1
        ticket = self.rt.connections.opened("jmap-websocket", self.client_ip(ws), principal=lambda: principal,
                                            tls=ws.url.scheme == "wss")
        try:
            await ws.accept(subprotocol=SUBPROTOCOL)

            def ctx_factory(info: CallInfo) -> JmapContext:
                return JmapContext(info, store=self.store, rt=self.rt, principal=principal, app=self)

            session = WebSocketSession(
                ws,
                engine=self.engine,
                store=self.store,
                account_id=principal.account_id,
                ctx_factory=ctx_factory,
                session_state=self.session_document(principal).state,
                max_size=self.settings.max_size_request,
                closing=self.closing,
                expires_at=principal.expires_at,
                credential=CredentialWatch(self.store, principal, baseline, auth=self.auth, metrics=self.rt.metrics),
            )
            await session.run()
        finally:
            self.rt.connections.closed(ticket)
            self._event_sources[key] -= 1
            if self._event_sources[key] <= 0:
                del self._event_sources[key]

    @staticmethod
    async def _deny(ws: WebSocket, response: Response) -> None:
        try:
            await ws.send_denial_response(response)
        except RuntimeError:  # the server lacks the denial-response extension: a bare refusal
            await ws.close(1008)

    # -- the token issuer's public documents ---------------------------------------------------------------

    async def jwks(self, request: Request) -> Response:
        tokens = self.auth.tokens
        keys = tokens.jwks() if tokens is not None else {"keys": []}
        return _json(keys, headers={"Cache-Control": "public, max-age=3600"})

    async def openid_configuration(self, request: Request) -> Response:
        tokens = self.auth.tokens
        if tokens is None:
            return _not_found()
        doc = {
            "issuer": tokens.issuer,
            "jwks_uri": self.urls.jwks,
            "scopes_supported": ["imap", "jmap", "smtp"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
        }
        return _json(doc, headers={"Cache-Control": "public, max-age=3600"})


def _admin_routes(admin: AdminMount) -> list[BaseRoute]:
    return [Route("/admin", AdminRoot(admin)), Mount("/admin", app=admin)]


# -- serving ----------------------------------------------------------------------------------------------


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling (the process frame owns SIGINT/SIGTERM), and stopping as soon as
    asked: uvicorn's main loop looks for ``should_exit`` every 0.1 s; here :meth:`request_exit` also wakes it."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def request_exit(self) -> None:
        self.should_exit = True
        self._exit_requested.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's shutdown waits a fixed 0.1 s for connections to take their shutdown request; with no
        connection open there is nothing to wait for (each stop of a test server paid it)."""
        wait_tasks = getattr(self, "_wait_tasks_to_complete", None)  # uvicorn's own step, where it has one
        if self.server_state.connections or wait_tasks is None:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        await wait_tasks()
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def main_loop(self) -> None:
        counter = 0
        should_exit = await self.on_tick(counter)  # on_tick keeps the Date header and request limits current
        while not should_exit:
            counter = (counter + 1) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._exit_requested.wait(), 0.1)
            should_exit = await self.on_tick(counter)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=256)
    sock.setblocking(False)
    return sock


async def start_jmap(rt: Runtime) -> None:
    """Open the JMAP listener on the running loop; records ``rt.bound["jmap"]`` and registers a closer."""
    listen = rt.config.jmap.listen
    if not listen:
        return
    sock = rt.listeners.get("jmap") or _bind(*parse_hostport(listen))  # inherited: a worker of serve --workers
    rt.config.settle_public_url(*sock.getsockname()[:2])  # no public URL set: advertise this listener
    app = JmapApp(rt)
    config = uvicorn.Config(
        app.asgi,
        loop="none",
        http="h11",
        ws="websockets-sansio" if app.websocket_enabled else "none",
        ws_max_size=app.settings.max_size_request + 4096,
        lifespan="off",
        log_level="warning",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # forwarded headers are believed only from [http] trusted_proxies (client_ip)
        timeout_graceful_shutdown=5,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="jmap-http")
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # raises the start-up failure
            raise RuntimeError("the JMAP listener stopped during start-up")
        await asyncio.sleep(0.005)
    rt.bound["jmap"] = sock.getsockname()[:2]
    app.push = PushDispatcher(rt.store)
    await app.push.start()

    async def close() -> None:
        app.closing.set()  # ends event streams, so graceful shutdown need not wait for them
        if app.push is not None:
            await app.push.close()
        server.request_exit()
        try:
            await asyncio.wait_for(asyncio.shield(task), 15)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    rt.closers.append(close)
