"""Who is asking the web admin, and is this POST really from one of its own forms?

Two ways in, one authenticator (:class:`janusmail.auth.Authenticator`), one throttle:

* **HTTP Basic** for scripts: every request carries the account password; an admin gets the page, a valid
  non-admin 403, anything else 401. The address and password are checked as protocol ``admin``, which accepts
  only the account password (janusmail.auth.policy.ADMIN): an app password or a token never administers.
* **The login form** for people: the same check once, then a session in a signed cookie (Starlette's
  SessionMiddleware over itsdangerous; HttpOnly, SameSite=Strict, Secure when the public URL is https). The
  session keeps the store-wide credential epoch read *before* the password was verified, and every request asks
  :func:`janusmail.auth.revocation.check` with it, the rule IMAP sessions live by: a changed password, a
  disabled or deleted account ends the admin session too. The admin flag is re-read on every request.

Failures are reported to the shared throttle (tarpit before the answer; a pair that keeps failing is refused
unchecked with 429), exactly as JMAP's Basic does, and counted and logged like the other doors' (metric
``janusmail_auth_failures_total{door="admin"}``: ``bad_credentials``, ``throttled``, ``busy``, and
``authz_denied`` for a valid account that is no administrator).

CSRF: every POST carries a token signed with itsdangerous (``URLSafeTimedSerializer``) over what identifies
the requester: the session's random nonce (issued with the first page, login form included, and replaced at
login) or, for Basic, the account. A cross-site form cannot read a token, so it cannot forge one. Scripts
using Basic fetch theirs from ``GET /admin/csrf`` and send it as ``csrf_token`` or ``X-CSRF-Token``.

The signing key is a file of the data directory (``admin-secret``, mode 0600, made once atomically), so
sessions survive a restart and every worker of ``serve --workers`` accepts every other worker's cookie.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from janusmail.auth import revocation
from janusmail.auth.authenticator import AuthResult, parse_basic
from janusmail.auth.policy import ADMIN
from janusmail.auth.throttle import LoginRefused
from janusmail.observability import logs

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.jmap.http import JmapApp

SECRET_FILE = "admin-secret"
SESSION_COOKIE = "janus_admin"
SESSION_SECONDS = 8 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

log = logging.getLogger("janusmail.admin")


def load_or_create_secret(data_dir: Path) -> str:
    """The data directory's admin signing key, created on first use (O_EXCL: two processes agree on one)."""
    path = Path(data_dir) / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text().strip()
        if len(text) >= 32:
            return text
        raise RuntimeError(f"{path} is damaged (too short): remove it to make a new one") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


@dataclass(frozen=True, slots=True)
class Admin:
    """An authenticated administrator. ``via``: ``basic`` or ``session``; ``binding``: what its CSRF tokens
    are bound to."""

    account_id: str
    address: str
    via: str
    binding: str


class Refusal(Exception):
    """Not let in: ``status`` 401 (no or bad credentials), 403 (not an admin), 429/503 (throttled, busy)."""

    def __init__(self, status: int, message: str, *, retry_after: float | None = None,
                 basic: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.retry_after, self.basic = status, message, retry_after, basic


class Guard:
    """Authentication and CSRF for the admin app (one per app; holds no per-request state)."""

    def __init__(self, jmap: JmapApp, secret: str) -> None:
        self.jmap = jmap
        self.rt = jmap.rt
        self.auth = jmap.auth
        self.store = jmap.store
        self._csrf = URLSafeTimedSerializer(secret, salt="janusmail-admin-csrf")

    # -- CSRF ------------------------------------------------------------------------------------------------

    @staticmethod
    def nonce(request: Request) -> str:
        """The session's CSRF nonce, made on first use (the login form gets one too)."""
        value = request.session.get("nonce")
        if not isinstance(value, str):
            value = secrets.token_urlsafe(24)
            request.session["nonce"] = value
        return value

    def csrf_token(self, binding: str) -> str:
        return str(self._csrf.dumps(binding))

    def csrf_ok(self, binding: str, token: object) -> bool:
        if not isinstance(token, str) or not token or len(token) > 512:
            return False
        try:
            value = self._csrf.loads(token, max_age=SESSION_SECONDS)
        except BadSignature:
            return False
        return isinstance(value, str) and hmac.compare_digest(value.encode(), binding.encode())

    # -- who is asking -----------------------------------------------------------------------------------------

    async def identify(self, request: Request) -> Admin:
        """The administrator making this request, or :class:`Refusal`."""
        header = request.headers.get("authorization")
        if header is not None:
            return await self._basic(request, header)
        uid, address, base = (request.session.get(k) for k in ("uid", "addr", "base"))
        if not (isinstance(uid, str) and isinstance(address, str) and isinstance(base, int)):
            raise Refusal(401, "Log in to continue")
        result = AuthResult(uid, address, "password")
        verdict = await self.store.call(revocation.check, self.store, result, base, now=time.time())
        if verdict.reason is not None:
            request.session.clear()
            raise Refusal(401, f"{verdict.reason}. Log in again.")
        if verdict.baseline != base:
            request.session["base"] = verdict.baseline  # changes that do not concern this session
        if not await self.store.call(self.store.accounts.is_admin, uid):
            raise Refusal(403, "This account is not an administrator")
        return Admin(uid, address, "session", self.nonce(request))

    async def _basic(self, request: Request, header: str) -> Admin:
        scheme, _, param = header.strip().partition(" ")
        creds = parse_basic(param.strip()) if scheme.lower() == "basic" else None
        if creds is None:
            raise Refusal(401, "HTTP Basic credentials required", basic=True)
        result = await self.verify(request, creds[0], creds[1])
        if result is None:
            raise Refusal(401, "Authentication failed", basic=True)
        if not await self.store.call(self.store.accounts.is_admin, result.account_id):
            self.failed("authz_denied", self.jmap.client_ip(request), result.address)
            raise Refusal(403, "This account is not an administrator")
        return Admin(result.account_id, result.address, "basic", "basic:" + result.account_id)

    async def verify(self, request: Request, address: str, password: str) -> AuthResult | None:
        """Check an address and account password through the shared throttle, as every door does: refused
        unchecked while the pair is throttled (429), the failure answer tarpitted, success clearing the pair."""
        ip = self.jmap.client_ip(request)
        try:
            self.auth.precheck(ip, address, password)
            result = await self.auth.run(self.auth.verify_password, address, password, ADMIN, client_ip=ip)
        except LoginRefused as exc:
            self.failed(exc.kind, ip, address)
            raise Refusal(429 if exc.kind == "throttled" else 503, exc.reason,
                          retry_after=exc.retry_after) from None
        if result is None:
            self.failed("bad_credentials", ip, address)
            await self.auth.throttle.pause(self.auth.throttle.failed(ip, address))
            return None
        self.auth.throttle.succeeded(ip, address)
        return result

    def failed(self, kind: str, ip: str, address: str) -> None:
        """Count and log a refused admin login as the other doors do theirs (door ``admin``; ``kind`` one of
        janusmail.observability.metrics.AUTH_KINDS); never the password."""
        self.rt.metrics.auth_failure("admin", kind)
        logs.event(log, logging.INFO, "auth.failure", door="admin", kind=kind, peer=ip, user=address)

    async def log_in(self, request: Request, address: str, password: str) -> Admin:
        """The login form: verify, require the admin flag, and start a fresh session (new nonce: a token
        planted before login is worthless after it)."""
        base = await self.store.call(self.store.credentials.sequence)  # before verifying: no change missed
        result = await self.verify(request, address, password)
        if result is None:
            raise Refusal(401, "Wrong address or password")
        if not await self.store.call(self.store.accounts.is_admin, result.account_id):
            self.failed("authz_denied", self.jmap.client_ip(request), result.address)
            raise Refusal(403, "This account is not an administrator")
        request.session.clear()
        request.session.update({"uid": result.account_id, "addr": result.address, "base": base})
        return Admin(result.account_id, result.address, "session", self.nonce(request))
