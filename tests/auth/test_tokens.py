from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from janusmail.auth import tokens
from janusmail.auth.tokens import ExternalIssuer, TokenService
from janusmail.store import ids

from .conftest import ISSUER, Clock

IDP = "https://idp.example.test/"
ACCOUNT = ids.mint(ids.ACCOUNT)


def test_issue_and_validate(token_service: TokenService, clock: Clock) -> None:
    token = token_service.issue(ACCOUNT, ["imap", "jmap"], ttl=600)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["kid"] == token_service.jwks()["keys"][0]["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == ISSUER and claims["sub"] == ACCOUNT and claims["aud"] == ISSUER
    assert claims["scope"] == "imap jmap" and claims["exp"] - claims["iat"] == 600
    # an id the CLI takes as an argument (`janusmail token revoke ID`): never one that starts like an option
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"])
    info = token_service.validate(token, "imap")
    assert info.account_id == ACCOUNT and info.scopes == {"imap", "jmap"}
    assert info.expires_at == int(clock.now) + 600 and info.issuer == ISSUER and info.jti == claims["jti"]


def test_issue_accepts_account_object(token_service: TokenService) -> None:
    class Acct:
        id = ACCOUNT

    assert token_service.validate(token_service.issue(Acct(), ["smtp"])).scopes == {"smtp"}


@pytest.mark.parametrize("scopes", [[], ["pop3"], ["imap", "admin"]])
def test_issue_rejects_bad_scopes(token_service: TokenService, scopes: list[str]) -> None:
    with pytest.raises(ValueError):
        token_service.issue(ACCOUNT, scopes)


def test_issue_rejects_bad_account(token_service: TokenService) -> None:
    with pytest.raises(ValueError):
        token_service.issue("not-an-id", ["imap"])


def test_key_file_created_once(tmp_path: Path, clock: Clock) -> None:
    a = TokenService(ISSUER, tmp_path, clock=clock)
    key_file = tmp_path / tokens.KEY_FILE
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    before = key_file.read_bytes()
    b = TokenService(ISSUER, tmp_path, clock=clock)
    assert key_file.read_bytes() == before
    assert a.jwks() == b.jwks()
    assert b.validate(a.issue(ACCOUNT, ["imap"])).account_id == ACCOUNT
    assert "d" not in a.jwks()["keys"][0]  # public only


def test_foreign_key_file_refused(tmp_path: Path) -> None:
    (tmp_path / tokens.KEY_FILE).write_text("not a key")
    with pytest.raises(ValueError):
        TokenService(ISSUER, tmp_path)


def test_expiry(token_service: TokenService, clock: Clock) -> None:
    token = token_service.issue(ACCOUNT, ["imap"], ttl=60)
    clock.advance(59)
    token_service.validate(token)
    clock.advance(1)
    with pytest.raises(tokens.ExpiredToken) as exc:
        token_service.validate(token)
    assert exc.value.error == "invalid_token" and exc.value.reason == "expired"


def test_wrong_audience(token_service: TokenService) -> None:
    token = token_service.issue(ACCOUNT, ["imap"], audience="https://elsewhere.test")
    with pytest.raises(tokens.InvalidToken) as exc:
        token_service.validate(token)
    assert exc.value.reason == "invalid_token" and "audience" in exc.value.description


def test_wrong_scope(token_service: TokenService) -> None:
    token = token_service.issue(ACCOUNT, ["imap"])
    with pytest.raises(tokens.InsufficientScope) as exc:
        token_service.validate(token, "jmap")
    assert exc.value.error == exc.value.reason == "insufficient_scope" and exc.value.scope == "jmap"


def test_other_server_key_refused(tmp_path: Path, clock: Clock) -> None:
    ours = TokenService(ISSUER, tmp_path / "a", clock=clock)
    impostor = TokenService(ISSUER, tmp_path / "b", clock=clock)  # same issuer name, other key
    with pytest.raises(tokens.InvalidToken):
        ours.validate(impostor.issue(ACCOUNT, ["imap"]))


def test_tampered_payload(token_service: TokenService) -> None:
    token = token_service.issue(ACCOUNT, ["imap"])
    head, payload, sig = token.split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["scope"] = "imap jmap smtp"
    forged = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
    with pytest.raises(tokens.InvalidToken):
        token_service.validate(f"{head}.{forged}.{sig}")


def test_alg_none_and_hmac_confusion_refused(token_service: TokenService, clock: Clock) -> None:
    claims = {
        "iss": ISSUER,
        "sub": ACCOUNT,
        "aud": ISSUER,
        "scope": "imap",
        "exp": clock.now + 60,
        "jti": "x",
    }
    unsigned = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(tokens.InvalidToken):
        token_service.validate(unsigned)
    # HS256 "signed" with the public key as the secret (the classic alg-confusion attack), built by hand
    # because PyJWT itself refuses to sign that way.
    import hashlib
    import hmac

    b64 = jwt.utils.base64url_encode
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    secret = json.dumps(token_service.jwks()["keys"][0]).encode()
    sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    with pytest.raises(tokens.InvalidToken, match="algorithm"):
        token_service.validate((head + b"." + body + b"." + sig).decode())


def test_untrusted_issuer(token_service: TokenService, clock: Clock) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = {"iss": "https://evil.test", "sub": ACCOUNT, "aud": ISSUER, "exp": clock.now + 60}
    with pytest.raises(tokens.InvalidToken, match="issuer"):
        token_service.validate(jwt.encode(claims, key, algorithm="ES256"))


@pytest.mark.parametrize("bad", ["", "abc", "a.b.c", "x" * 20000, "Bearer abc"])
def test_garbage_tokens(token_service: TokenService, bad: str) -> None:
    with pytest.raises(tokens.TokenError):
        token_service.validate(bad)


@settings(max_examples=100, deadline=None)
@given(
    st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9_-]{0,40}\.[A-Za-z0-9_-]{0,80}\.[A-Za-z0-9_-]{0,40}")
)
def test_validate_only_raises_token_errors(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    svc = _shared_service(tmp_path_factory)
    with pytest.raises(tokens.TokenError):
        svc.validate(text)


_svc: list[TokenService] = []


def _shared_service(factory: pytest.TempPathFactory) -> TokenService:
    if not _svc:
        _svc.append(TokenService(ISSUER, factory.mktemp("tok")))
    return _svc[0]


def test_protocol_audiences(tmp_path: Path, clock: Clock) -> None:
    svc = TokenService(
        ISSUER, tmp_path, "https://imap.example.test", protocol_audiences={"jmap": ["https://jmap.example.test"]},
        clock=clock,
    )  # fmt: skip
    imap_token = svc.issue(ACCOUNT, ["imap", "jmap"])  # default audience: the IMAP one
    info = svc.validate(imap_token, "imap")
    assert svc.audience_covers(info, "imap") and not svc.audience_covers(info, "jmap")
    with pytest.raises(tokens.InvalidToken, match="audience"):
        svc.validate(imap_token, "jmap")
    jmap_token = svc.issue(ACCOUNT, ["jmap"], audience="https://jmap.example.test")
    assert svc.validate(jmap_token, "jmap").account_id == ACCOUNT


def test_openid_configuration_url(token_service: TokenService) -> None:
    assert token_service.openid_configuration_url == ISSUER + "/.well-known/openid-configuration"


# --- external issuers -------------------------------------------------------------------------------------------


class Idp:
    """A fake external identity provider: an RSA key, its JWKS, and a token minter."""

    def __init__(self, kid: str = "k1") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, clock: Clock, **claims: Any) -> str:
        base = {
            "iss": IDP,
            "sub": "idp-user-1",
            "aud": "janus",
            "exp": int(clock.now) + 300,
            "iat": int(clock.now),
        }
        base.update(claims)
        base = {k: v for k, v in base.items() if v is not None}
        return jwt.encode(base, self.key, algorithm="RS256", headers={"kid": self.kid})


def _resolver(address: str) -> str | None:
    return {"ann@example.test": ACCOUNT}.get(address)


@pytest.fixture
def idp() -> Idp:
    return Idp()


@pytest.fixture
def jwks_file(tmp_path: Path, idp: Idp) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(idp.jwks()))
    return path


def _external(tmp_path: Path, clock: Clock, **cfg: Any) -> TokenService:
    return TokenService(
        ISSUER, tmp_path / "data", external=[ExternalIssuer(**cfg)], resolve_address=_resolver, clock=clock
    )


def test_external_issuer_via_jwks_file(tmp_path: Path, clock: Clock, idp: Idp, jwks_file: Path) -> None:
    svc = _external(tmp_path, clock, issuer=IDP, audience="janus", jwks_file=str(jwks_file))
    info = svc.validate(idp.token(clock, email="Ann@Example.test", scope="openid jmap imap"), "jmap")
    assert info.account_id == ACCOUNT and info.scopes == {"imap", "jmap"} and not info.builtin
    assert info.issuer == IDP and info.address == "Ann@Example.test"
    with pytest.raises(tokens.InsufficientScope):
        svc.validate(idp.token(clock, email="ann@example.test", scope="openid imap"), "jmap")
    with pytest.raises(tokens.InvalidToken, match="no account"):
        svc.validate(idp.token(clock, email="bob@example.test", scope="imap"))
    with pytest.raises(tokens.InvalidToken, match="verified"):
        svc.validate(idp.token(clock, email="ann@example.test", email_verified=False, scope="imap"))
    with pytest.raises(tokens.InvalidToken, match="email"):
        svc.validate(idp.token(clock, scope="imap"))
    with pytest.raises(tokens.InvalidToken, match="audience"):
        svc.validate(idp.token(clock, email="ann@example.test", aud="someone-else", scope="imap"))
    with pytest.raises(tokens.ExpiredToken):
        svc.validate(idp.token(clock, email="ann@example.test", exp=int(clock.now) - 61, scope="imap"))
    # within the 60 s leeway an external token still passes (clock skew between us and the IdP)
    svc.validate(idp.token(clock, email="ann@example.test", exp=int(clock.now) - 30, scope="imap"))


def test_external_claim_and_granted_scopes(tmp_path: Path, clock: Clock, idp: Idp, jwks_file: Path) -> None:
    svc = _external(
        tmp_path, clock, issuer=IDP, audience=("janus", "mail"), jwks_file=str(jwks_file),
        address_claim="preferred_username", grant_scopes=frozenset({"imap", "smtp"}),
    )  # fmt: skip
    info = svc.validate(idp.token(clock, preferred_username="ann@example.test", aud="mail"), "smtp")
    assert info.scopes == {"imap", "smtp"}


def test_external_key_rotation_via_file(tmp_path: Path, clock: Clock, idp: Idp, jwks_file: Path) -> None:
    svc = _external(tmp_path, clock, issuer=IDP, audience="janus", jwks_file=str(jwks_file))
    svc.validate(idp.token(clock, email="ann@example.test", scope="imap"))
    rotated = Idp(kid="k2")
    jwks_file.write_text(json.dumps(rotated.jwks()))
    os.utime(jwks_file, (clock.now + 5, clock.now + 5))  # make sure the mtime moves
    svc.validate(rotated.token(clock, email="ann@example.test", scope="imap"))
    with pytest.raises(tokens.InvalidToken):  # the old key is gone from the file
        svc.validate(idp.token(clock, email="ann@example.test", scope="imap"))


def test_external_token_signed_by_unknown_key(tmp_path: Path, clock: Clock, jwks_file: Path) -> None:
    svc = _external(tmp_path, clock, issuer=IDP, audience="janus", jwks_file=str(jwks_file))
    stranger = Idp(kid="k1")  # same kid, different key
    with pytest.raises(tokens.InvalidToken):
        svc.validate(stranger.token(clock, email="ann@example.test", scope="imap"))


def test_external_issuer_via_url_is_cached(tmp_path: Path, clock: Clock, idp: Idp) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, json=idp.jwks())

    client = httpx.Client(transport=httpx.MockTransport(handler))
    svc = TokenService(
        ISSUER, tmp_path / "d",
        external=[ExternalIssuer(issuer=IDP, audience="janus", jwks_url="https://idp.example.test/jwks")],
        resolve_address=_resolver, http_client=client, clock=clock,
    )  # fmt: skip
    for _ in range(3):
        svc.validate(idp.token(clock, email="ann@example.test", scope="jmap"), "jmap")
    assert calls == ["https://idp.example.test/jwks"]
    # an unknown kid triggers at most one refetch per min_refresh interval
    stranger = Idp(kid="new")
    for _ in range(3):
        with pytest.raises(tokens.InvalidToken):
            svc.validate(stranger.token(clock, email="ann@example.test", scope="jmap"))
    assert len(calls) == 2
    clock.advance(301)  # cache expiry refetches
    svc.validate(idp.token(clock, email="ann@example.test", scope="jmap"))
    assert len(calls) == 3


def test_external_url_down_keeps_cached_keys(tmp_path: Path, clock: Clock, idp: Idp) -> None:
    up = {"ok": True}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=idp.jwks()) if up["ok"] else httpx.Response(503)

    client = httpx.Client(transport=httpx.MockTransport(handler))
    svc = TokenService(
        ISSUER, tmp_path / "d",
        external=[ExternalIssuer(issuer=IDP, audience="janus", jwks_url="https://idp.example.test/jwks")],
        resolve_address=_resolver, http_client=client, clock=clock,
    )  # fmt: skip
    svc.validate(idp.token(clock, email="ann@example.test", scope="imap"))
    up["ok"] = False
    clock.advance(301)
    svc.validate(idp.token(clock, email="ann@example.test", scope="imap"))


def test_external_url_never_reachable(tmp_path: Path, clock: Clock, idp: Idp) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no network")

    client = httpx.Client(transport=httpx.MockTransport(handler))
    svc = TokenService(
        ISSUER, tmp_path / "d",
        external=[ExternalIssuer(issuer=IDP, audience="janus", jwks_url="https://idp.example.test/jwks")],
        resolve_address=_resolver, http_client=client, clock=clock,
    )  # fmt: skip
    with pytest.raises(tokens.InvalidToken):
        svc.validate(idp.token(clock, email="ann@example.test", scope="imap"))


def test_external_algorithm_allow_list(tmp_path: Path, clock: Clock, idp: Idp, jwks_file: Path) -> None:
    svc = _external(
        tmp_path, clock, issuer=IDP, audience="janus", jwks_file=str(jwks_file), algorithms=("ES256",)
    )
    with pytest.raises(tokens.InvalidToken, match="algorithm"):
        svc.validate(idp.token(clock, email="ann@example.test", scope="imap"))


@pytest.mark.parametrize(
    "cfg",
    [
        {"issuer": IDP, "audience": "janus"},  # no key source
        {"issuer": IDP, "audience": "janus", "jwks_url": "https://x", "jwks_file": "/x"},
        {"issuer": IDP, "audience": "", "jwks_file": "/x"},
        {"issuer": "", "audience": "janus", "jwks_file": "/x"},
        {"issuer": IDP, "audience": "janus", "jwks_file": "/x", "algorithms": ["HS256"]},
        {"issuer": IDP, "audience": "janus", "jwks_file": "/x", "grant_scopes": "imap admin"},
        {"issuer": IDP, "audience": "janus", "jwks_file": "/x", "protocol_audiences": {"pop3": ["a"]}},
        {"issuer": IDP, "audience": "janus", "jwks_file": "/x", "colour": "blue"},
    ],
)
def test_external_config_errors(cfg: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ExternalIssuer.from_config(cfg)


def test_external_from_config_ok() -> None:
    ext = ExternalIssuer.from_config(
        {"issuer": IDP, "audience": ["a", "b"], "jwks_file": "/x", "grant_scopes": "imap jmap",
         "algorithms": ["RS256"], "protocol_audiences": {"jmap": "b"}}
    )  # fmt: skip
    assert (
        ext.audience == ("a", "b") and ext.grant_scopes == {"imap", "jmap"} and ext.algorithms == ("RS256",)
    )


def test_builtin_and_external_share_one_path(tmp_path: Path, clock: Clock, idp: Idp, jwks_file: Path) -> None:
    svc = _external(tmp_path, clock, issuer=IDP, audience="janus", jwks_file=str(jwks_file))
    own = svc.validate(svc.issue(ACCOUNT, ["jmap"]), "jmap")
    ext = svc.validate(idp.token(clock, email="ann@example.test", scope="jmap"), "jmap")
    assert own.account_id == ext.account_id == ACCOUNT
    assert own.builtin and not ext.builtin


def test_ec_jwk_thumbprint_rfc7638_shape() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    tp = tokens.jwk_thumbprint(jwk)
    assert len(tp) == 43 and "=" not in tp
    assert tokens.jwk_thumbprint({**jwk, "kid": "ignored", "use": "sig"}) == tp
