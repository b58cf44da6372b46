"""Shared catch-up reads: many IMAP sessions asking "what changed in this mailbox since I looked" get one read.

Why: one delivery to a mailbox that 1,000 sessions have selected (IDLE) woke 1,000 sessions, and each ran its
own ``mailbox_delta`` on a store thread: 1,000 thread hops, 1,000 connections checked out, 3,000 identical
queries, and (IMAP4rev1) 1,000 write transactions claiming \\Recent, which queued behind the delivery's own
write lock. Push latency was seconds (issue 10: p50 3.2 s with 1,000 idlers).

How: :meth:`MailboxDeltas.delta` queues the request on the caller's event loop. While fewer than
:data:`MAX_READS` batch reads are running, a request starts one at once; otherwise it waits for the next, which
takes every request queued meanwhile (the way group commit batches writes). A batch read runs on one store
thread and one connection, computes each distinct ``(mailbox, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ)`` once
(``message_views.read_delta``) and hands the same :class:`MailboxDelta` to every session that asked it: read-only
data (sessions copy what they keep). \\Recent is claimed once per mailbox and batch, for the first session
that asked to claim, in a store call of its own (a write: it may wait for the write lock, the batch does not):
exactly one session sees a new message as recent, as RFC 3501 §2.3.2 wants.

Why this is as fresh as a read of one's own: a batch read starts after every request it serves was queued,
and a session queues after its notifier wake-up, which comes after the COMMIT it was told about. So each
session sees at least what it was woken for, as with its own read.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .message_views import MailboxDelta, read_delta

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = ["MAX_READS", "DeltaKey", "MailboxDeltas"]

#: Batch reads running at once per event loop: one serves the first request at once, a second the burst
#: queued behind it; more would only queue on the store threads' GIL.
MAX_READS = 2

#: ``(mailbox_id, uidvalidity, uidnext, highest_modseq)``: what a session knows of its mailbox.
DeltaKey = tuple[str, int, int, int]


@dataclass(slots=True)
class _Lane:
    """One event loop's queue of requests and count of batch reads in flight."""

    queue: list[tuple[DeltaKey, bool, asyncio.Future[MailboxDelta | None]]] = field(default_factory=list)
    reads: int = 0
    #: the batch reads' and claims' tasks (held here: the loop keeps only weak references to tasks)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class MailboxDeltas:
    """Batched, shared ``mailbox_delta`` reads (see the module docstring). State lives per event loop and is
    touched on that loop only."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Lane] = weakref.WeakKeyDictionary()

    async def delta(self, mailbox_id: str, *, uidvalidity: int, uidnext: int, modseq: int,
                    claim_recent: bool = False, claimed_below: int = 0) -> MailboxDelta | None:
        """``store.messages.mailbox_delta``'s answer, read together with the other sessions' (the returned
        object may be shared: never change it). ``claimed_below``: as for ``mailbox_delta``, no claim when every
        new UID is below it."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop)
        if lane is None:
            lane = self._lanes[loop] = _Lane()
        fut: asyncio.Future[MailboxDelta | None] = loop.create_future()
        claim = claimed_below if claim_recent else None
        lane.queue.append(((mailbox_id, uidvalidity, uidnext, modseq), claim, fut))
        if lane.reads < MAX_READS:
            lane.reads += 1
            # its own task: a session cancelled while waiting (IDLE's DONE) must not strand the batch it leads
            _hold(lane, loop.create_task(self._run(lane)))
        return await fut

    async def _run(self, lane: _Lane) -> None:
        try:
            while lane.queue:
                batch, lane.queue = lane.queue, []
                try:
                    answers = await self._store.read_inline(self.read_many, [key for key, _, _ in batch])
                except Exception as exc:  # noqa: BLE001 - every waiter gets the store's error, as its own read would
                    for _, _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                claimed: set[str] = set()
                for (key, claim, fut), answer in zip(batch, answers, strict=True):
                    if (claim is not None and answer is not None and answer.worth_claiming(claim)
                            and key[0] not in claimed):
                        claimed.add(key[0])
                        # its own hop: a claim is a write that may wait for the write lock, and the rest of
                        # the batch must not wait with it
                        _hold(lane, asyncio.get_running_loop().create_task(self._claim(key[0], answer, fut)))
                    elif not fut.done():
                        fut.set_result(answer)
        finally:
            lane.reads -= 1

    async def _claim(self, mailbox_id: str, answer: MailboxDelta, fut: asyncio.Future[MailboxDelta | None]) -> None:
        """\\Recent for the batch's first claimer of new messages in the mailbox (the others get none: this
        claim takes them all, as the first of several sessions' own claims did)."""
        try:
            recent_from = await self._store.call(self._store.memberships.claim_recent, mailbox_id)
        except Exception as exc:  # noqa: BLE001 - the claimer's own error, as its own read would have had
            if not fut.done():
                fut.set_exception(exc)
            return
        if not fut.done():
            fut.set_result(replace(answer, recent_from=recent_from))

    def read_many(self, keys: list[DeltaKey]) -> list[MailboxDelta | None]:
        """Synchronous: the deltas of ``keys`` in order (no \\Recent claimed), each distinct key read once on
        one connection."""
        answers: dict[DeltaKey, MailboxDelta | None] = {}
        with self._store.statement_read() as conn:
            for key in keys:
                if key not in answers:
                    answers[key] = read_delta(self._store.sql, conn, *key)
        return [answers[key] for key in keys]


def _hold(lane: _Lane, task: asyncio.Task[None]) -> None:
    lane.tasks.add(task)
    task.add_done_callback(lane.tasks.discard)
