from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from janusmail.auth import app_passwords as ap
from janusmail.store import ids
from janusmail.store.schema import app_passwords as table
from janusmail.store.store import Store

from .conftest import MakeAccount, sqlite_only


def test_generated_secret_shape() -> None:
    secret = ap.generate()
    assert re.fullmatch(r"([a-z2-9]{4}-){5}[a-z2-9]{4}", secret)
    assert not set(secret) & set("01ilo")
    assert len({ap.generate() for _ in range(50)}) == 50


@pytest.mark.parametrize(
    ("typed", "ok"),
    [
        ("abcd-efgh-jkmn-pqrs-tuvw-xyz2", True),
        ("ABCD EFGH JKMN PQRS TUVW XYZ2", True),
        ("abcdefghjkmnpqrstuvwxyz2", True),
        ("abcd-efgh-jkmn-pqrs-tuvw-xyz", False),  # too short
        ("abcd-efgh-jkmn-pqrs-tuvw-xyz0", False),  # 0 is not in the alphabet
        ("correct horse battery staple", False),
    ],
)
def test_normalize(typed: str, ok: bool) -> None:
    assert (ap.normalize(typed) is not None) is ok


@given(st.text(max_size=120))
def test_normalize_never_raises(text: str) -> None:
    out = ap.normalize(text)
    assert out is None or (len(out) == ap.LENGTH and set(out) <= set(ap.ALPHABET))


def test_create_list_verify(engine: sa.Engine, auth_store: Store, make_account: MakeAccount) -> None:
    acct = make_account("ann@example.test")
    pw, secret = ap.create(auth_store, acct, "Phone", ["imap", "smtp"], now=1000)
    assert pw.id.startswith(ids.APP_PASSWORD) and pw.protocols == {"imap", "smtp"}
    assert [p.name for p in ap.list_for(auth_store, acct)] == ["Phone"]
    with engine.connect() as conn:
        stored = conn.execute(sa.select(table.c.password_hash, table.c.protocols)).one()
    assert secret not in stored.password_hash and stored.protocols == "imap,smtp"

    assert ap.verify(auth_store, acct, secret, "imap", now=2000) is not None
    assert ap.verify(auth_store, acct, secret.upper().replace("-", " "), "smtp", now=2000) is not None
    # granted imap+smtp only: the same correct secret fails for jmap
    assert ap.verify(auth_store, acct, secret, "jmap", now=2000) is None
    assert ap.verify(auth_store, acct, ap.generate(), "imap") is None


def test_verify_is_per_account(auth_store: Store, make_account: MakeAccount) -> None:
    a = make_account("a@example.test")
    b = make_account("b@example.test")
    _, secret = ap.create(auth_store, a, "laptop")
    assert ap.verify(auth_store, b, secret, "imap") is None
    assert ap.verify(auth_store, a, secret, "imap") is not None


def test_last_used_at(auth_store: Store, make_account: MakeAccount) -> None:
    acct = make_account("ann@example.test")
    pw, secret = ap.create(auth_store, acct, "Phone", now=1000)
    assert pw.last_used_at is None
    ap.verify(auth_store, acct, secret, "imap", now=5000)
    assert ap.get(auth_store, pw.id).last_used_at == 5000
    ap.verify(auth_store, acct, secret, "imap", now=5030)  # within the granularity: no write
    assert ap.get(auth_store, pw.id).last_used_at == 5000
    ap.verify(auth_store, acct, secret, "imap", now=5000 + ap.LAST_USED_GRANULARITY)
    assert ap.get(auth_store, pw.id).last_used_at == 5000 + ap.LAST_USED_GRANULARITY


def test_revoke_by_name_and_id(auth_store: Store, make_account: MakeAccount) -> None:
    acct = make_account("ann@example.test")
    p1, s1 = ap.create(auth_store, acct, "Phone")
    p2, s2 = ap.create(auth_store, acct, "Tablet")
    assert ap.revoke(auth_store, acct, "Phone", now=77)
    assert ap.revoke(auth_store, acct, p2.id)
    assert not ap.revoke(auth_store, acct, "Phone")  # already revoked
    assert not ap.revoke(auth_store, acct, "nothing")
    assert ap.verify(auth_store, acct, s1, "imap") is None
    assert ap.verify(auth_store, acct, s2, "imap") is None
    assert ap.list_for(auth_store, acct) == []
    revoked = ap.list_for(auth_store, acct, include_revoked=True)
    assert {p.name for p in revoked} == {"Phone", "Tablet"}
    assert ap.get(auth_store, p1.id).revoked_at == 77 and not ap.get(auth_store, p1.id).allows("imap")


def test_revoke_only_own(auth_store: Store, make_account: MakeAccount) -> None:
    a = make_account("a@example.test")
    b = make_account("b@example.test")
    pw, secret = ap.create(auth_store, a, "Phone")
    assert not ap.revoke(auth_store, b, pw.id)
    assert ap.verify(auth_store, a, secret, "imap") is not None


def test_names(auth_store: Store, make_account: MakeAccount) -> None:
    acct = make_account("ann@example.test")
    ap.create(auth_store, acct, "Phone")
    with pytest.raises(ap.DuplicateName):
        ap.create(auth_store, acct, " Phone ")
    ap.revoke(auth_store, acct, "Phone")
    _, secret = ap.create(auth_store, acct, "Phone")  # a revoked name can be reused
    assert ap.verify(auth_store, acct, secret, "jmap") is not None
    for bad in ["", "   ", "x" * 201, "tab\there"]:
        with pytest.raises(ap.AppPasswordError):
            ap.create(auth_store, acct, bad)


@sqlite_only
@pytest.mark.parametrize("protocols", [[], "", "pop3", ["imap", "ftp"], ","])
def test_bad_protocols(auth_store: Store, make_account: MakeAccount, protocols: object) -> None:
    acct = make_account("ann@example.test")
    with pytest.raises(ap.AppPasswordError):
        ap.create(auth_store, acct, "x", protocols)  # type: ignore[arg-type]


def test_unknown_account(auth_store: Store) -> None:
    with pytest.raises(ap.UnknownAccount):
        ap.create(auth_store, ids.mint(ids.ACCOUNT), "Phone")
