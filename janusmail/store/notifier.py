"""In-process change notifier: IMAP IDLE/selected sessions and JMAP push subscribe per account.

Writes commit in worker threads; subscribers live on the asyncio loop. ``publish`` is thread-safe and hands
each event to the loop with ``call_soon_threadsafe``. Subscribers get a coalescing queue: a slow reader sees
the latest modseq rather than an ever-growing backlog, which is all IMAP and JMAP need (both re-read the
change log from their last known modseq).

Two ways in: :meth:`Notifier.publish` for a write this process committed (local subscribers, then the
``relay`` that tells this process's peers: the supervisor's change bus, janusmail.store.changebus, when
``serve --workers`` runs several processes on SQLite), and :meth:`Notifier.deliver` for an event heard from
elsewhere (PostgreSQL NOTIFY, the change bus, the SQLite credential watcher), which must not be sent on again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

log = logging.getLogger("janusmail.store.notifier")


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    account_id: str
    modseq: int
    kinds: frozenset[str]  # Mailbox, Email, Thread, EmailDelivery
    mailbox_ids: frozenset[str] = field(default_factory=frozenset)


class Subscription:
    """One listener's coalescing queue of events. Lives on its event loop: touched there only.

    Waiting costs one future (no task, no ``wait_for``): with 1,000 IDLE sessions of one mailbox, every change
    wakes 1,000 of them, and each wake-up's bookkeeping is paid 1,000 times."""

    __slots__ = ("_notifier", "account_id", "loop", "_pending", "_waiters")

    def __init__(self, notifier: Notifier, account_id: str, loop: asyncio.AbstractEventLoop) -> None:
        self._notifier = notifier
        self.account_id = account_id
        self.loop = loop
        self._pending: list[ChangeEvent] = []
        self._waiters: list[asyncio.Future[None]] = []

    def _deliver(self, ev: ChangeEvent) -> None:
        self._pending.append(ev)
        if len(self._pending) > 256:  # coalesce: keep the newest, merged
            merged_kinds: set[str] = set()
            merged_boxes: set[str] = set()
            for p in self._pending:
                merged_kinds |= p.kinds
                merged_boxes |= p.mailbox_ids
            self._pending = [ChangeEvent(ev.account_id, ev.modseq, frozenset(merged_kinds), frozenset(merged_boxes))]
        self.interrupt()

    def interrupt(self) -> None:
        """End any :meth:`wait` now (with whatever is pending, maybe nothing): how an IDLE session that the
        client ended (DONE) stops waiting without a second future to wait on."""
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)

    def drain(self) -> list[ChangeEvent]:
        out, self._pending = self._pending, []
        return out

    async def wait(self, timeout: float | None = None) -> list[ChangeEvent]:
        """Wait until at least one event is pending (or timeout, or :meth:`interrupt`) and return all pending
        events (empty after a timeout or an interrupt with nothing pending)."""
        if not self._pending:
            fut: asyncio.Future[None] = self.loop.create_future()
            self._waiters.append(fut)
            timer: asyncio.TimerHandle | None = None
            alarms: _Alarms | None = None
            slot = 0
            if timeout is not None and timeout < SHARED_ALARM_FROM:
                timer = self.loop.call_later(timeout, _wake, fut)
            elif timeout is not None:
                alarms = self._notifier._alarms_of(self.loop)
                slot = alarms.add(timeout, fut)
            try:
                await fut
            finally:
                if timer is not None:
                    timer.cancel()
                if alarms is not None:
                    alarms.discard(slot, fut)
                self._waiters.remove(fut)
        return self.drain()

    async def __aiter__(self) -> AsyncIterator[list[ChangeEvent]]:
        while True:
            yield await self.wait()

    def close(self) -> None:
        self._notifier._remove(self)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


#: Waits at least this long (IMAP IDLE's poll, 30 s by default) share their loop's timers (:class:`_Alarms`);
#: shorter ones (a token expiring now) keep a timer of their own, to the millisecond.
SHARED_ALARM_FROM = 5.0
#: How late a shared alarm may ring: deadlines are rounded up to a multiple of this many seconds.
ALARM_RESOLUTION = 1.0


class _Alarms:
    """Timers shared by the long waits of one event loop: every wait whose deadline rounds up to the same
    :data:`ALARM_RESOLUTION` slot is woken by one loop timer.

    Why: a thousand IDLE sessions each waiting with their poll interval held a thousand loop timers (about 550
    bytes each under uvloop, made and cancelled again on every wake-up, which a change to a busy mailbox causes
    a thousand times at once); they now hold a set entry each, and a few dozen timers between them. A poll that
    rings up to a second late changes nothing. Touched on its loop only."""

    __slots__ = ("loop", "_slots", "_owner")

    def __init__(self, loop: asyncio.AbstractEventLoop, owner: dict[asyncio.AbstractEventLoop, _Alarms]) -> None:
        self.loop = loop
        self._slots: dict[int, tuple[asyncio.TimerHandle, set[asyncio.Future[None]]]] = {}
        self._owner = owner

    def add(self, delay: float, fut: asyncio.Future[None]) -> int:
        """Wake ``fut`` (unless done) no sooner than ``delay`` seconds from now, at most a resolution later; the
        slot returned is what :meth:`discard` needs."""
        slot = math.ceil((self.loop.time() + delay) / ALARM_RESOLUTION)
        entry = self._slots.get(slot)
        if entry is None:
            entry = (self.loop.call_at(slot * ALARM_RESOLUTION, self._ring, slot), set())
            self._slots[slot] = entry
        entry[1].add(fut)
        return slot

    def discard(self, slot: int, fut: asyncio.Future[None]) -> None:
        entry = self._slots.get(slot)
        if entry is None:
            return
        entry[1].discard(fut)
        if not entry[1]:
            entry[0].cancel()
            del self._slots[slot]
            self._forget_if_idle()

    def _ring(self, slot: int) -> None:
        entry = self._slots.pop(slot, None)
        self._forget_if_idle()
        for fut in entry[1] if entry is not None else ():
            if not fut.done():
                fut.set_result(None)

    def _forget_if_idle(self) -> None:
        """No timer left: the notifier forgets this loop (a closed loop must not stay referenced)."""
        if not self._slots and self._owner.get(self.loop) is self:
            del self._owner[self.loop]


def _deliver_all(subs: list[Subscription], ev: ChangeEvent) -> None:
    """On a subscribers' loop: hand ``ev`` to each of them."""
    for sub in subs:
        sub._deliver(ev)


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: dict[str, set[Subscription]] = {}
        #: Tells the other processes sharing this store about this process's writes (None: nobody to tell,
        #: or the database tells them, as PostgreSQL NOTIFY does). Called on the committing thread.
        self.relay: Callable[[ChangeEvent], None] | None = None
        #: Observers of this process's own commits only (never of events heard from elsewhere): JMAP push
        #: subscriptions (janusmail/jmap/webpush.py) are POSTed by the process that made the change, so
        #: several workers or nodes never send one change twice. Called on the committing thread.
        self.on_commit: list[Callable[[ChangeEvent], None]] = []
        #: Observers of EVERY event this process hears (its own commits and those heard from elsewhere), called
        #: on the delivering thread before any subscriber wakes: caches of store facts that other processes may
        #: change (the revoked-token set, janusmail.store.issued_tokens). They must be quick and never block.
        self.watchers: list[Callable[[ChangeEvent], None]] = []
        self._held = threading.local()
        #: Shared timers of the subscriptions' long waits, per event loop (only while some are pending).
        self._alarms: dict[asyncio.AbstractEventLoop, _Alarms] = {}

    @contextlib.contextmanager
    def holding(self) -> Iterator[list[ChangeEvent]]:
        """Events published on this thread inside the block are collected in the list, not sent: a group
        commit (``groupcommit``) runs several writes in one transaction and publishes their events only after
        its COMMIT, or drops them when nothing was committed."""
        events: list[ChangeEvent] = []
        self._held.events = events
        try:
            yield events
        finally:
            self._held.events = None

    def _alarms_of(self, loop: asyncio.AbstractEventLoop) -> _Alarms:
        """The shared timers of ``loop`` (called on that loop)."""
        alarms = self._alarms.get(loop)
        if alarms is None:
            alarms = self._alarms[loop] = _Alarms(loop, self._alarms)
        return alarms

    def subscribe(self, account_id: str) -> Subscription:
        sub = Subscription(self, account_id, asyncio.get_running_loop())
        with self._lock:
            self._subs.setdefault(account_id, set()).add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.account_id)
            if subs:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.account_id]

    def publish(self, ev: ChangeEvent) -> None:
        """A write of this process committed: wake local subscribers and tell the relay. On a thread inside
        :meth:`holding` the event waits in the holder's list instead (its write has not committed yet)."""
        held = getattr(self._held, "events", None)
        if held is not None:
            held.append(ev)
            return
        self.deliver(ev)
        for observer in list(self.on_commit):
            try:
                observer(ev)
            except Exception:  # noqa: BLE001 - the write is committed: an observer's failure must not fail it
                log.warning("change observer failed for %s", ev.account_id, exc_info=True)
        relay = self.relay
        if relay is not None:
            try:
                relay(ev)
            except Exception:  # noqa: BLE001 - the write is committed: a lost hint must not fail it (peers poll)
                log.warning("could not relay change event of %s", ev.account_id, exc_info=True)

    def deliver(self, ev: ChangeEvent) -> None:
        """Wake local subscribers only (an event heard from another process or node)."""
        for watcher in self.watchers:
            try:
                watcher(ev)
            except Exception:  # noqa: BLE001 - a cache's failure must not keep the event from the sessions
                log.warning("change watcher failed for %s", ev.account_id, exc_info=True)
        with self._lock:
            subs = list(self._subs.get(ev.account_id, ()))
        if not subs:
            return
        # One hand-over per event loop, not per subscriber: each call_soon_threadsafe also wakes the loop
        # through its self-pipe, and one change can concern a thousand IDLE sessions.
        by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
        for sub in subs:
            by_loop.setdefault(sub.loop, []).append(sub)
        for loop, group in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver_all, group, ev)
            except RuntimeError:  # loop closed
                for sub in group:
                    self._remove(sub)

    def subscribed_accounts(self) -> list[str]:
        """Accounts someone listens to now (the SQLite credential watcher checks these still exist)."""
        with self._lock:
            return list(self._subs)

    def subscriber_count(self, account_id: str) -> int:
        with self._lock:
            return len(self._subs.get(account_id, ()))
