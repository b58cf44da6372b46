"""Thread/get and Thread/changes (RFC 8621 §3) against the real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.jmap.test_front_harness import Jmap, client_for, principal, start_server, start_shared
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


def _chain(j, base_time: int = 1_700_000_000):  # noqa: ANN001, ANN202
    """A root and two replies, delivered out of order (received times decide the order)."""
    root = j.deliver(simple(1, subject="Plans"), received_at=base_time + 100)
    r2 = j.deliver(simple(3, subject="Re: Plans", msgid="r2@x", in_reply_to="msg1@example.test",
                          references=["msg1@example.test"]), received_at=base_time + 300)
    r1 = j.deliver(simple(2, subject="Re: Plans", msgid="r1@x", in_reply_to="msg1@example.test",
                          references=["msg1@example.test"]), received_at=base_time + 200)
    assert root.thread_id == r1.thread_id == r2.thread_id
    return root, r1, r2


def test_thread_get_orders_by_received_at(alice):  # noqa: F811
    root, r1, r2 = _chain(alice)
    other = alice.deliver(simple(9, subject="Unrelated"))
    out = alice.call("Thread/get", {"ids": [root.thread_id, other.thread_id, "Tnope"]})
    threads = {t["id"]: t["emailIds"] for t in out["list"]}
    assert threads[root.thread_id] == [root.email_id, r1.email_id, r2.email_id]
    assert threads[other.thread_id] == [other.email_id]
    assert out["notFound"] == ["Tnope"]
    assert out["state"] == alice.call("Thread/get", {"ids": []})["state"]


def test_thread_same_received_at_ties_break_by_id(alice):  # noqa: F811
    a = alice.deliver(simple(1, subject="Tie"), received_at=1_700_000_000)
    b = alice.deliver(simple(2, subject="Re: Tie", msgid="t2@x", in_reply_to="msg1@example.test"),
                      received_at=1_700_000_000)
    out = alice.call("Thread/get", {"ids": [a.thread_id]})
    assert out["list"][0]["emailIds"] == sorted([a.email_id, b.email_id])


def test_deleted_memberships_hide_emails(alice):  # noqa: F811
    root, r1, _ = _chain(alice)
    store = alice.server.store
    inbox = alice.role("inbox")
    # Mark r1 \Deleted in its only mailbox: it no longer exists for JMAP.
    r1_uid = r1.uids[inbox]
    store.memberships.store_flags(alice.account_id, inbox, [(r1_uid, r1_uid)], "add", [], True)
    out = alice.call("Thread/get", {"ids": [root.thread_id]})
    assert r1.email_id not in out["list"][0]["emailIds"] and root.email_id in out["list"][0]["emailIds"]
    # A thread whose emails are all hidden is not found.
    lone = alice.deliver(simple(7, subject="Lonely"))
    store.memberships.store_flags(alice.account_id, inbox, [(lone.uids[inbox], lone.uids[inbox])], "add", [], True)
    assert alice.call("Thread/get", {"ids": [lone.thread_id]})["notFound"] == [lone.thread_id]


def test_thread_get_requires_ids(alice):  # noqa: F811
    assert alice.call("Thread/get", {"ids": None})["error"] == "requestTooLarge"
    assert alice.call("Thread/get", {"ids": ["bad id!"]})["error"] == "invalidArguments"
    assert alice.call("Thread/get", {"ids": [], "properties": ["emailIds"]})["list"] == []


def test_thread_changes(alice):  # noqa: F811
    s0 = alice.call("Thread/get", {"ids": []})["state"]
    root = alice.deliver(simple(1, subject="Plans"))
    ch = alice.call("Thread/changes", {"sinceState": s0})
    assert ch["created"] == [root.thread_id] and ch["updated"] == [] and ch["hasMoreChanges"] is False
    s1 = ch["newState"]
    reply = alice.deliver(simple(2, subject="Re: Plans", msgid="r@x", in_reply_to="msg1@example.test"))
    ch = alice.call("Thread/changes", {"sinceState": s1})
    assert ch["updated"] == [root.thread_id] and ch["created"] == []
    s2 = ch["newState"]
    assert s2 == alice.call("Thread/get", {"ids": []})["state"]
    alice.server.store.emails.destroy(alice.account_id, [root.email_id, reply.email_id])
    ch = alice.call("Thread/changes", {"sinceState": s2})
    assert ch["destroyed"] == [root.thread_id]
    ch = alice.call("Thread/changes", {"sinceState": s0})
    assert ch["created"] == ch["updated"] == ch["destroyed"] == []  # born and gone inside the window
    assert alice.call("Thread/changes", {"sinceState": "nope"})["error"] == "cannotCalculateChanges"


def test_thread_isolation(alice, bob):  # noqa: F811
    mine = alice.deliver(simple(1))
    theirs = bob.deliver(simple(1))
    out = alice.call("Thread/get", {"ids": [mine.thread_id, theirs.thread_id]})
    assert [t["id"] for t in out["list"]] == [mine.thread_id] and out["notFound"] == [theirs.thread_id]
    assert alice.server.store.visible_emails.thread_members(alice.account_id, [theirs.thread_id]) == {}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_thread_both_backends(tmp_path, db_url):
    srv = start_server(tmp_path, db_url)
    try:
        j = client_for(srv, "alice@example.test")
        root, r1, r2 = _chain(j)
        out = j.call("Thread/get", {"ids": [root.thread_id]})
        assert out["list"][0]["emailIds"] == [root.email_id, r1.email_id, r2.email_id]
    finally:
        srv.stop()
