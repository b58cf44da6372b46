"""The IMAP subscription helpers reach the store only through ``store.subscriptions``, and Store.call runs
their writes on the writer executor (orphan subscriptions used to be written off it, with SQL of their own)."""

from __future__ import annotations

import threading

from janusmail.imap.commands import tree
from janusmail.store import writer_calls
from janusmail.store.writes import is_write


async def test_orphan_helpers_write_on_the_writer(store, account, monkeypatch) -> None:  # noqa: ANN001
    assert is_write(tree.add_orphan) and is_write(tree.remove_orphan) and not is_write(tree.list_orphans)
    threads: list[str] = []
    real = store.subscriptions.subscribe

    def spy(account_id: str, name: str) -> None:
        threads.append(threading.current_thread().name)
        real(account_id, name)

    monkeypatch.setattr(store.subscriptions, "subscribe", spy)
    await store.call(tree.add_orphan, store, account.id, "Later/Box")
    assert threads and threads[0].startswith(writer_calls.WRITER_PREFIX)
    assert await store.call(tree.list_orphans, store, account.id) == {"Later/Box"}
    assert await store.call(tree.remove_orphan, store, account.id, "Later/Box") is True
    assert await store.call(tree.remove_orphan, store, account.id, "Later/Box") is False
    assert await store.call(tree.list_orphans, store, account.id) == set()
