"""Sessions end with their credential, at the edges the per-command check does not reach (sans-IO harness,
real store, SQLite and PostgreSQL):

* a large APPEND literal is announced before its command runs: a session whose credential died must not get
  ``+`` and fill a spool file and the server's upload budget first; it gets its ``* BYE [EXPIRED]`` instead;
* a login whose baseline (the credential epoch read *before* verifying) could not be read is refused with
  ``NO [UNAVAILABLE]``: a baseline read after verification could miss a change committed in between.
"""

from __future__ import annotations

from typing import Any

import pytest

from janusmail.auth import app_passwords, passwords
from janusmail.runtime import Runtime
from janusmail.spool import spooler_for
from tests.imap.e2e_util import ADDRESS, PASSWORD, Harness, use_cheap_argon2
from tests.imap.msg_support import runtime_fixture

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)
CHANGED = b"* BYE [EXPIRED] Your password was changed; log in again with the new one\r\n"
REVOKED = b"* BYE [EXPIRED] This app password was revoked\r\n"
BIG = 1_000_000  # well above the spool threshold: a large literal, decided before its data is read


rt = pytest.fixture(runtime_fixture)  # a runtime with one account (ADDRESS), both backends


async def logged_in(rt: Runtime, secret: str = PASSWORD) -> Harness:
    h = Harness(rt, peer="127.0.0.1")
    assert (await h.send(f'a LOGIN {ADDRESS} "{secret}"')).startswith(b"a OK")
    return h


@pytest.mark.parametrize("sync", [True, False])
async def test_large_literal_of_a_dead_credential_is_refused_with_bye(rt: Runtime, sync: bool) -> None:
    h = await logged_in(rt)
    budget = spooler_for(rt).budget
    rt.store.credentials.set_password(rt.account.id, *passwords.make_credentials("new one"))  # type: ignore[attr-defined]
    header = b"A APPEND INBOX {%d%s}\r\n" % (BIG, b"" if sync else b"+")
    out = await h.send(header)
    assert out == CHANGED  # no "+": the literal is never read
    assert h.session.closed and budget.used == 0 and not h.session.literals.active
    await h.close()


async def test_large_literal_of_a_revoked_app_password_is_refused_with_bye(rt: Runtime) -> None:
    account_id = rt.account.id  # type: ignore[attr-defined]
    _, secret = app_passwords.create(rt.store, account_id, "laptop", "imap")
    h, other = await logged_in(rt, secret), await logged_in(rt)
    assert rt.store.app_passwords.revoke(account_id, "laptop")
    assert await h.send(b"A APPEND INBOX {%d}\r\n" % BIG) == REVOKED
    # A session of another credential still gets its continuation.
    assert (await other.send(b"A APPEND INBOX {%d}\r\n" % BIG)).startswith(b"+ ")
    assert spooler_for(rt).budget.used == BIG
    await other.close()
    assert spooler_for(rt).budget.used == 0
    await h.close()


async def test_login_without_a_baseline_read_before_verification_is_unavailable(rt: Runtime) -> None:
    store: Any = rt.store
    real = store.credentials.sequence
    calls = {"n": 0}

    def first_read_fails() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("the database is unreachable right now")
        return real()

    store.credentials.sequence = first_read_fails
    h = Harness(rt, peer="127.0.0.1")
    out = await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')
    assert out.startswith(b"a NO [UNAVAILABLE] "), out  # not a session whose credential nobody can watch
    assert h.session.state == "nonauth" and calls["n"] == 1  # no baseline read after the verification
    assert (await h.send(f'b LOGIN {ADDRESS} "{PASSWORD}"')).startswith(b"b OK")  # the next try reads it again
    await h.close()
