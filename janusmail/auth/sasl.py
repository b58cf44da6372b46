"""Sans-IO SASL server mechanisms (RFC 4422): PLAIN, LOGIN, OAUTHBEARER, XOAUTH2, SCRAM-SHA-256.

Each mechanism is a small state machine fed raw bytes: ``start(initial_response)`` then ``step(client_bytes)``
until it returns :class:`Success` or :class:`Failure`; a :class:`Challenge` carries the bytes to send.

**Base64 stays in the protocol layer.** IMAP (``+ <base64>``, ``*`` to cancel, ``=`` for an empty SASL-IR) and
SMTP (``334 <base64>``) frame SASL differently, so the mechanisms see and produce the decoded octets only. The
two helpers :func:`decode_response` and :func:`encode_challenge` do the strict base64 part for those layers.

**Additional data with success.** SCRAM's server-final message arrives as ``Success.final_data``. IMAP cannot
carry data in the tagged OK, so the IMAP layer sends it as a final ``+`` challenge, waits for the client's empty
response, then says OK (RFC 4422 §3.6); SMTP can put it in the 235 reply.

**Failures.** :class:`Failure` carries ``code``, an IMAP RFC 5530 response-code name the adapters may map
(``AUTHENTICATIONFAILED``, ``AUTHORIZATIONFAILED``, ``CANCELLED``, ``PROTOCOL``), a human ``reason`` that reveals
nothing about which part was wrong, and the ``address`` that was tried (for the failed-login throttle). When the
authenticator refused to check the attempt at all (throttled, or hashing busy), ``refusal`` carries its
:class:`~janusmail.auth.throttle.LoginRefused`: the adapter answers it as such and counts no failure.

**Client address.** :class:`SaslServer` takes the client's address and hands it to every mechanism, which passes
it to the authenticator, so SASL logins are throttled and ranked for hashing exactly like IMAP LOGIN.

**Channel binding**: SCRAM-SHA-256-PLUS is not offered; a client asking for binding (``p=``) fails. SCRAM
authzids are not supported (scramp refuses them). OAUTHBEARER's ``host``/``port`` are informational and ignored.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from scramp import ScramMechanism
from scramp.utils import ScramException

from janusmail.store.accounts import normalize_address

from .authenticator import Authenticator, AuthResult
from .throttle import LoginRefused
from .tokens import TokenError

MAX_RESPONSE = 16384
_SCRAM = ScramMechanism("SCRAM-SHA-256")
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_FAILED = "authentication failed"


@dataclass(frozen=True, slots=True)
class Challenge:
    data: bytes


@dataclass(frozen=True, slots=True)
class Success:
    result: AuthResult
    final_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Failure:
    reason: str = _FAILED
    code: str = "AUTHENTICATIONFAILED"
    address: str | None = None
    refusal: LoginRefused | None = None
    #: What went wrong, for metrics and logs (never for the client): ``bad_credentials``, ``token_invalid``,
    #: ``token_expired``, ``authz_denied``, ``malformed``, ``cancelled``, or the refusal's ``throttled`` /
    #: ``busy``. Filled in by :meth:`Mechanism._finish`; derived, so not part of equality.
    kind: str = dataclasses.field(default="", compare=False)


def _refused(exc: LoginRefused) -> Failure:
    return Failure(exc.reason, exc.code, refusal=exc)


Step = Challenge | Success | Failure


class SaslDecodeError(ValueError):
    """The client's base64 could not be decoded (IMAP answers BAD)."""


def decode_response(line: bytes, *, initial: bool = False) -> bytes:
    """Strictly decode a client's base64 response. With ``initial`` (SASL-IR, RFC 4959), ``=`` means empty."""
    line = line.strip()
    if initial and line == b"=":
        return b""
    if len(line) > MAX_RESPONSE * 4 // 3 + 4:
        raise SaslDecodeError("response too long")
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslDecodeError("invalid base64") from exc


def encode_challenge(data: bytes) -> bytes:
    return base64.b64encode(data)


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _unescape_saslname(value: str) -> str | None:
    """RFC 5801 saslname: ``=2C`` is ``,`` and ``=3D`` is ``=``; any other ``=`` is malformed."""
    out, i = [], 0
    while i < len(value):
        if value[i] == "=":
            code = value[i + 1 : i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                return None
            i += 3
        elif value[i] == ",":
            return None
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


class Mechanism(ABC):
    """One authentication exchange. Not reusable: after Success/Failure every further step fails."""

    name: ClassVar[str]
    #: True when the exchange exposes a reusable secret (password or token) to anyone reading the wire.
    exposes_secret: ClassVar[bool] = True

    def __init__(self, authenticator: Authenticator, protocol: str = "imap") -> None:
        self.auth = authenticator
        self.protocol = protocol
        self.done = False
        self._started = False
        self.address: str | None = None
        #: The client's address (set by :class:`SaslServer`), for the authenticator's throttle.
        self.client_ip: str | None = None
        #: The bearer token the client sent was refused (OAUTHBEARER, XOAUTH2): why, for the failure's kind.
        self.token_error: TokenError | None = None

    def start(self, initial_response: bytes | None) -> Step:
        """Begin; ``initial_response`` is the SASL-IR data (``b""`` for ``=``) or ``None`` when absent."""
        if self.done or self._started:
            return self._finish(Failure("exchange already started", "PROTOCOL"))
        self._started = True
        if initial_response is not None and len(initial_response) > MAX_RESPONSE:
            return self._finish(Failure("response too long", "PROTOCOL"))
        return self._finish(self._start(initial_response))

    def step(self, data: bytes) -> Step:
        if self.done or not self._started:
            return self._finish(Failure("exchange not in progress", "PROTOCOL"))
        if not isinstance(data, bytes) or len(data) > MAX_RESPONSE:
            return self._finish(Failure("response too long", "PROTOCOL"))
        return self._finish(self._step(data))

    def cancel(self) -> Failure:
        """The client sent ``*`` (IMAP) or otherwise aborted."""
        return self._finish(Failure("authentication cancelled", "CANCELLED"))  # type: ignore[return-value]

    def _finish(self, step: Step) -> Step:
        if isinstance(step, Success | Failure):
            self.done = True
        if isinstance(step, Failure) and step.address is None and self.address is not None:
            step = dataclasses.replace(step, address=self.address)
        if isinstance(step, Failure) and not step.kind:
            step = dataclasses.replace(step, kind=self._failure_kind(step))
        return step

    def _failure_kind(self, step: Failure) -> str:
        if step.refusal is not None:
            return step.refusal.kind
        if self.token_error is not None:
            return "token_expired" if self.token_error.reason == "expired" else "token_invalid"
        if step.code == "CANCELLED":
            return "cancelled"
        if step.code == "AUTHORIZATIONFAILED":
            return "authz_denied"
        if step.code == "PROTOCOL" or step.reason != _FAILED:
            return "malformed"  # (the plain "authentication failed" is the credential's fault)
        return "bad_credentials"

    @abstractmethod
    def _start(self, initial_response: bytes | None) -> Step: ...

    @abstractmethod
    def _step(self, data: bytes) -> Step: ...


# --- PLAIN, LOGIN ----------------------------------------------------------------------------------------------


class Plain(Mechanism):
    """RFC 4616: ``authzid NUL authcid NUL passwd``; the authzid must be empty or name the same account."""

    name = "PLAIN"

    def _start(self, initial_response: bytes | None) -> Step:
        return Challenge(b"") if initial_response is None else self._check(initial_response)

    def _step(self, data: bytes) -> Step:
        return self._check(data)

    def _check(self, data: bytes) -> Step:
        parts = data.split(b"\0")
        if len(parts) != 3:
            return Failure("malformed PLAIN message")
        texts = [_utf8(p) for p in parts]
        if any(t is None for t in texts):
            return Failure("PLAIN message is not UTF-8")
        authzid, authcid, passwd = texts  # type: ignore[misc]
        assert authzid is not None and authcid is not None and passwd is not None
        if not authcid or len(parts[1]) > 255 or len(parts[0]) > 255:
            return Failure("malformed PLAIN message")
        self.address = normalize_address(authcid)
        if authzid and normalize_address(authzid) != self.address:
            return Failure("authorization identity not permitted", "AUTHORIZATIONFAILED")
        try:
            result = self.auth.verify_password(authcid, passwd, self.protocol, client_ip=self.client_ip)
        except LoginRefused as exc:
            return _refused(exc)
        return Success(result) if result is not None else Failure()


class Login(Mechanism):
    """The legacy LOGIN mechanism: ``Username:`` then ``Password:`` challenges (draft-murchison-sasl-login)."""

    name = "LOGIN"

    def __init__(self, authenticator: Authenticator, protocol: str = "imap") -> None:
        super().__init__(authenticator, protocol)
        self._user: str | None = None

    def _start(self, initial_response: bytes | None) -> Step:
        if initial_response:  # some clients send the user name as an initial response
            return self._step(initial_response)
        return Challenge(b"Username:")

    def _step(self, data: bytes) -> Step:
        text = _utf8(data)
        if text is None or "\0" in text:
            return Failure("LOGIN response is not UTF-8")
        if self._user is None:
            if not text or len(data) > 255:
                return Failure("malformed user name")
            self._user = text
            self.address = normalize_address(text)
            return Challenge(b"Password:")
        try:
            result = self.auth.verify_password(self._user, text, self.protocol, client_ip=self.client_ip)
        except LoginRefused as exc:
            return _refused(exc)
        return Success(result) if result is not None else Failure()


# --- OAUTHBEARER, XOAUTH2 --------------------------------------------------------------------------------------


def _bearer_token(value: str) -> str | None:
    scheme, _, token = value.partition(" ")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not _B64TOKEN.fullmatch(token):
        return None
    return token


class OAuthBearer(Mechanism):
    """RFC 7628 OAUTHBEARER.

    Client message: GS2 header ``n,a=<authzid>,`` (or ``y``; ``p=`` is refused, there is no channel binding),
    then ``\\x01``-separated ``key=value`` pairs (``host``, ``port``, ``auth=Bearer <token>``) and a final
    ``\\x01``. A bad token is answered with the RFC 7628 §3.2.2 JSON error as a challenge
    (``{"status": ..., "scope": ..., "openid-configuration": ...}``); the client must reply with a single
    ``\\x01`` and the exchange then fails, whatever it replied.
    """

    name = "OAUTHBEARER"

    def __init__(self, authenticator: Authenticator, protocol: str = "imap") -> None:
        super().__init__(authenticator, protocol)
        self._error_sent = False

    def _start(self, initial_response: bytes | None) -> Step:
        return Challenge(b"") if initial_response is None else self._message(initial_response)

    def _step(self, data: bytes) -> Step:
        if self._error_sent:
            if data == b"\x01":
                return Failure()
            return Failure("expected the dummy response to the error challenge", "PROTOCOL")
        return self._message(data)

    def _parse(self, data: bytes) -> tuple[str, dict[str, str]] | None:
        text = _utf8(data)
        if text is None:
            return None
        header, sep, rest = text.partition("\x01")
        if not sep or not rest.endswith("\x01"):
            return None
        fields = header.split(",")
        if len(fields) != 3 or fields[2] != "" or fields[0] not in ("n", "y"):
            return None
        authzid = ""
        if fields[1]:
            if not fields[1].startswith("a="):
                return None
            unescaped = _unescape_saslname(fields[1][2:])
            if unescaped is None:
                return None
            authzid = unescaped
        pairs: dict[str, str] = {}
        items = rest[:-1].split("\x01")
        if items[-1] != "":
            return None
        for item in items[:-1]:
            key, eq, value = item.partition("=")
            if not eq or not key.isascii() or not key.isalpha() or key in pairs:
                return None
            if any(not (ch.isprintable() or ch in " \t\r\n") for ch in value):
                return None
            pairs[key] = value
        return authzid, pairs

    def _error(self, err: TokenError) -> Challenge:
        self._error_sent = True
        self.token_error = err
        body: dict[str, str] = {"status": err.error, "scope": self.protocol}
        if self.auth.tokens is not None:
            body["openid-configuration"] = self.auth.tokens.openid_configuration_url
        return Challenge(json.dumps(body, separators=(",", ":")).encode())

    def _message(self, data: bytes) -> Step:
        parsed = self._parse(data)
        if parsed is None:
            return Failure("malformed OAUTHBEARER message")
        authzid, pairs = parsed
        if authzid:
            self.address = normalize_address(authzid)
        token = _bearer_token(pairs.get("auth", ""))
        if token is None:
            return Failure("OAUTHBEARER message carries no bearer token")
        try:
            result = self.auth.check_bearer(token, self.protocol)
        except TokenError as err:
            return self._error(err)
        self.address = result.address
        if authzid and normalize_address(authzid) != result.address:
            return Failure("authorization identity not permitted", "AUTHORIZATIONFAILED")
        return Success(result)


class XOAuth2(Mechanism):
    """Google's XOAUTH2: ``user=<address>\\x01auth=Bearer <token>\\x01\\x01``.

    On a bad token the server sends a JSON challenge in Google's style (``{"status": "401", "schemes": "bearer",
    "scope": ...}``); the client answers with an empty response and the exchange fails.
    """

    name = "XOAUTH2"

    def __init__(self, authenticator: Authenticator, protocol: str = "imap") -> None:
        super().__init__(authenticator, protocol)
        self._error_sent = False

    def _start(self, initial_response: bytes | None) -> Step:
        return Challenge(b"") if initial_response is None else self._message(initial_response)

    def _step(self, data: bytes) -> Step:
        if self._error_sent:
            return Failure()
        return self._message(data)

    def _message(self, data: bytes) -> Step:
        text = _utf8(data)
        if text is None or not text.endswith("\x01\x01"):
            return Failure("malformed XOAUTH2 message")
        pairs: dict[str, str] = {}
        for item in text[:-2].split("\x01"):
            key, eq, value = item.partition("=")
            if not eq or key not in ("user", "auth") or key in pairs:
                return Failure("malformed XOAUTH2 message")
            pairs[key] = value
        user, token = pairs.get("user", ""), _bearer_token(pairs.get("auth", ""))
        if not user or token is None:
            return Failure("malformed XOAUTH2 message")
        self.address = normalize_address(user)
        try:
            result = self.auth.check_bearer(token, self.protocol)
        except TokenError as err:
            self._error_sent = True
            self.token_error = err
            status = "400" if err.error == "invalid_request" else "401"
            body = {"status": status, "schemes": "bearer", "scope": self.protocol}
            return Challenge(json.dumps(body, separators=(",", ":")).encode())
        if result.address != self.address:
            return Failure("token does not belong to this user", "AUTHORIZATIONFAILED")
        return Success(result)


# --- SCRAM-SHA-256 ---------------------------------------------------------------------------------------------


class ScramSha256(Mechanism):
    """RFC 7677 SCRAM-SHA-256 via ``scramp``, over the secrets :func:`passwords.make_credentials` stored.

    Unknown users get a fake secret from :meth:`Authenticator.scram_secret`, so the exchange fails only at the
    proof, like a wrong password. Success carries the server-final message (``v=...``) as ``final_data``; the
    client must check it to know the server also knew the secret.
    """

    name = "SCRAM-SHA-256"
    exposes_secret = False

    def __init__(self, authenticator: Authenticator, protocol: str = "imap") -> None:
        super().__init__(authenticator, protocol)
        self._server = None
        self._user: str | None = None
        self._refusal: LoginRefused | None = None

    def _auth_fn(self, username: str) -> tuple[bytes, bytes, bytes, int]:
        self._user = username
        self.address = normalize_address(username)
        try:
            return self.auth.scram_secret(username, self.protocol, client_ip=self.client_ip).as_auth_info()
        except LoginRefused as exc:  # scramp wraps what we raise; remember it to answer it as a refusal
            self._refusal = exc
            raise

    def _start(self, initial_response: bytes | None) -> Step:
        return Challenge(b"") if initial_response is None else self._first(initial_response)

    def _step(self, data: bytes) -> Step:
        return self._first(data) if self._server is None else self._final(data)

    def _first(self, data: bytes) -> Step:
        text = _utf8(data)
        if text is None:
            return Failure("SCRAM message is not UTF-8")
        if text.startswith("p="):
            return Failure("channel binding is not supported")
        self._server = _SCRAM.make_server(self._auth_fn)
        try:
            self._server.set_client_first(text)
            return Challenge(self._server.get_server_first().encode())
        except ScramException:
            if self._refusal is not None:  # throttled pair: not checked, so no failure (throttle.py)
                return _refused(self._refusal)
            return Failure("malformed SCRAM message")

    def _final(self, data: bytes) -> Step:
        text = _utf8(data)
        if text is None:
            return Failure("SCRAM message is not UTF-8")
        assert self._server is not None
        try:
            self._server.set_client_final(text)
            final = self._server.get_server_final()
        except ScramException:
            return Failure()
        result = self.auth.scram_result(self._user or "")
        if result is None:
            return Failure()
        return Success(result, final.encode())


# --- the menu --------------------------------------------------------------------------------------------------

MECHANISMS: dict[str, type[Mechanism]] = {
    m.name: m for m in (Plain, ScramSha256, OAuthBearer, XOAuth2, Login)
}  # fmt: skip


class SaslServer:
    """Which mechanisms a connection may use, and a fresh state machine for one of them.

    ``mechanisms`` (for ``AUTH=`` capabilities) and ``create`` answer from the same rules, so nothing is
    advertised that would then be refused, and nothing refused is advertised.
    """

    def __init__(
        self, authenticator: Authenticator, protocol: str = "imap", *, client_ip: str | None = None
    ) -> None:
        self.auth = authenticator
        self.protocol = protocol
        self.client_ip = client_ip

    def _offered(self, name: str, tls_active: bool, peer_loopback: bool) -> bool:
        p = self.auth.policy
        mech = MECHANISMS.get(name)
        if mech is None:
            return False
        if mech.exposes_secret and not p.plaintext_allowed(self.protocol, tls_active, peer_loopback):
            return False
        if name in ("PLAIN", "LOGIN"):
            if name == "LOGIN" and not p.sasl_login:
                return False
            return p.allows("password", self.protocol) or p.allows("app_password", self.protocol)
        if name in ("OAUTHBEARER", "XOAUTH2"):
            if name == "XOAUTH2" and not p.sasl_xoauth2:
                return False
            return self.auth.tokens is not None and p.allows("bearer", self.protocol)
        if name == "SCRAM-SHA-256":
            return p.allows("scram", self.protocol)
        return False

    def mechanisms(self, tls_active: bool, peer_loopback: bool = False) -> list[str]:
        """Mechanism names to advertise on this connection, in preference order."""
        return [n for n in MECHANISMS if self._offered(n, tls_active, peer_loopback)]

    def create(self, name: str, tls_active: bool, peer_loopback: bool = False) -> Mechanism | None:
        """A new exchange for ``name`` (case-insensitive), or ``None`` if it is unknown or not offered here."""
        if not isinstance(name, str):
            return None
        name = name.upper()
        if not self._offered(name, tls_active, peer_loopback):
            return None
        mech = MECHANISMS[name](self.auth, self.protocol)
        mech.client_ip = self.client_ip
        return mech
