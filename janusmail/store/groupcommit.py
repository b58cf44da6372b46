"""Group commit for concurrent deliveries (LMTP, IMAP APPEND, JMAP import).

Each acknowledged message needs its blob and its rows durable, which costs a few fsyncs. When many deliveries
arrive at once, paying those per message caps throughput at a few hundred messages/s. Deliveries queue here
instead; one drainer takes everything queued, stores each account's share as one batch (one set of syncs, one
transaction), and then wakes every waiting caller. A caller is still acknowledged only after its own message is
durable; it just shares the syncs with its neighbours. A batch that fails is retried message by message so one
bad message cannot fail the others.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import TYPE_CHECKING

from .model import Delivered, IngestItem

if TYPE_CHECKING:
    from .store import Store

MAX_BATCH = 256
GATHER_SECONDS = 0.002  # at most this much added latency, only when fewer arrived than last time


class GroupCommitter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[tuple[str, IngestItem, asyncio.Future[Delivered]]] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_batch = 1

    async def deliver(self, account_id: str, item: IngestItem) -> Delivered:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._drain())
        fut: asyncio.Future[Delivered] = loop.create_future()
        self._queue.append((account_id, item, fut))
        assert self._wake is not None
        self._wake.set()
        return await fut

    async def _drain(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            # Callers acknowledged together come back together: a moment's wait gathers the next group.
            if len(self._queue) < self._last_batch:
                await asyncio.sleep(GATHER_SECONDS)
            while self._queue:
                # The batch lives in _run's frame only: once stored, nothing of it stays referenced here. (Kept
                # in this loop's variables, an idle drainer held the last messages' bytes, possibly tens of MiB,
                # until the next delivery came.)
                await self._run(self._take())

    def _take(self) -> list[tuple[str, IngestItem, asyncio.Future[Delivered]]]:
        batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        self._last_batch = len(batch)
        return batch

    async def _run(self, batch: list[tuple[str, IngestItem, asyncio.Future[Delivered]]]) -> None:
        by_account: dict[str, list[tuple[IngestItem, asyncio.Future[Delivered]]]] = defaultdict(list)
        for account_id, item, fut in batch:
            by_account[account_id].append((item, fut))
        for account_id, entries in by_account.items():
            await self._commit(account_id, entries)

    async def _commit(self, account_id: str, entries: list[tuple[IngestItem, asyncio.Future[Delivered]]]) -> None:
        store = self.store
        if len(entries) > 1:
            try:
                results = await store.call(store.emails.ingest_many, account_id, [item for item, _ in entries])
            except Exception:  # noqa: BLE001 - fall through to one by one
                pass
            else:
                for (_, fut), res in zip(entries, results, strict=True):
                    if not fut.done():
                        fut.set_result(res)
                return
        for item, fut in entries:
            try:
                res = (await store.call(store.emails.ingest_many, account_id, [item]))[0]
            except Exception as exc:  # noqa: BLE001 - handed to the waiting caller
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(res)
