"""Per-account concurrency slots that queue briefly before refusing (JMAP maxConcurrentRequests/Upload).

Why queue: a well-behaved client that opens a few more parallel requests than the Session advertises (8 tabs
of one webmail, a sync client's burst) should be slowed down, not told 429 and left to guess a retry delay. A
request over the limit therefore waits, first come first served, for a slot of its account; only when the
wait passes ``wait`` seconds, or when ``max_queue`` requests of that account are already waiting, is it
refused. Both bounds keep one account from piling up unbounded work (memory, open sockets) on the server.

A released slot is handed to the oldest waiter directly (never put back for grabs), so a steady stream of new
requests cannot overtake the queue. A limit of 0 means no cap: every request runs at once.

The state lives on the instance (the JMAP app owns one per limit) and is touched only on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator

__all__ = ["AccountSlots"]


class AccountSlots:
    """At most ``limit`` holders per key at once (0: unlimited); up to ``max_queue`` more wait, FIFO, at most
    ``wait`` seconds each, for a slot before :meth:`hold` yields ``False`` (refuse)."""

    def __init__(self, limit: int, *, max_queue: int, wait: float) -> None:
        self.limit = limit
        self.max_queue = max_queue
        self.wait = wait
        self._active: Counter[str] = Counter()
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}

    def active(self, key: str) -> int:
        """Slots of ``key`` in use now."""
        return self._active[key]

    def waiting(self, key: str) -> int:
        """Requests of ``key`` waiting for a slot now."""
        return sum(1 for fut in self._waiters.get(key, ()) if not fut.done())

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[bool]:
        """Yield ``True`` with a slot of ``key`` held until the block ends, or ``False`` when none came free
        within the bounds (the caller refuses; nothing is held)."""
        if self.limit <= 0:
            yield True
            return
        if not await self._acquire(key):
            yield False
            return
        try:
            yield True
        finally:
            self._release(key)

    async def _acquire(self, key: str) -> bool:
        queue = self._waiters.get(key)
        if self._active[key] < self.limit and not queue:
            self._active[key] += 1
            return True
        if queue is None:
            queue = self._waiters[key] = deque()
        if self.wait <= 0 or len(queue) >= self.max_queue:
            if not queue:
                del self._waiters[key]
            return False
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(fut)
        self.queued(key)
        try:
            async with asyncio.timeout(self.wait):
                await fut
            return True
        except TimeoutError:
            # The slot may have been handed over just as the wait ran out: then it is ours after all.
            return fut.done() and not fut.cancelled()
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot, then cancelled (client gone): pass it on
                self._release(key)
            raise
        finally:
            with contextlib.suppress(ValueError):
                queue.remove(fut)
            if not queue and self._waiters.get(key) is queue:
                del self._waiters[key]

    def _release(self, key: str) -> None:
        queue = self._waiters.get(key)
        while queue:
            fut = queue.popleft()
            if not fut.done():
                fut.set_result(None)  # the slot passes straight to the oldest waiter: the count stays
                return
        self._active[key] -= 1
        if self._active[key] <= 0:
            del self._active[key]

    def queued(self, key: str) -> None:
        """Called when a request of ``key`` starts waiting (a hook: tests observe the queue through it)."""
