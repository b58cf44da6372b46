"""JMAP push connections end with their credential (README, "Sessions end with their credential"), end to end.

A real server (JMAP listener, on SQLite and on PostgreSQL) with WebSockets (RFC 8887) and EventSource streams
(RFC 8620 §7.3) opened with the account password or an app password. The credential is then revoked, replaced
or its account deleted, mostly *from another process* (the ``janusmail`` CLI): the server hears of it only
through the store (the SQLite credential watcher's poll, PostgreSQL LISTEN/NOTIFY). Connections using the dead
credential end (a WebSocket with close code 1008 and the reason, a stream by finishing its response) without
the client sending anything; the others go on pushing. Waits are for the server's messages, with generous
deadlines; no sleeps.
"""

from __future__ import annotations

import base64
import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from janusmail.auth import app_passwords
from janusmail.auth.revocation import ACCOUNT_GONE, APP_PASSWORD_REVOKED, PASSWORD_CHANGED
from janusmail.store.credentials import is_credential_event
from tests.imap.e2e_util import no_delay, use_cheap_argon2
from tests.jmap.test_front_harness import CORE, MAIL, PASSWORDS, Jmap, client_for, start_server
from tests.mailgen import simple
from tests.serverutil import ServerThread, janusmail_cmd

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)
DEADLINE = 90.0  # seconds a wait may take before the test fails (the promise is "within seconds")
ALICE = "alice@example.test"
NEW_PASSWORD = "a brand new passphrase"
WS = "urn:ietf:params:jmap:websocket"


@pytest.fixture
def srv(tmp_path: Any, db_url: str | None) -> Iterator[ServerThread]:
    s = start_server(tmp_path, db_url)
    no_delay(s.runtime.auth)  # the old credential's 401s answer at once
    s.db = db_url  # type: ignore[attr-defined]
    yield s
    s.stop()


@pytest.fixture
def closing() -> Iterator[contextlib.ExitStack]:
    """Everything a test opens, closed at its end whatever happened."""
    with contextlib.ExitStack() as stack:
        yield stack


def cli(srv: ServerThread, *args: str, input: str | None = None) -> str:
    return janusmail_cmd(srv.config.data_dir, *args, db=srv.db, input=input).stdout  # type: ignore[attr-defined]


def as_user(srv: ServerThread, secret: str, closing: contextlib.ExitStack) -> Jmap:
    j = client_for(srv, ALICE, secret)
    closing.enter_context(j.http)
    return j


def ws_open(j: Jmap, secret: str, closing: contextlib.ExitStack) -> ClientConnection:
    url = j.http.get("/.well-known/jmap").json()["capabilities"][WS]["url"]
    token = base64.b64encode(f"{j.address}:{secret}".encode()).decode()
    return closing.enter_context(connect(
        url, subprotocols=["jmap"], additional_headers={"Authorization": f"Basic {token}"}, open_timeout=DEADLINE,
    ))


class Stream:
    """One EventSource stream read on a thread. ``ready`` is set by the server's opening comment, which it
    sends once it listens and has read the current states: a change made after that is pushed.
    ``next()`` returns the next event's name, or ``None`` once the response has ended."""

    def __init__(self, j: Jmap, secret: str, closing: contextlib.ExitStack) -> None:
        self.events: queue.Queue[str | None] = queue.Queue()
        self.ready = threading.Event()
        self._client = closing.enter_context(
            httpx.Client(base_url=j.server.config.public_url, auth=(j.address, secret), timeout=None)
        )
        threading.Thread(target=self._run, daemon=True).start()
        assert self.ready.wait(DEADLINE), "the stream never opened"

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/jmap/eventsource?types=*&closeafter=no&ping=0") as r:
                assert r.status_code == 200, r.status_code
                for line in r.iter_lines():
                    if line.startswith(":"):
                        self.ready.set()
                    elif line.startswith("event:"):
                        self.events.put(line.partition(":")[2].strip())
        except httpx.HTTPError:
            pass
        finally:
            self.ready.set()
            self.events.put(None)

    def next(self) -> str | None:
        return self.events.get(timeout=DEADLINE)


def recv(conn: ClientConnection) -> dict[str, Any]:
    return orjson.loads(conn.recv(timeout=DEADLINE))


def request(conn: ClientConnection, request_id: str, calls: list[list[Any]]) -> None:
    conn.send(orjson.dumps({"@type": "Request", "id": request_id, "using": [CORE, MAIL], "methodCalls": calls}))


def roundtrip(conn: ClientConnection, j: Jmap, request_id: str) -> None:
    """One API call answered: the connection serves requests (and anything queued before is now done)."""
    request(conn, request_id, [["Mailbox/get", {"accountId": j.account_id, "ids": []}, "0"]])
    resp = recv(conn)
    assert resp["@type"] == "Response" and resp["requestId"] == request_id, resp


def push_on(conn: ClientConnection, j: Jmap) -> None:
    conn.send(orjson.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox"]}))
    roundtrip(conn, j, "push-on")  # the push subscription is taken before the next message is read


def expect_closed(conn: ClientConnection, reason: str) -> list[dict[str, Any]]:
    """Wait for the server's close frame (1008, ``reason``); returns the messages that came before it."""
    before: list[dict[str, Any]] = []
    with pytest.raises(ConnectionClosed) as info:
        while True:
            before.append(recv(conn))
    assert info.value.rcvd is not None, "the connection dropped without a close frame"
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (1008, reason)
    return before


def expect_push(conn: ClientConnection, j: Jmap) -> None:
    change = recv(conn)
    assert change["@type"] == "StateChange" and "Mailbox" in change["changed"][j.account_id], change


def expect_stream_event(stream: Stream) -> None:
    assert stream.next() == "state"


def make_mailbox(j: Jmap, name: str) -> None:
    created = j.call("Mailbox/set", {"create": {"m": {"name": name}}})
    assert "m" in created.get("created", {}), created


def mailbox_names(j: Jmap) -> set[str]:
    return set(j.mailboxes())


def status_with(srv: ServerThread, secret: str) -> int:
    return httpx.get(srv.config.public_url + "/jmap/session", auth=(ALICE, secret), timeout=30).status_code


def account_id(srv: ServerThread) -> str:
    return srv.store.accounts.by_address(ALICE).id


def test_revoked_app_password_closes_its_websockets_and_no_others(srv: ServerThread, closing: contextlib.ExitStack) -> None:
    _, laptop = app_passwords.create(srv.store, account_id(srv), "laptop", "jmap")
    _, phone = app_passwords.create(srv.store, account_id(srv), "phone", "jmap")
    j_laptop, j_phone = as_user(srv, laptop, closing), as_user(srv, phone, closing)
    j_password = as_user(srv, PASSWORDS[ALICE], closing)
    idle = ws_open(j_laptop, laptop, closing)
    roundtrip(idle, j_laptop, "r0")  # no push: nothing but the credential event can wake it
    pushing = ws_open(j_laptop, laptop, closing)
    push_on(pushing, j_laptop)
    other = ws_open(j_phone, phone, closing)
    push_on(other, j_phone)

    assert "revoked laptop" in cli(srv, "app-password", "revoke", ALICE, "laptop")  # another process

    assert expect_closed(idle, APP_PASSWORD_REVOKED) == []  # closed without being asked anything
    assert expect_closed(pushing, APP_PASSWORD_REVOKED) == []
    with pytest.raises(ConnectionClosed):  # and no further request reaches the server
        request(idle, "late", [["Mailbox/set", {"accountId": j_laptop.account_id,
                                                "create": {"m": {"name": "Late"}}}, "0"]])
    assert status_with(srv, laptop) == 401
    # The other app password's connection lived through the revocation: it still pushes and serves.
    make_mailbox(j_password, "After revocation")
    expect_push(other, j_phone)
    roundtrip(other, j_phone, "still-here")  # checked before running: a wrongly dead credential fails here
    assert "Late" not in mailbox_names(j_password)


def test_request_after_an_unheard_revocation_is_refused(
    srv: ServerThread, closing: contextlib.ExitStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check before each request stands alone: with the credential events lost, a revoked app password's
    next request is answered with a RequestError (401, its requestId, the reason) instead of being run, and
    the connection is closed with 1008."""
    notifier = srv.store.notifier
    publish = notifier.publish
    monkeypatch.setattr(notifier, "publish", lambda ev: None if is_credential_event(ev) else publish(ev))
    _, laptop = app_passwords.create(srv.store, account_id(srv), "laptop", "jmap")
    j_laptop, j_password = as_user(srv, laptop, closing), as_user(srv, PASSWORDS[ALICE], closing)
    conn = ws_open(j_laptop, laptop, closing)
    roundtrip(conn, j_laptop, "r0")

    assert app_passwords.revoke(srv.store, account_id(srv), "laptop")

    request(conn, "r1", [["Mailbox/set", {"accountId": j_laptop.account_id, "create": {"m": {"name": "Nope"}}}, "0"]])
    request(conn, "r2", [["Mailbox/set", {"accountId": j_laptop.account_id, "create": {"m": {"name": "Nor"}}}, "0"]])
    before = expect_closed(conn, APP_PASSWORD_REVOKED)
    assert before == [{"@type": "RequestError", "type": "about:blank", "status": 401,
                       "detail": APP_PASSWORD_REVOKED, "requestId": "r1"}]
    assert not {"Nope", "Nor"} & mailbox_names(j_password)


def test_password_change_ends_password_streams_and_sockets_only(srv: ServerThread, closing: contextlib.ExitStack) -> None:
    _, app = app_passwords.create(srv.store, account_id(srv), "laptop", "jmap")
    j_password, j_app = as_user(srv, PASSWORDS[ALICE], closing), as_user(srv, app, closing)
    stream = Stream(j_password, PASSWORDS[ALICE], closing)
    app_stream = Stream(j_app, app, closing)
    sock = ws_open(j_password, PASSWORDS[ALICE], closing)
    roundtrip(sock, j_password, "r0")
    make_mailbox(j_app, "Before")  # both streams push, before the password changes
    expect_stream_event(stream)
    expect_stream_event(app_stream)

    out = cli(srv, "user", "passwd", ALICE, "--password", "-", input=NEW_PASSWORD + "\n")  # another process
    assert "password changed" in out

    assert stream.next() is None  # the response finished, with no event for a change nobody made
    assert expect_closed(sock, PASSWORD_CHANGED) == []
    assert status_with(srv, PASSWORDS[ALICE]) == 401
    # The app password is its own credential: its stream goes on.
    srv.run(srv.store.deliver(account_id(srv), simple(1), (j_app.role("inbox"),)))
    expect_stream_event(app_stream)
    # A stream opened with the new password is served as usual.
    fresh = Stream(as_user(srv, NEW_PASSWORD, closing), NEW_PASSWORD, closing)
    make_mailbox(j_app, "After")
    expect_stream_event(fresh)


def test_deleted_account_ends_its_connections(srv: ServerThread, closing: contextlib.ExitStack) -> None:
    j = as_user(srv, PASSWORDS[ALICE], closing)
    stream = Stream(j, PASSWORDS[ALICE], closing)
    sock = ws_open(j, PASSWORDS[ALICE], closing)
    push_on(sock, j)
    make_mailbox(j, "Before")
    expect_stream_event(stream)
    expect_push(sock, j)

    cli(srv, "user", "delete", ALICE, "--yes")

    assert expect_closed(sock, ACCOUNT_GONE) == []
    assert stream.next() is None
