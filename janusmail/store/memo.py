"""Bounded memo tables owned by one Store instance (``store.messages.render_cache``).

Why here and not as module globals: a cache is state, and state belongs to the Store that serves it (two Store
instances in one process, as the tests and the CLI make, must not share or clear each other's entries). The
doors keep their rendering code; they ask the store for a named table (``memos.memo("imap.structs", ...)``)
and put into it what they derive from immutable data (a rendered ENVELOPE of an email id, an address list, a
date), so nothing here ever needs invalidating: an entry is correct until it is evicted.

Reads are a plain ``dict.get`` bound once (``Memo.get``): the renderers call it once per message of a
``FETCH 1:*``, where even a Python-level method call shows up in the profile. Writes take a lock. Eviction is
oldest-inserted first, a tenth of the table at a time: cheaper than LRU bookkeeping on the hot path, and a
full ``FETCH 1:*`` touches every entry anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["Memo", "Memos"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """A bounded map. ``budget`` is in units of ``cost(value)`` (default: one per entry)."""

    def __init__(self, budget: int, cost: Callable[[V], int] | None = None) -> None:
        self.budget = budget
        self._cost = cost
        self._data: dict[K, V] = {}
        self._used = 0
        self._lock = threading.Lock()
        #: ``get(key) -> value | None``: the dict's own method (lock-free: a single dict read is atomic).
        self.get: Callable[[K], V | None] = self._data.get

    def put(self, key: K, value: V) -> None:
        """Remember ``value`` (a key already present keeps its first value: entries never change)."""
        cost = self._cost(value) if self._cost is not None else 1
        with self._lock:
            if key in self._data:
                return
            self._data[key] = value
            self._used += cost
            if self._used > self.budget:
                self._evict()

    def _evict(self) -> None:
        data = self._data
        for k in list(data)[: max(1, len(data) // 10)]:
            v = data.pop(k)
            self._used -= self._cost(v) if self._cost is not None else 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()  # in place: ``get`` stays bound to this dict
            self._used = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


class Memos:
    """The named memo tables of one Store. ``memo(name, budget, cost)`` creates a table on first use and
    returns the same one afterwards (the budget and cost of the first call win)."""

    def __init__(self) -> None:
        self._tables: dict[str, Memo[Any, Any]] = {}
        self._lock = threading.Lock()

    def memo(self, name: str, budget: int, cost: Callable[[Any], int] | None = None) -> Memo[Any, Any]:
        table = self._tables.get(name)
        if table is None:
            with self._lock:
                table = self._tables.get(name)
                if table is None:
                    table = self._tables[name] = Memo(budget, cost)
        return table

    def clear(self) -> None:
        """Empty every table (nothing needs it for correctness; memory pressure or a benchmark's cold run)."""
        with self._lock:
            tables = list(self._tables.values())
        for t in tables:
            t.clear()

    def __contains__(self, name: object) -> bool:
        return name in self._tables
