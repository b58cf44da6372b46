"""Auth facts the web admin relies on (janusmail/admin): the ``admin`` login protocol takes only the account
password, a disabled account logs in nowhere and its sessions end, and the JMAPACCESS decision names the fact
that decides it, agreeing with ``jmap_access_ok`` and with the policy's ``allows``."""

from __future__ import annotations

import itertools

import pytest

from janusmail.auth import app_passwords, revocation
from janusmail.auth.authenticator import Authenticator, AuthResult
from janusmail.auth.policy import ADMIN, METHODS, PROTOCOLS, AuthPolicy
from janusmail.auth.tokens import InvalidToken, TokenService
from janusmail.store.store import Store

PW = "correct horse"


def test_admin_protocol_takes_only_the_account_password(auth: Authenticator, make_account, auth_store: Store) -> None:
    acct = make_account("root@example.test")
    _, secret = app_passwords.create(auth_store, acct, "laptop")  # granted every protocol
    ok = auth.verify_password("root@example.test", PW, ADMIN)
    assert ok is not None and ok.method == "password"
    assert auth.verify_password("root@example.test", secret, ADMIN) is None
    assert auth.verify_password("root@example.test", secret, "imap") is not None
    assert auth.verify_password("root@example.test", "wrong", ADMIN) is None


def test_disabled_account_logs_in_nowhere(auth: Authenticator, make_account, auth_store: Store,
                                          token_service: TokenService) -> None:
    acct = make_account("ann@example.test")
    _, secret = app_passwords.create(auth_store, acct, "phone")
    token = token_service.issue(acct, ["imap", "jmap"], ttl=300)
    assert auth.verify_password("ann@example.test", PW, "imap") is not None  # (and now cached)
    baseline = auth_store.credentials.sequence()
    auth_store.accounts.set_disabled(acct, True)
    for proto in ("imap", "jmap", "smtp", ADMIN):
        assert auth.verify_password("ann@example.test", PW, proto) is None
        assert auth.verify_password("ann@example.test", secret, proto) is None
    with pytest.raises(InvalidToken, match="disabled"):
        auth.check_bearer(token, "imap")
    assert auth.scram_secret("ann@example.test", "imap").iterations > 0  # a fake: the exchange cannot succeed
    assert not auth.jmap_access_ok(AuthResult(acct, "ann@example.test", "password"))
    verdict = revocation.check(auth_store, AuthResult(acct, "ann@example.test", "password"), baseline, now=0)
    assert verdict.reason == revocation.ACCOUNT_DISABLED
    auth_store.accounts.set_disabled(acct, False)
    assert auth.verify_password("ann@example.test", PW, "imap") is not None


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_decision_names_the_deciding_fact(make_auth, make_account, auth_store: Store) -> None:
    acct = make_account("ann@example.test")
    pw = AuthResult(acct, "ann@example.test", "password")
    assert make_auth().jmap_access_decision(pw).offered
    for setting in ("jmap_accepts_basic", "jmap_accepts_account_password"):
        decision = make_auth(**{setting: False}).jmap_access_decision(pw)
        assert not decision.offered and decision.fact == f"[auth] {setting} = false"
    ap, _ = app_passwords.create(auth_store, acct, "old", "imap")
    decision = make_auth().jmap_access_decision(AuthResult(acct, "ann@example.test", "app_password", ap.id))
    assert not decision.offered and "not granted jmap" in decision.fact
    hypothetical = app_passwords.AppPassword("x", acct, "what if", frozenset({"imap", "jmap"}), 0, None, None)
    assert make_auth().jmap_access_decision(AuthResult(acct, "ann@example.test", "app_password"),
                                            app_password=hypothetical).offered


def test_refusal_is_the_negation_of_allows() -> None:
    fields = ["jmap_accepts_basic", "jmap_accepts_account_password", "jmap_accepts_app_passwords",
              "jmap_accepts_bearer", "imap_accepts_app_passwords", "sasl_scram", "smtp_accepts_bearer"]
    for values in itertools.product((True, False), repeat=len(fields)):
        policy = AuthPolicy(**dict(zip(fields, values, strict=True)))
        for method, protocol in itertools.product(METHODS, (*PROTOCOLS, ADMIN)):
            refusal = policy.refusal(method, protocol)
            assert policy.allows(method, protocol) == (refusal is None)
            if refusal is not None and protocol != ADMIN:
                name = refusal.split(" = ")[0]
                assert getattr(policy, name) is False  # the named setting is one that is off
