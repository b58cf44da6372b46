"""The one authenticator behind IMAP, JMAP and SMTP, and the RFC 9698 "would JMAP accept this?" predicate.

Every door asks the same object: IMAP LOGIN and SASL (via :mod:`janusmail.auth.sasl`), JMAP's
``Authorization`` header (:meth:`Authenticator.http_authenticate`) and, later, SMTP AUTH. A successful login is
an :class:`AuthResult` that records *how* the client authenticated (method and credential id), which is exactly
what :meth:`Authenticator.jmap_access_ok` needs to decide whether an IMAP session may see ``JMAPACCESS``.

The class is synchronous (the store's typed methods are, argon2 is CPU-bound); the asyncio servers call it
through :meth:`Authenticator.run`, on threads of its own: a login waiting for a hashing slot must never hold a
thread of the loop's shared executor, which the store needs. It is thread-safe: its mutable state (the
verification cache, the throttle, the hashing gate) is locked.

Logins cannot starve the server (see :mod:`janusmail.auth.throttle`): the throttle refuses a (client, account)
pair that keeps failing before any argon2 work (and before any database work unless the credential may be
remembered); argon2 runs behind a bounded, prioritised gate; recently verified credentials are remembered
(:mod:`janusmail.auth.verify_cache`) and need no hashing at all, which is also why a remembered credential is
heard even from a throttled pair: an attacker sharing the owner's NAT cannot keep the owner out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from janusmail.store import writer_calls
from janusmail.store.accounts import normalize_address
from janusmail.store.credentials import LoginAccount

from . import app_passwords, passwords
from .http_memo import HttpMemo
from .policy import LOGIN_PROTOCOLS, PROTOCOLS, AuthPolicy
from .throttle import CLEAN, HashGate, LoginRefused, LoginThrottle, Verdict, client_key
from .tokens import InvalidRequest, InvalidToken, TokenError, TokenInfo, TokenService
from .verify_cache import InFlight, Verified, VerifiedCache

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = ["AuthResult", "Authenticator", "JmapAccessDecision", "LoginRefused", "LoginThrottle", "parse_basic"]

T = TypeVar("T")

MAX_SECRET = 1024  # longer "passwords" are refused before any hashing (argon2 would hash megabytes happily)
MAX_ADDRESS = 320
SPARE_THREADS = 8  # login threads beyond the gate's and the followers' needs, for cheap work (lookups, refusals)


@dataclass(frozen=True, slots=True)
class JmapAccessDecision:
    """RFC 9698: would JMAP accept a login's credentials (``offered``), and the one fact that decides it, in
    the operator's words (a setting as written in ``[auth]``, or a fact about the account or credential)."""

    offered: bool
    fact: str


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


#: The scopes of an account password: one shared set, not a new one in every login's result (each idle IMAP
#: session keeps its AuthResult; a frozenset of three costs about 200 bytes).
ALL_PROTOCOLS: frozenset[str] = frozenset(PROTOCOLS)


# --- the authenticator -----------------------------------------------------------------------------------------


def _check_protocol(protocol: str) -> None:
    if protocol not in LOGIN_PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")


class Authenticator:
    """Verify credentials for a protocol under an :class:`AuthPolicy`, and answer the JMAPACCESS question."""

    def __init__(
        self,
        store: Store,
        policy: AuthPolicy | None = None,
        token_service: TokenService | None = None,
        *,
        throttle: LoginThrottle | None = None,
        gate: HashGate | None = None,
        clock: Callable[[], float] = time.time,
        realm: str = "Janus Mail",
    ) -> None:
        self.store = store
        self.policy = policy or AuthPolicy()
        self.tokens = token_service
        self.realm = realm
        self._clock = clock
        self.throttle = throttle or LoginThrottle(
            self.policy.login_delay_base, self.policy.login_delay_max, self.policy.login_failure_window
        )
        self.gate = gate or HashGate(_hash_workers(self.policy.login_hash_workers), self.policy.login_hash_queue)
        if token_service is not None and token_service.resolve_address is None:
            token_service.resolve_address = self.account_id_for
        self._secret = secrets.token_bytes(32)  # keys the fake SCRAM salts; per process
        self.cache = VerifiedCache(self.policy.credential_cache_seconds, clock=clock)
        #: accepted JMAP Basic headers, answered without a database read while no credential changed
        self.http_memo = HttpMemo(store.credential_signal.read, self.cache, clock)
        self.flights = InFlight()
        self._pool: ThreadPoolExecutor | None = None

    # -- running login work --------------------------------------------------------------------------------

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking login step (``verify_password``, a SASL step, ``http_authenticate``) on the
        authenticator's own threads. There are enough of them for every hashing slot and queue place plus
        :data:`SPARE_THREADS`, so the gate's waiters never hold back cheap work, and none of the loop's."""
        if self._pool is None:
            size = self.gate.workers + self.gate.queue + self.flights.max_followers + SPARE_THREADS
            self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="janus-login")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Let the login threads go (idle ones also exit when the authenticator is garbage)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def precheck(self, client_ip: str | None, address: str | None, secret: str | None = None) -> Verdict:
        """The throttle's verdict for an attempt, before any work; raises :class:`LoginRefused` ("throttled")
        when this client failed for this account too recently, unless ``secret`` may be a remembered credential
        (:meth:`VerifiedCache.hinted`, no database read): then the (refused) verdict is returned and
        :meth:`verify_password` accepts it only on a real cache hit. ``client_ip=None`` (local tools) is not
        throttled. Adapters that know the address call it on the event loop, so a refused flood never reaches a
        thread."""
        if client_ip is None:
            return Verdict(CLEAN)
        verdict = self.throttle.check(client_ip, address)
        if verdict.refused and not self._hinted(address, secret):
            raise LoginRefused("throttled", verdict.retry_after)
        return verdict

    def _hinted(self, address: str | None, secret: str | None) -> bool:
        if not isinstance(address, str) or not isinstance(secret, str):
            return False
        if not secret or len(secret) > MAX_SECRET or len(address) > MAX_ADDRESS:
            return False
        return self.cache.hinted(normalize_address(address), secret)

    def _hashing(self, verdict: Verdict, client_ip: str | None, address: str) -> Any:
        return self.gate.admit(verdict.priority, client_key(client_ip), address)

    # -- account lookups -------------------------------------------------------------------------------------

    def _account(self, *, address: str | None = None, account_id: str | None = None) -> LoginAccount | None:
        return self.store.credentials.login_account(address=address, account_id=account_id)

    def account_id_for(self, address: str) -> str | None:
        """Account id for an address (the resolver external token issuers use)."""
        if not isinstance(address, str):
            return None
        row = self._account(address=normalize_address(address))
        return row.id if row else None

    # -- passwords -------------------------------------------------------------------------------------------

    def _password_result(self, row: LoginAccount, method: str = "password") -> AuthResult:
        return AuthResult(row.id, row.address, method, None, ALL_PROTOCOLS)

    def _app_result(self, row: LoginAccount, ap: app_passwords.AppPassword) -> AuthResult:
        return AuthResult(row.id, row.address, "app_password", ap.id, ap.protocols)

    def verify_password(
        self, address: str, secret: str, protocol: str, *, client_ip: str | None = None
    ) -> AuthResult | None:
        """Check an address and a secret (account password, or an app password granted ``protocol``).

        Returns ``None`` on any failure, malformed input included; callers answer one generic "authentication
        failed" and report it to :attr:`throttle` (whose answer is the tarpit before that answer). Raises
        :class:`LoginRefused` when the attempt was not checked at all: ``client_ip`` failed for this address too
        recently ("throttled", decided before any argon2 work; a remembered credential still gets in) or the
        hashing queue is full ("busy"); that is no failure and must not be reported as one. Decisions:

        * Order: throttle, account lookup, the cache of recent verifications (no argon2 on a hit), app
          passwords (SHA-256), then argon2 behind :attr:`gate`, ranked by the throttle's priority for
          ``client_ip`` (an address this account last logged in from first, addresses without failures next).
          Identical concurrent attempts share one argon2 run (:class:`~janusmail.auth.verify_cache.InFlight`).
        * A throttled (``client_ip``, account) pair is heard only for a credential the cache remembers
          (accepted: no argon2, no gate, no failure); anything else from it is refused, with no argon2 and,
          unless the cache holds a hint for that secret, no database read either.
        * Unknown addresses (and JMAP-disabled accounts on JMAP) still cost one argon2 verification through the
          same gate at the same priority, so timing does not reveal which addresses exist.
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
        verdict = self.precheck(client_ip, address, secret)
        if verdict.refused:
            return self._remembered_only(address, secret, protocol, verdict)
        row = self._account(address=address) if address else None
        if row is None or row.disabled or (protocol == "jmap" and not row.jmap_enabled):
            # exactly the path of a wrong password below (flight, gate, re-check): nothing to time or to see
            self._shared_check(self.cache.key("", address, secret), verdict, client_ip, address, _burn)
            return None
        key = self.cache.key(row.id, row.password_hash or "", secret)
        hit = self._cached(key, row, protocol)
        if hit is not None:
            return hit
        allow_pw = self.policy.allows("password", protocol)
        allow_app = self.policy.allows("app_password", protocol)
        looks_app = app_passwords.normalize(secret) is not None
        if allow_app and looks_app:
            found = self._try_app(row, secret, protocol, key)
            if found is not None:
                return found
        if not allow_pw:  # a refused kind fails as slowly as a wrong password: no policy probing
            self._shared_check(key, verdict, client_ip, address, _burn)
            return None
        checks: list[passwords.PasswordCheck] = []

        def check() -> bool:
            checks.append(passwords.check_password(row.password_hash, secret))
            return checks[0].ok

        if not self._shared_check(key, verdict, client_ip, address, check):
            return None
        if checks:  # verified here (a follower shares the leader's success and has nothing to store)
            self._upgrade(row, secret, checks[0].new_hash)
            now_hash = checks[0].new_hash or row.password_hash or ""
            hint = self.cache.hint_key(row.address, secret)
            self.cache.put(self.cache.key(row.id, now_hash, secret), "password", row.id, hint=hint)
        return self._password_result(row)

    def _remembered_only(self, address: str, secret: str, protocol: str, verdict: Verdict) -> AuthResult:
        """A throttled pair whose secret the cache hints at: the account row (one indexed read) gives the binding
        for the real lookup. A hit gets in; anything else is the refusal it would have been, unhashed."""
        row = self._account(address=address) if address else None
        if row is not None and not row.disabled and not (protocol == "jmap" and not row.jmap_enabled):
            hit = self._cached(self.cache.key(row.id, row.password_hash or "", secret), row, protocol)
            if hit is not None:
                return hit
        raise LoginRefused("throttled", verdict.retry_after)

    def _cached(self, key: bytes, row: LoginAccount, protocol: str) -> AuthResult | None:
        cached = self.cache.get(key)
        if cached is None or cached.account_id != row.id:
            return None
        return self._from_cache(cached, row, protocol)

    def _shared_check(
        self, key: bytes, verdict: Verdict, client_ip: str | None, address: str, check: Callable[[], bool]
    ) -> bool:
        """Run ``check`` (argon2) behind the gate, re-asking the throttle once admitted (the pair may have
        failed while this attempt queued). Identical concurrent attempts (same ``key``) share one run: followers
        take the leader's success, and verify on their own otherwise."""
        role, flight = self.flights.join(key)
        if role == "follow":
            assert flight is not None
            if self.flights.wait(flight, self.gate.max_wait + 5) is not None:
                return True
            role, flight = "alone", None
        ok = False
        try:
            with self._hashing(verdict, client_ip, address):
                self.precheck(client_ip, address)
                ok = check()
            return ok
        finally:
            if role == "lead" and flight is not None:
                self.flights.finish(key, flight, _SHARED if ok else None)

    def _try_app(self, row: LoginAccount, secret: str, protocol: str, key: bytes) -> AuthResult | None:
        ap = app_passwords.verify(self.store, row.id, secret, protocol, now=int(self._clock()), wait=False)
        if ap is None:
            return None
        self.cache.put(key, "app_password", row.id, ap.id, hint=self.cache.hint_key(row.address, secret))
        return self._app_result(row, ap)

    def _from_cache(self, cached: Verified, row: LoginAccount, protocol: str) -> AuthResult | None:
        """A hit is re-checked against the current facts: the key already binds the stored password hash (a
        password change misses), an app password is re-read (revocation bites at once), policy is re-asked."""
        if cached.kind == "password":
            return self._password_result(row) if self.policy.allows("password", protocol) else None
        ap = app_passwords.get(self.store, cached.ref) if cached.ref else None
        if ap is None or ap.account_id != row.id or not ap.allows(protocol):
            return None
        if not self.policy.allows("app_password", protocol):
            return None
        app_passwords.touch(self.store, ap, now=int(self._clock()), wait=False)  # the login does not wait
        return self._app_result(row, ap)

    def _upgrade(self, row: LoginAccount, secret: str, new_hash: str | None) -> None:
        scram: str | None = None
        if passwords.parse_scram(row.scram_sha256) is None:
            try:
                scram = passwords.format_scram(passwords.make_scram_secret(secret))
            except ValueError:
                pass
        if new_hash is None and scram is None:
            return
        # compare-and-set on the writer: never undo a concurrent password change
        writer_calls.run(self.store, self.store.credentials.upgrade_password, row.id, row.password_hash,
                         password_hash=new_hash, scram_sha256=scram)

    # -- SCRAM -----------------------------------------------------------------------------------------------

    def scram_secret(
        self, username: str, protocol: str, *, client_ip: str | None = None
    ) -> passwords.ScramSecret:
        """The stored SCRAM secret for ``username``, or a convincing fake.

        Unknown users, accounts without a SCRAM secret and policies that refuse the password for ``protocol``
        get a fake whose salt is stable per username (so probing twice looks consistent) and whose keys are
        random: the exchange runs to the end and fails on the proof, revealing nothing about which case it was.

        A (``client_ip``, account) pair the throttle refuses raises :class:`LoginRefused` before any database
        work, like LOGIN: the exchange ends as a refusal, which counts as no failure (counting it would lengthen
        the penalty of a pair that never got checked). No proof is looked at, since SCRAM costs the server no
        argon2 and an uncounted guess would be free; SCRAM has no success cache to let the owner through.
        """
        _check_protocol(protocol)
        address = normalize_address(username) if isinstance(username, str) else ""
        self.precheck(client_ip, address)
        ok_address = address and len(address) <= MAX_ADDRESS
        row = self._account(address=address) if ok_address else None
        secret = passwords.parse_scram(row.scram_sha256) if row is not None else None
        usable = (
            secret is not None
            and self.policy.allows("scram", protocol)
            and not row.disabled
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
        # a revoked token (store.tokens): a set lookup in memory, no database read per request
        if info.builtin and info.jti is not None and self.store.tokens.is_revoked(info.jti):
            raise InvalidToken("the token was revoked")
        row = self._account(account_id=info.account_id)
        if row is None:
            raise InvalidToken("the token's account no longer exists")
        if row.disabled:
            raise InvalidToken("the token's account is disabled")
        if protocol == "jmap" and not row.jmap_enabled:
            raise InvalidToken("JMAP is disabled for this account")
        if info.builtin and info.jti is not None:
            self.store.tokens.touch_soon(info.jti, int(self._clock()))  # last use: queued, at most once a minute
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
        (:meth:`jmap_access_decision` decides; this is its yes or no.)"""
        return self.jmap_access_decision(result).offered

    def jmap_access_decision(
        self, result: AuthResult, *, app_password: app_passwords.AppPassword | None = None
    ) -> JmapAccessDecision:
        """Whether JMAP would accept the credentials ``result`` was made from, and the fact that decides it.

        RFC 9698 §3 makes the ``JMAPACCESS`` capability a promise, so this re-reads the facts instead of
        trusting the session's memory: the account must still exist, not be disabled, have ``jmap_enabled``,
        and then

        * ``password`` / ``scram``: JMAP accepts the account password over Basic (``jmap_accepts_basic`` and
          ``jmap_accepts_account_password``). SCRAM proved the same password, and a client holding it can send
          it with Basic, so it counts as a password;
        * ``app_password``: that app password still exists, is not revoked, lists ``jmap``, and the policy
          accepts app passwords over Basic;
        * ``bearer``: the token's scope has ``jmap``, it has not expired, its issuer is still trusted, its
          audience covers JMAP, and ``jmap_accepts_bearer``.

        Anything else (unknown methods such as a future EXTERNAL) is refused: silence is the safe answer,
        since RFC 9698 only lets us be wrong in the direction of not advertising. ``app_password`` stands in
        for the stored one (the web admin's "what if" for an app password with given protocols); without it
        the app password is re-read by ``result.credential_id``. The decision is the same either way.
        """
        row = self._account(account_id=result.account_id)
        if row is None:
            return JmapAccessDecision(False, "the account does not exist")
        if row.disabled:
            return JmapAccessDecision(False, "the account is disabled")
        if not row.jmap_enabled:
            return JmapAccessDecision(False, "JMAP is switched off for this account (jmap_enabled = false)")
        refused = self.policy.refusal(result.method, "jmap")
        if refused is not None:
            return JmapAccessDecision(False, f"[auth] {refused}")
        if result.method in ("password", "scram"):
            if not row.password_hash:
                return JmapAccessDecision(False, "the account has no password")
            return JmapAccessDecision(True, "JMAP accepts the account password over HTTP Basic")
        if result.method == "app_password":
            ap = app_password
            if ap is None and result.credential_id is not None:
                ap = app_passwords.get(self.store, result.credential_id)
            if ap is None or ap.account_id != row.id:
                return JmapAccessDecision(False, "the app password no longer exists")
            if not ap.active:
                return JmapAccessDecision(False, "the app password was revoked")
            if not ap.allows("jmap"):
                return JmapAccessDecision(False, "the app password is not granted jmap")
            return JmapAccessDecision(True, "the app password is granted jmap and JMAP accepts app passwords")
        if result.method == "bearer":
            if self.tokens is None or result.issuer is None:
                return JmapAccessDecision(False, "no token issuer is configured")
            if "jmap" not in result.scopes:
                return JmapAccessDecision(False, "the token's scope lacks jmap")
            if result.expires_at is None or result.expires_at <= self._clock():
                return JmapAccessDecision(False, "the token has expired")
            if not self.tokens.trusts(result.issuer):
                return JmapAccessDecision(False, "the token's issuer is no longer trusted")
            info = TokenInfo(
                result.account_id, result.scopes, result.expires_at, result.issuer, result.audiences
            )
            if not self.tokens.audience_covers(info, "jmap"):
                return JmapAccessDecision(False, "the token's audience does not cover JMAP")
            return JmapAccessDecision(True, "the token's scope has jmap and its audience covers JMAP")
        return JmapAccessDecision(False, f"JMAP never accepts {result.method!r} credentials")

    # -- HTTP (JMAP) -----------------------------------------------------------------------------------------

    def http_authenticate(self, authorization: str | None, *, client_ip: str | None = None) -> AuthResult | None:
        """Authenticate a JMAP request from its ``Authorization`` header, applying the JMAP policy.

        ``Basic`` (RFC 7617; the credentials are UTF-8, the user-id may not contain ``:``) is refused outright
        when ``jmap_accepts_basic`` is off; ``Bearer`` (RFC 6750) when ``jmap_accepts_bearer`` is off. Scheme
        names are case-insensitive. Anything malformed is ``None`` (the caller answers 401 with
        :meth:`www_authenticate`). Basic raises :class:`LoginRefused` like :meth:`verify_password`.
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
            if not creds:
                return None
            baseline = self.http_memo.baseline()  # before the check: a change committed meanwhile moves it
            result = self.verify_password(creds[0], creds[1], "jmap", client_ip=client_ip)
            if result is not None:
                self.http_memo.put(authorization, baseline, result)
            return result
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


def _hash_workers(configured: int | float) -> int:
    """``login_hash_workers``: 0 means one per CPU, at least 3 (a slot per priority class, see HashGate) and at
    most 4 (argon2 runs several lanes per hash on threads of its own, so more workers buy little)."""
    if configured and configured > 0:
        return int(configured)
    return max(3, min(4, os.cpu_count() or 1))


#: What a flight's leader hands its followers on success (they rebuild the result from their own row).
_SHARED = Verified("password", "", None, 0.0)


def _burn() -> bool:
    passwords.burn_time()
    return False
