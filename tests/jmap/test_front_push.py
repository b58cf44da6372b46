"""EventSource push (RFC 8620 §7.3) over real HTTP, driven by store changes."""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time

import httpx
import pytest

from janusmail.jmap import push
from tests.jmap.test_front_harness import (  # noqa: F401 - fixtures
    PASSWORDS,
    alice,
    bob,
    client_for,
    server,
    start_server,
)
from tests.mailgen import simple

#: How long to wait for something that should happen: generous, because a busy machine is slow, not broken.
WAIT = 30.0


def wait_subscribed(j, n: int = 1) -> None:  # noqa: ANN001
    """Wait until the account has ``n`` notifier subscriptions: the stream is listening (an event, not a sleep)."""
    store = j.server.store
    deadline = time.monotonic() + WAIT
    while store.notifier.subscriber_count(j.account_id) < n:
        assert time.monotonic() < deadline, "the event stream never subscribed"
        time.sleep(0.01)


class EventReader:
    """Reads one event stream on a thread; ``next(timeout)`` returns (event, id, data) or None at the end."""

    def __init__(self, j, query: str, headers: dict | None = None) -> None:  # noqa: ANN001
        self.events: queue.Queue = queue.Queue()
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self.opened = threading.Event()
        self._client = httpx.Client(base_url=j.server.config.public_url, auth=j.http.auth, timeout=None)
        self._thread = threading.Thread(target=self._run, args=(query, headers or {}), daemon=True)
        self._thread.start()
        assert self.opened.wait(WAIT)

    def _run(self, query: str, headers: dict) -> None:
        try:
            with self._client.stream("GET", "/jmap/eventsource?" + query, headers=headers) as r:
                self._response = r
                self.status, self.headers = r.status_code, r.headers
                self.opened.set()
                event: dict = {}
                for line in r.iter_lines():
                    if line == "":
                        if event:
                            self.events.put((event.get("event"), event.get("id"), event.get("data")))
                        event = {}
                    elif line.startswith(":"):
                        continue
                    else:
                        field, _, value = line.partition(":")
                        event[field] = value[1:] if value.startswith(" ") else value
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.events.put(None)

    def next(self, timeout: float = WAIT):  # noqa: ANN201
        return self.events.get(timeout=timeout)

    def close(self) -> None:
        """Hang up for real: closing the client from another thread does not always close a connection that
        the reader thread is using, and the server must see the TCP connection go away."""
        response = getattr(self, "_response", None)
        stream = response.extensions.get("network_stream") if response is not None else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._client.close()


@pytest.fixture
def reader_factory():  # noqa: ANN201
    made: list[EventReader] = []

    def make(j, query: str, headers: dict | None = None) -> EventReader:  # noqa: ANN001
        r = EventReader(j, query, headers)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def test_state_change_on_delivery(alice, reader_factory):  # noqa: F811
    """How fast is measured in bench/latency.py; here: the event comes, and says the right states."""
    import orjson

    es = reader_factory(alice, "types=*&closeafter=no&ping=0")
    assert es.status == 200 and es.headers["content-type"].startswith("text/event-stream")
    wait_subscribed(alice)  # the subscription is taken when the stream starts
    delivered = alice.deliver(simple(1))
    event, event_id, data = es.next()
    assert event == "state"
    change = orjson.loads(data)
    assert change["@type"] == "StateChange"
    changed = change["changed"][alice.account_id]
    assert set(changed) == {"Mailbox", "Email", "Thread", "EmailDelivery"}
    assert changed["Email"] == str(delivered.modseq) == changed["EmailDelivery"]
    # The pushed states are the ones /get reports.
    assert changed["Mailbox"] == alice.call("Mailbox/get", {"ids": []})["state"]
    assert changed["Thread"] == alice.call("Thread/get", {"ids": []})["state"]
    assert push.decode_event_id(event_id)["Email"] == delivered.modseq


def test_types_filter_and_no_delivery_for_mailbox_changes(alice, reader_factory):  # noqa: F811
    import orjson

    es = reader_factory(alice, "types=Mailbox,EmailDelivery,Bogus&closeafter=no&ping=0")
    wait_subscribed(alice)
    alice.call("Mailbox/set", {"create": {"a": {"name": "Projects"}}})
    event, _, data = es.next()
    assert event == "state"
    assert set(orjson.loads(data)["changed"][alice.account_id]) == {"Mailbox"}
    alice.deliver(simple(2))
    _, _, data = es.next()
    assert set(orjson.loads(data)["changed"][alice.account_id]) == {"Mailbox", "EmailDelivery"}


def test_closeafter_state_ends_the_response(alice, reader_factory):  # noqa: F811
    es = reader_factory(alice, "types=*&closeafter=state&ping=0")
    wait_subscribed(alice)
    alice.deliver(simple(1))
    assert es.next()[0] == "state"
    assert es.next() is None  # the server ended the response


def test_last_event_id_catch_up(alice, reader_factory):  # noqa: F811
    import orjson

    es = reader_factory(alice, "types=*&closeafter=state&ping=0")
    wait_subscribed(alice)
    alice.call("Mailbox/set", {"create": {"a": {"name": "One"}}})
    _, first_id, _ = es.next()
    assert es.next() is None
    # While disconnected, mail arrives; reconnecting with the last id yields a catch-up event at once.
    alice.deliver(simple(3))
    es2 = reader_factory(alice, "types=*&closeafter=state&ping=0", {"Last-Event-ID": first_id})
    event, new_id, data = es2.next()
    assert event == "state" and new_id != first_id
    assert {"Email", "Thread", "EmailDelivery", "Mailbox"} == set(orjson.loads(data)["changed"][alice.account_id])
    assert es2.next() is None
    # Up to date: nothing is sent until something changes, so the first event is the next change, not a
    # catch-up for states the client already has (events are ordered: no waiting for "nothing" needed).
    es3 = reader_factory(alice, "types=*&closeafter=no&ping=0", {"Last-Event-ID": new_id})
    wait_subscribed(alice)
    alice.call("Mailbox/set", {"create": {"b": {"name": "Two"}}})
    event, third_id, data = es3.next()
    assert event == "state" and set(orjson.loads(data)["changed"][alice.account_id]) == {"Mailbox"}
    assert push.decode_event_id(third_id)["Mailbox"] > push.decode_event_id(new_id)["Mailbox"]


def test_events_are_per_account(alice, bob, reader_factory):  # noqa: F811
    import orjson

    es = reader_factory(alice, "types=*&closeafter=no&ping=0")
    wait_subscribed(alice)
    bob.deliver(simple(1))
    mine = alice.deliver(simple(2))
    # Events are in order: had bob's delivery reached alice's stream, it would come before alice's own.
    event, _, data = es.next()
    changed = orjson.loads(data)["changed"]
    assert event == "state" and set(changed) == {alice.account_id}
    assert changed[alice.account_id]["Email"] == str(mine.modseq)


def test_ping(tmp_path, reader_factory):
    import orjson

    srv = start_server(tmp_path, jmap__min_ping=1)
    try:
        j = client_for(srv, "alice@example.test")
        es = reader_factory(j, "types=*&closeafter=no&ping=1")
        event, event_id, data = es.next()
        assert event == "ping" and event_id is None and orjson.loads(data) == {"interval": 1}
    finally:
        srv.stop()


def test_ping_clamped_by_default(alice):  # noqa: F811
    p = push.parse_params({"types": "*", "closeafter": "no", "ping": "1"}, 30, 300)
    assert p.ping == 30
    assert push.parse_params({"ping": "100000"}, 30, 300).ping == 300
    assert push.parse_params({"ping": "0"}, 30, 300).ping == 0
    assert push.parse_params({}, 30, 300).types == frozenset(push.PUSH_TYPES)
    assert push.parse_params({"types": ""}, 30, 300).types == frozenset()


def test_bad_parameters(alice):  # noqa: F811
    for q in ["types=*&closeafter=maybe&ping=0", "types=*&closeafter=no&ping=-1", "types=*&closeafter=no&ping=x"]:
        r = alice.http.get("/jmap/eventsource?" + q)
        assert r.status_code == 400, q


def test_unauthenticated_eventsource(server):  # noqa: F811
    r = httpx.get(server.config.public_url + "/jmap/eventsource?types=*&closeafter=no&ping=0")
    assert r.status_code == 401


def test_server_shutdown_ends_streams(tmp_path, reader_factory):
    srv = start_server(tmp_path)
    j = client_for(srv, "alice@example.test")
    es = reader_factory(j, "types=*&closeafter=no&ping=0")
    wait_subscribed(j)
    srv.stop()  # returns (joins the server thread) only once the loop has stopped
    assert es.next() is None


def test_event_id_codec():
    states = {"Mailbox": 3, "Email": 10, "Thread": 9, "EmailDelivery": 10, "Identity": 2, "EmailSubmission": 4,
              "Quota": 1, "VacationResponse": 5}
    assert push.decode_event_id(push.encode_event_id(states)) == states
    # an id of the server before VacationResponse was pushed: that type's state reads as 0 (over-reports once)
    assert push.decode_event_id("3.10.9.10.2.4.1") == {**states, "VacationResponse": 0}
    for bad in [None, "", "1.2.3", "a.b.c.d.e.f.g", "1.2.3.4", "1.2.3.4.5", "1.2.3.4.5.6.7.8.9", "-1.2.3.4.5.6.7"]:
        assert push.decode_event_id(bad) is None


def test_format_event():
    assert push.format_event("ping", {"interval": 5}) == b'event: ping\ndata: {"interval":5}\n\n'
    assert push.format_event("state", {"a": "x\ny"}, "1.2.3.4") == (
        b'event: state\nid: 1.2.3.4\ndata: {"a":"x\\ny"}\n\n'
    )


def test_lmtp_delivery_pushes_and_counts(alice, reader_factory):  # noqa: F811
    """End to end: an LMTP delivery on the shared loop reaches an open EventSource and the Mailbox counts."""
    import smtplib

    import orjson

    inbox = alice.role("inbox")
    before = alice.call("Mailbox/get", {"ids": [inbox]})
    es = reader_factory(alice, "types=Mailbox,EmailDelivery&closeafter=no&ping=0")
    wait_subscribed(alice)
    with smtplib.LMTP("127.0.0.1", alice.server.lmtp_port) as client:
        client.sendmail("sender@example.test", ["alice@example.test"], simple(5))
    event, _, data = es.next()
    assert event == "state"
    assert set(orjson.loads(data)["changed"][alice.account_id]) == {"Mailbox", "EmailDelivery"}
    ch = alice.call("Mailbox/changes", {"sinceState": before["state"]})
    assert ch["updated"] == [inbox] and sorted(ch["updatedProperties"]) == sorted(
        ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"])
    assert alice.call("Mailbox/get", {"ids": [inbox]})["list"][0]["unreadEmails"] == 1


def test_disconnect_releases_the_subscription(alice, reader_factory):  # noqa: F811
    store = alice.server.store
    es = reader_factory(alice, "types=*&closeafter=no&ping=0")
    wait_subscribed(alice)
    assert store.notifier.subscriber_count(alice.account_id) == 1
    es.close()
    deadline = time.monotonic() + WAIT  # the server notices the hang-up on its own schedule: wait for it
    while store.notifier.subscriber_count(alice.account_id):
        assert time.monotonic() < deadline, "the closed stream still holds its subscription"
        time.sleep(0.05)
