"""PushSubscription (RFC 8620 §7.2) end to end, on SQLite and PostgreSQL: a local HTTP receiver gets the
PushVerification, the client proves it, then changes arrive as StateChange POSTs (plain, and RFC 8291
encrypted, decrypted here with the keys the test made); subscriptions are per account, survive in the store,
and a 410 from the push service removes one.

One server per backend for the module; each test's principals are accounts of its own."""

from __future__ import annotations

import base64
import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from janusmail.jmap import webpush
from janusmail.jmap.webpush import BadPushUrl, check_url
from tests.jmap.test_front_harness import CORE, Jmap, client_for, fresh_client, start_server, start_shared
from tests.mailgen import simple
from tests.procmem import wait_for
from tests.serverutil import ServerThread, make_config

WAIT = 30.0  # generous: a busy machine is slow, not broken


class Receiver:
    """A push service stand-in on loopback: every POST lands in ``posts``; ``status`` is what it answers."""

    def __init__(self) -> None:
        self.posts: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self.status = 201
        self.answers: list[int] = []  # statuses for the next POSTs, in order, before ``status`` again
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = outer.answers.pop(0) if outer.answers else outer.status
                outer.posts.put(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/push"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def next(self) -> tuple[dict[str, str], bytes]:
        try:
            return self.posts.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no push within {WAIT}s") from None

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from start_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def alice(server: ServerThread) -> Iterator[Jmap]:
    j = fresh_client(server, "alice")
    yield j
    j.http.close()


@pytest.fixture
def bob(server: ServerThread) -> Iterator[Jmap]:
    j = fresh_client(server, "bob")
    yield j
    j.http.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def call(j: Jmap, method: str, args: dict[str, Any]) -> dict[str, Any]:
    responses = j.request([[method, args, "c1"]], using=[CORE])["methodResponses"]
    name, out, _ = responses[0]
    return {"error": out["type"], **out} if name == "error" else out


def subscribe(j: Jmap, receiver: Receiver, **extra: Any) -> tuple[str, str]:
    out = call(j, "PushSubscription/set", {"create": {"k1": {"deviceClientId": "phone-1", "url": receiver.url,
                                                              **extra}}})
    assert "k1" in (out["created"] or {}), out
    sub_id = out["created"]["k1"]["id"]
    headers, body = receiver.next()
    return sub_id, body


def test_verification_then_state_changes(alice: Jmap, receiver: Receiver) -> None:
    sub_id, body = subscribe(alice, receiver, types=["Email", "Mailbox"])
    verification = json.loads(body)
    assert verification == {"@type": "PushVerification", "pushSubscriptionId": sub_id,
                            "verificationCode": verification["verificationCode"]}
    got = call(alice, "PushSubscription/get", {"ids": None})["list"]
    assert [s["id"] for s in got] == [sub_id] and got[0]["verificationCode"] is None  # never echoed
    assert got[0]["types"] == ["Email", "Mailbox"]
    # RFC 8620 §7.2.1: url and keys are write-only (left out, and refused when asked for)
    assert "url" not in got[0] and "keys" not in got[0], got
    out = call(alice, "PushSubscription/get", {"ids": None, "properties": ["id", "url"]})
    assert out["error"] == "forbidden", out
    # unverified: a change is not pushed; a wrong code is refused
    out = call(alice, "PushSubscription/set", {"update": {sub_id: {"verificationCode": "nope"}}})
    assert out["notUpdated"][sub_id]["type"] == "invalidProperties", out
    out = call(alice, "PushSubscription/set",
               {"update": {sub_id: {"verificationCode": verification["verificationCode"]}}})
    assert out["updated"] == {sub_id: None}, out
    alice.deliver(simple(1))
    headers, body = receiver.next()
    change = json.loads(body)
    assert change["@type"] == "StateChange"
    states = change["changed"][alice.account_id]
    assert set(states) == {"Email", "Mailbox"}  # Thread moved too, but was not asked for
    email_state = alice.call("Email/get", {"ids": []})
    assert states["Email"] == email_state["state"]
    assert headers["ttl"] and headers.get("content-encoding") is None
    # destroy: no more pushes (the next POST the receiver sees is a new subscription's verification)
    out = call(alice, "PushSubscription/set", {"destroy": [sub_id]})
    assert out["destroyed"] == [sub_id]
    assert call(alice, "PushSubscription/get", {"ids": [sub_id]})["notFound"] == [sub_id]


def test_encrypted_push_is_readable_with_the_clients_keys(alice: Jmap, receiver: Receiver) -> None:
    ua_key = ec.generate_private_key(ec.SECP256R1())
    ua_public = ua_key.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)
    auth = b"0123456789abcdef"

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    keys = {"p256dh": b64(ua_public), "auth": b64(auth)}
    sub_id, body = subscribe(alice, receiver, keys=keys)

    def decrypt(raw: bytes) -> dict[str, Any]:
        return json.loads(http_ece.decrypt(raw, private_key=ua_key, auth_secret=auth, version="aes128gcm"))

    code = decrypt(body)["verificationCode"]
    call(alice, "PushSubscription/set", {"update": {sub_id: {"verificationCode": code}}})
    alice.deliver(simple(2))
    headers, body = receiver.next()
    assert headers["content-encoding"] == "aes128gcm"
    assert decrypt(body)["@type"] == "StateChange"


def test_subscriptions_belong_to_their_account(alice: Jmap, bob: Jmap, receiver: Receiver) -> None:
    sub_id, _ = subscribe(alice, receiver)
    assert call(bob, "PushSubscription/get", {"ids": [sub_id]}) == {"list": [], "notFound": [sub_id]}
    out = call(bob, "PushSubscription/set", {"update": {sub_id: {"types": None}}, "destroy": [sub_id]})
    assert out["notUpdated"][sub_id]["type"] == "notFound" and out["notDestroyed"][sub_id]["type"] == "notFound"
    assert [s["id"] for s in call(alice, "PushSubscription/get", {})["list"]] == [sub_id]


def test_gone_subscription_is_forgotten(alice: Jmap, receiver: Receiver, server: Any) -> None:
    sub_id, body = subscribe(alice, receiver)
    code = json.loads(body)["verificationCode"]
    call(alice, "PushSubscription/set", {"update": {sub_id: {"verificationCode": code}}})
    receiver.status = 410
    alice.deliver(simple(3))
    receiver.next()  # the StateChange, answered 410 Gone
    # the removal happens on the server's own schedule, after it read the 410: poll the store for it
    wait_for(lambda: not server.store.push_subscriptions.list(alice.account_id), "the gone subscription removed")


@pytest.mark.parametrize(
    ("obj", "prop"),
    [
        ({"deviceClientId": "d", "url": "http://example.com/push"}, "url"),  # plain http off loopback
        ({"deviceClientId": "d", "url": "ftp://127.0.0.1/x"}, "url"),
        ({"deviceClientId": "", "url": "https://push.example/x"}, "deviceClientId"),
        ({"deviceClientId": "d", "url": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}, "keys"),
        ({"deviceClientId": "d", "url": "https://push.example/x", "verificationCode": "x"}, "verificationCode"),
        ({"deviceClientId": "d", "url": "https://push.example/x", "expires": "tomorrow"}, "expires"),
    ],
)
def test_bad_creations(alice: Jmap, obj: dict[str, Any], prop: str) -> None:
    out = call(alice, "PushSubscription/set", {"create": {"k": obj}})
    assert out["notCreated"]["k"]["type"] == "invalidProperties" and out["notCreated"]["k"]["properties"] == [prop]


def test_method_shape(alice: Jmap) -> None:
    assert call(alice, "PushSubscription/get", {"accountId": alice.account_id})["error"] == "invalidArguments"
    assert call(alice, "PushSubscription/set", {"ifInState": "1"})["error"] == "invalidArguments"
    assert call(alice, "PushSubscription/get", {"ids": None}) == {"list": [], "notFound": []}


def test_expires_is_clamped(alice: Jmap) -> None:
    out = call(alice, "PushSubscription/set", {"create": {"k": {
        "deviceClientId": "d", "url": "https://push.example/x", "expires": "2099-01-01T00:00:00Z"}}})
    expires = out["created"]["k"]["expires"]
    assert expires < "2099" and expires.endswith("Z")


def test_url_rules() -> None:
    assert check_url("https://push.example/x") == "https://push.example/x"
    assert check_url("http://127.0.0.1:9/x") and check_url("http://[::1]:9/x") and check_url("http://localhost/x")
    for bad in ["http://10.0.0.1/x", "https://", "javascript:alert(1)", None, 3]:
        with pytest.raises(BadPushUrl):
            check_url(bad)


def test_update_returns_the_expires_the_server_chose(alice: Jmap) -> None:
    """RFC 8620 §7.2.2: a shortened expires is returned in ``updated`` (it said null, so the client kept
    believing its own far date and never renewed in time)."""
    made = call(alice, "PushSubscription/set", {"create": {"k": {
        "deviceClientId": "d", "url": "https://push.example/x"}}})["created"]["k"]
    out = call(alice, "PushSubscription/set", {"update": {made["id"]: {"expires": "2099-01-01T00:00:00Z"}}})
    chosen = out["updated"][made["id"]]["expires"]
    assert chosen < "2099" and chosen.endswith("Z"), out
    got = call(alice, "PushSubscription/get", {"ids": [made["id"]], "properties": ["expires"]})["list"][0]
    assert got["expires"] == chosen


def test_subscription_dies_with_its_credential(alice: Jmap, receiver: Receiver, server: Any) -> None:
    """RFC 8620 §7.2: made with the account password, the subscription is destroyed once the password changes,
    and the change that finds it dead is not POSTed."""
    from janusmail.auth import make_credentials

    sub_id, body = subscribe(alice, receiver)
    code = json.loads(body)["verificationCode"]
    call(alice, "PushSubscription/set", {"update": {sub_id: {"verificationCode": code}}})
    alice.deliver(simple(4))
    while True:  # alive; (a change made before the subscription, e.g. the account's set-up, may come first)
        change = json.loads(receiver.next()[1])
        assert change["@type"] == "StateChange", change
        if "Email" in change["changed"][alice.account_id]:
            break
    inbox = alice.role("inbox")
    server.store.credentials.set_password(alice.account_id, *make_credentials("a-new-password-9"))
    alice.deliver(simple(5), inbox)  # through the store: the old password no longer opens JMAP
    wait_for(lambda: not server.store.push_subscriptions.list(alice.account_id), "the subscription destroyed")
    assert receiver.posts.empty(), [receiver.posts.get() for _ in range(receiver.posts.qsize())]


def verified(j: Jmap, receiver: Receiver, **extra: Any) -> str:
    """A verified subscription of ``j`` to ``receiver``, primed: a first delivery's StateChange has arrived, so
    any POST of a change made before (the account's creation, pushed when it falls inside the batching window
    of the verification) is out of the way of the test's own."""
    sub_id, body = subscribe(j, receiver, **extra)
    out = call(j, "PushSubscription/set",
               {"update": {sub_id: {"verificationCode": json.loads(body)["verificationCode"]}}})
    assert out["updated"] == {sub_id: None}, out
    j.deliver(simple(99))
    pushed_now(j, receiver)
    return sub_id


def email_state(j: Jmap) -> str:
    return j.call("Email/get", {"ids": []})["state"]


def pushed_now(j: Jmap, receiver: Receiver) -> bytes:
    """The next StateChange POST naming the account's current Email state (earlier ones are skipped)."""
    want = email_state(j)
    while True:
        _, body = receiver.next()
        if json.loads(body).get("changed", {}).get(j.account_id, {}).get("Email") == want:
            return body


def test_a_temporary_failure_is_retried(alice: Jmap, receiver: Receiver) -> None:
    """Issue 12 item 6 (delivery with retries): a StateChange answered 503 is POSTed again after a backoff."""
    verified(alice, receiver)
    receiver.answers = [503]
    alice.deliver(simple(6))
    _, first = receiver.next()  # answered 503
    _, again = receiver.next()  # the retry, answered 201
    assert json.loads(first)["changed"][alice.account_id]["Email"] == email_state(alice) and again == first


def test_changes_close_together_are_one_state_change(alice: Jmap, receiver: Receiver,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12 item 6 (StateChange batching): changes inside the batching window (widened here so a slow
    machine cannot split them) reach the push service as one StateChange carrying the newest states."""
    verified(alice, receiver, types=["Email"])
    monkeypatch.setattr(webpush, "BATCH_WINDOW", 2.0)
    for i in range(3):
        alice.deliver(simple(10 + i))
    _, body = receiver.next()
    assert json.loads(body)["changed"] == {alice.account_id: {"Email": email_state(alice)}}
    with pytest.raises(queue.Empty):
        receiver.posts.get(timeout=3.0)  # and nothing after it


def test_subscriptions_survive_a_restart(tmp_path, db_url, receiver: Receiver) -> None:  # noqa: ANN001
    """Issue 12 item 6: a verified subscription is kept in the store, so the restarted server pushes to it."""
    srv = start_server(tmp_path, db_url)
    try:
        alice = client_for(srv, "alice@example.test")
        sub_id = verified(alice, receiver)
        alice.http.close()
    finally:
        srv.stop()
    srv = ServerThread(make_config(tmp_path / "data", db_url, imap__listen=None, imap__imaps=None)).start()
    try:
        alice = client_for(srv, "alice@example.test")
        assert [s["id"] for s in call(alice, "PushSubscription/get", {"ids": None})["list"]] == [sub_id]
        alice.deliver(simple(20))
        pushed_now(alice, receiver)
        alice.http.close()
    finally:
        srv.stop()
