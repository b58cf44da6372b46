from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa

from janusmail.auth import app_passwords as ap
from janusmail.auth import passwords
from janusmail.auth.authenticator import Authenticator, AuthResult, LoginThrottle, parse_basic
from janusmail.auth.policy import AuthPolicy
from janusmail.auth.tokens import InsufficientScope, InvalidToken, TokenService
from janusmail.store.schema import accounts
from janusmail.store.store import Store

from .conftest import ISSUER, Clock, MakeAccount, sqlite_only

MakeAuth = Callable[..., Authenticator]
PW = "correct horse"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# --- passwords ----------------------------------------------------------------------------------------------


def test_password_login(auth: Authenticator, make_account: MakeAccount) -> None:
    acct = make_account("ann@example.test")
    for proto in ("imap", "jmap", "smtp"):
        r = auth.verify_password(" Ann@Example.TEST ", PW, proto)
        assert r == AuthResult(
            acct, "ann@example.test", "password", None, frozenset({"imap", "jmap", "smtp"})
        )
    assert auth.verify_password("ann@example.test", "wrong", "imap") is None
    assert auth.verify_password("nobody@example.test", PW, "imap") is None


@sqlite_only
@pytest.mark.parametrize(
    ("address", "secret"),
    [("ann@example.test", ""), ("ann@example.test", "x" * 2000), ("ann@example.test", "a\0b"), ("", PW),
     (None, PW), ("ann@example.test", None), ("x" * 400, PW)],
)  # fmt: skip
def test_malformed_input_is_a_failure(
    auth: Authenticator, make_account: MakeAccount, address, secret
) -> None:
    make_account("ann@example.test")
    assert auth.verify_password(address, secret, "imap") is None


@sqlite_only
def test_unknown_protocol_is_a_programming_error(auth: Authenticator) -> None:
    with pytest.raises(ValueError):
        auth.verify_password("a@b.c", "x", "pop3")


def test_account_without_password(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test", None)
    assert auth.verify_password("ann@example.test", "", "imap") is None
    assert auth.verify_password("ann@example.test", "anything", "imap") is None


def test_jmap_disabled_account(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test", jmap_enabled=False)
    assert auth.verify_password("ann@example.test", PW, "jmap") is None
    assert auth.verify_password("ann@example.test", PW, "imap") is not None


def test_policy_refuses_account_password_on_jmap(
    make_auth: MakeAuth, make_account: MakeAccount, auth_store: Store
) -> None:
    acct = make_account("ann@example.test")
    _, secret = ap.create(auth_store, acct, "phone", ["jmap"])
    auth = make_auth(jmap_accepts_account_password=False)
    assert auth.verify_password("ann@example.test", PW, "jmap") is None
    assert auth.verify_password("ann@example.test", PW, "imap") is not None
    r = auth.verify_password("ann@example.test", secret, "jmap")
    assert r is not None and r.method == "app_password"


def test_app_password_login(auth: Authenticator, make_account: MakeAccount, auth_store: Store) -> None:
    acct = make_account("ann@example.test")
    pw, secret = ap.create(auth_store, acct, "phone", ["imap", "smtp"])
    r = auth.verify_password("ann@example.test", secret, "imap")
    assert r is not None and r.method == "app_password" and r.credential_id == pw.id
    assert r.scopes == {"imap", "smtp"}
    assert auth.verify_password("ann@example.test", secret, "jmap") is None  # not granted
    assert auth.verify_password("ann@example.test", secret.replace("-", ""), "smtp") is not None
    auth_store.app_passwords.settle()  # the login queued the last-used stamp on the writer and did not wait
    assert ap.get(auth_store, pw.id).last_used_at is not None


def test_revocation_beats_the_cache(auth: Authenticator, make_account: MakeAccount, auth_store: Store) -> None:
    acct = make_account("ann@example.test")
    _, secret = ap.create(auth_store, acct, "phone", ["jmap"])
    assert auth.verify_password("ann@example.test", secret, "jmap") is not None  # now cached
    ap.revoke(auth_store, acct, "phone")
    assert auth.verify_password("ann@example.test", secret, "jmap") is None


def test_password_change_beats_the_cache(auth: Authenticator, make_account: MakeAccount, engine) -> None:
    acct = make_account("ann@example.test")
    assert auth.verify_password("ann@example.test", PW, "jmap") is not None  # now cached
    new_hash, new_scram = passwords.make_credentials("new password")
    with engine.begin() as conn:
        conn.execute(sa.update(accounts).where(accounts.c.id == acct).values(password_hash=new_hash))
    assert auth.verify_password("ann@example.test", PW, "jmap") is None
    assert auth.verify_password("ann@example.test", "new password", "jmap") is not None


def test_cache_avoids_argon2(auth: Authenticator, make_account: MakeAccount, monkeypatch) -> None:
    make_account("ann@example.test")
    assert auth.verify_password("ann@example.test", PW, "jmap") is not None
    monkeypatch.setattr(passwords, "check_password", lambda *a: pytest.fail("argon2 on a cache hit"))
    assert auth.verify_password("ann@example.test", PW, "jmap") is not None
    assert auth.verify_password("ann@example.test", PW, "imap") is not None


def test_cache_expires(auth: Authenticator, make_account: MakeAccount, clock: Clock, monkeypatch) -> None:
    make_account("ann@example.test")
    auth.verify_password("ann@example.test", PW, "jmap")
    clock.advance(auth.policy.credential_cache_seconds + 1)
    calls = []
    real = passwords.check_password
    monkeypatch.setattr(passwords, "check_password", lambda *a: calls.append(1) or real(*a))
    assert auth.verify_password("ann@example.test", PW, "jmap") is not None
    assert calls == [1]


def test_login_upgrades_hash_and_fills_scram(auth: Authenticator, make_account: MakeAccount, engine) -> None:
    acct = make_account("ann@example.test")
    with engine.begin() as conn:
        conn.execute(sa.update(accounts).where(accounts.c.id == acct).values(scram_sha256=None))
    passwords.set_hasher(argon2.PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert auth.verify_password("ann@example.test", PW, "imap") is not None
    with engine.connect() as conn:
        row = conn.execute(sa.select(accounts).where(accounts.c.id == acct)).one()
    assert "m=2048,t=2" in row.password_hash
    assert passwords.check_scram_password(row.scram_sha256, PW)


# --- bearer ---------------------------------------------------------------------------------------------------


def test_bearer(auth: Authenticator, make_account: MakeAccount, token_service: TokenService) -> None:
    acct = make_account("ann@example.test")
    token = token_service.issue(acct, ["imap"], ttl=300)
    r = auth.verify_bearer(token, "imap")
    assert r is not None and r.method == "bearer" and r.address == "ann@example.test"
    assert r.credential_id and r.scopes == {"imap"} and r.issuer == ISSUER and r.expires_at is not None
    assert auth.verify_bearer(token, "jmap") is None
    with pytest.raises(InsufficientScope):
        auth.check_bearer(token, "jmap")


def test_bearer_for_deleted_or_jmap_disabled_account(auth, make_account, token_service, auth_store) -> None:
    a = make_account("ann@example.test", jmap_enabled=False)
    t = token_service.issue(a, ["imap", "jmap"])
    assert auth.verify_bearer(t, "imap") is not None
    with pytest.raises(InvalidToken, match="disabled"):
        auth.check_bearer(t, "jmap")
    # through the store's writer, after whatever the logins queued there (a direct DELETE on another connection
    # raced the writer's commit: SQLite refuses a deferred transaction's write once its snapshot is stale)
    auth_store.accounts.delete(a)
    with pytest.raises(InvalidToken, match="no longer"):
        auth.check_bearer(t, "imap")


def test_bearer_refused_by_policy(make_auth: MakeAuth, make_account: MakeAccount, token_service) -> None:
    acct = make_account("ann@example.test")
    auth = make_auth(imap_accepts_bearer=False)
    assert auth.verify_bearer(token_service.issue(acct, ["imap"]), "imap") is None


def test_no_token_service(auth_store: Store, make_account: MakeAccount) -> None:
    make_account("ann@example.test")
    auth = Authenticator(auth_store)
    assert auth.verify_bearer("abc", "imap") is None
    assert auth.http_authenticate("Bearer abc") is None
    assert auth.www_authenticate() == ['Basic realm="Janus Mail", charset="UTF-8"']


# --- HTTP -----------------------------------------------------------------------------------------------------


def test_http_basic(auth: Authenticator, make_account: MakeAccount) -> None:
    acct = make_account("ann@example.test", "pässwörd ✓")
    r = auth.http_authenticate(basic("ann@example.test", "pässwörd ✓"))
    assert r is not None and r.account_id == acct
    assert auth.http_authenticate("basic " + basic("ann@example.test", "pässwörd ✓")[6:]) is not None
    assert auth.http_authenticate(basic("ann@example.test", "wrong")) is None


def test_http_basic_password_with_colon(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test", "a:b:c")
    assert auth.http_authenticate(basic("ann@example.test", "a:b:c")) is not None


@sqlite_only
@pytest.mark.parametrize(
    "header",
    [None, "", "Basic", "Basic !!!!", "Basic " + base64.b64encode(b"no-colon").decode(),
     "Basic " + base64.b64encode(b"ann@example.test:\xff\xfe").decode(), "Digest abc", "Bearer", "Bearer a b",
     "Basic " + base64.b64encode(b":" + b"correct horse").decode()],
)  # fmt: skip
def test_http_malformed(auth: Authenticator, make_account: MakeAccount, header: str | None) -> None:
    make_account("ann@example.test")
    assert auth.http_authenticate(header) is None


def test_http_policy(make_auth: MakeAuth, make_account: MakeAccount, token_service, auth_store: Store) -> None:
    acct = make_account("ann@example.test")
    _, secret = ap.create(auth_store, acct, "phone", ["jmap"])
    token = token_service.issue(acct, ["jmap"])
    no_basic = make_auth(jmap_accepts_basic=False)
    assert no_basic.http_authenticate(basic("ann@example.test", PW)) is None
    assert no_basic.http_authenticate(basic("ann@example.test", secret)) is None
    assert no_basic.http_authenticate(f"Bearer {token}") is not None
    assert no_basic.www_authenticate() == ['Bearer realm="Janus Mail", scope="jmap"']
    no_bearer = make_auth(jmap_accepts_bearer=False)
    assert no_bearer.http_authenticate(f"Bearer {token}") is None
    assert no_bearer.http_authenticate(basic("ann@example.test", PW)) is not None
    imap_token = token_service.issue(acct, ["imap"])
    assert make_auth().http_authenticate(f"Bearer {imap_token}") is None


@sqlite_only
def test_www_authenticate_error(auth: Authenticator) -> None:
    out = auth.www_authenticate(InvalidToken('token "expired"'))
    assert (
        out[1]
        == 'Bearer realm="Janus Mail", scope="jmap", error="invalid_token", error_description="token \'expired\'"'
    )


def test_parse_basic() -> None:
    assert parse_basic(base64.b64encode("ü:p:w".encode()).decode()) == ("ü", "p:w")
    assert parse_basic("ü") is None


# --- throttle -------------------------------------------------------------------------------------------------


def test_throttle_backoff(clock: Clock) -> None:
    t = LoginThrottle(base=1, maximum=8, window=600, clock=clock)
    assert t.delay("1.2.3.4", "a@x") == 0
    assert [t.failed("1.2.3.4", "a@x") for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert t.delay("1.2.3.4", "A@X ") == 8  # same address, normalised
    assert t.delay("1.2.3.4", "b@x") == 0 and t.delay("5.6.7.8", "a@x") == 0
    t.succeeded("1.2.3.4", "a@x")
    assert t.delay("1.2.3.4", "a@x") == 0
    t.failed("1.2.3.4", "a@x")
    clock.advance(601)
    assert t.delay("1.2.3.4", "a@x") == 0


def test_throttle_spray(clock: Clock) -> None:
    t = LoginThrottle(base=0.5, maximum=10, clock=clock)
    delays = [t.failed("9.9.9.9", f"user{i}@x") for i in range(LoginThrottle.IP_FREE_FAILURES + 3)]
    assert delays[: LoginThrottle.IP_FREE_FAILURES] == [0.5] * LoginThrottle.IP_FREE_FAILURES
    assert delays[-3:] == [0.5, 1.0, 2.0]
    assert t.delay("9.9.9.9", "fresh@x") == 2.0


def test_throttle_is_bounded(clock: Clock) -> None:
    t = LoginThrottle(max_entries=10, clock=clock)
    for i in range(100):
        t.failed(f"10.0.0.{i}", "a@x")
    assert len(t._pairs) == 10 and len(t._ips) == 10


@sqlite_only
def test_authenticator_throttle_from_policy(auth_store: Store) -> None:
    auth = Authenticator(auth_store, AuthPolicy(login_delay_base=0.25, login_delay_max=1))
    assert auth.throttle.failed("1.1.1.1", "a@x") == 0.25


# --- RFC 9698: jmap_access_ok ---------------------------------------------------------------------------------


def _login(auth: Authenticator, secret: str) -> AuthResult:
    r = auth.verify_password("ann@example.test", secret, "imap")
    assert r is not None
    return r


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({}, True),
        ({"jmap_accepts_basic": False}, False),
        ({"jmap_accepts_account_password": False}, False),
        ({"jmap_accepts_app_passwords": False}, True),
        ({"jmap_accepts_bearer": False}, True),
    ],
)
def test_jmap_access_password(make_auth: MakeAuth, make_account: MakeAccount, policy, expected) -> None:
    make_account("ann@example.test")
    auth = make_auth(**policy)
    result = _login(auth, PW)
    assert auth.jmap_access_ok(result) is expected
    assert auth.jmap_access_ok(AuthResult(result.account_id, result.address, "scram")) is expected


@pytest.mark.parametrize(
    ("protocols", "policy", "expected"),
    [
        (["imap", "jmap"], {}, True),
        (["imap"], {}, False),
        (["imap", "smtp"], {}, False),
        (["imap", "jmap"], {"jmap_accepts_app_passwords": False}, False),
        (["imap", "jmap"], {"jmap_accepts_basic": False}, False),
        (["imap", "jmap"], {"jmap_accepts_account_password": False}, True),
    ],
)
def test_jmap_access_app_password(make_auth, make_account, auth_store: Store, protocols, policy, expected) -> None:
    acct = make_account("ann@example.test")
    _, secret = ap.create(auth_store, acct, "phone", protocols)
    auth = make_auth(**policy)
    result = _login(auth, secret)
    assert result.method == "app_password"
    assert auth.jmap_access_ok(result) is expected


def test_jmap_access_app_password_revoked_later(auth, make_account, auth_store: Store) -> None:
    acct = make_account("ann@example.test")
    _, secret = ap.create(auth_store, acct, "phone", ["imap", "jmap"])
    result = _login(auth, secret)
    assert auth.jmap_access_ok(result)
    ap.revoke(auth_store, acct, "phone")
    assert not auth.jmap_access_ok(result)


def test_jmap_access_bearer(make_auth, make_account, token_service: TokenService, clock: Clock) -> None:
    acct = make_account("ann@example.test")
    auth = make_auth()
    with_jmap = auth.verify_bearer(token_service.issue(acct, ["imap", "jmap"], ttl=100), "imap")
    imap_only = auth.verify_bearer(token_service.issue(acct, ["imap"], ttl=100), "imap")
    assert with_jmap is not None and imap_only is not None
    assert auth.jmap_access_ok(with_jmap)
    assert not auth.jmap_access_ok(imap_only)
    assert not make_auth(jmap_accepts_bearer=False).jmap_access_ok(with_jmap)
    assert make_auth(jmap_accepts_basic=False).jmap_access_ok(with_jmap)
    clock.advance(100)
    assert not auth.jmap_access_ok(with_jmap)  # expired since login


def test_revoked_token_is_refused_by_every_protocol(make_auth, make_account, auth_store: Store,
                                                     token_service: TokenService, clock: Clock) -> None:
    from janusmail.auth.tokens import InvalidToken, issue_recorded

    acct = make_account("ann@example.test")
    auth = make_auth()
    kept = issue_recorded(auth_store, token_service, acct, ["imap", "jmap", "smtp"], 600, label="kept")
    doomed = issue_recorded(auth_store, token_service, acct, ["imap", "jmap", "smtp"], 600, label="doomed")
    for protocol in ("imap", "jmap", "smtp"):
        assert auth.verify_bearer(doomed.token, protocol) is not None
    auth_store.tokens.settle()
    assert auth_store.tokens.get(doomed.jti).last_used_at == int(clock.now)  # a use is stamped
    assert auth_store.tokens.revoke(doomed.jti) is not None
    for protocol in ("imap", "jmap", "smtp"):
        assert auth.verify_bearer(doomed.token, protocol) is None
        assert auth.verify_bearer(kept.token, protocol) is not None
    with pytest.raises(InvalidToken, match="revoked"):
        auth.check_bearer(doomed.token, "jmap")
    assert auth.http_authenticate(f"Bearer {doomed.token}") is None
    assert auth.http_authenticate(f"Bearer {kept.token}") is not None


def test_jmap_access_bearer_audience(auth_store: Store, make_account, tmp_path: Path, clock: Clock) -> None:
    acct = make_account("ann@example.test")
    svc = TokenService(
        ISSUER, tmp_path / "k", "https://imap.example.test",
        protocol_audiences={"jmap": ["https://jmap.example.test"]}, clock=clock,
    )  # fmt: skip
    auth = Authenticator(auth_store, AuthPolicy(), svc, clock=clock)
    imap_aud = auth.verify_bearer(svc.issue(acct, ["imap", "jmap"]), "imap")
    assert imap_aud is not None and not auth.jmap_access_ok(imap_aud)
    both = auth.verify_bearer(svc.issue(acct, ["imap", "jmap"], audience="https://jmap.example.test"), "jmap")
    assert both is not None and auth.jmap_access_ok(both)


def test_jmap_access_bearer_issuer_no_longer_trusted(auth_store: Store, make_account, token_service, clock) -> None:
    acct = make_account("ann@example.test")
    result = Authenticator(auth_store, AuthPolicy(), token_service, clock=clock).verify_bearer(
        token_service.issue(acct, ["imap", "jmap"]), "imap"
    )
    assert result is not None
    forged = AuthResult(
        acct, result.address, "bearer", "j", result.scopes, result.expires_at, "https://x", result.audiences
    )
    assert not Authenticator(auth_store, AuthPolicy(), token_service, clock=clock).jmap_access_ok(forged)
    assert not Authenticator(auth_store, AuthPolicy(), None, clock=clock).jmap_access_ok(result)


def test_jmap_access_account_jmap_disabled(auth, make_account, engine, auth_store: Store, token_service) -> None:
    acct = make_account("ann@example.test")
    _, secret = ap.create(auth_store, acct, "phone", ["imap", "jmap"])
    results = [
        _login(auth, PW),
        _login(auth, secret),
        auth.verify_bearer(token_service.issue(acct, ["imap", "jmap"]), "imap"),
    ]
    assert all(auth.jmap_access_ok(r) for r in results)
    with engine.begin() as conn:
        conn.execute(sa.update(accounts).where(accounts.c.id == acct).values(jmap_enabled=False))
    assert not any(auth.jmap_access_ok(r) for r in results)


def test_jmap_access_account_deleted_or_unknown_method(auth, make_account, engine) -> None:
    acct = make_account("ann@example.test")
    result = _login(auth, PW)
    assert not auth.jmap_access_ok(AuthResult(acct, result.address, "external"))
    with engine.begin() as conn:
        conn.execute(sa.delete(accounts).where(accounts.c.id == acct))
    assert not auth.jmap_access_ok(result)
