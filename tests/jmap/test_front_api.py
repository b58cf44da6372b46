"""POST /jmap/api over real HTTP: request-level problems, limits, sessionState, account isolation."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.jmap.test_front_harness import (
    CORE,
    PASSWORDS,
    Jmap,
    client_for,
    principal,
    start_server,
    start_shared,
)
from tests.mailgen import simple
from tests.serverutil import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server for the module; each test's principals are accounts of its own."""
    yield from start_shared(tmp_path_factory)


@pytest.fixture
def alice(server: ServerThread) -> Iterator[Jmap]:
    yield from principal(server, "alice")


@pytest.fixture
def bob(server: ServerThread) -> Iterator[Jmap]:
    yield from principal(server, "bob")

PROBLEM = "urn:ietf:params:jmap:error:"


def _post(j, body: bytes, ctype: str | None = "application/json") -> httpx.Response:
    headers = {"Content-Type": ctype} if ctype else {}
    return j.http.post("/jmap/api", content=body, headers=headers)


def _problem(r: httpx.Response, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"] == PROBLEM + kind and body["status"] == status
    return body


def test_echo_and_session_state(alice):  # noqa: F811
    out = alice.request([["Core/echo", {"hello": [1, 2, {"x": None}]}, "e"]])
    assert out["methodResponses"] == [["Core/echo", {"hello": [1, 2, {"x": None}]}, "e"]]
    assert out["sessionState"] == alice.http.get("/.well-known/jmap").json()["state"]
    assert "createdIds" not in out


def test_request_level_problems(alice):  # noqa: F811
    _problem(_post(alice, b"{not json"), 400, "notJSON")
    _problem(_post(alice, b'{"using": [], "using": [], "methodCalls": []}'), 400, "notJSON")
    _problem(_post(alice, b'{"using": [], "methodCalls": []}', "text/plain"), 400, "notJSON")
    _problem(_post(alice, b'{"using": "x", "methodCalls": []}'), 400, "notRequest")
    _problem(_post(alice, b'[1, 2]'), 400, "notRequest")
    _problem(_post(alice, b'{"using": ["urn:example:nope"], "methodCalls": []}'), 400, "unknownCapability")
    calls = [["Core/echo", {}, str(i)] for i in range(17)]
    body = _problem(alice.http.post("/jmap/api", json={"using": [CORE], "methodCalls": calls}), 400, "limit")
    assert body["limit"] == "maxCallsInRequest"
    # No Content-Type at all is accepted (and "application/json; charset=utf-8" too).
    assert _post(alice, b'{"using": [], "methodCalls": []}', None).status_code == 200
    assert _post(alice, b'{"using": [], "methodCalls": []}', "application/json; charset=utf-8").status_code == 200


def test_method_errors_stay_200(alice):  # noqa: F811
    out = alice.request([
        ["Nope/get", {}, "a"],
        ["Mailbox/get", {"accountId": alice.account_id, "bogus": 1}, "b"],
        ["Core/echo", {"ok": True}, "c"],
    ])
    r = out["methodResponses"]
    assert r[0] == ["error", {"type": "unknownMethod"}, "a"]
    assert r[1][0] == "error" and r[1][1]["type"] == "invalidArguments"
    assert r[2] == ["Core/echo", {"ok": True}, "c"]
    # A mail method without the mail capability in "using" does not exist for the request.
    out = alice.request([["Mailbox/get", {"accountId": alice.account_id}, "x"]], using=[CORE])
    assert out["methodResponses"][0][1]["type"] == "unknownMethod"


def test_max_size_request(tmp_path):
    srv = start_server(tmp_path, jmap__max_size_request=2000)
    try:
        j = client_for(srv, "alice@example.test")
        assert j.http.get("/.well-known/jmap").json()["capabilities"][CORE]["maxSizeRequest"] == 2000
        big = {"using": [CORE], "methodCalls": [["Core/echo", {"pad": "x" * 3000}, "0"]]}
        body = _problem(j.http.post("/jmap/api", json=big), 400, "limit")
        assert body["limit"] == "maxSizeRequest"
        # Chunked (no Content-Length) is cut off while streaming, too.
        def gen():  # noqa: ANN202
            yield b'{"using": [], "methodCalls": [["Core/echo", {"pad": "'
            for _ in range(10):
                yield b"y" * 500
            yield b'"}, "0"]]}'

        body = _problem(j.http.post("/jmap/api", content=gen(), headers={"Content-Type": "application/json"}),
                        400, "limit")
        assert body["limit"] == "maxSizeRequest"
    finally:
        srv.stop()


def test_max_concurrent_requests(tmp_path):
    srv = start_server(tmp_path, jmap__max_concurrent_requests=1, jmap__queue_wait_ms=0)  # refuse, never queue
    try:
        j = client_for(srv, "alice@example.test")
        auth = httpx.BasicAuth("alice@example.test", PASSWORDS["alice@example.test"])
        header = auth._auth_header  # "Basic ..."
        body = b'{"using": [], "methodCalls": []}'
        # Hold one request open: headers and half the body, then ask again on another connection.
        held = socket.create_connection(("127.0.0.1", srv.jmap_port))
        held.sendall(
            b"POST /jmap/api HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + b"Authorization: " + header.encode() + b"\r\n"
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10]
        )
        deadline = time.monotonic() + 30  # until the server has the held request in hand: an event, not a nap
        status = None
        while time.monotonic() < deadline:
            r = j.http.post("/jmap/api", content=body, headers={"Content-Type": "application/json"})
            status = r.status_code
            if status == 429:
                break
            time.sleep(0.05)
        assert status == 429
        assert r.json()["limit"] == "maxConcurrentRequests"
        # Finishing the held request frees the slot.
        held.sendall(body[10:])
        reply = held.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200")
        held.close()
        assert j.http.post("/jmap/api", content=body, headers={"Content-Type": "application/json"}).status_code == 200
    finally:
        srv.stop()


def test_account_isolation(alice, bob):  # noqa: F811
    bob_inbox = bob.role("inbox")
    delivered = bob.deliver(simple(1))
    # Bob's account id is invisible to alice: every method says accountNotFound.
    for method, args in [
        ("Mailbox/get", {"ids": None}),
        ("Mailbox/changes", {"sinceState": "0"}),
        ("Mailbox/query", {}),
        ("Mailbox/set", {"create": {"x": {"name": "evil"}}}),
        ("Thread/get", {"ids": [delivered.thread_id]}),
        ("Thread/changes", {"sinceState": "0"}),
    ]:
        out = alice.call(method, {**args, "accountId": bob.account_id})
        assert out.get("error") == "accountNotFound", (method, out)
    # Bob's ids inside alice's account are simply not there.
    got = alice.call("Mailbox/get", {"ids": [bob_inbox]})
    assert got["list"] == [] and got["notFound"] == [bob_inbox]
    got = alice.call("Thread/get", {"ids": [delivered.thread_id]})
    assert got["notFound"] == [delivered.thread_id]
    out = alice.call("Mailbox/set", {"update": {bob_inbox: {"name": "pwned"}}})
    assert out["notUpdated"][bob_inbox]["type"] == "notFound"
    out = alice.call("Mailbox/set", {"destroy": [bob_inbox]})
    assert out["notDestroyed"][bob_inbox]["type"] == "notFound"
    assert bob.mailboxes()["INBOX"]["id"] == bob_inbox
    # Unknown and malformed account ids get the same answer.
    for acc in ["Anonexistent", "A" * 300]:
        out = alice.call("Mailbox/get", {"accountId": acc})
        assert out.get("error") in ("accountNotFound", "invalidArguments")


def test_created_ids_round_trip(alice):  # noqa: F811
    out = alice.request(
        [["Mailbox/set", {"accountId": alice.account_id, "create": {"k1": {"name": "Projects"}}}, "0"],
         ["Mailbox/set", {"accountId": alice.account_id, "create": {"k2": {"name": "Sub", "parentId": "#k1"}}}, "1"]],
        createdIds={"old": "Fsomething"},
    )
    created = out["createdIds"]
    assert created["old"] == "Fsomething" and set(created) == {"old", "k1", "k2"}
    boxes = alice.mailboxes()
    assert boxes["Sub"]["parentId"] == boxes["Projects"]["id"] == created["k1"]
