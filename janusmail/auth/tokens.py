"""OAuth 2.0 bearer tokens: a built-in issuer, optional trusted external issuers, one validation path.

Tokens are JWT access tokens (RFC 9068 shape): ``iss`` (the data directory's issuer), ``sub`` (account id), ``aud``,
``scope`` (a space-separated subset of ``imap jmap smtp``), ``exp``, ``iat``, ``jti``. IMAP/SMTP receive them
through SASL OAUTHBEARER (RFC 7628) or XOAUTH2 and JMAP through ``Authorization: Bearer`` (RFC 6750); all three
call :meth:`TokenService.validate`, which is what lets RFC 9698 ask "would JMAP accept this token too?".

**Library: PyJWT** (not authlib/joserfc). Its ``decode`` refuses to run without an explicit algorithm allow-list
(no ``alg: none`` or HMAC-with-a-public-key confusion), it maps each failure to its own exception class, which
we translate into RFC 6750 reasons, and it parses JWK sets (``PyJWK``) for the external issuers. authlib's own
``jose`` module is deprecated in favour of joserfc, and we need none of joserfc's JWE/JWS-JSON extras. Time
claims (``exp``/``nbf``/``iat``) are checked here, not by PyJWT, so that one injectable clock rules issuing and
validation alike (PyJWT reads the wall clock itself).

**Signing key**: one ES256 (P-256) key, generated on first use into ``<data_dir>/oauth-key.pem`` (mode 0600,
created atomically so two processes starting together agree on one key). ES256 over RS256: 64-byte
signatures and instant key generation. The key id is the RFC 7638 thumbprint; :meth:`TokenService.jwks` gives
the public JWK set for a ``jwks_uri`` endpoint.

**Issuer name**: one fact of the data directory, like the key: recorded in ``<data_dir>/oauth-issuer`` the first
time any command needs it (from the public URL known then) and read unchanged by ``serve`` and every CLI
command afterwards, whatever ``--public-url`` each is started with. Deriving it from each process's flags made a
token from ``janusmail token issue`` useless against a server started with another public URL. An operator who
moves the server edits that one line (old tokens then stop working, as they should once their issuer is gone).

**External issuers** (e.g. a company IdP): configured with the issuer string, a JWKS URL (fetched with httpx,
cached, refetched on an unknown ``kid`` at most every ``min_refresh`` seconds) or a local JWKS file (tests,
air-gapped setups), the accepted audience(s), and the claim that names the account (``email`` or ``sub``...),
which is mapped to an account id through a resolver the authenticator supplies. An ``email`` claim with
``email_verified: false`` is refused: an unverified address must not open a mailbox.

**Audiences per protocol**: by default a token accepted by an issuer's audience is good for every protocol in
its scope. ``protocol_audiences`` narrows that (e.g. JMAP only accepts ``aud=https://jmap.example``), which is
the "audience covers JMAP" fact :meth:`TokenService.audience_covers` answers for JMAPACCESS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from janusmail.store import ids

if TYPE_CHECKING:  # pragma: no cover
    import httpx

    from janusmail.store.store import Store

SCOPES: tuple[str, ...] = ("imap", "jmap", "smtp")
KEY_FILE = "oauth-key.pem"
ISSUER_FILE = "oauth-issuer"
BUILTIN_ALGORITHM = "ES256"
#: Asymmetric algorithms an external issuer may use. HMAC is never accepted: a shared secret would let every
#: relying party mint tokens.
ALLOWED_EXTERNAL_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip
MAX_TOKEN_LENGTH = 16384
DEFAULT_TTL = 3600


# --- errors ----------------------------------------------------------------------------------------------------


class TokenError(Exception):
    """A refused token. ``error`` is the RFC 6750 error code (also RFC 7628's ``status``); ``reason`` adds
    ``expired`` to the codes; ``description`` is safe to send to the client."""

    error = "invalid_token"
    reason = "invalid_token"

    def __init__(self, description: str, *, scope: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.scope = scope


class InvalidRequest(TokenError):
    error = reason = "invalid_request"


class InvalidToken(TokenError):
    error = reason = "invalid_token"


class ExpiredToken(InvalidToken):
    reason = "expired"


class InsufficientScope(TokenError):
    error = reason = "insufficient_scope"


# --- values ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a valid token says. ``scopes`` keeps only the protocol scopes we know (``imap jmap smtp``)."""

    account_id: str
    scopes: frozenset[str]
    expires_at: int
    issuer: str
    audiences: frozenset[str] = frozenset()
    jti: str | None = None
    subject: str = ""
    address: str | None = None  # the mapped claim's value, for external issuers
    builtin: bool = True


@dataclass(frozen=True, slots=True)
class Minted:
    """A token the built-in issuer just signed, with the claims its record keeps (never the token itself)."""

    token: str
    jti: str
    account_id: str
    scopes: frozenset[str]
    issued_at: int
    expires_at: int


def issue_recorded(
    store: Store,
    service: TokenService,
    account_id: str,
    scopes: Iterable[str] = SCOPES,
    ttl: int | None = None,
    *,
    label: str = "",
) -> Minted:
    """Sign a token and record it in the store (``store.tokens``) before handing it out, so that the operator
    can list it and revoke it before it expires (``janusmail token list|revoke``, the web admin). The record is
    written through the store's writer (a synchronous caller: the CLI, a login thread). ``NotFound`` when the
    account does not exist."""
    from janusmail.store import writer_calls

    minted = service.mint(account_id, scopes, ttl)
    writer_calls.run(store, store.tokens.record, minted.account_id, minted.jti, minted.scopes,
                     minted.issued_at, minted.expires_at, label=label)
    return minted


def parse_scopes(value: object) -> frozenset[str]:
    """``"imap jmap openid"`` or ``["imap", "jmap"]`` -> the protocol scopes among them."""
    if isinstance(value, str):
        items: Iterable[object] = value.split()
    elif isinstance(value, list | tuple):
        items = value
    else:
        return frozenset()
    return frozenset(s for s in items if isinstance(s, str) and s in SCOPES)


def _check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    wanted = frozenset(scopes)
    bad = wanted - set(SCOPES)
    if bad or not wanted:
        raise ValueError(f"scopes must be a non-empty subset of {' '.join(SCOPES)}; got {sorted(wanted)}")
    return wanted


def _audiences(value: object) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset({value}) if value else frozenset()
    if isinstance(value, list | tuple | frozenset | set):
        return frozenset(v for v in value if isinstance(v, str) and v)
    return frozenset()


def _protocol_audiences(value: Mapping[str, object] | None) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}
    for proto, auds in (value or {}).items():
        if proto not in SCOPES:
            raise ValueError(f"protocol_audiences: unknown protocol {proto!r}")
        auds_set = _audiences(auds)
        if not auds_set:
            raise ValueError(f"protocol_audiences[{proto!r}] needs at least one audience")
        out[proto] = auds_set
    return out


# --- the signing key -------------------------------------------------------------------------------------------


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load the P-256 signing key, creating it (0600, atomically) the first time."""
    path = Path(path)
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _create_once(path, pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError(f"{path} is not a P-256 private key")
    return key


def _create_once(path: Path, data: bytes) -> None:
    """Write ``path`` with ``data`` unless it exists (0600, fsynced, atomic): when two processes race, the first
    link wins and the other one's content is dropped, so every process ends up reading the same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and never overwrites: the first process to get here wins
        except FileExistsError:
            pass  # another process won the race: use its file
        except OSError:  # a filesystem without hard links
            if not path.exists():
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_or_create_issuer(data_dir: str | Path, initial: str) -> str:
    """The built-in issuer's name for this data directory: ``<data_dir>/oauth-issuer`` (one line), written with
    ``initial`` the first time and never changed by the server afterwards (see the module docstring)."""
    path = Path(data_dir) / ISSUER_FILE
    if not path.exists():
        if not initial or any(ch.isspace() for ch in initial):
            raise ValueError(f"not a usable token issuer: {initial!r}")
        _create_once(path, (initial.rstrip("/") + "\n").encode("utf-8"))
    issuer = path.read_text("utf-8").strip()
    if not issuer or any(ch.isspace() for ch in issuer):
        raise ValueError(f"{path} must hold one issuer name on one line")
    return issuer


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of an EC or RSA public JWK."""
    members = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canon = json.dumps({k: jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canon.encode()).digest()).rstrip(b"=").decode()


# --- JWKS sources ----------------------------------------------------------------------------------------------


class JwksFetchError(OSError):
    """The JWKS URL could not be fetched (the HTTP client's error, named in the message)."""


class JwksSource:
    """Public keys of an external issuer, from a URL (httpx, cached) or a local file (re-read on change).

    A fetch failure keeps serving the keys we already have; with none, the token is refused as invalid (the
    operator sees the cause in ``last_error``). Symmetric (``oct``) and encryption keys are ignored.
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        path: str | Path | None = None,
        http_client: httpx.Client | None = None,
        cache_seconds: float = 300,
        min_refresh_seconds: float = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (url is None) == (path is None):
            raise ValueError("a JWKS source needs exactly one of url or path")
        self.url = url
        self.path = Path(path) if path is not None else None
        self._http = http_client
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[dict[str, Any]] = []
        self._loaded_at: float | None = None
        self._forced_at: float | None = None
        self._mtime: float | None = None
        self.last_error: str | None = None

    def _fetch(self) -> dict[str, Any]:
        if self.path is not None:
            return json.loads(self.path.read_text("utf-8"))
        assert self.url is not None
        import httpx  # here: only an issuer with a JWKS URL needs it, and its import cost every process start

        client = self._http or httpx.Client(timeout=5.0, follow_redirects=False)
        try:
            resp = client.get(self.url, headers={"Accept": "application/json"})
            resp.raise_for_status()
            return resp.json()
        except httpx.HTTPError as exc:  # as an OSError: the refresh keeps the keys it has and names the cause
            raise JwksFetchError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            if self._http is None:
                client.close()

    def _stale(self, force: bool) -> bool:
        now = self._clock()
        if self._loaded_at is None:
            return True
        if (
            force
        ):  # an unknown kid: refetch, but at most once per min_refresh (tokens with junk kids are cheap)
            return self._forced_at is None or now - self._forced_at >= self._min_refresh
        if self.path is not None:
            try:
                return self.path.stat().st_mtime != self._mtime
            except OSError:
                return False
        return now - self._loaded_at >= self._cache_seconds

    def _refresh(self, force: bool = False) -> None:
        with self._lock:
            if not self._stale(force):
                return
            now = self._clock()
            if force:
                self._forced_at = now
            try:
                mtime = self.path.stat().st_mtime if self.path is not None else None
                data = self._fetch()
                keys = data.get("keys") if isinstance(data, dict) else None
                if not isinstance(keys, list):
                    raise ValueError("no 'keys' array")
                usable = [
                    k
                    for k in keys
                    if isinstance(k, dict)
                    and k.get("kty") in ("RSA", "EC", "OKP")
                    and k.get("use", "sig") == "sig"
                ]
                self._keys, self._mtime, self.last_error = usable, mtime, None
            except JwksFetchError as exc:
                self.last_error = str(exc)
            except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._loaded_at = now

    def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The verification key for a token header, refetching once if the ``kid`` is new to us."""
        self._refresh()
        jwk_dict = self._find(kid, alg)
        if jwk_dict is None:
            self._refresh(force=True)
            jwk_dict = self._find(kid, alg)
        if jwk_dict is None:
            raise InvalidToken("no issuer key matches the token")
        try:
            return jwt.PyJWK(jwk_dict, algorithm=alg)
        except jwt.PyJWTError as exc:
            raise InvalidToken("the issuer key does not fit the token's algorithm") from exc

    def _find(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        cands = [k for k in self._keys if k.get("alg", alg) == alg]
        if kid is not None:
            cands = [k for k in cands if k.get("kid") == kid]
        elif len(cands) != 1:  # without a kid only an unambiguous single key will do
            return None
        return cands[0] if cands else None


# --- issuers ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExternalIssuer:
    """Configuration of a trusted external token issuer.

    ``grant_scopes``: for IdPs that know nothing of our ``imap jmap smtp`` scopes, the scopes every valid token
    from this issuer gets; when ``None`` the token's ``scope_claim`` is read (space-separated or a list).
    """

    issuer: str
    audience: str | tuple[str, ...]
    jwks_url: str | None = None
    jwks_file: str | None = None
    address_claim: str = "email"
    scope_claim: str = "scope"
    grant_scopes: frozenset[str] | None = None
    protocol_audiences: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    algorithms: tuple[str, ...] = ALLOWED_EXTERNAL_ALGORITHMS
    leeway: int = 60
    jwks_cache_seconds: int = 300

    def __post_init__(self) -> None:
        if not self.issuer or not isinstance(self.issuer, str):
            raise ValueError("external issuer: 'issuer' is required")
        if not _audiences(self.audience):
            raise ValueError(f"external issuer {self.issuer}: 'audience' is required")
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError(f"external issuer {self.issuer}: give exactly one of jwks_url or jwks_file")
        bad = set(self.algorithms) - set(ALLOWED_EXTERNAL_ALGORITHMS)
        if bad or not self.algorithms:
            raise ValueError(f"external issuer {self.issuer}: algorithms not allowed: {sorted(bad)}")
        if self.grant_scopes is not None:
            _check_scopes(self.grant_scopes)
        _protocol_audiences(self.protocol_audiences)

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> ExternalIssuer:
        """Build from a config mapping (keys = field names); unknown keys are an error, not silently ignored."""
        known = set(cls.__dataclass_fields__)
        unknown = set(cfg) - known
        if unknown:
            raise ValueError(f"external issuer: unknown setting(s) {sorted(unknown)}")
        values = dict(cfg)
        if isinstance(values.get("audience"), list):
            values["audience"] = tuple(values["audience"])
        if isinstance(values.get("algorithms"), list):
            values["algorithms"] = tuple(values["algorithms"])
        if values.get("grant_scopes") is not None:
            raw = values["grant_scopes"]
            values["grant_scopes"] = frozenset(raw.split() if isinstance(raw, str) else raw)
        if "protocol_audiences" in values:
            values["protocol_audiences"] = {
                k: tuple(_audiences(v)) for k, v in dict(values["protocol_audiences"]).items()
            }
        return cls(**values)


@dataclass
class _Issuer:
    """One trusted issuer as the validator sees it (the built-in one is just another entry)."""

    issuer: str
    audiences: frozenset[str]
    protocol_audiences: dict[str, frozenset[str]]
    algorithms: tuple[str, ...]
    leeway: int
    key_for: Callable[[str | None, str], Any]
    builtin: bool
    address_claim: str | None = None
    scope_claim: str = "scope"
    grant_scopes: frozenset[str] | None = None


# --- the service -----------------------------------------------------------------------------------------------


class TokenService:
    """Issue our own access tokens and validate ours and trusted external ones through one code path."""

    def __init__(
        self,
        issuer: str,
        data_dir: str | Path,
        audience: str | None = None,
        *,
        protocol_audiences: Mapping[str, Iterable[str]] | None = None,
        external: Iterable[ExternalIssuer] = (),
        resolve_address: Callable[[str], str | None] | None = None,
        http_client: httpx.Client | None = None,
        default_ttl: int = DEFAULT_TTL,
        clock: Callable[[], float] = time.time,
        metadata_base: Callable[[], str | None] | None = None,
    ) -> None:
        if not issuer:
            raise ValueError("the token issuer (the server's public URL) is required")
        self.issuer = issuer.rstrip("/")
        #: Where this server publishes its issuer documents now (its public URL, which may have moved since the
        #: issuer name was recorded); ``None``: under the issuer name itself.
        self._metadata_base = metadata_base
        self.audience = audience or self.issuer
        self.default_ttl = default_ttl
        #: address -> account id, for external issuers; the Authenticator installs one when left None.
        self.resolve_address = resolve_address
        self._clock = clock
        self._key = load_or_create_key(Path(data_dir) / KEY_FILE)
        public = ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        self._kid = jwk_thumbprint(public)
        self._public_jwk = {**public, "kid": self._kid, "use": "sig", "alg": BUILTIN_ALGORITHM}
        own_proto = _protocol_audiences({k: tuple(v) for k, v in (protocol_audiences or {}).items()})
        own_public_key = self._key.public_key()

        def own_key(kid: str | None, alg: str) -> Any:
            if kid not in (None, self._kid):
                raise InvalidToken("the token was signed by a key this server no longer has")
            return own_public_key

        accepted = (
            frozenset({self.audience}).union(*own_proto.values()) if own_proto else frozenset({self.audience})
        )
        self._issuers: dict[str, _Issuer] = {
            self.issuer: _Issuer(self.issuer, accepted, own_proto, (BUILTIN_ALGORITHM,), 0, own_key, True)
        }
        for ext in external:
            if ext.issuer.rstrip("/") == self.issuer or ext.issuer in self._issuers:
                raise ValueError(f"issuer {ext.issuer} configured twice")
            source = JwksSource(
                url=ext.jwks_url,
                path=ext.jwks_file,
                http_client=http_client,
                cache_seconds=ext.jwks_cache_seconds,
                clock=clock,
            )
            ext_proto = _protocol_audiences(ext.protocol_audiences)
            self._issuers[ext.issuer] = _Issuer(
                ext.issuer,
                _audiences(ext.audience).union(*ext_proto.values())
                if ext_proto
                else _audiences(ext.audience),
                ext_proto,
                tuple(ext.algorithms),
                ext.leeway,
                source.key_for,
                False,
                ext.address_claim,
                ext.scope_claim,
                ext.grant_scopes,
            )

    # -- publishing ----------------------------------------------------------------------------------------

    def jwks(self) -> dict[str, Any]:
        """The public JWK set of the built-in issuer (for a ``jwks_uri`` endpoint)."""
        return {"keys": [dict(self._public_jwk)]}

    @property
    def openid_configuration_url(self) -> str:
        """What RFC 7628 error challenges point clients at (``openid-configuration``): this server's document."""
        base = self._metadata_base() if self._metadata_base is not None else None
        return (base or self.issuer).rstrip("/") + "/.well-known/openid-configuration"

    def grace(self, issuer: str | None) -> int:
        """Seconds a token of ``issuer`` is still accepted after its ``exp`` (the issuer's clock-skew leeway):
        a session logged in with it ends once ``exp + grace`` has passed, exactly when a new login would fail."""
        entry = self._issuers.get(issuer) if issuer is not None else None
        return entry.leeway if entry is not None else 0

    def trusts(self, issuer: str) -> bool:
        return issuer in self._issuers

    # -- issuing -------------------------------------------------------------------------------------------

    def issue(
        self,
        account: str | Any,
        scopes: Iterable[str] = SCOPES,
        ttl: int | None = None,
        *,
        audience: str | None = None,
    ) -> str:
        """Sign an access token for ``account`` (an account id, or an object with ``.id``). It is not recorded:
        tokens handed to anyone go through :func:`issue_recorded`, so that they can be listed and revoked."""
        return self.mint(account, scopes, ttl, audience=audience).token

    def mint(
        self,
        account: str | Any,
        scopes: Iterable[str] = SCOPES,
        ttl: int | None = None,
        *,
        audience: str | None = None,
    ) -> Minted:
        """:meth:`issue`, returning the token with the claims a record of it needs."""
        account_id = account if isinstance(account, str) else getattr(account, "id", None)
        if not ids.looks_like(ids.ACCOUNT, account_id):
            raise ValueError(f"not an account id: {account_id!r}")
        granted = _check_scopes(scopes)
        ttl = self.default_ttl if ttl is None else int(ttl)
        if ttl <= 0:
            raise ValueError("a token lifetime must be positive")
        now = int(self._clock())
        scope = tuple(s for s in SCOPES if s in granted)
        claims = {
            "iss": self.issuer,
            "sub": account_id,
            "aud": audience or self.audience,
            "scope": " ".join(scope),
            "iat": now,
            "exp": now + ttl,
            # hex, not base64url: an id that began with "-" read as an option in `janusmail token revoke ID`
            "jti": secrets.token_hex(16),
        }
        token = jwt.encode(
            claims, self._key, algorithm=BUILTIN_ALGORITHM, headers={"kid": self._kid, "typ": "at+jwt"}
        )
        return Minted(token, str(claims["jti"]), str(account_id), frozenset(scope), now, now + ttl)

    # -- validating ----------------------------------------------------------------------------------------

    def audience_covers(self, info: TokenInfo, protocol: str) -> bool:
        """Would ``protocol`` accept this token's audience (under the *current* configuration)?"""
        issuer = self._issuers.get(info.issuer)
        if issuer is None:
            return False
        wanted = issuer.protocol_audiences.get(protocol, issuer.audiences)
        return bool(info.audiences & wanted)

    def validate(self, token: str, required_scope: str | None = None) -> TokenInfo:
        """Check signature, issuer, audience, times and scope; raise a :class:`TokenError` or return the facts.

        With ``required_scope`` (a protocol), the token must carry that scope (else ``insufficient_scope``) and
        its audience must cover that protocol (else ``invalid_token``, as RFC 6750 §3.1 classes audience).
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidRequest("malformed token")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        iss = unverified.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise InvalidToken("token issuer is not trusted")
        alg = header.get("alg")
        if alg not in issuer.algorithms:
            raise InvalidToken("token signing algorithm not accepted")
        kid = header.get("kid")
        key = issuer.key_for(kid if isinstance(kid, str) else None, alg)
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=list(issuer.audiences),
                issuer=issuer.issuer,
                options={
                    "require": ["exp", "iss", "aud", "sub"],
                    "verify_exp": False,  # times: checked below with our clock
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("token audience not accepted") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("token signature or claims invalid") from exc
        expires_at = self._check_times(claims, issuer.leeway)
        info = self._info(claims, issuer, expires_at)
        if required_scope is not None:
            if required_scope not in info.scopes:
                raise InsufficientScope(f"token lacks the {required_scope} scope", scope=required_scope)
            if not self.audience_covers(info, required_scope):
                raise InvalidToken(f"token audience does not cover {required_scope}", scope=required_scope)
        return info

    def _check_times(self, claims: Mapping[str, Any], leeway: int) -> int:
        now = self._clock()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        for name, value in (("exp", exp), ("nbf", nbf), ("iat", iat)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise InvalidToken(f"token claim {name} is not a number")
        assert exp is not None
        if now >= exp + leeway:
            raise ExpiredToken("token expired")
        if nbf is not None and nbf > now + leeway:
            raise InvalidToken("token not yet valid")
        if iat is not None and iat > now + leeway + 60:
            raise InvalidToken("token issued in the future")
        return int(exp)

    def _info(self, claims: Mapping[str, Any], issuer: _Issuer, expires_at: int) -> TokenInfo:
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidToken("token subject missing")
        jti = claims.get("jti") if isinstance(claims.get("jti"), str) else None
        audiences = _audiences(claims.get("aud"))
        if issuer.builtin:
            if not ids.looks_like(ids.ACCOUNT, sub) or jti is None:
                raise InvalidToken("token subject or id malformed")
            scopes = parse_scopes(claims.get("scope"))
            return TokenInfo(sub, scopes, expires_at, issuer.issuer, audiences, jti, sub, None, True)
        claim = issuer.address_claim or "email"
        address = claims.get(claim)
        if not isinstance(address, str) or "@" not in address:
            raise InvalidToken(f"token has no usable {claim} claim")
        if claim == "email" and claims.get("email_verified") is False:
            raise InvalidToken("token email is not verified")
        if self.resolve_address is None:
            raise InvalidToken("no account resolver configured for external tokens")
        account_id = self.resolve_address(address.strip().lower())
        if account_id is None:
            raise InvalidToken("token names no account here")
        if issuer.grant_scopes is not None:
            scopes = issuer.grant_scopes
        else:
            scopes = parse_scopes(claims.get(issuer.scope_claim, claims.get("scp")))
        return TokenInfo(account_id, scopes, expires_at, issuer.issuer, audiences, jti, sub, address, False)
