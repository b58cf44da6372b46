"""The JMAP listener's one observation point: an ASGI middleware around every request and WebSocket.

What it does per request: gives it an id (``jmap-…``) that every log line of the request carries (the account
is added when the request authenticates) and that the client gets back as ``X-Request-Id``; counts it as an
open "connection" of its door (``jmap_http``, or ``jmap_eventsource`` / ``jmap_websocket`` for the long-lived
ones) and, once an EventSource stream answers 200 or a WebSocket is accepted, as a live push listener; and at
its end records its status and latency by route and writes one ``jmap.request`` line (debug level).

Why the route label is the endpoint's name (``api``, ``download``, ...): it is fixed by the code, whereas the
path holds account and blob ids. Push streams and WebSockets get no latency (they last as long as the client
stays), only their count and status.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from janusmail.observability import logs
from janusmail.observability.metrics import Metrics

__all__ = ["ObserveMiddleware", "route_name"]

log = logging.getLogger("janusmail.jmap")

EVENTSOURCE_SUFFIX = "/jmap/eventsource"


def route_name(scope: Scope) -> str:
    """The endpoint that served the request, by name (bounded: the code's, never the client's)."""
    endpoint: Any = scope.get("endpoint")
    if endpoint is None:
        return "preflight" if scope.get("method") == "OPTIONS" else "unmatched"
    return str(getattr(endpoint, "__name__", None) or type(endpoint).__name__)


class ObserveMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            door = "jmap_websocket"
        elif scope["path"].endswith(EVENTSOURCE_SUFFIX):
            door = "jmap_eventsource"
        else:
            door = "jmap_http"
        rid = logs.new_id("jmap")
        logs.bind(sid=rid)  # (the request's own task: uvicorn runs each request in one)
        header = (b"x-request-id", rid.encode())
        metrics = self.metrics
        status = 0
        push: str | None = None

        async def observed(message: Message) -> None:
            nonlocal status, push
            mtype = message["type"]
            if mtype == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
                if door == "jmap_eventsource" and status == 200:
                    push = "eventsource"
                    metrics.push_subscriber(push, 1)
            elif mtype == "websocket.accept":
                status = 101
                push = "websocket"
                metrics.push_subscriber(push, 1)
            elif mtype == "websocket.http.response.start":  # a refused upgrade (401, 429, ...)
                status = message["status"]
            elif mtype == "websocket.close" and not status:
                status = 403
            await send(message)

        metrics.connection_opened(door)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, observed)
        except BaseException:
            status = status or 500
            raise
        finally:
            seconds = time.perf_counter() - started
            if push is not None:
                metrics.push_subscriber(push, -1)
            metrics.connection_closed(door)
            route = route_name(scope)
            metrics.http_request(route, status, seconds if door == "jmap_http" else None)
            logs.event(log, logging.DEBUG, "jmap.request", method=scope.get("method", "GET"), route=route,
                       status=status, ms=round(seconds * 1000, 3))
