"""Metrics read from the store when Prometheus scrapes: store size, outbound queue depth, push subscriptions.

Why at scrape time rather than kept up to date by the writes: these are facts of the store, shared by every
worker and node, and the store already keeps them cheap to read (usage on the account rows, an index on the
queue's next attempt): keeping a second copy in step with every write would cost every write. A snapshot is
reused for :data:`TTL` seconds, so scrapers polling every second (or several Prometheus servers) do not turn
into a query load; a store that cannot answer leaves the last snapshot in place (or no numbers), never a
failed scrape.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = ["TTL", "StoreCollector"]

log = logging.getLogger("janusmail.metrics")

#: Seconds a snapshot of the store's numbers is served before it is read again.
TTL = 5.0


@dataclass(frozen=True, slots=True)
class _Snapshot:
    accounts: int
    messages: int
    storage: int
    queue: dict[str, int]
    push_subscriptions: int


class StoreCollector(Collector):
    """See the module docstring. Thread-safe: the metrics server answers scrapes on threads of its own."""

    def __init__(self, store: Store, ttl: float = TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        self._taken = 0.0

    def _read(self) -> _Snapshot:
        store = self.store
        totals = store.quotas.totals()
        return _Snapshot(totals.accounts, totals.messages, totals.storage, store.submissions.queue_depth(),
                         store.push_subscriptions.count_deliverable())

    def snapshot(self) -> _Snapshot | None:
        with self._lock:
            now = self.clock()
            if self._snapshot is None or now - self._taken >= self.ttl:
                try:
                    self._snapshot = self._read()
                except Exception:  # noqa: BLE001 - a scrape must not fail over it; the last numbers stay
                    log.warning("metrics: could not read the store's numbers", exc_info=True)
                self._taken = now  # (also after a failure: the next try waits a TTL, not every scrape)
            return self._snapshot

    def describe(self) -> Iterator[Metric]:
        return iter(self._families(None))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(self.snapshot()))

    @staticmethod
    def _families(snap: _Snapshot | None) -> list[Metric]:
        accounts = GaugeMetricFamily("janusmail_store_accounts", "Accounts in the store")
        messages = GaugeMetricFamily("janusmail_store_messages", "Messages in mailboxes, as quotas count them "
                                     "(a message in two mailboxes counts twice)")
        octets = GaugeMetricFamily("janusmail_store_bytes", "Octets of the messages in mailboxes, as quotas "
                                   "count them")
        queue = GaugeMetricFamily("janusmail_outbound_queue_depth", "EmailSubmissions the sender still has "
                                  "work on: pending (released) or held (FUTURERELEASE)", labels=["state"])
        push = GaugeMetricFamily("janusmail_push_subscriptions", "Verified, unexpired JMAP PushSubscriptions")
        if snap is not None:
            accounts.add_metric([], snap.accounts)
            messages.add_metric([], snap.messages)
            octets.add_metric([], snap.storage)
            for state, n in sorted(snap.queue.items()):
                queue.add_metric([state], n)
            push.add_metric([], snap.push_subscriptions)
        return [accounts, messages, octets, queue, push]
