from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scramp import ScramClient

from janusmail.auth import app_passwords as ap
from janusmail.auth import sasl
from janusmail.auth.authenticator import Authenticator
from janusmail.auth.sasl import Challenge, Failure, SaslServer, Success
from janusmail.auth.tokens import TokenService
from janusmail.store.schema import accounts
from janusmail.store.store import Store

from .conftest import ISSUER, Clock, MakeAccount, sqlite_only

PW = "correct horse"
MakeAuth = Callable[..., Authenticator]


def mech(auth: Authenticator, name: str, protocol: str = "imap") -> sasl.Mechanism:
    m = SaslServer(auth, protocol).create(name, tls_active=True)
    assert m is not None
    return m


# --- PLAIN ----------------------------------------------------------------------------------------------------


def test_plain_success(auth: Authenticator, make_account: MakeAccount) -> None:
    acct = make_account("ann@example.test")
    step = mech(auth, "plain").start(b"\0ann@example.test\0" + PW.encode())
    assert isinstance(step, Success) and step.result.account_id == acct and step.final_data is None
    assert step.result.method == "password"


def test_plain_without_initial_response(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test")
    m = mech(auth, "PLAIN")
    assert m.start(None) == Challenge(b"")
    assert isinstance(m.step(b"ann@example.test\0ann@example.test\0" + PW.encode()), Success)
    assert isinstance(m.step(b"\0ann@example.test\0" + PW.encode()), Failure)  # finished: no second go


@sqlite_only
@pytest.mark.parametrize(
    "message",
    [b"\0ann@example.test\0wrong", b"\0nobody@example.test\0" + PW.encode(), b"ann@example.test\0" + PW.encode(),
     b"\0\0" + PW.encode(), b"\0ann@example.test\0" + PW.encode() + b"\0", b"\0ann@example.test\0\xff\xfe", b""],
)  # fmt: skip
def test_plain_failures(auth: Authenticator, make_account: MakeAccount, message: bytes) -> None:
    make_account("ann@example.test")
    step = mech(auth, "PLAIN").start(message)
    assert isinstance(step, Failure) and step.code == "AUTHENTICATIONFAILED"


def test_plain_failure_names_the_address(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test")
    step = mech(auth, "PLAIN").start(b"\0Ann@Example.test\0wrong")
    assert step == Failure("authentication failed", "AUTHENTICATIONFAILED", "ann@example.test")


def test_plain_authzid(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test")
    make_account("bob@example.test")
    ok = mech(auth, "PLAIN").start(b"ANN@example.test\0ann@example.test\0" + PW.encode())
    assert isinstance(ok, Success)
    bad = mech(auth, "PLAIN").start(b"bob@example.test\0ann@example.test\0" + PW.encode())
    assert isinstance(bad, Failure) and bad.code == "AUTHORIZATIONFAILED"


def test_plain_app_password_respects_protocol(auth: Authenticator, make_account: MakeAccount, auth_store: Store) -> None:
    acct = make_account("ann@example.test")
    _, secret = ap.create(auth_store, acct, "phone", ["smtp"])
    msg = b"\0ann@example.test\0" + secret.encode()
    assert isinstance(mech(auth, "PLAIN", "imap").start(msg), Failure)
    ok = mech(auth, "PLAIN", "smtp").start(msg)
    assert isinstance(ok, Success) and ok.result.method == "app_password"


# --- LOGIN ----------------------------------------------------------------------------------------------------


def test_login_mechanism(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test")
    m = mech(auth, "LOGIN")
    assert m.start(None) == Challenge(b"Username:")
    assert m.step(b"ann@example.test") == Challenge(b"Password:")
    assert isinstance(m.step(PW.encode()), Success)


def test_login_mechanism_initial_response_and_failure(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test")
    m = mech(auth, "LOGIN")
    assert m.start(b"ann@example.test") == Challenge(b"Password:")
    step = m.step(b"nope")
    assert isinstance(step, Failure) and step.address == "ann@example.test"
    m2 = mech(auth, "LOGIN")
    m2.start(None)
    assert isinstance(m2.step(b"\xff"), Failure)


@sqlite_only
def test_step_order_enforced(auth: Authenticator) -> None:
    m = mech(auth, "PLAIN")
    assert isinstance(m.step(b"\0a\0b"), Failure) and m.done  # step before start
    m = mech(auth, "PLAIN")
    assert m.start(None) == Challenge(b"")
    assert m.start(None) == Failure("exchange already started", "PROTOCOL")


@sqlite_only
def test_cancel(auth: Authenticator) -> None:
    m = mech(auth, "LOGIN")
    m.start(None)
    assert m.cancel().code == "CANCELLED"
    assert isinstance(m.step(b"x"), Failure)


# --- OAUTHBEARER ----------------------------------------------------------------------------------------------


def oauthbearer(token: str, authzid: str = "ann@example.test") -> bytes:
    gs2 = f"n,a={authzid}," if authzid else "n,,"
    return f"{gs2}\x01host=mail.example.test\x01port=993\x01auth=Bearer {token}\x01\x01".encode()


def test_oauthbearer_success(
    auth: Authenticator, make_account: MakeAccount, token_service: TokenService
) -> None:
    acct = make_account("ann@example.test")
    token = token_service.issue(acct, ["imap", "jmap"])
    step = mech(auth, "OAUTHBEARER").start(oauthbearer(token))
    assert isinstance(step, Success) and step.result.method == "bearer" and step.result.account_id == acct
    assert isinstance(mech(auth, "OAUTHBEARER").start(oauthbearer(token, "")), Success)
    m = mech(auth, "OAUTHBEARER")
    assert m.start(None) == Challenge(b"")
    assert isinstance(m.step(oauthbearer(token)), Success)


def test_oauthbearer_error_dance(
    auth: Authenticator, make_account: MakeAccount, token_service, clock: Clock
) -> None:
    acct = make_account("ann@example.test")
    token = token_service.issue(acct, ["imap"], ttl=10)
    clock.advance(11)
    m = mech(auth, "OAUTHBEARER")
    step = m.start(oauthbearer(token))
    assert isinstance(step, Challenge)
    body = json.loads(step.data)
    assert body == {
        "status": "invalid_token", "scope": "imap",
        "openid-configuration": ISSUER + "/.well-known/openid-configuration",
    }  # fmt: skip
    final = m.step(b"\x01")
    assert isinstance(final, Failure) and final.code == "AUTHENTICATIONFAILED"
    assert final.address == "ann@example.test"


def test_oauthbearer_insufficient_scope(auth, make_account: MakeAccount, token_service) -> None:
    acct = make_account("ann@example.test")
    m = mech(auth, "OAUTHBEARER", "smtp")
    step = m.start(oauthbearer(token_service.issue(acct, ["imap"])))
    assert isinstance(step, Challenge) and json.loads(step.data)["status"] == "insufficient_scope"
    assert json.loads(step.data)["scope"] == "smtp"
    final = m.step(b"something else")  # a client that doesn't play along still fails
    assert isinstance(final, Failure) and final.code == "PROTOCOL"


def test_oauthbearer_authzid_mismatch(auth, make_account: MakeAccount, token_service) -> None:
    acct = make_account("ann@example.test")
    make_account("bob@example.test")
    step = mech(auth, "OAUTHBEARER").start(
        oauthbearer(token_service.issue(acct, ["imap"]), "bob@example.test")
    )
    assert isinstance(step, Failure) and step.code == "AUTHORIZATIONFAILED"


@sqlite_only
@pytest.mark.parametrize(
    "message",
    [b"", b"\x01", b"n,,\x01auth=Bearer abc\x01", b"p=tls-unique,,\x01auth=Bearer abc\x01\x01",
     b"n,,\x01auth=Basic abc\x01\x01", b"n,,\x01host=x\x01\x01", b"n,b=x,\x01auth=Bearer abc\x01\x01",
     b"n,a=bad=name,\x01auth=Bearer abc\x01\x01", b"n,,\x01auth=Bearer a b\x01\x01",
     b"n,,\x01auth=Bearer abc\x01auth=Bearer abc\x01\x01", b"n,,\x01=x\x01auth=Bearer abc\x01\x01", b"\xff\x01\x01"],
)  # fmt: skip
def test_oauthbearer_malformed(auth: Authenticator, message: bytes) -> None:
    assert isinstance(mech(auth, "OAUTHBEARER").start(message), Failure)


def test_oauthbearer_saslname_escapes(auth, make_account: MakeAccount, token_service) -> None:
    acct = make_account("a,b=c@example.test")
    step = mech(auth, "OAUTHBEARER").start(
        oauthbearer(token_service.issue(acct, ["imap"]), "a=2Cb=3Dc@example.test")
    )
    assert isinstance(step, Success)


# --- XOAUTH2 --------------------------------------------------------------------------------------------------


def xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def test_xoauth2(auth: Authenticator, make_account: MakeAccount, token_service: TokenService) -> None:
    acct = make_account("ann@example.test")
    token = token_service.issue(acct, ["imap"])
    step = mech(auth, "XOAUTH2").start(xoauth2("Ann@example.test", token))
    assert isinstance(step, Success) and step.result.account_id == acct


def test_xoauth2_failure_challenge(auth, make_account: MakeAccount, token_service) -> None:
    acct = make_account("ann@example.test")
    m = mech(auth, "XOAUTH2")
    step = m.start(xoauth2("ann@example.test", token_service.issue(acct, ["jmap"])))
    assert isinstance(step, Challenge)
    assert json.loads(step.data) == {"status": "401", "schemes": "bearer", "scope": "imap"}
    assert isinstance(m.step(b""), Failure)


def test_xoauth2_wrong_user(auth, make_account: MakeAccount, token_service) -> None:
    acct = make_account("ann@example.test")
    make_account("bob@example.test")
    step = mech(auth, "XOAUTH2").start(xoauth2("bob@example.test", token_service.issue(acct, ["imap"])))
    assert isinstance(step, Failure) and step.code == "AUTHORIZATIONFAILED"


@sqlite_only
@pytest.mark.parametrize(
    "message", [b"", b"user=a@b\x01auth=Bearer x\x01", b"auth=Bearer x\x01\x01", b"user=a@b\x01\x01",
                b"user=a@b\x01auth=Bearer x\x01extra=1\x01\x01", b"user=a@b\x01auth=Basic x\x01\x01"],
)  # fmt: skip
def test_xoauth2_malformed(auth: Authenticator, message: bytes) -> None:
    assert isinstance(mech(auth, "XOAUTH2").start(message), Failure)


# --- SCRAM-SHA-256 --------------------------------------------------------------------------------------------


def run_scram(
    m: sasl.Mechanism, user: str, password: str, *, ir: bool = True
) -> tuple[ScramClient, sasl.Step]:
    client = ScramClient(["SCRAM-SHA-256"], user, password)
    first = client.get_client_first().encode()
    if ir:
        step = m.start(first)
    else:
        assert m.start(None) == Challenge(b"")
        step = m.step(first)
    assert isinstance(step, Challenge)
    client.set_server_first(step.data.decode())
    return client, m.step(client.get_client_final().encode())


@pytest.mark.parametrize("ir", [True, False])
def test_scram_success(auth: Authenticator, make_account: MakeAccount, ir: bool) -> None:
    acct = make_account("ann@example.test")
    client, step = run_scram(mech(auth, "SCRAM-SHA-256"), "ann@example.test", PW, ir=ir)
    assert isinstance(step, Success) and step.result.method == "scram" and step.result.account_id == acct
    assert step.final_data is not None and step.final_data.startswith(b"v=")
    client.set_server_final(step.final_data.decode())  # raises unless the server proved it knows the secret


def test_scram_wrong_password(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test")
    _, step = run_scram(mech(auth, "SCRAM-SHA-256"), "ann@example.test", "wrong")
    assert isinstance(step, Failure) and step.address == "ann@example.test"


def test_scram_unknown_user_fails_at_the_proof(auth: Authenticator) -> None:
    m1, m2 = mech(auth, "SCRAM-SHA-256"), mech(auth, "SCRAM-SHA-256")
    client = ScramClient(["SCRAM-SHA-256"], "ghost@example.test", PW)
    first = m1.start(client.get_client_first().encode())
    again = m2.start(ScramClient(["SCRAM-SHA-256"], "ghost@example.test", PW).get_client_first().encode())
    assert isinstance(first, Challenge) and isinstance(again, Challenge)
    salt = lambda c: dict(kv.split("=", 1) for kv in c.data.decode().split(","))["s"]  # noqa: E731
    assert salt(first) == salt(again)  # a stable fake salt: probing twice reveals nothing
    client.set_server_first(first.data.decode())
    assert isinstance(m1.step(client.get_client_final().encode()), Failure)


def test_scram_account_without_secret(auth: Authenticator, make_account: MakeAccount, engine) -> None:
    acct = make_account("ann@example.test")
    with engine.begin() as conn:
        conn.execute(sa.update(accounts).where(accounts.c.id == acct).values(scram_sha256=None))
    _, step = run_scram(mech(auth, "SCRAM-SHA-256"), "ann@example.test", PW)
    assert isinstance(step, Failure)
    # a plaintext login fills in the SCRAM secret, after which SCRAM works
    assert auth.verify_password("ann@example.test", PW, "imap") is not None
    _, step = run_scram(mech(auth, "SCRAM-SHA-256"), "ann@example.test", PW)
    assert isinstance(step, Success)


def test_scram_refused_by_policy_fails_like_a_wrong_password(make_auth: MakeAuth, make_account) -> None:
    make_account("ann@example.test")
    auth = make_auth(imap_accepts_account_password=False)
    assert SaslServer(auth, "imap").create("SCRAM-SHA-256", tls_active=True) is None
    m = sasl.ScramSha256(auth, "imap")  # even when forced, the secret is a fake
    _, step = run_scram(m, "ann@example.test", PW)
    assert isinstance(step, Failure)


@sqlite_only
@pytest.mark.parametrize(
    "first", [b"", b"garbage", b"p=tls-unique,,n=ann@example.test,r=abc", b"n,a=ann@example.test,n=x,r=abc",
              b"n,,n=ann@example.test", b"\xff"],
)  # fmt: skip
def test_scram_malformed_first(auth: Authenticator, first: bytes) -> None:
    assert isinstance(mech(auth, "SCRAM-SHA-256").start(first), Failure)


def test_scram_malformed_final(auth: Authenticator, make_account: MakeAccount) -> None:
    make_account("ann@example.test")
    m = mech(auth, "SCRAM-SHA-256")
    client = ScramClient(["SCRAM-SHA-256"], "ann@example.test", PW)
    assert isinstance(m.start(client.get_client_first().encode()), Challenge)
    assert isinstance(m.step(b"c=biws,r=wrong-nonce,p=AAAA"), Failure)


# --- the menu -------------------------------------------------------------------------------------------------


@sqlite_only
def test_mechanisms_over_tls(auth: Authenticator) -> None:
    assert SaslServer(auth).mechanisms(tls_active=True) == [
        "PLAIN",
        "SCRAM-SHA-256",
        "OAUTHBEARER",
        "XOAUTH2",
        "LOGIN",
    ]


@sqlite_only
def test_mechanisms_without_tls(make_auth: MakeAuth) -> None:
    auth = make_auth()
    assert SaslServer(auth).mechanisms(tls_active=False) == ["SCRAM-SHA-256"]
    assert SaslServer(auth).mechanisms(tls_active=False, peer_loopback=True)[0] == "PLAIN"
    assert SaslServer(make_auth(imap_plaintext_without_tls="never")).mechanisms(False, True) == [
        "SCRAM-SHA-256"
    ]
    assert "PLAIN" in SaslServer(make_auth(imap_plaintext_without_tls="always")).mechanisms(False)
    assert SaslServer(auth).create("PLAIN", tls_active=False) is None


@sqlite_only
def test_mechanisms_follow_policy(make_auth: MakeAuth, auth_store: Store) -> None:
    auth = make_auth(sasl_login=False, sasl_xoauth2=False, sasl_scram=False)
    assert SaslServer(auth).mechanisms(True) == ["PLAIN", "OAUTHBEARER"]
    auth = make_auth(imap_accepts_bearer=False)
    assert "OAUTHBEARER" not in SaslServer(auth).mechanisms(True)
    assert SaslServer(Authenticator(auth_store)).mechanisms(True) == ["PLAIN", "SCRAM-SHA-256", "LOGIN"]
    assert SaslServer(auth).create("GSSAPI", True) is None
    assert SaslServer(auth).create(None, True) is None  # type: ignore[arg-type]


@sqlite_only
def test_smtp_rules_are_separate(make_auth: MakeAuth) -> None:
    auth = make_auth(smtp_plaintext_without_tls="always", imap_plaintext_without_tls="never")
    assert "PLAIN" in SaslServer(auth, "smtp").mechanisms(False)
    assert "PLAIN" not in SaslServer(auth, "imap").mechanisms(False)


# --- base64 helpers and robustness ----------------------------------------------------------------------------


def test_base64_helpers() -> None:
    assert sasl.decode_response(b"AGFubgBwdw==") == b"\0ann\0pw"
    assert sasl.decode_response(b"=", initial=True) == b""
    assert sasl.decode_response(b"") == b""
    for bad in (b"=", b"!!", b"AGFubgBwdw", b"A" * 30000):
        with pytest.raises(sasl.SaslDecodeError):
            sasl.decode_response(bad)
    assert sasl.encode_challenge(b"Username:") == base64.b64encode(b"Username:")


@sqlite_only
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    name=st.sampled_from(sorted(sasl.MECHANISMS)),
    chunks=st.lists(
        st.binary(max_size=200) | st.sampled_from([b"\x01", b"", b"\0a\0b", b"n,,\x01\x01"]), max_size=4
    ),
)
def test_random_input_never_crashes(auth: Authenticator, name: str, chunks: list[bytes]) -> None:
    m = SaslServer(auth).create(name, tls_active=True)
    assert m is not None
    step = m.start(chunks[0] if chunks else None)
    for chunk in chunks[1:]:
        assert isinstance(step, Challenge | Success | Failure)
        step = m.step(chunk)
    assert not isinstance(step, Success)
