"""The one authenticator behind IMAP, JMAP and SMTP, and the RFC 9698 "would JMAP accept this?" predicate.

Every door asks the same object: IMAP LOGIN and SASL (via :mod:`janusmail.auth.sasl`), JMAP's
``Authorization`` header (:meth:`Authenticator.http_authenticate`) and, later, SMTP AUTH. A successful login is
an :class:`AuthResult` that records *how* the client authenticated (method and credential id), which is exactly
what :meth:`Authenticator.jmap_access_ok` needs to decide whether an IMAP session may see ``JMAPACCESS``.

The class is synchronous (SQLAlchemy Core on a sync engine, argon2 is CPU-bound); the asyncio servers call it
through ``asyncio.to_thread``. It is thread-safe: its only mutable state (credential cache, throttle) is locked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from janusmail.store.accounts import normalize_address
from janusmail.store.schema import accounts

from . import app_passwords, passwords
from .policy import PROTOCOLS, AuthPolicy
from .tokens import InvalidRequest, InvalidToken, TokenError, TokenInfo, TokenService

MAX_SECRET = 1024  # longer "passwords" are refused before any hashing (argon2 would hash megabytes happily)
MAX_ADDRESS = 320


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Who logged in and with what.

    ``method``: ``password`` | ``app_password`` | ``bearer`` | ``scram``. ``credential_id``: the app password id or
    the token's ``jti``. ``scopes``: the protocols the credential itself grants (all for the account password,
    the app password's list, the token's scope), before policy. ``expires_at``: token expiry (epoch seconds) or
    ``None``. ``issuer``/``audiences`` are kept for bearer logins so the JMAP question can be re-asked later.
    """

    account_id: str
    address: str
    method: str
    credential_id: str | None = None
    scopes: frozenset[str] = frozenset()
    expires_at: int | None = None
    issuer: str | None = None
    audiences: frozenset[str] = frozenset()


# --- failed-login backoff --------------------------------------------------------------------------------------


class LoginThrottle:
    """Sans-IO failed-login backoff: the adapter asks how long to wait and does the sleeping itself.

    Per (ip, address): the n-th consecutive failure costs ``base * 2**(n-1)`` seconds, capped at ``maximum``;
    a success or ``window`` seconds without failures forgets the count. Per ip alone, failures across many
    addresses (password spraying) start costing after :attr:`IP_FREE_FAILURES`. Memory is bounded (LRU).
    Delaying the *answer* (rather than refusing) keeps a legitimate user who mistyped able to log in, while
    making guessing slow; the adapter should also keep the connection busy meanwhile (no pipelined retries).
    """

    IP_FREE_FAILURES = 10

    def __init__(
        self,
        base: float = 1.0,
        maximum: float = 15.0,
        window: float = 900.0,
        *,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base, self.maximum, self.window = base, maximum, window
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._pairs: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._ips: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _delay_for(self, n: int) -> float:
        if n <= 0 or self.base <= 0:
            return 0.0
        return min(self.maximum, self.base * 2 ** min(n - 1, 30))

    def _count(self, table: OrderedDict, key: object, now: float) -> int:
        entry = table.get(key)
        if entry is None:
            return 0
        if now - entry[1] > self.window:
            del table[key]
            return 0
        return entry[0]

    def delay(self, ip: str, address: str | None) -> float:
        """Seconds to wait before answering the next attempt from ``ip`` for ``address`` (no recording)."""
        now = self._clock()
        key = (ip, normalize_address(address or ""))
        with self._lock:
            pair = self._count(self._pairs, key, now)
            ipn = self._count(self._ips, ip, now)
        return max(self._delay_for(pair), self._delay_for(ipn - self.IP_FREE_FAILURES))

    def failed(self, ip: str, address: str | None) -> float:
        """Record a failure; returns the seconds to wait before sending the failure response."""
        now = self._clock()
        key = (ip, normalize_address(address or ""))
        with self._lock:
            pair = self._count(self._pairs, key, now) + 1
            ipn = self._count(self._ips, ip, now) + 1
            self._pairs[key] = (pair, now)
            self._pairs.move_to_end(key)
            self._ips[ip] = (ipn, now)
            self._ips.move_to_end(ip)
            for table in (self._pairs, self._ips):
                while len(table) > self._max:
                    table.popitem(last=False)
        return max(self._delay_for(pair), self._delay_for(ipn - self.IP_FREE_FAILURES))

    def succeeded(self, ip: str, address: str | None) -> None:
        """Forget the (ip, address) failures; the per-ip count stays (a spray that hits one account goes on)."""
        with self._lock:
            self._pairs.pop((ip, normalize_address(address or "")), None)


# --- the authenticator -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Cached:
    kind: str  # "password" | "app_password"
    account_id: str
    ref: str  # the password hash seen when verified, or the app password id
    until: float


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")


class Authenticator:
    """Verify credentials for a protocol under an :class:`AuthPolicy`, and answer the JMAPACCESS question."""

    def __init__(
        self,
        engine: sa.Engine,
        policy: AuthPolicy | None = None,
        token_service: TokenService | None = None,
        *,
        throttle: LoginThrottle | None = None,
        clock: Callable[[], float] = time.time,
        realm: str = "Janus Mail",
    ) -> None:
        self.engine = engine
        self.policy = policy or AuthPolicy()
        self.tokens = token_service
        self.realm = realm
        self._clock = clock
        self.throttle = throttle or LoginThrottle(
            self.policy.login_delay_base, self.policy.login_delay_max, self.policy.login_failure_window
        )
        if token_service is not None and token_service.resolve_address is None:
            token_service.resolve_address = self.account_id_for
        self._secret = secrets.token_bytes(32)  # keys the cache and the fake SCRAM salts; per process
        self._cache: OrderedDict[bytes, _Cached] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- account lookups -------------------------------------------------------------------------------------

    def _account(self, *, address: str | None = None, account_id: str | None = None) -> sa.Row | None:
        q = sa.select(
            accounts.c.id, accounts.c.address, accounts.c.password_hash, accounts.c.scram_sha256,
            accounts.c.jmap_enabled,
        )  # fmt: skip
        q = (
            q.where(accounts.c.address == address)
            if address is not None
            else q.where(accounts.c.id == account_id)
        )
        with self.engine.connect() as conn:
            return conn.execute(q).first()

    def account_id_for(self, address: str) -> str | None:
        """Account id for an address (the resolver external token issuers use)."""
        if not isinstance(address, str):
            return None
        row = self._account(address=normalize_address(address))
        return row.id if row else None

    # -- passwords -------------------------------------------------------------------------------------------

    def _cache_key(self, address: str, secret: str) -> bytes:
        return hmac.new(self._secret, f"{address}\0{secret}".encode(), hashlib.sha256).digest()

    def _cache_get(self, key: bytes) -> _Cached | None:
        with self._cache_lock:
            entry = self._cache.get(key)
            if entry is not None and entry.until <= self._clock():
                del self._cache[key]
                entry = None
            return entry

    def _cache_put(self, key: bytes, entry: _Cached) -> None:
        if self.policy.credential_cache_seconds <= 0:
            return
        with self._cache_lock:
            self._cache[key] = entry
            self._cache.move_to_end(key)
            while len(self._cache) > 10_000:
                self._cache.popitem(last=False)

    def _password_result(self, row: sa.Row, method: str = "password") -> AuthResult:
        return AuthResult(row.id, row.address, method, None, frozenset(PROTOCOLS))

    def _app_result(self, row: sa.Row, ap: app_passwords.AppPassword) -> AuthResult:
        return AuthResult(row.id, row.address, "app_password", ap.id, ap.protocols)

    def verify_password(self, address: str, secret: str, protocol: str) -> AuthResult | None:
        """Check an address and a secret (account password, or an app password granted ``protocol``).

        Returns ``None`` on any failure, malformed input included; callers answer one generic "authentication
        failed" (and ask :attr:`throttle` how long to wait first). Decisions:

        * Unknown addresses still cost one argon2 verification, so timing does not reveal which addresses exist.
        * The policy gates each kind: e.g. with ``jmap_accepts_account_password`` off, the account password fails
          for ``protocol="jmap"`` exactly like a wrong one. An account with JMAP disabled fails every JMAP login.
        * The brief's order is account password, then app passwords; a secret shaped like an app password is
          tried against the app passwords first instead, which is cheap (SHA-256) and spares argon2 on every
          JMAP request. Only a secret equal to both could tell the difference; the narrower credential wins.
        * A successful account-password login upgrades an outdated argon2 hash and fills in a missing SCRAM
          secret, since only now do we hold the plaintext.
        """
        _check_protocol(protocol)
        if not isinstance(address, str) or not isinstance(secret, str):
            return None
        if not secret or len(secret) > MAX_SECRET or "\0" in secret or len(address) > MAX_ADDRESS:
            return None
        address = normalize_address(address)
        row = self._account(address=address) if address else None
        if row is None:
            passwords.burn_time()
            return None
        if protocol == "jmap" and not row.jmap_enabled:
            return None
        key = self._cache_key(address, secret)
        cached = self._cache_get(key)
        if cached is not None and cached.account_id == row.id:
            hit = self._from_cache(cached, row, protocol)
            if hit is not None:
                return hit
        allow_pw = self.policy.allows("password", protocol)
        allow_app = self.policy.allows("app_password", protocol)
        looks_app = app_passwords.normalize(secret) is not None
        if allow_app and looks_app:
            found = self._try_app(row, secret, protocol, key)
            if found is not None:
                return found
        if allow_pw:
            check = passwords.check_password(row.password_hash, secret)
            if check.ok:
                self._upgrade(row, secret, check.new_hash)
                now_hash = check.new_hash or row.password_hash
                self._cache_put(key, _Cached("password", row.id, now_hash, self._cache_until()))
                return self._password_result(row)
        else:
            passwords.burn_time()  # a refused kind fails as slowly as a wrong password: no policy probing
        return None

    def _cache_until(self) -> float:
        return self._clock() + self.policy.credential_cache_seconds

    def _try_app(self, row: sa.Row, secret: str, protocol: str, key: bytes) -> AuthResult | None:
        ap = app_passwords.verify(self.engine, row.id, secret, protocol, now=int(self._clock()))
        if ap is None:
            return None
        self._cache_put(key, _Cached("app_password", row.id, ap.id, self._cache_until()))
        return self._app_result(row, ap)

    def _from_cache(self, cached: _Cached, row: sa.Row, protocol: str) -> AuthResult | None:
        """A cache hit is re-checked against the current row, so password changes and revocations bite at once."""
        if cached.kind == "password":
            if self.policy.allows("password", protocol) and hmac.compare_digest(
                (row.password_hash or "").encode(), cached.ref.encode()
            ):
                return self._password_result(row)
            return None
        ap = app_passwords.get(self.engine, cached.ref)
        if ap is None or ap.account_id != row.id or not ap.allows(protocol):
            return None
        if not self.policy.allows("app_password", protocol):
            return None
        app_passwords.touch(self.engine, ap, now=int(self._clock()))
        return self._app_result(row, ap)

    def _upgrade(self, row: sa.Row, secret: str, new_hash: str | None) -> None:
        values: dict[str, str] = {}
        if new_hash is not None:
            values["password_hash"] = new_hash
        if passwords.parse_scram(row.scram_sha256) is None:
            try:
                values["scram_sha256"] = passwords.format_scram(passwords.make_scram_secret(secret))
            except ValueError:
                pass
        if not values:
            return
        with self.engine.begin() as conn:  # compare-and-set: never undo a concurrent password change
            conn.execute(
                sa.update(accounts)
                .where(accounts.c.id == row.id, accounts.c.password_hash == row.password_hash)
                .values(**values)
            )

    # -- SCRAM -----------------------------------------------------------------------------------------------

    def scram_secret(self, username: str, protocol: str) -> passwords.ScramSecret:
        """The stored SCRAM secret for ``username``, or a convincing fake.

        Unknown users, accounts without a SCRAM secret and policies that refuse the password for ``protocol`` get
        a fake whose salt is stable per username (so probing twice looks consistent) and whose keys are random:
        the exchange runs to the end and fails on the proof, revealing nothing about which case it was.
        """
        _check_protocol(protocol)
        address = normalize_address(username) if isinstance(username, str) else ""
        row = self._account(address=address) if address and len(address) <= MAX_ADDRESS else None
        secret = passwords.parse_scram(row.scram_sha256) if row is not None else None
        usable = (
            secret is not None
            and self.policy.allows("scram", protocol)
            and not (protocol == "jmap" and not row.jmap_enabled)
        )
        if usable:
            assert secret is not None
            return secret
        salt = hmac.new(self._secret, b"scram-salt\0" + address.encode(), hashlib.sha256).digest()[:16]
        return passwords.ScramSecret(
            salt, secrets.token_bytes(32), secrets.token_bytes(32), passwords.SCRAM_ITERATIONS
        )

    def scram_result(self, username: str) -> AuthResult | None:
        """The result for a SCRAM exchange whose proof checked out."""
        row = self._account(address=normalize_address(username))
        return self._password_result(row, "scram") if row is not None else None

    # -- bearer tokens ---------------------------------------------------------------------------------------

    def check_bearer(self, token: str, protocol: str) -> AuthResult:
        """Like :meth:`verify_bearer` but raising :class:`~janusmail.auth.tokens.TokenError` with the reason
        (OAUTHBEARER's error challenge and JMAP's ``WWW-Authenticate: Bearer error=...`` need it)."""
        _check_protocol(protocol)
        if self.tokens is None or not self.policy.allows("bearer", protocol):
            raise InvalidToken(f"bearer tokens are not accepted for {protocol}")
        if not isinstance(token, str):
            raise InvalidRequest("malformed token")
        info = self.tokens.validate(token, protocol)
        row = self._account(account_id=info.account_id)
        if row is None:
            raise InvalidToken("the token's account no longer exists")
        if protocol == "jmap" and not row.jmap_enabled:
            raise InvalidToken("JMAP is disabled for this account")
        return AuthResult(
            row.id, row.address, "bearer", info.jti, info.scopes, info.expires_at, info.issuer, info.audiences
        )

    def verify_bearer(self, token: str, protocol: str) -> AuthResult | None:
        """A bearer token valid for ``protocol`` (scope includes it, audience covers it), or ``None``."""
        try:
            return self.check_bearer(token, protocol)
        except TokenError:
            return None

    # -- RFC 9698 --------------------------------------------------------------------------------------------

    def jmap_access_ok(self, result: AuthResult) -> bool:
        """Would JMAP accept the credentials this session authenticated with, under current policy and facts?

        RFC 9698 §3 makes the ``JMAPACCESS`` capability a promise, so this re-reads the facts instead of
        trusting the session's memory: the account must still exist with ``jmap_enabled``, and then

        * ``password`` / ``scram``: JMAP accepts the account password over Basic (``jmap_accepts_basic`` and
          ``jmap_accepts_account_password``). SCRAM proved the same password, and a client holding it can send
          it with Basic, so it counts as a password;
        * ``app_password``: that app password still exists, is not revoked, lists ``jmap``, and the policy
          accepts app passwords over Basic;
        * ``bearer``: the token's scope has ``jmap``, it has not expired, its issuer is still trusted, its
          audience covers JMAP, and ``jmap_accepts_bearer``.

        Anything else (unknown methods such as a future EXTERNAL) is ``False``: silence is the safe answer,
        since RFC 9698 only lets us be wrong in the direction of not advertising.
        """
        row = self._account(account_id=result.account_id)
        if row is None or not row.jmap_enabled:
            return False
        p = self.policy
        if result.method in ("password", "scram"):
            return p.allows("password", "jmap") and bool(row.password_hash)
        if result.method == "app_password":
            if result.credential_id is None or not p.allows("app_password", "jmap"):
                return False
            ap = app_passwords.get(self.engine, result.credential_id)
            return ap is not None and ap.account_id == row.id and ap.allows("jmap")
        if result.method == "bearer":
            if self.tokens is None or not p.allows("bearer", "jmap") or result.issuer is None:
                return False
            if "jmap" not in result.scopes or result.expires_at is None or result.expires_at <= self._clock():
                return False
            if not self.tokens.trusts(result.issuer):
                return False
            info = TokenInfo(
                result.account_id, result.scopes, result.expires_at, result.issuer, result.audiences
            )
            return self.tokens.audience_covers(info, "jmap")
        return False

    # -- HTTP (JMAP) -----------------------------------------------------------------------------------------

    def http_authenticate(self, authorization: str | None) -> AuthResult | None:
        """Authenticate a JMAP request from its ``Authorization`` header, applying the JMAP policy.

        ``Basic`` (RFC 7617; the credentials are UTF-8, the user-id may not contain ``:``) is refused outright
        when ``jmap_accepts_basic`` is off; ``Bearer`` (RFC 6750) when ``jmap_accepts_bearer`` is off. Scheme
        names are case-insensitive. Anything malformed is ``None`` (the caller answers 401 with
        :meth:`www_authenticate`).
        """
        if not isinstance(authorization, str) or len(authorization) > 16384:
            return None
        scheme, _, param = authorization.strip().partition(" ")
        param = param.strip()
        scheme = scheme.lower()
        if scheme == "basic":
            if not self.policy.jmap_accepts_basic:
                return None
            creds = parse_basic(param)
            return self.verify_password(creds[0], creds[1], "jmap") if creds else None
        if scheme == "bearer":
            if not self.policy.jmap_accepts_bearer or not param or " " in param:
                return None
            return self.verify_bearer(param, "jmap")
        return None

    def www_authenticate(self, error: TokenError | None = None) -> list[str]:
        """``WWW-Authenticate`` challenges for a JMAP 401, one per scheme the policy accepts."""
        out: list[str] = []
        realm = self.realm.replace("\\", "\\\\").replace('"', '\\"')
        if self.policy.jmap_accepts_basic and (
            self.policy.jmap_accepts_account_password or self.policy.jmap_accepts_app_passwords
        ):
            out.append(f'Basic realm="{realm}", charset="UTF-8"')
        if self.policy.jmap_accepts_bearer and self.tokens is not None:
            bearer = f'Bearer realm="{realm}", scope="jmap"'
            if error is not None:
                desc = error.description.replace("\\", "").replace('"', "'")
                bearer += f', error="{error.error}", error_description="{desc}"'
            out.append(bearer)
        return out


def parse_basic(param: str) -> tuple[str, str] | None:
    """Decode RFC 7617 ``base64(user-id ":" password)`` as UTF-8; ``None`` when malformed."""
    try:
        raw = base64.b64decode(param.encode("ascii"), validate=True)
        text = raw.decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError):
        return None
    user, sep, password = text.partition(":")
    if not sep or not user:
        return None
    return user, password
