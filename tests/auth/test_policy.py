from __future__ import annotations

import pytest

from janusmail.auth.policy import AuthPolicy, is_loopback


def test_defaults_accept_everything_over_tls() -> None:
    p = AuthPolicy()
    for proto in ("imap", "jmap", "smtp"):
        for method in ("password", "app_password", "bearer", "scram"):
            assert p.allows(method, proto), (method, proto)


def test_jmap_basic_is_the_master_switch() -> None:
    p = AuthPolicy(jmap_accepts_basic=False)
    assert not p.allows("password", "jmap") and not p.allows("app_password", "jmap")
    assert not p.allows("scram", "jmap") and p.allows("bearer", "jmap")
    assert p.allows("password", "imap")  # IMAP unaffected


def test_app_passwords_only_on_jmap() -> None:
    p = AuthPolicy(jmap_accepts_account_password=False)
    assert not p.allows("password", "jmap") and not p.allows("scram", "jmap")
    assert p.allows("app_password", "jmap")


def test_scram_follows_password_and_switch() -> None:
    assert not AuthPolicy(imap_accepts_account_password=False).allows("scram", "imap")
    assert not AuthPolicy(sasl_scram=False).allows("scram", "imap")


def test_unknown_method_or_protocol_is_refused() -> None:
    assert not AuthPolicy().allows("external", "imap")
    assert not AuthPolicy().allows("password", "pop3")


@pytest.mark.parametrize(
    ("rule", "tls", "loop", "expected"),
    [
        ("loopback", True, False, True),
        ("loopback", False, True, True),
        ("loopback", False, False, False),
        ("never", False, True, False),
        ("always", False, False, True),
    ],
)
def test_plaintext_rule(rule: str, tls: bool, loop: bool, expected: bool) -> None:
    p = AuthPolicy(imap_plaintext_without_tls=rule)  # type: ignore[arg-type]
    assert p.plaintext_allowed("imap", tls, loop) is expected


def test_from_config() -> None:
    p = AuthPolicy.from_config({"jmap_accepts_basic": False, "login_delay_base": 2})
    assert p.jmap_accepts_basic is False and p.login_delay_base == 2.0
    assert AuthPolicy.from_config(None) == AuthPolicy()


@pytest.mark.parametrize(
    "cfg",
    [
        {"jmap_accept_basic": False},  # typo
        {"jmap_accepts_basic": "no"},
        {"imap_plaintext_without_tls": "sometimes"},
        {"login_delay_max": -1},
        {"login_delay_base": True},
        {"credential_cache_seconds": "60"},
    ],
)
def test_from_config_errors(cfg: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        AuthPolicy.from_config(cfg)


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("2001:db8::1", False),
        ("localhost", False),
        ("", False),
        (None, False),
        ("not an ip", False),
    ],
)
def test_is_loopback(peer: str | None, expected: bool) -> None:
    assert is_loopback(peer) is expected
