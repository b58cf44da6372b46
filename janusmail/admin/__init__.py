"""The web admin: ``/admin`` on the JMAP listener, for accounts flagged admin (issue 13 part 4).

Server-rendered pages (Jinja2, plain HTML forms, no JavaScript): accounts, app passwords, live connections,
auth failures and throttles, storage use, and a JMAPACCESS explanation. It is a door like IMAP and JMAP: it
reaches the store only through its typed services and authenticates through the one
:class:`~janusmail.auth.Authenticator` (same credentials, same throttle, same revocation rule).

This module is what the JMAP front imports at start: :class:`AdminMount` builds the real application
(:mod:`janusmail.admin.app`, which imports Jinja2) on the first request, so a server nobody administers
through the web, and every test that starts one, never pays for it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.jmap.http import JmapApp

__all__ = ["AdminMount", "AdminRoot"]


class AdminMount:
    """An ASGI app that builds the admin application once, on first use, and then hands every request to it."""

    def __init__(self, jmap: JmapApp) -> None:
        self._jmap = jmap
        self._app: ASGIApp | None = None
        self._lock = asyncio.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            async with self._lock:
                if self._app is None:
                    from janusmail.admin.app import build

                    self._app = await asyncio.to_thread(build, self._jmap)  # template loading reads files
        await self._app(scope, receive, send)


class AdminRoot:
    """``/admin`` itself, without the slash: served as ``/admin/`` (the accounts page) instead of Starlette's
    redirect, so a script's ``curl -u ... /admin`` gets the page. Route it with ``Route("/admin", AdminRoot(m))``
    beside ``Mount("/admin", app=m)``."""

    def __init__(self, mount: AdminMount) -> None:
        self._mount = mount

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        scope["path"] = scope["path"] + "/"
        if isinstance(scope.get("raw_path"), bytes):
            scope["raw_path"] = scope["raw_path"] + b"/"
        scope["root_path"] = scope.get("root_path", "") + "/admin"
        await self._mount(scope, receive, send)
