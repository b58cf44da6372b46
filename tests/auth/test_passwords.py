from __future__ import annotations

import argon2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from janusmail.auth import passwords


def test_hash_and_check() -> None:
    h = passwords.hash_password("s3cret")
    assert h.startswith("$argon2id$")
    assert passwords.check_password(h, "s3cret").ok
    assert not passwords.check_password(h, "s3cret ").ok
    assert not passwords.check_password(h, "").ok


def test_each_hash_is_salted() -> None:
    assert passwords.hash_password("same") != passwords.hash_password("same")


@pytest.mark.parametrize("bad", ["", None, "plain text", "$argon2id$v=19$garbage", "$2b$12$abcdefghijk"])
def test_bad_stored_hash_is_a_failure_not_an_exception(bad: str | None) -> None:
    assert passwords.check_password(bad, "anything") == passwords.PasswordCheck(False)


def test_empty_password_cannot_be_hashed() -> None:
    with pytest.raises(ValueError):
        passwords.hash_password("")


def test_rehash_when_parameters_grow() -> None:
    old = passwords.hash_password("pw")  # cheap parameters (fixture)
    assert passwords.check_password(old, "pw").new_hash is None
    passwords.set_hasher(argon2.PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    check = passwords.check_password(old, "pw")
    assert check.ok and check.new_hash is not None and check.new_hash != old
    assert "m=2048,t=2" in check.new_hash
    assert passwords.check_password(check.new_hash, "pw").new_hash is None
    assert not passwords.check_password(old, "wrong").ok


def test_scram_roundtrip_and_format() -> None:
    secret = passwords.make_scram_secret("pencil", salt=b"0123456789abcdef")
    text = passwords.format_scram(secret)
    assert text.startswith("SCRAM-SHA-256$4096:")
    assert passwords.parse_scram(text) == secret
    assert passwords.check_scram_password(text, "pencil")
    assert not passwords.check_scram_password(text, "pen")


def test_scram_matches_rfc7677_test_vector() -> None:
    # RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
    import base64
    import hashlib
    import hmac

    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    secret = passwords.make_scram_secret("pencil", 4096, salt)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert secret.stored_key == hashlib.sha256(client_key).digest()
    # The server signature in the RFC's example exchange, recomputed from our ServerKey:
    auth_message = (
        b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    sig = hmac.new(secret.server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(sig) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "SCRAM-SHA-256$4096:c2FsdA==",
        "SCRAM-SHA-1$4096:c2FsdA==$" + "A" * 44 + ":" + "A" * 44,
        "SCRAM-SHA-256$100:c2FsdA==$" + "A" * 43 + "=:" + "A" * 43 + "=",  # too few iterations
        "SCRAM-SHA-256$4096:!!!$" + "A" * 43 + "=:" + "A" * 43 + "=",
        "SCRAM-SHA-256$4096:c2FsdA==$c2hvcnQ=:c2hvcnQ=",  # keys not 32 bytes
    ],
)
def test_parse_scram_rejects_malformed(bad: str | None) -> None:
    assert passwords.parse_scram(bad) is None


@given(st.text(max_size=200))
def test_parse_scram_never_raises(text: str) -> None:
    assert passwords.parse_scram(text) is None or text.startswith("SCRAM-SHA-256$")


def test_make_credentials() -> None:
    pw_hash, scram = passwords.make_credentials("Tr0ub4dor&3")
    assert passwords.check_password(pw_hash, "Tr0ub4dor&3").ok
    assert scram is not None and passwords.check_scram_password(scram, "Tr0ub4dor&3")


def test_make_credentials_password_saslprep_rejects() -> None:
    # U+0007 (BEL) is prohibited by SASLprep: no SCRAM secret, but the plaintext login still works.
    pw_hash, scram = passwords.make_credentials("bell\x07pw")
    assert scram is None
    assert passwords.check_password(pw_hash, "bell\x07pw").ok
