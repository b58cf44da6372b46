"""The change bus of ``serve --workers`` (janusmail.store.changebus) without processes: three stores on one
database stand for three workers, joined through a hub as the supervisor joins them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from janusmail.store import change_payload
from janusmail.store.changebus import BusHub, BusLink, socket_pair
from janusmail.store.notifier import ChangeEvent
from janusmail.store.store import Store
from tests.mailgen import simple

#: Safety net for events that should arrive: generous, a busy machine is slow, not broken.
WAIT = 30.0


@contextlib.contextmanager
def workers(data: Path, db_url: str | None, n: int, hub: BusHub) -> Iterator[list[Store]]:
    stores = [Store.open(data, db_url) for _ in range(n)]
    links = []
    try:
        for i, store in enumerate(stores):
            hub_end, worker_end = socket_pair()
            hub.add(i, hub_end)
            link = BusLink(store, worker_end)
            link.start()
            links.append(link)
        yield stores
    finally:
        for store in stores:
            store.close()
        for link in links:
            link.stop()
        hub.close()


async def heard(sub, modseq: int) -> list[ChangeEvent]:  # noqa: ANN001 - a notifier Subscription
    """Events of ``sub`` up to the one of ``modseq`` (earlier writes may still be on their way)."""
    seen: list[ChangeEvent] = []
    while not any(e.modseq >= modseq for e in seen):
        got = await sub.wait(WAIT)
        assert got, f"no event of modseq {modseq} within {WAIT} s"
        seen += got
    return [e for e in seen if e.modseq == modseq]


async def test_a_write_in_one_worker_reaches_subscribers_of_the_others_once(tmp_path: Path, db_url) -> None:  # noqa: ANN001
    hub = BusHub(asyncio.get_running_loop())
    with workers(tmp_path / "d", db_url, 3, hub) as (a, b, c):
        acct = a.accounts.create("bus@example.test", "x")
        inbox = a.mailboxes.by_path(acct.id, ["INBOX"])
        assert inbox is not None
        subs = [s.notifier.subscribe(acct.id) for s in (a, b, c)]
        delivered = await a.call(a.emails.ingest, acct.id, simple(1), (inbox.id,))
        for sub in subs:
            events = await heard(sub, delivered.modseq)
            assert [(inbox.id in e.mailbox_ids, "Email" in e.kinds) for e in events] == [(True, True)]
        # Heard once each: b and c do not relay what they heard, and the hub does not echo to the writer.
        again = await a.call(a.emails.ingest, acct.id, simple(2), (inbox.id,))
        for sub in subs:
            assert len(await heard(sub, again.modseq)) == 1


async def test_an_event_naming_too_many_mailboxes_is_completed_from_the_store(tmp_path: Path, db_url) -> None:  # noqa: ANN001
    """Past ``MAX_BOXES`` the message carries no mailbox ids; the receiver reads those stamped with the modseq."""
    hub = BusHub(asyncio.get_running_loop())
    with workers(tmp_path / "d", db_url, 2, hub) as (a, b):
        acct = a.accounts.create("many@example.test", "x")
        boxes = [a.mailboxes.create(acct.id, f"box{i}").id for i in range(change_payload.MAX_BOXES + 5)]
        sub = b.notifier.subscribe(acct.id)
        delivered = await a.call(a.emails.ingest, acct.id, simple(1), tuple(boxes))
        (event,) = await heard(sub, delivered.modseq)
        assert set(boxes) <= event.mailbox_ids


def test_a_relay_that_fails_does_not_fail_the_committed_write(store: Store) -> None:
    def broken(_ev: ChangeEvent) -> None:
        raise OSError("bus gone")

    store.notifier.relay = broken
    acct = store.accounts.create("relay@example.test", "x")  # committed and published locally all the same
    assert store.accounts.get(acct.id) is not None


@pytest.mark.parametrize("kinds", [frozenset({"Email", "Mailbox"}), frozenset({"Credential"})])
def test_the_payload_round_trips(store: Store, kinds: frozenset[str]) -> None:
    import orjson

    ev = ChangeEvent("acct", 7, kinds, frozenset({"m1", "m2"}))
    assert change_payload.decode(orjson.loads(change_payload.encode(ev, "node")), store) == ev
