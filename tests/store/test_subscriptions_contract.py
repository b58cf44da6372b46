"""Contract of ``store.subscriptions`` (IMAP subscriptions to names without a mailbox), on both backends."""

from __future__ import annotations

import asyncio

import pytest

from janusmail.store.model import NotFound
from janusmail.store.writes import is_write


def test_subscribe_list_unsubscribe(store, account) -> None:  # noqa: ANN001
    subs = store.subscriptions
    assert subs.names(account.id) == set()
    subs.subscribe(account.id, "Lists/rust")
    subs.subscribe(account.id, "Lists/rust")  # twice is one subscription
    subs.subscribe(account.id, "Ünïcode/名前")
    assert subs.names(account.id) == {"Lists/rust", "Ünïcode/名前"}
    assert subs.unsubscribe(account.id, "Lists/rust") is True
    assert subs.unsubscribe(account.id, "Lists/rust") is False
    assert subs.unsubscribe(account.id, "lists/RUST") is False  # names are exact (INBOX is canonical above)
    assert subs.names(account.id) == {"Ünïcode/名前"}


def test_subscriptions_are_per_account_and_go_with_it(store, account) -> None:  # noqa: ANN001
    bob = store.accounts.create("bob@example.test", "x")
    store.subscriptions.subscribe(account.id, "Shared")
    assert store.subscriptions.names(bob.id) == set()
    assert store.subscriptions.unsubscribe(bob.id, "Shared") is False
    assert store.subscriptions.names(account.id) == {"Shared"}
    store.accounts.delete(account.id)
    assert store.subscriptions.names(account.id) == set()


def test_unknown_account(store) -> None:  # noqa: ANN001
    with pytest.raises(NotFound):
        store.subscriptions.subscribe("A-no-such-account", "x")
    assert store.subscriptions.unsubscribe("A-no-such-account", "x") is False


def test_writes_take_the_write_path_and_nothing_when_nothing_changes(store, account) -> None:  # noqa: ANN001
    """A subscription change is a Store.write (modseq bump, notifier event, no JMAP-visible change row); a
    subscribe that finds the row, or an unsubscribe that finds none, writes nothing at all."""
    assert is_write(store.subscriptions.subscribe) and is_write(store.subscriptions.unsubscribe)
    assert not is_write(store.subscriptions.names)
    mailbox_state = store.changes.kind_state(account.id, "Mailbox")
    before = store.changes.highest_modseq(account.id)
    store.subscriptions.subscribe(account.id, "Later")
    after = store.changes.highest_modseq(account.id)
    assert after == before + 1
    store.subscriptions.subscribe(account.id, "Later")
    assert store.subscriptions.unsubscribe(account.id, "Never") is False
    assert store.changes.highest_modseq(account.id) == after
    assert store.changes.kind_state(account.id, "Mailbox") == mailbox_state  # JMAP never sees orphan subscriptions


async def test_store_call_runs_them_on_the_writer_and_notifies(store, account) -> None:  # noqa: ANN001
    sub = store.notifier.subscribe(account.id)
    try:
        await store.call(store.subscriptions.subscribe, account.id, "Later")
        events = await sub.wait(30)
        assert events and all(not ev.mailbox_ids for ev in events)
        assert await store.call(store.subscriptions.names, account.id) == {"Later"}
        assert await store.call(store.subscriptions.unsubscribe, account.id, "Later") is True
    finally:
        sub.close()


async def test_concurrent_subscribes_of_one_name_make_one_row(store, account) -> None:  # noqa: ANN001
    await asyncio.gather(*(store.call(store.subscriptions.subscribe, account.id, "Race") for _ in range(8)))
    assert store.subscriptions.names(account.id) == {"Race"}
