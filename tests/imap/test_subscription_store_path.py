"""IMAP SUBSCRIBE/UNSUBSCRIBE reach the store only through ``store.subscriptions``, whose writes Store.call runs
on the writer executor (orphan subscriptions used to be written off it, with SQL of their own)."""

from __future__ import annotations

import threading

from janusmail.imap.commands import mailboxes
from janusmail.store import writer_calls
from janusmail.store.writes import is_write, writes


async def test_subscription_writes_run_on_the_writer(store, account, monkeypatch) -> None:  # noqa: ANN001
    subs = store.subscriptions
    assert is_write(subs.subscribe) and is_write(subs.unsubscribe) and not is_write(subs.names)
    threads: list[str] = []
    real = subs.subscribe

    @writes
    def spy(account_id: str, name: str) -> None:
        threads.append(threading.current_thread().name)
        real(account_id, name)

    monkeypatch.setattr(subs, "subscribe", spy)
    await store.call(subs.subscribe, account.id, "Later/Box")
    assert threads and threads[0].startswith(writer_calls.WRITER_PREFIX)
    assert await store.call(subs.names, account.id) == {"Later/Box"}
    assert await store.call(subs.unsubscribe, account.id, "Later/Box") is True
    assert await store.call(subs.unsubscribe, account.id, "Later/Box") is False
    assert await store.call(subs.names, account.id) == set()


def test_handlers_use_the_store_service_not_sql() -> None:
    source = open(mailboxes.__file__).read()
    assert "store.subscriptions.subscribe" in source and "store.subscriptions.unsubscribe" in source
    assert "sqlalchemy" not in source and "store.schema" not in source
