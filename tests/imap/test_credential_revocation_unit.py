"""Sessions end with their credential: the session-level rules, without sockets (sans-IO harness, real store).

What the end-to-end tests cannot pin down deterministically: a change that commits *while* the login is being
verified is not missed (the session's baseline is read before verification); a token's expiry under an
injected clock, at the next command and in IDLE; ``LOGOUT`` still answered normally; the JMAPACCESS predicate
saying no as soon as the credential died; and no JMAPACCESS at all when no JMAP server is known.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest

from janusmail.auth import passwords
from janusmail.runtime import Runtime
from tests.imap.e2e_util import ADDRESS, PASSWORD, Harness, use_cheap_argon2
from tests.imap.msg_support import runtime_fixture

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)
CHANGED = b"* BYE [EXPIRED] Your password was changed; log in again with the new one\r\n"
EXPIRED = b"* BYE [EXPIRED] Your access token expired; log in again with a new one\r\n"


rt = pytest.fixture(runtime_fixture)  # a runtime with one account (ADDRESS), both backends


async def logged_in(rt: Runtime, password: str = PASSWORD) -> Harness:
    h = Harness(rt, peer="127.0.0.1")
    out = await h.send(f'a LOGIN {ADDRESS} "{password}"')
    assert out.startswith(b"a OK [CAPABILITY ") and b"JMAPACCESS" in out
    return h


def change_password(rt: Runtime, new: str = "something else") -> None:
    rt.store.credentials.set_password(rt.account.id, *passwords.make_credentials(new))  # type: ignore[attr-defined]


async def test_change_committed_during_verification_is_not_missed(rt: Runtime) -> None:
    auth: Any = rt.auth
    verify = auth.verify_password

    def verify_then_change(*args: Any, **kwargs: Any) -> Any:
        found = verify(*args, **kwargs)  # the old password checked out...
        change_password(rt)  # ...and the new one committed before the session started
        return found

    auth.verify_password = verify_then_change
    h = Harness(rt, peer="127.0.0.1")
    assert (await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')).startswith(b"a OK")
    assert await h.send("b NOOP") == CHANGED
    assert h.session.closed
    await h.close()


async def test_logout_is_still_answered_and_other_commands_are_not(rt: Runtime) -> None:
    h = await logged_in(rt)
    change_password(rt)
    out = await h.send("b LOGOUT")
    assert out.startswith(b"* BYE ") and out.endswith(b"b OK LOGOUT completed\r\n") and b"EXPIRED" not in out
    await h.close()
    h = await logged_in(rt, "something else")
    change_password(rt, "yet another one")
    assert await h.send("c SELECT INBOX\r\nd FETCH 1:* FLAGS") == CHANGED  # nothing after the BYE runs
    await h.close()


async def test_jmapaccess_predicate_says_no_once_the_credential_died(rt: Runtime) -> None:
    h = await logged_in(rt)
    assert await h.session.jmap_access()
    change_password(rt)
    assert await h.session.credential_problem() is not None
    assert not await h.session.jmap_access()
    await h.close()


async def test_no_jmap_server_known_means_no_jmapaccess(rt: Runtime) -> None:
    rt.config.public_url = None
    rt.config.jmap.listen = None
    h = Harness(rt, peer="127.0.0.1")
    out = await h.send(f'a LOGIN {ADDRESS} "{PASSWORD}"')
    assert out.startswith(b"a OK [CAPABILITY ") and b"JMAPACCESS" not in out and b"OBJECTID" in out
    assert b"JMAPACCESS" not in await h.send("b CAPABILITY")
    assert (await h.send("c GETJMAPACCESS")).startswith(b"c BAD")
    await h.close()


async def bearer_session(rt: Runtime, ttl: int = 600) -> tuple[Harness, float]:
    token = rt.auth.tokens.issue(rt.account.id, ["imap", "jmap"], ttl)  # type: ignore[union-attr,attr-defined]
    ir = base64.b64encode(f"n,a={ADDRESS},\x01auth=Bearer {token}\x01\x01".encode()).decode()
    h = Harness(rt, peer="127.0.0.1")
    assert (await h.send(f"a AUTHENTICATE OAUTHBEARER {ir}")).startswith(b"a OK")
    assert h.session.auth_result is not None and h.session.auth_result.expires_at is not None
    return h, float(h.session.auth_result.expires_at)


async def test_token_expiry_by_the_clock_at_the_next_command(rt: Runtime) -> None:
    h, exp = await bearer_session(rt)
    h.session.clock = lambda: exp - 1
    assert (await h.send("b NOOP")).startswith(b"b OK")
    h.session.clock = lambda: exp
    assert await h.send("c NOOP") == EXPIRED
    await h.close()


async def test_token_expiry_ends_idle_by_its_timer(rt: Runtime) -> None:
    h, exp = await bearer_session(rt)
    assert (await h.send("b SELECT INBOX")).endswith(b"b OK [READ-WRITE] SELECT completed\r\n")
    start = time.time()
    h.session.clock = lambda: exp - 1 + (time.time() - start)  # the token expires one second into IDLE
    assert await h.send("c IDLE") == b"+ idling\r\n"
    task = h.session._idle_task
    assert task is not None
    await asyncio.wait_for(task, 60)  # the expiry timer, not the 30-minute poll, woke it
    assert h.session.take_output() == EXPIRED and h.session.closed
    await h.close()
