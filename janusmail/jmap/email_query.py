"""Running Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5) against the store.

Shape of a query (all synchronous, on the store's worker threads, in one read snapshot with the Email state
it is reported under):

* a shallow window (position + limit <= SHALLOW, no anchor, position >= 0) is one SQL statement with
  LIMIT/OFFSET; its ``total`` for a plain ``inMailbox`` filter comes from the Mailbox counts;
* anything deeper (large positions, negative positions, anchors) or a ``total`` that would need a full
  count anyway computes the complete ordered id list once and keeps it in a small per-store LRU keyed by
  (account, canonical query, Email state): paging through a large mailbox at an unchanged state then costs
  a slice. A state change simply makes new keys, so the cache is never stale.

/queryChanges: with the old state's list cached, an exact ``diff_query``. Otherwise the change log: every
email changed since the old state (widened to whole threads when thread-dependent conditions or
collapseThreads are in play) is reported removed, and re-added at its new index if it is in the results —
RFC 8620 §5.6 allows such extra removals.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from janusmail.jmap.engine import AddedItem, MethodError, diff_query, window
from janusmail.store.schema import changes, emails

from .email_filter import MUTABLE_KINDS, THREAD_KINDS, SortKey, filter_key, filter_leaves, plain_mailbox
from .email_sql import EmailSql

__all__ = [
    "QueryCache",
    "QuerySpec",
    "cached_mailbox_counts",
    "email_state",
    "run_query",
    "run_query_changes",
    "snapshot",
]

#: Windows ending at or before this index are served by LIMIT/OFFSET; deeper ones from the full list.
SHALLOW = 1000
_MUTABLE_SORTS = frozenset({"hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"})
_THREAD_SORTS = frozenset({"allInThreadHaveKeyword", "someInThreadHaveKeyword"})


@dataclass(frozen=True, slots=True)
class QuerySpec:
    """Everything that determines a query's complete result list."""

    filter: Any
    sort: tuple[SortKey, ...]
    collapse: bool

    @property
    def key(self) -> Any:
        return (filter_key(self.filter), self.sort, self.collapse)

    def mutable(self) -> bool:
        """Whether results can change for an email that still exists (keywords, mailboxes)."""
        kinds = {leaf.kind for leaf in filter_leaves(self.filter)}
        return bool(kinds & MUTABLE_KINDS) or any(k.prop in _MUTABLE_SORTS for k in self.sort)

    def thread_sensitive(self) -> bool:
        """Whether a change to one email can move another email of its thread in or out of the results."""
        kinds = {leaf.kind for leaf in filter_leaves(self.filter)}
        return self.collapse or bool(kinds & THREAD_KINDS) or any(k.prop in _THREAD_SORTS for k in self.sort)


# -- the result cache ---------------------------------------------------------------------------------------


@dataclass
class _Entry:
    state: int
    ids: list[str]


@dataclass
class QueryCache:
    """LRU of complete result lists; each (account, query) keeps its newest state and the one before it
    (the state a client most likely asks /queryChanges from)."""

    max_entries: int = 64
    max_ids: int = 4_000_000
    _lists: OrderedDict[Any, list[_Entry]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Any, state: int) -> list[str] | None:
        with self._lock:
            entries = self._lists.get(key)
            if entries is None:
                return None
            self._lists.move_to_end(key)
            for entry in entries:
                if entry.state == state:
                    return entry.ids
        return None

    def put(self, key: Any, state: int, ids: list[str]) -> None:
        with self._lock:
            entries = [e for e in self._lists.get(key, []) if e.state != state]
            entries.append(_Entry(state, ids))
            entries.sort(key=lambda e: e.state)
            self._lists[key] = entries[-2:]
            self._lists.move_to_end(key)
            total = sum(len(e.ids) for v in self._lists.values() for e in v)
            while self._lists and (len(self._lists) > self.max_entries or total > self.max_ids):
                _, dropped = self._lists.popitem(last=False)
                total -= sum(len(e.ids) for e in dropped)


_CACHES: weakref.WeakKeyDictionary[Any, QueryCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_for(store: Any) -> QueryCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(store)
        if cache is None:
            cache = _CACHES[store] = QueryCache()
        return cache


def cached_mailbox_counts(store: Any, account_id: str, state: int | None = None) -> dict[str, Any]:
    """The store's per-Email-state mailbox counts (shared with Mailbox/get)."""
    return store.mailbox_counts_cached(account_id, state)


# -- snapshots ----------------------------------------------------------------------------------------------


def snapshot(store: Any) -> Any:
    """A read transaction whose statements all see one state (SQLite WAL snapshot; PostgreSQL REPEATABLE
    READ), so the Email state we report is exactly the one the results reflect."""
    conn = store.engine.connect()
    if not store.sqlite:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def email_state(conn: sa.Connection, account_id: str) -> int:
    """The Email type's state: modseq of the newest Email change (what push reports too)."""
    v = conn.execute(
        sa.select(sa.func.max(changes.c.modseq)).where(changes.c.account_id == account_id, changes.c.kind == "Email")
    ).scalar()
    return int(v or 0)


def _full(conn: sa.Connection, sql: EmailSql, spec: QuerySpec) -> list[str]:
    return [r[0] for r in conn.execute(sql.full_list(spec.filter, list(spec.sort), spec.collapse))]


def _full_cached(store: Any, conn: sa.Connection, account_id: str, spec: QuerySpec, state: int) -> list[str]:
    cache = cache_for(store)
    key = (account_id, spec.key)
    ids = cache.get(key, state)
    if ids is None:
        ids = _full(conn, EmailSql(store.sqlite, account_id), spec)
        cache.put(key, state, ids)
    return ids


# -- Email/query ----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class QueryOutcome:
    ids: list[str]
    position: int
    total: int | None
    state: int


def run_query(
    store: Any,
    account_id: str,
    spec: QuerySpec,
    position: int,
    limit: int,
    anchor: str | None,
    anchor_offset: int,
    calculate_total: bool,
) -> QueryOutcome:
    with snapshot(store) as conn, conn.begin():
        state = email_state(conn, account_id)
        cached = cache_for(store).get((account_id, spec.key), state)
        mailbox = plain_mailbox(spec.filter)
        shallow = anchor is None and 0 <= position and position + limit <= SHALLOW
        if cached is None and shallow and (not calculate_total or mailbox is not None):
            sql = EmailSql(store.sqlite, account_id)
            ids = [r[0] for r in conn.execute(sql.window(spec.filter, list(spec.sort), spec.collapse, position, limit))]
            total = None
            if calculate_total:
                counts = cached_mailbox_counts(store, account_id, state).get(mailbox)
                if counts is None:
                    total = 0
                else:
                    total = counts.total_threads if spec.collapse else counts.total_emails
            return QueryOutcome(ids, position, total, state)
        full = cached if cached is not None else _full_cached(store, conn, account_id, spec, state)
    page, start = window(full, position, limit, anchor, anchor_offset)
    return QueryOutcome(page, start, len(full), state)


# -- Email/queryChanges -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class ChangesOutcome:
    old_state: int
    new_state: int
    removed: list[str]
    added: list[AddedItem]
    total: int


def _changed_since(conn: sa.Connection, account_id: str, since: int, state: int, kind: str) -> list[str]:
    rows = conn.execute(
        sa.select(changes.c.object_id)
        .where(
            changes.c.account_id == account_id,
            changes.c.kind == kind,
            changes.c.modseq > since,
            changes.c.modseq <= state,
        )
        .order_by(changes.c.modseq, changes.c.seq)
    )
    return list(dict.fromkeys(r[0] for r in rows))


def _widen_to_threads(conn: sa.Connection, account_id: str, email_ids: list[str], thread_ids: list[str]) -> list[str]:
    """The given emails plus every email of their threads and of the given threads."""
    threads = set(thread_ids)
    for i in range(0, len(email_ids), 500):
        threads.update(
            r[0]
            for r in conn.execute(
                sa.select(emails.c.thread_id).where(
                    emails.c.account_id == account_id, emails.c.id.in_(email_ids[i : i + 500])
                )
            )
        )
    out = dict.fromkeys(email_ids)
    tl = sorted(threads)
    for i in range(0, len(tl), 500):
        for r in conn.execute(
            sa.select(emails.c.id).where(emails.c.account_id == account_id, emails.c.thread_id.in_(tl[i : i + 500]))
        ):
            out.setdefault(r[0])
    return list(out)


def run_query_changes(
    store: Any,
    account_id: str,
    spec: QuerySpec,
    since: int,
    up_to_id: str | None,
    max_changes: int | None,
) -> ChangesOutcome:
    with snapshot(store) as conn, conn.begin():
        state = email_state(conn, account_id)
        if since > state:
            raise MethodError("cannotCalculateChanges", description="unknown query state")
        new_ids = _full_cached(store, conn, account_id, spec, state)
        if since == state:
            return ChangesOutcome(since, state, [], [], len(new_ids))
        changed = _changed_since(conn, account_id, since, state, "Email")
        old_ids = cache_for(store).get((account_id, spec.key), since)
        if old_ids is not None:
            removed, added = diff_query(old_ids, new_ids, changed=changed, up_to_id=up_to_id, mutable=spec.mutable())
            return ChangesOutcome(since, state, removed, added, len(new_ids))
        if spec.thread_sensitive():
            threads = _changed_since(conn, account_id, since, state, "Thread")
            changed = _widen_to_threads(conn, account_id, changed, threads)
    if max_changes is not None and len(changed) > max_changes:
        raise MethodError("tooManyChanges")
    touched = set(changed)
    added = [AddedItem(id_, i) for i, id_ in enumerate(new_ids) if id_ in touched]
    return ChangesOutcome(since, state, changed, added, len(new_ids))
