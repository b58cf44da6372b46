"""Building the admin application: routes, sessions, templates, and the wrapper every page goes through.

Every handler is wrapped by :func:`page`: it identifies the administrator (janusmail.admin.security), refuses
a POST whose CSRF token does not match, and turns a refusal into the right status: 401 with the login form (and
a Basic challenge for clients that sent Basic or do not read HTML), 403, 429/503 with ``Retry-After``. Pages
are Jinja2 templates with autoescape on for everything; responses carry headers that keep them out of frames
and caches and allow no script at all (the pages need none).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from janusmail.admin import pages
from janusmail.admin.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Admin,
    Guard,
    Refusal,
    load_or_create_secret,
)

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.jmap.http import JmapApp

TEMPLATES = Path(__file__).parent / "templates"
#: Largest form body accepted (the biggest field is a password or an address).
MAX_FORM = 64 * 1024
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
NAV = (("accounts", "", "Accounts"), ("connections", "/connections", "Connections"),
       ("security", "/security", "Auth failures"), ("storage", "/storage", "Storage"),
       ("jmapaccess", "/jmapaccess", "JMAPACCESS explain"))

Handler = Callable[["AdminContext"], Awaitable[Response]]


class AdminContext:
    """What a page handler gets: the request, the administrator, the server's parts and ``render``."""

    def __init__(self, app: AdminApp, request: Request, admin: Admin, form: dict[str, str]) -> None:
        self.app, self.request, self.admin, self.form = app, request, admin, form
        self.rt = app.jmap.rt
        self.store = self.rt.store
        self.base = request.scope.get("root_path", "")

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        return self.app.render(self.request, template, status, admin=self.admin, **values)

    def redirect(self, path: str, msg: str | None = None) -> Response:
        url = self.base + path + (f"?msg={msg}" if msg else "")
        return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


class AdminApp:
    def __init__(self, jmap: JmapApp) -> None:
        self.jmap = jmap
        config = jmap.rt.config
        secret = load_or_create_secret(Path(config.data_dir))
        self.guard = Guard(jmap, secret)
        env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True),
                          auto_reload=False)
        env.filters["size"] = pages.human_size
        env.filters["when"] = pages.when
        env.filters["ago"] = pages.ago
        self.templates = Jinja2Templates(env=env)
        routes = [
            Route("/", self.page(pages.accounts), methods=["GET"]),
            Route("/accounts", self.page(pages.create_account), methods=["POST"]),
            Route("/accounts/{account_id}", self.page(pages.account), methods=["GET"]),
            Route("/accounts/{account_id}/{action}", self.page(pages.account_action), methods=["POST"]),
            Route("/accounts/{account_id}/app-passwords/{ap_id}/revoke", self.page(pages.revoke_app_password),
                  methods=["POST"]),
            Route("/accounts/{account_id}/tokens/{jti}/revoke", self.page(pages.revoke_token), methods=["POST"]),
            Route("/connections", self.page(pages.connections), methods=["GET"]),
            Route("/security", self.page(pages.security), methods=["GET"]),
            Route("/storage", self.page(pages.storage), methods=["GET"]),
            Route("/jmapaccess", self.page(pages.jmapaccess), methods=["GET"]),
            Route("/csrf", self.page(pages.csrf), methods=["GET"]),
            Route("/logout", self.page(pages.logout), methods=["POST"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
        ]
        https = (config.effective_public_url or "").lower().startswith("https:")
        self.asgi = Starlette(routes=routes, middleware=[
            Middleware(SessionMiddleware, secret_key=secret, session_cookie=SESSION_COOKIE,
                       max_age=SESSION_SECONDS, same_site="strict", https_only=https),
        ])

    # -- rendering -------------------------------------------------------------------------------------------

    def render(self, request: Request, template: str, status: int = 200, *, admin: Admin | None = None,
               headers: dict[str, str] | None = None, **values: Any) -> Response:
        base = request.scope.get("root_path", "")
        binding = admin.binding if admin is not None else self.guard.nonce(request)
        context = {"base": base, "admin": admin, "nav": NAV, "csrf": self.guard.csrf_token(binding),
                   "csrf_field": CSRF_FIELD, "msg": pages.MESSAGES.get(request.query_params.get("msg", "")),
                   **values}
        return self.templates.TemplateResponse(request, template, context, status_code=status,
                                               headers={**SECURITY_HEADERS, **(headers or {})})

    def refused(self, request: Request, exc: Refusal) -> Response:
        headers: dict[str, str] = {}
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status == 401 and (exc.basic or not wants_html):
            realm = self.jmap.auth.realm.replace("\\", "\\\\").replace('"', '\\"')
            headers["WWW-Authenticate"] = f'Basic realm="{realm} admin", charset="UTF-8"'
        if exc.status in (401, 429, 503):
            if wants_html:
                return self.render(request, "login.html", exc.status, headers=headers, error=exc.message)
            return PlainTextResponse(exc.message + "\n", exc.status, headers={**SECURITY_HEADERS, **headers})
        return self.render(request, "error.html", exc.status, headers=headers, error=exc.message) \
            if wants_html else PlainTextResponse(exc.message + "\n", exc.status, headers=SECURITY_HEADERS)

    # -- the wrapper -----------------------------------------------------------------------------------------

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            try:
                admin = await self.guard.identify(request)
            except Refusal as exc:
                return self.refused(request, exc)
            form: dict[str, str] = {}
            if request.method == "POST":
                try:
                    form = await _form(request)
                except _BadForm as exc:
                    return PlainTextResponse(f"{exc}\n", 400, headers=SECURITY_HEADERS)
                token = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
                if not self.guard.csrf_ok(admin.binding, token):
                    return self.refused(request, Refusal(403, "Missing or invalid CSRF token; reload the page"))
            return await handler(AdminContext(self, request, admin, form))

        return endpoint

    async def login_form(self, request: Request) -> Response:
        return self.render(request, "login.html")

    async def login(self, request: Request) -> Response:
        try:
            form = await _form(request)
        except _BadForm as exc:
            return PlainTextResponse(f"{exc}\n", 400, headers=SECURITY_HEADERS)
        if not self.guard.csrf_ok(self.guard.nonce(request), form.get(CSRF_FIELD)):
            return self.refused(request, Refusal(403, "Missing or invalid CSRF token; reload the page"))
        try:
            await self.guard.log_in(request, form.get("address", ""), form.get("password", ""))
        except Refusal as exc:
            if exc.status == 401:
                exc.basic = False  # a failed form login: show the form again, no browser dialog
            return self.refused(request, exc)
        base = request.scope.get("root_path", "")
        return RedirectResponse(base + "/", status_code=303, headers=SECURITY_HEADERS)


class _BadForm(Exception):
    pass


async def _form(request: Request) -> dict[str, str]:
    """The POSTed fields of one of our forms (``application/x-www-form-urlencoded``), read with a size limit
    before anything is parsed: the login form is open to anyone, so its body must not be a way to fill memory."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_FORM):
        raise _BadForm("form too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise _BadForm("form too large")
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if body and kind != "application/x-www-form-urlencoded":
        raise _BadForm("forms are sent as application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise _BadForm("malformed form") from None
    return dict(pairs)


def build(jmap: JmapApp) -> Any:
    """The admin ASGI application for this JMAP front (called once, by janusmail.admin.AdminMount)."""
    return AdminApp(jmap).asgi


__all__ = ["AdminApp", "AdminContext", "build"]
