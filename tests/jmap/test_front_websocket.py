"""JMAP over WebSocket (RFC 8887) against the real server."""

from __future__ import annotations

import base64

import orjson
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.jmap.test_front_harness import (  # noqa: F401 - fixtures
    CORE,
    MAIL,
    PASSWORDS,
    alice,
    bob,
    server,
)
from tests.mailgen import simple

WS = "urn:ietf:params:jmap:websocket"


def _auth(address: str) -> dict:
    token = base64.b64encode(f"{address}:{PASSWORDS[address]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _open(j, **kw):  # noqa: ANN001, ANN003, ANN202
    url = j.http.get("/.well-known/jmap").json()["capabilities"][WS]["url"]
    return connect(url, subprotocols=["jmap"], additional_headers=_auth(j.address), open_timeout=30, **kw)


def _recv(conn, timeout: float = 30.0) -> dict:  # noqa: ANN001
    return orjson.loads(conn.recv(timeout=timeout))


def test_capability_advertised(alice):  # noqa: F811
    caps = alice.http.get("/.well-known/jmap").json()["capabilities"]
    port = alice.server.jmap_port
    assert caps[WS] == {"url": f"ws://127.0.0.1:{port}/jmap/ws", "supportsPush": True}


def test_request_response(alice):  # noqa: F811
    with _open(alice) as conn:
        assert conn.subprotocol == "jmap"
        conn.send(orjson.dumps({"@type": "Request", "id": "r1", "using": [CORE, MAIL],
                                "methodCalls": [["Core/echo", {"a": 1}, "0"],
                                                ["Mailbox/get", {"accountId": alice.account_id, "ids": []}, "1"]]
                                }).decode())  # a text frame, as RFC 8887 clients send
        resp = _recv(conn)
        assert resp["@type"] == "Response" and resp["requestId"] == "r1"
        assert resp["methodResponses"][0] == ["Core/echo", {"a": 1}, "0"]
        assert resp["methodResponses"][1][0] == "Mailbox/get"
        assert resp["sessionState"] == alice.http.get("/.well-known/jmap").json()["state"]
        # Request-level problems come back as RequestError, and the connection stays usable.
        conn.send(b"{nope")  # binary frames are read the same way
        err = _recv(conn)
        assert err["@type"] == "RequestError" and err["type"].endswith("notJSON")
        conn.send(orjson.dumps({"@type": "Request", "id": "r2", "using": ["urn:x"], "methodCalls": []}))
        err = _recv(conn)
        assert err["type"].endswith("unknownCapability") and err["requestId"] == "r2"
        conn.send(orjson.dumps({"@type": "Nonsense"}))
        assert _recv(conn)["type"].endswith("notRequest")
        conn.send(orjson.dumps({"@type": "Request", "using": [CORE], "methodCalls": [["Core/echo", {}, "x"]]}))
        resp = _recv(conn)
        assert "requestId" not in resp and resp["methodResponses"] == [["Core/echo", {}, "x"]]


def test_push_enable_disable(alice):  # noqa: F811
    with _open(alice) as conn:
        conn.send(orjson.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox", "EmailDelivery"]}))
        conn.send(orjson.dumps({"@type": "Request", "id": "c", "using": [CORE, MAIL], "methodCalls": [
            ["Mailbox/set", {"accountId": alice.account_id, "create": {"n": {"name": "New"}}}, "0"]]}))
        got = [_recv(conn), _recv(conn)]
        kinds = {m["@type"] for m in got}
        assert kinds == {"Response", "StateChange"}
        change = next(m for m in got if m["@type"] == "StateChange")
        assert set(change["changed"][alice.account_id]) == {"Mailbox"}
        push_state = change["pushState"]
        alice.deliver(simple(1))
        change = _recv(conn)
        assert set(change["changed"][alice.account_id]) == {"Mailbox", "EmailDelivery"}
        conn.send(orjson.dumps({"@type": "WebSocketPushDisable"}))
        conn.send(orjson.dumps({"@type": "Request", "id": "sync", "using": [CORE], "methodCalls": []}))
        assert _recv(conn)["@type"] == "Response"
        alice.deliver(simple(2))  # push is off: no StateChange for this one
        # Turn push back on (from now, no pushState) and change a mailbox: the next message must be that
        # change alone. Had the disabled push still sent the delivery, it would be queued ahead of it.
        conn.send(orjson.dumps({"@type": "WebSocketPushEnable", "dataTypes": ["Mailbox", "EmailDelivery"]}))
        conn.send(orjson.dumps({"@type": "Request", "id": "c2", "using": [CORE, MAIL], "methodCalls": [
            ["Mailbox/set", {"accountId": alice.account_id, "create": {"n": {"name": "Newer"}}}, "0"]]}))
        got = [_recv(conn), _recv(conn)]
        assert {m["@type"] for m in got} == {"Response", "StateChange"}, got
        change = next(m for m in got if m["@type"] == "StateChange")
        assert set(change["changed"][alice.account_id]) == {"Mailbox"}, got
    # Reconnect with the old pushState: a catch-up StateChange arrives at once.
    with _open(alice) as conn:
        conn.send(orjson.dumps({"@type": "WebSocketPushEnable", "dataTypes": None, "pushState": push_state}))
        change = _recv(conn)
        assert change["@type"] == "StateChange"
        assert {"Email", "EmailDelivery", "Thread", "Mailbox"} == set(change["changed"][alice.account_id])


def test_refusals(alice, bob):  # noqa: F811
    url = alice.http.get("/.well-known/jmap").json()["capabilities"][WS]["url"]
    with pytest.raises(InvalidStatus) as info:
        connect(url, subprotocols=["jmap"], open_timeout=30)
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as info:
        connect(url, subprotocols=["chat"], additional_headers=_auth(alice.address), open_timeout=30)
    assert info.value.response.status_code == 400
    # Account isolation holds on the socket too.
    with _open(alice) as conn:
        conn.send(orjson.dumps({"@type": "Request", "id": "x", "using": [CORE, MAIL], "methodCalls": [
            ["Mailbox/get", {"accountId": bob.account_id}, "0"]]}))
        assert _recv(conn)["methodResponses"][0][1]["type"] == "accountNotFound"
