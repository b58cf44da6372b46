"""``store.search``: every search either door runs, on the store's threads, through the one compiler.

* :meth:`SearchService.mailbox_search` (IMAP SEARCH): metadata-only conditions of a big (or already cached)
  mailbox run over the row cache (:mod:`.memory`), everything else is one SQL query; the door does not know
  which. :meth:`SearchService.mailbox_search_known` also numbers the matches through the session's snapshot
  (:mod:`janusmail.store.numbering`).
* :meth:`SearchService.email_query` / :meth:`SearchService.query_changes` (JMAP Email/query, /queryChanges),
  in one read snapshot with the Email state they are reported under:

  - a shallow window (position + limit <= ``shallow``, no anchor, position >= 0) is one SQL statement with
    LIMIT/OFFSET; its ``total`` for a plain ``InMailbox`` condition comes from the Mailbox counts;
  - anything deeper (large positions, negative positions, anchors) or a ``total`` that would need a full
    count anyway computes the complete ordered id list once and keeps it in :attr:`SearchService.query_cache`
    keyed by (account, query, Email state): paging through a large mailbox at an unchanged state then costs
    a slice. A write makes a new state, so an entry can never be stale, and only the newest two states of a
    query are kept. The list for a new state is the newest older one patched from the change log when few
    emails changed since (:mod:`.result_patch`): a deep page after a new message costs milliseconds, not a
    listing of the whole mailbox.
  - /queryChanges: with the old state's list cached, an exact diff. Otherwise the change log: every email
    changed since the old state (widened to whole threads when thread-dependent conditions or collapsing are
    in play) is reported removed, and re-added at its new index if it is in the results — RFC 8620 §5.6
    allows such extra removals.
* :meth:`SearchService.snippets` (SearchSnippet/get): the index's own text of each email, highlighted with
  :mod:`.highlight` for the positive full-text terms of the same AST.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from janusmail.store.mailbox_rows import MIN_CACHED
from janusmail.store.numbering import in_snapshot
from janusmail.store.rawrows import raw_rows
from janusmail.store.schema import changes, email_search, emails, messages

from . import ast as q
from .compile import FTS, EmailSql, fts_string, mailbox_select, metadata_only, reads_text_index
from .highlight import highlight, highlight_terms, snippet
from .memory import match_columns, run_rows
from .paging import search_page
from .queue import ensure_indexed, waiting
from .result_patch import Ordered, ordered, patch
from .sort import Algorithm, MailboxOrdering

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = ["SHALLOW", "ChangesOutcome", "QueryCache", "QueryOutcome", "SearchError", "SearchService", "Snippet"]

#: Windows ending at or before this index are served by LIMIT/OFFSET; deeper ones from the full list.
SHALLOW = 1000
_CHUNK = 500
#: changes since a cached list's state beyond which the list is made again rather than patched
PATCH_LIMIT = 500
#: snapshots a JMAP query takes at most to find one in which none of the account's mail waits to be indexed
_SETTLE_TRIES = 8


class SearchError(Exception):
    """A query the store cannot answer as asked; ``code`` is the JMAP error type the door reports
    (``anchorNotFound``, ``cannotCalculateChanges``, ``tooManyChanges``)."""

    def __init__(self, code: str, description: str | None = None) -> None:
        super().__init__(description or code)
        self.code = code
        self.description = description


@dataclass(slots=True)
class QueryOutcome:
    ids: list[str]
    position: int
    total: int | None
    state: int


@dataclass(slots=True)
class ChangesOutcome:
    old_state: int
    new_state: int
    removed: list[str]
    #: (email id, index in the new results), lowest index first
    added: list[tuple[str, int]]
    total: int


@dataclass(frozen=True, slots=True)
class Snippet:
    """One SearchSnippet: HTML with ``<mark>`` around matches, None when nothing to show."""

    email_id: str
    subject: str | None
    preview: str | None


# -- the result cache ---------------------------------------------------------------------------------------


@dataclass
class _Entry:
    state: int
    results: Ordered


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
                    return entry.results.ids
        return None

    def before(self, key: Any, state: int) -> tuple[int, Ordered] | None:
        """The newest cached state of ``key`` older than ``state``, and its results: the list to patch."""
        with self._lock:
            older = [e for e in self._lists.get(key, []) if e.state < state]
        return (older[-1].state, older[-1].results) if older else None

    def put(self, key: Any, state: int, results: Ordered) -> None:
        with self._lock:
            entries = [e for e in self._lists.get(key, []) if e.state != state]
            entries.append(_Entry(state, results))
            entries.sort(key=lambda e: e.state)
            self._lists[key] = entries[-2:]
            self._lists.move_to_end(key)
            total = sum(len(e.results.ids) for v in self._lists.values() for e in v)
            while self._lists and (len(self._lists) > self.max_entries or total > self.max_ids):
                _, dropped = self._lists.popitem(last=False)
                total -= sum(len(e.results.ids) for e in dropped)

    def clear(self) -> None:
        with self._lock:
            self._lists.clear()


# -- list arithmetic (RFC 8620 §5.5, §5.6) ------------------------------------------------------------------


def window(ids: Sequence[str], position: int, limit: int | None, anchor: str | None = None,
           anchor_offset: int = 0) -> tuple[list[str], int]:
    """Slice a full result list as /query defines: ``(window_ids, resolved_position)``. Negative positions
    count from the end and clamp at 0; an anchor overrides the position."""
    total = len(ids)
    if anchor is not None:
        try:
            index = list(ids).index(anchor)
        except ValueError:
            raise SearchError("anchorNotFound") from None
        start = max(0, index + anchor_offset)
    elif position < 0:
        start = max(0, total + position)
    else:
        start = position
    end = total if limit is None else start + limit
    return list(ids[start:end]), start


def diff_lists(old_ids: Sequence[str], new_ids: Sequence[str], *, changed: Sequence[str] = (),
               up_to_id: str | None = None, mutable: bool = True) -> tuple[list[str], list[tuple[str, int]]]:
    """``removed`` and ``added`` between two complete result lists (RFC 8620 §5.6): changed ids still present
    are removed and re-added when the query uses mutable properties; with only immutable ones, additions past
    ``up_to_id`` are left out."""
    old_set = set(old_ids)
    new_index = {id_: i for i, id_ in enumerate(new_ids)}
    removed = [id_ for id_ in old_ids if id_ not in new_index]
    moved: set[str] = set()
    if mutable:
        moved = {id_ for id_ in changed if id_ in new_index and id_ in old_set}
        removed.extend(id_ for id_ in old_ids if id_ in moved)
    added = [(id_, i) for i, id_ in enumerate(new_ids) if id_ not in old_set or id_ in moved]
    if not mutable and up_to_id is not None and up_to_id in new_index:
        cut = new_index[up_to_id]
        added = [a for a in added if a[1] <= cut]
    return removed, added


# -- the service ----------------------------------------------------------------------------------------------


class SearchService:
    """Searches for both doors; owns the Email/query result cache of this store instance."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.query_cache = QueryCache()
        #: windows ending at or before this index use LIMIT/OFFSET (tests lower it to force the full list)
        self.shallow = SHALLOW
        #: IMAP SORT and THREAD (:mod:`.sort`), with its per-email sort key cache
        self.ordering = MailboxOrdering(store)

    def index_queued_for(self, condition: q.Condition | None) -> bool:
        """Before a search whose condition reads the full-text indexes (``compile.reads_text_index``): index
        the mail still queued for them (SQLite, :mod:`.queue`), so the search sees every email stored before it
        began. Whether it did (other searches never wait for the writer)."""
        if self._store.sqlite and condition is not None and reads_text_index(condition):
            ensure_indexed(self._store)
            return True
        return False

    @contextlib.contextmanager
    def _settled(self, account_id: str, condition: q.Condition) -> Iterator[tuple[sa.Connection, int]]:
        """A read snapshot and the account's Email state in it, in which none of the account's mail still waits
        for the full-text indexes when the condition reads them: JMAP reports results under that state, and
        /queryChanges since it would never report mail the state includes but the indexes missed. Mail stored
        between the indexing and the snapshot makes it index and look again; a few misses in a row (mail
        arriving faster than that) answer ``serverUnavailable``, which a client retries."""
        for _ in range(_SETTLE_TRIES):
            text = self.index_queued_for(condition)
            with self._snapshot() as conn, conn.begin():
                state = self._email_state(conn, account_id)
                if text and waiting(conn, account_id):
                    continue
                yield conn, state
                return
        raise SearchError("serverUnavailable", "new mail kept arriving while the search indexed it; try again")

    # -- IMAP ------------------------------------------------------------------------------------------------

    def mailbox_search(self, account_id: str, mailbox_id: str, condition: q.Condition, *,
                       below_uid: int | None = None, size_hint: int = 0) -> list[tuple[int, int]]:
        """``(uid, modseq)`` of the mailbox's memberships matching ``condition``, ascending UID, those below
        ``below_uid`` only. ``size_hint`` (the caller's message count) lets a big mailbox's metadata-only
        search run over the shared row cache instead of SQL."""
        store = self._store
        rows_cache = store.mailbox_rows
        if metadata_only(condition) and (rows_cache.cached(mailbox_id) or size_hint >= MIN_CACHED):
            box = rows_cache.get(mailbox_id, size_hint)
            if box is not None:
                hits = run_rows(box, condition, below_uid)
                if hits is not None:
                    return hits
        self.index_queued_for(condition)
        stmt = mailbox_select(condition, account_id=account_id, mailbox_id=mailbox_id, sqlite=store.sqlite,
                              below_uid=below_uid)
        with store.engine.connect() as conn:
            return raw_rows(conn, stmt)

    def mailbox_search_known(self, account_id: str, mailbox_id: str, condition: q.Condition, known: Sequence[int],
                             *, below_uid: int | None = None, size_hint: int = 0
                             ) -> tuple[list[int], list[int], list[int]]:
        """IMAP SEARCH through a session's snapshot ``known`` (its ascending UIDs; give it a copy the session will
        not change meanwhile): (UIDs, sequence numbers, MODSEQs) of the matches it knows, ascending (the
        matches of :meth:`mailbox_search`, numbered by :func:`janusmail.store.numbering.in_snapshot`).

        Why here: numbering 10k matches through a 100k snapshot cost as much as the search. When the search
        runs over the row cache and the snapshot is exactly the cached mailbox below ``below_uid`` (one array
        comparison says so), a match's place among the rows is its sequence number."""
        rows_cache = self._store.mailbox_rows
        if metadata_only(condition) and (rows_cache.cached(mailbox_id) or size_hint >= MIN_CACHED):
            box = rows_cache.get(mailbox_id, size_hint)
            columns = match_columns(box, condition, below_uid) if box is not None else None
            if box is not None and columns is not None:
                uids, places, modseqs = columns
                if box.is_snapshot(known, below_uid):
                    return uids, places, modseqs
                return in_snapshot(list(zip(uids, modseqs, strict=True)), known)
        return in_snapshot(self.mailbox_search(account_id, mailbox_id, condition, below_uid=below_uid,
                                               size_hint=size_hint), known)

    def mailbox_search_page(self, account_id: str, mailbox_id: str, condition: q.Condition, first: int, last: int,
                            *, below_uid: int | None = None, size_hint: int = 0,
                            count: bool = False) -> tuple[list[tuple[int, int]], int | None]:
        """IMAP ``SEARCH RETURN (PARTIAL first:last)`` (RFC 9394): ``(uid, modseq)`` of only the matches at those
        positions (negative: from the last match), ascending UID, and the number of all matches when ``count``;
        the search stops after the window where it can (:mod:`.paging`)."""
        self.index_queued_for(condition)
        return search_page(self._store, account_id, mailbox_id, condition, first, last, below_uid=below_uid,
                           size_hint=size_hint, count=count)

    def mailbox_sort(self, account_id: str, mailbox_id: str, condition: q.Condition, sort: Sequence[q.SortKey],
                     *, below_uid: int | None = None, size_hint: int = 0,
                     with_modseq: bool = False) -> tuple[list[int], list[int] | None]:
        """IMAP SORT: the matches' UIDs in sort order, and their MODSEQs if asked (RFC 5256; :mod:`.sort`)."""
        self.index_queued_for(condition)
        return self.ordering.sort(account_id, mailbox_id, condition, sort, below_uid=below_uid, size_hint=size_hint,
                                  with_modseq=with_modseq)

    def mailbox_sort_known(self, account_id: str, mailbox_id: str, condition: q.Condition,
                           sort: Sequence[q.SortKey], known: Sequence[int], *, below_uid: int | None = None,
                           size_hint: int = 0, with_modseq: bool = False
                           ) -> tuple[list[int], list[int] | None, list[int] | None]:
        """IMAP SORT for a session whose snapshot is ``known`` (a copy it will not change meanwhile): the UIDs in
        sort order, their sequence numbers when the store can give them for free (the snapshot is the row
        cache's mailbox; None: the caller numbers them), and their MODSEQs if asked."""
        self.index_queued_for(condition)
        uids, modseqs, seqs = self.ordering.sort_numbered(account_id, mailbox_id, condition, sort,
                                                          below_uid=below_uid, size_hint=size_hint,
                                                          with_modseq=with_modseq, known=known)
        return uids, seqs, modseqs

    def mailbox_thread(self, account_id: str, mailbox_id: str, condition: q.Condition, algorithm: Algorithm,
                       *, below_uid: int | None = None, size_hint: int = 0) -> list:
        """IMAP THREAD: trees of UIDs (:class:`janusmail.store.thread_tree.ThreadNode`; RFC 5256)."""
        self.index_queued_for(condition)
        return self.ordering.thread(account_id, mailbox_id, condition, algorithm, below_uid=below_uid,
                                    size_hint=size_hint)

    # -- JMAP Email/query ---------------------------------------------------------------------------------------

    def _snapshot(self) -> sa.Connection:
        """A read transaction whose statements all see one state (SQLite WAL snapshot; PostgreSQL REPEATABLE
        READ), so the Email state reported is exactly the one the results reflect."""
        conn = self._store.engine.connect()
        if not self._store.sqlite:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        return conn

    @staticmethod
    def _email_state(conn: sa.Connection, account_id: str) -> int:
        """The Email type's state: modseq of the newest Email change (what push reports too)."""
        v = conn.execute(sa.select(sa.func.max(changes.c.modseq)).where(
            changes.c.account_id == account_id, changes.c.kind == "Email")).scalar()
        return int(v or 0)

    def _full(self, conn: sa.Connection, account_id: str, query: q.EmailQuery, state: int) -> list[str]:
        """Every result's id in order at ``state``: cached, else the cached list of an older state patched
        from the change log (:mod:`.result_patch`), else listed by the database."""
        key = (account_id, query)
        ids = self.query_cache.get(key, state)
        if ids is not None:
            return ids
        sql = EmailSql(self._store.sqlite, account_id)
        sort = sql.effective_sort(query.sort)
        found = self._patched(conn, sql, query, state, sort)
        if found is None:
            found = ordered(raw_rows(conn, sql.keyed_list(query)), sort, self._store.sqlite)
        self.query_cache.put(key, state, found)
        return found.ids

    def _patched(self, conn: sa.Connection, sql: EmailSql, query: q.EmailQuery, state: int,
                 sort: list[q.SortKey]) -> Ordered | None:
        """The cached results of an older state brought up to ``state``, or None (nothing to start from, too
        many changes since, or a patch that could not be exact)."""
        account_id = sql.account_id
        base = self.query_cache.before((account_id, query), state)
        if base is None or base[1].cols is None:
            return None
        since, old = base
        changed = self._changed_few(conn, account_id, since, state, "Email")
        if changed is None:
            return None
        if query.thread_sensitive():
            threads = self._changed_few(conn, account_id, since, state, "Thread")
            if threads is None:
                return None
            changed = self._widen_to_threads(conn, account_id, changed, threads)
            if len(changed) > PATCH_LIMIT:
                return None
        rows = raw_rows(conn, sql.keyed_list(query, only=changed)) if changed else []
        return patch(old, changed, rows, sort, self._store.sqlite)

    def email_query(self, account_id: str, query: q.EmailQuery, position: int = 0, limit: int | None = None,
                    anchor: str | None = None, anchor_offset: int = 0,
                    calculate_total: bool = False) -> QueryOutcome:
        """One window of the results (RFC 8620 §5.5 positions and anchors), the total when asked for, and the
        Email state the results belong to. Raises :class:`SearchError` ``anchorNotFound``."""
        with self._settled(account_id, query.condition) as (conn, state):
            cached = self.query_cache.get((account_id, query), state)
            mailbox = query.condition.mailbox_id if isinstance(query.condition, q.InMailbox) else None
            shallow = (anchor is None and limit is not None and 0 <= position
                       and position + limit <= self.shallow)
            if cached is None and shallow and (not calculate_total or mailbox is not None):
                sql = EmailSql(self._store.sqlite, account_id)
                ids = [r[0] for r in conn.execute(sql.window(query, position, limit))]
                total = None
                if calculate_total:
                    counts = self._store.mailboxes.counts(account_id, [mailbox]).get(mailbox)
                    if counts is None:
                        total = 0
                    else:
                        total = counts.total_threads if query.collapse else counts.total_emails
                return QueryOutcome(ids, position, total, state)
            full = cached if cached is not None else self._full(conn, account_id, query, state)
        page, start = window(full, position, limit, anchor, anchor_offset)
        return QueryOutcome(page, start, len(full), state)

    @staticmethod
    def _changes(account_id: str, since: int, state: int, kind: str) -> sa.Select:
        return (sa.select(changes.c.object_id)
                .where(changes.c.account_id == account_id, changes.c.kind == kind, changes.c.modseq > since,
                       changes.c.modseq <= state)
                .order_by(changes.c.modseq, changes.c.seq))

    def _changed_since(self, conn: sa.Connection, account_id: str, since: int, state: int, kind: str) -> list[str]:
        """The ids of ``kind`` changed in (since, state], first change first."""
        return list(dict.fromkeys(r[0] for r in conn.execute(self._changes(account_id, since, state, kind))))

    def _changed_few(self, conn: sa.Connection, account_id: str, since: int, state: int, kind: str
                     ) -> list[str] | None:
        """:meth:`_changed_since`, or None when the log holds more than ``PATCH_LIMIT`` changes in that range (a
        cheap bound that reads no further; they may name fewer objects)."""
        rows = [r[0] for r in conn.execute(self._changes(account_id, since, state, kind).limit(PATCH_LIMIT + 1))]
        return None if len(rows) > PATCH_LIMIT else list(dict.fromkeys(rows))

    @staticmethod
    def _widen_to_threads(conn: sa.Connection, account_id: str, email_ids: list[str],
                          thread_ids: list[str]) -> list[str]:
        """The given emails plus every email of their threads and of the given threads.

        By primary key and the thread index, the account checked here, not in SQL: with ``account_id = ?``
        beside the ``IN`` list SQLite may walk the account's whole index instead (see ``Emails.update_each``)."""
        threads = set(thread_ids)
        for i in range(0, len(email_ids), _CHUNK):
            threads.update(r[0] for r in conn.execute(sa.select(emails.c.thread_id, emails.c.account_id).where(
                emails.c.id.in_(email_ids[i : i + _CHUNK]))) if r[1] == account_id)
        out = dict.fromkeys(email_ids)
        tl = sorted(threads)
        for i in range(0, len(tl), _CHUNK):
            for r in conn.execute(sa.select(emails.c.id, emails.c.account_id).where(
                    emails.c.thread_id.in_(tl[i : i + _CHUNK]))):
                if r[1] == account_id:
                    out.setdefault(r[0])
        return list(out)

    def query_changes(self, account_id: str, query: q.EmailQuery, since: int, up_to_id: str | None = None,
                      max_changes: int | None = None) -> ChangesOutcome:
        """What changed in the results since state ``since``. Raises :class:`SearchError`
        ``cannotCalculateChanges`` (unknown state) or ``tooManyChanges``."""
        with self._settled(account_id, query.condition) as (conn, state):
            if since > state:
                raise SearchError("cannotCalculateChanges", "unknown query state")
            new_ids = self._full(conn, account_id, query, state)
            if since == state:
                return ChangesOutcome(since, state, [], [], len(new_ids))
            changed = self._changed_since(conn, account_id, since, state, "Email")
            old_ids = self.query_cache.get((account_id, query), since)
            if old_ids is not None:
                removed, added = diff_lists(old_ids, new_ids, changed=changed, up_to_id=up_to_id,
                                            mutable=query.mutable())
                return ChangesOutcome(since, state, removed, added, len(new_ids))
            if query.thread_sensitive():
                threads = self._changed_since(conn, account_id, since, state, "Thread")
                changed = self._widen_to_threads(conn, account_id, changed, threads)
        if max_changes is not None and len(changed) > max_changes:
            raise SearchError("tooManyChanges")
        touched = set(changed)
        added = [(id_, i) for i, id_ in enumerate(new_ids) if id_ in touched]
        return ChangesOutcome(since, state, changed, added, len(new_ids))

    # -- SearchSnippet ----------------------------------------------------------------------------------------

    @staticmethod
    def _visible(conn: sa.Connection, account_id: str, ids: list[str]) -> set[str]:
        """Which ids are emails of the account with at least one visible membership."""
        out: set[str] = set()
        for i in range(0, len(ids), _CHUNK):
            # The account is checked in Python: given to SQLite, it would walk the account's index instead.
            stmt = (sa.select(messages.c.email_id, emails.c.account_id)
                    .select_from(messages.join(emails, emails.c.id == messages.c.email_id))
                    .where(messages.c.email_id.in_(ids[i : i + _CHUNK]), messages.c.deleted.is_(False)))
            out.update(email_id for email_id, acct in conn.execute(stmt) if acct == account_id)
        return out

    def _texts(self, conn: sa.Connection, account_id: str, ids: list[str],
               terms: list[str]) -> dict[str, tuple[str, str]]:
        """email id -> (subject, body text) from the index, for the emails whose index text has any term."""
        out: dict[str, tuple[str, str]] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            if self._store.sqlite:
                # MATCH drives the lookup (email_id is not indexed in the FTS table).
                match = " OR ".join(fts_string(t) for t in terms)
                stmt = sa.select(FTS.c.email_id, FTS.c.subject, FTS.c.body).where(
                    sa.literal_column("email_fts").op("MATCH")(match), FTS.c.email_id.in_(chunk))
            else:
                s = email_search
                stmt = sa.select(s.c.email_id, s.c.subject, s.c.body).where(
                    s.c.email_id.in_(chunk), s.c.account_id == account_id)
            for email_id, subject, body in conn.execute(stmt):
                out[email_id] = (subject or "", body or "")
        return out

    def snippets(self, account_id: str, email_ids: Sequence[str],
                 condition: q.Condition) -> tuple[list[Snippet], list[str]]:
        """A snippet per visible email among ``email_ids`` (in order, duplicates once) and the ids not found."""
        ids = list(dict.fromkeys(email_ids))
        subject_terms, body_terms = highlight_terms(condition)
        all_terms = list(dict.fromkeys(subject_terms + body_terms))
        if all_terms:
            ensure_indexed(self._store)
        with self._store.engine.connect() as conn:
            found = self._visible(conn, account_id, ids)
            present = [i for i in ids if i in found]
            texts = self._texts(conn, account_id, present, all_terms) if (all_terms and present) else {}
        out = []
        for email_id in present:
            subject, body = texts.get(email_id, ("", ""))
            out.append(Snippet(email_id, highlight(subject, subject_terms) if subject_terms else None,
                               snippet(body, body_terms) if body_terms else None))
        return out, [i for i in ids if i not in found]
