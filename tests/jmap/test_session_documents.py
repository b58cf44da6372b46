"""The Session document is built and hashed once per principal (issue 9 item 3): every API response's
``sessionState`` comes from the JMAP app's cache, which changes exactly when what the document holds changes."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from janusmail.auth import passwords
from janusmail.jmap.engine import CORE
from janusmail.jmap.http import JmapApp
from janusmail.jmap.session_resource import (
    MAIL,
    MAX_DELAYED_SEND,
    SUBMISSION,
    SessionDocuments,
    Urls,
    build_session,
)
from janusmail.jmap.settings import JmapSettings
from janusmail.runtime import Runtime
from tests.imap.e2e_util import ADDRESS, PASSWORD, make_runtime, use_cheap_argon2

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

URL = "http://127.0.0.1:8080"


class Caps:
    """A capability set the test can change under the cache, as an engine's would."""

    def __init__(self) -> None:
        self.value = frozenset({CORE, MAIL})

    def __call__(self) -> frozenset[str]:
        return self.value


def documents(caps: Caps | None = None, limit: int = 10_000) -> SessionDocuments:
    return SessionDocuments(
        settings=JmapSettings(), urls=Urls(URL), capabilities=caps or Caps(), sort_options=["receivedAt"],
        limit=limit,
    )  # fmt: skip


def test_a_document_is_built_once_and_equals_a_fresh_build() -> None:
    docs = documents()
    first = docs.get("A1", "a@example.test")
    again = docs.get("A1", "a@example.test")
    assert again is first and docs.builds == 1
    fresh = build_session(
        account_id="A1", address="a@example.test", settings=JmapSettings(), urls=Urls(URL),
        capabilities=frozenset({CORE, MAIL}), sort_options=["receivedAt"],
    )  # fmt: skip
    assert first.data == fresh and first.state == fresh["state"]


def test_principals_have_their_own_documents() -> None:
    docs = documents()
    a = docs.get("A1", "a@example.test")
    b = docs.get("B2", "b@example.test")
    assert a.state != b.state and b.data["username"] == "b@example.test" and docs.builds == 2


def test_a_capability_change_gives_a_new_state() -> None:
    caps = Caps()
    docs = documents(caps)
    before = docs.get("A1", "a@example.test")
    caps.value = frozenset({CORE})  # the engine no longer serves mail: the account loses the capability
    after = docs.get("A1", "a@example.test")
    assert after.state != before.state and docs.builds == 2
    assert MAIL not in after.data["accounts"]["A1"]["accountCapabilities"]
    docs.add_session_capability("urn:x:session", {"on": True})
    extra = docs.get("A1", "a@example.test")
    assert extra.state != after.state and extra.data["capabilities"]["urn:x:session"] == {"on": True}


def test_a_new_day_moves_the_latest_hold_and_the_state() -> None:
    """FUTURERELEASE's second argument (the latest date-time a hold may reach, RFC 4865 §3) is dated: the
    cached document is rebuilt when the UTC day changes, and only then."""
    day = [dt.date(2026, 1, 1)]
    docs = SessionDocuments(
        settings=JmapSettings(), urls=Urls(URL), capabilities=lambda: frozenset({CORE, MAIL, SUBMISSION}),
        sort_options=["receivedAt"], clock=lambda: day[0],
    )  # fmt: skip

    def hold(doc: Any) -> list[str]:
        return doc.data["accounts"]["A1"]["accountCapabilities"][SUBMISSION]["submissionExtensions"]["FUTURERELEASE"]

    first = docs.get("A1", "a@example.test")
    assert hold(first) == [str(MAX_DELAYED_SEND), "2026-01-08T00:00:00Z"]
    assert docs.get("A1", "a@example.test") is first
    day[0] = dt.date(2026, 1, 2)
    second = docs.get("A1", "a@example.test")
    assert hold(second) == [str(MAX_DELAYED_SEND), "2026-01-09T00:00:00Z"] and second.state != first.state


def test_the_cache_is_bounded() -> None:
    docs = documents(limit=2)
    a = docs.get("A1", "a@example.test")
    docs.get("B2", "b@example.test")
    docs.get("A1", "a@example.test")  # A1 used last: B2 goes first
    docs.get("C3", "c@example.test")
    assert docs.get("A1", "a@example.test") is a and docs.builds == 3
    docs.get("B2", "b@example.test")
    assert docs.builds == 4


@pytest.fixture
async def rt(tmp_path: Path, db_url: str | None) -> AsyncIterator[Runtime]:
    runtime = make_runtime(tmp_path, db_url)
    runtime.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
    yield runtime
    runtime.auth.close()
    runtime.store.close()


async def test_api_calls_reuse_the_session_document(rt: Runtime) -> None:
    app = JmapApp(rt)
    token = base64.b64encode(f"{ADDRESS}:{PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    transport = httpx.ASGITransport(app=app.asgi)
    async with httpx.AsyncClient(transport=transport, base_url=rt.config.public_url or URL) as client:
        session = (await client.get("/.well-known/jmap", headers=headers)).json()
        builds = app.sessions.builds
        body: dict[str, Any] = {"using": [CORE, MAIL], "methodCalls": [["Core/echo", {"x": 1}, "c1"]]}
        states = []
        for _ in range(3):
            r = await client.post("/jmap/api", json=body, headers=headers)
            assert r.status_code == 200, r.text
            states.append(r.json()["sessionState"])
    assert states == [session["state"]] * 3
    assert builds == 1 and app.sessions.builds == 1
