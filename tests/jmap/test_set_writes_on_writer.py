"""Email/set and Mailbox/set writes run on the store's writer executor, never on a reader thread.

Why it matters: SQLite has one writer; a write started on a reader thread holds that reader while it waits for
the write lock, and a burst of them stalls every read. ``Store.call`` sends ``@writes`` callables to the
writer threads (named ``store-write``); these tests record the thread the store's write steps run on.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import pytest

from janusmail.store import visible_emails
from tests.jmap.test_front_harness import Jmap, principal, start_shared
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
def threads_seen(monkeypatch):  # noqa: ANN001, ANN201
    seen: list[tuple[str, str]] = []

    def spy(name, fn):  # noqa: ANN001, ANN202
        @functools.wraps(fn)  # keeps the @writes mark: Store.call routes the spy as it routes the method
        def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            seen.append((name, threading.current_thread().name))
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(visible_emails, "update_each", spy("update", visible_emails.update_each))
    monkeypatch.setattr(visible_emails, "destroy_rows", spy("destroy", visible_emails.destroy_rows))
    return seen, spy


def test_email_set_writes_on_writer(alice, threads_seen):  # noqa: F811
    seen, _ = threads_seen
    a = alice.deliver(simple(1))
    b = alice.deliver(simple(2))
    out = alice.call("Email/set", {"update": {a.email_id: {"keywords/$seen": True}}, "destroy": [b.email_id]})
    assert out["updated"] == {a.email_id: None} and out["destroyed"] == [b.email_id]
    assert [n for n, _ in seen] == ["update", "destroy"]
    assert all(t.startswith("store-write") for _, t in seen), seen


def test_mailbox_set_writes_on_writer(alice, threads_seen, monkeypatch):  # noqa: F811
    seen, spy = threads_seen
    store = alice.server.store
    monkeypatch.setattr(store.mailboxes, "update", spy("update", store.mailboxes.update))
    monkeypatch.setattr(store.mailboxes, "destroy", spy("destroy", store.mailboxes.destroy))
    created = alice.call("Mailbox/set", {"create": {"p": {"name": "Projects"}}})["created"]
    box = created["p"]["id"]
    assert alice.call("Mailbox/set", {"update": {box: {"name": "Renamed"}}})["updated"] == {box: None}
    assert alice.call("Mailbox/set", {"destroy": [box]})["destroyed"] == [box]
    assert [n for n, _ in seen] == ["update", "destroy"]
    assert all(t.startswith("store-write") for _, t in seen), seen
