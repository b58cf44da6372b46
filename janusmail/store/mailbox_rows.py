"""A per-store cache (``Store.mailbox_rows``) of per-message metadata rows of large mailboxes, kept exact by MODSEQ.

Why: ``UID FETCH 1:* (UID FLAGS)`` is what every client sends on (re)connect, and on SQLite the join of 100k
memberships with their emails costs ~0.5 s, almost all of it in random lookups of wide ``emails`` rows. The
rows hardly change between two such FETCHes, and the store says exactly what changed: every write stamps the
touched memberships with a new ``messages.modseq`` and raises ``mailboxes.highest_modseq`` (expunges leave a
``vanished`` row), which is also what IMAP CONDSTORE/QRESYNC rely on. So a cached mailbox is brought up to
date with two indexed queries bounded by what changed since the cached HIGHESTMODSEQ, and the cache is shared
by every session served by this Store instance (one server node) (many clients of one account watch the same INBOX).

Why this is exact: writers of one account are serialised (the account row lock) and commit in modseq order,
so once HIGHESTMODSEQ = H is visible, every change with modseq <= H is visible too. The refresh reads H first
and then the rows with modseq > cached H, so a change that commits in between is at worst read twice.

Only metadata lives here (the same tuples as :meth:`janusmail.store.message_views.MessageViews.fetch_rows`
returns without the cache/blob columns; it decides when a FETCH is served from here); body fetches always go to the database. Memory is bounded by a total row budget with
least-recently-used mailboxes dropped first.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from .rawrows import raw_rows
from .schema import email_keywords, emails, mailboxes, messages, vanished

__all__ = ["CACHE", "DELETED", "DELETED_BIT", "EMAIL_ID", "FLAGS", "MIN_CACHED", "MODSEQ", "RECEIVED", "SIZE",
           "SYSTEM_FLAG_BITS", "THREAD_ID", "UID", "MailboxRows", "Row", "RowCache", "keywords_by_email", "keywords_of",
           "keywords_select", "row_bits"]

#: The layout of one message row (plain tuples from the driver): what FETCH renders and metadata SEARCH tests.
#: Rows of the cache stop at THREAD_ID; a FETCH that needs part offsets appends CACHE (and blob columns).
UID, DELETED, MODSEQ, EMAIL_ID, FLAGS, RECEIVED, SIZE, THREAD_ID, CACHE = range(9)
Row = tuple

#: The byte per row of :attr:`MailboxRows.bits`: the system flags as ``emails.flags`` has them (\\Seen 1,
#: \\Answered 2, \\Flagged 4, \\Draft 8) and the membership's \\Deleted.
SYSTEM_FLAG_BITS = 0x0F
DELETED_BIT = 0x10

#: A mailbox smaller than this is never cached (a direct query is as fast).
MIN_CACHED = 2000
#: Refresh incrementally while the delta is below this fraction of the mailbox; reload beyond.
DELTA_FRACTION = 0.25


def row_bits(rows: list[tuple]) -> bytes:
    """One byte per row: its system flags and \\Deleted (:data:`SYSTEM_FLAG_BITS`, :data:`DELETED_BIT`)."""
    return bytes([(r[FLAGS] & SYSTEM_FLAG_BITS) | (DELETED_BIT if r[DELETED] else 0) for r in rows])


@dataclass(frozen=True)
class MailboxRows:
    """An immutable snapshot: rows ascend by UID; ``keywords`` maps email id -> sorted display spellings.

    Copies of columns, kept beside the rows for searches that must not walk 100k tuples in Python
    (:mod:`janusmail.store.search.memory`): ``bits``, a byte per row (:func:`row_bits`), which flag searches
    (UNSEEN, DELETED, FLAGGED and their combinations) test a whole mailbox at a time with ``bytes.translate``
    and integer bit operations; ``uid_array``, the UIDs as ``array('q')``, which compares with a session's
    snapshot (the same type) in one ``memcmp`` to tell whether a row's place is its sequence number; and
    ``modseq_array``. Reading a match's UID and MODSEQ from these contiguous arrays instead of from its row tuple
    matters: 10k tuples spread over the heap cost ~2 ms of cache misses, the arrays ~0.2 ms."""

    mailbox_id: str
    highest_modseq: int
    uidnext: int
    uids: list[int]
    rows: list[tuple]
    keywords: dict[str, tuple[str, ...]]
    bits: bytes
    uid_array: array
    modseq_array: array

    def spans(self, ranges: list[tuple[int, int]], *, below_uid: int | None = None) -> list[tuple[int, int]]:
        """Places ``[a, b)`` in :attr:`rows`, ascending and disjoint, of the rows whose UID is in ``ranges`` (and
        < ``below_uid``)."""
        out: list[tuple[int, int]] = []
        uids = self.uids
        for lo, hi in sorted(ranges):
            if below_uid is not None:
                hi = min(hi, below_uid - 1)
            a, b = bisect_left(uids, lo), bisect_right(uids, hi)
            if out and a < out[-1][1]:
                a = out[-1][1]
            if a < b:
                out.append((a, b))
        return out

    def select(self, ranges: list[tuple[int, int]], *, below_uid: int | None = None,
               changedsince: int | None = None) -> list[tuple]:
        """Rows whose UID is in ``ranges`` (and < ``below_uid``, and MODSEQ > ``changedsince``)."""
        out: list[tuple] = []
        rows = self.rows
        for a, b in self.spans(ranges, below_uid=below_uid):
            out += rows[a:b]
        if changedsince is not None:
            out = [r for r in out if r[2] > changedsince]
        return out

    def is_snapshot(self, known: Any, below_uid: int | None) -> bool:
        """Is ``known`` (an IMAP session's UIDs) exactly this mailbox's UIDs below ``below_uid``? Then a row's
        place + 1 is its sequence number for that session. One ``memcmp`` when ``known`` is an ``array('q')``;
        anything else is never taken for it."""
        n = len(self.uids) if below_uid is None else bisect_left(self.uids, below_uid)
        if not isinstance(known, array) or known.typecode != self.uid_array.typecode or len(known) != n:
            return False
        return known == (self.uid_array if n == len(self.uid_array) else self.uid_array[:n])


def _row_select() -> Any:
    m, e = messages, emails
    return (sa.select(m.c.uid, m.c.deleted, m.c.modseq, e.c.id, e.c.flags, e.c.received_at, e.c.size,
                      e.c.thread_id)
            .select_from(m.join(e, e.c.id == m.c.email_id)))


def keywords_select(where: list[Any]) -> sa.Select:
    """(email id, display spelling) of the keywords of the memberships matching ``where``."""
    m = messages
    return (sa.select(email_keywords.c.email_id, email_keywords.c.display).distinct()
            .select_from(email_keywords.join(m, m.c.email_id == email_keywords.c.email_id)).where(*where))


def keywords_by_email(rows: list[tuple]) -> dict[str, tuple[str, ...]]:
    """Email id -> sorted display spellings, from :func:`keywords_select`'s rows."""
    acc: dict[str, list[str]] = {}
    for email_id, display in rows:
        acc.setdefault(email_id, []).append(display)
    return {k: tuple(sorted(v)) for k, v in acc.items()}


def keywords_of(conn: sa.Connection, where: list[Any]) -> dict[str, tuple[str, ...]]:
    """Email id -> sorted display spellings of its keywords, for the memberships matching ``where`` (only
    emails that have keywords). Shared with :mod:`.message_views` so both read keywords the same way."""
    return keywords_by_email(raw_rows(conn, keywords_select(where)))


def _without(old: MailboxRows, gone: set[int]) -> tuple[list[int], list[tuple], bytearray, array, array]:
    """Fresh copies of ``old``'s columns without the UIDs in ``gone``: slices between the removed places (found by
    bisection), so an expunge of a few messages costs a few copies of memory, not a Python pass over every row."""
    uids = old.uids
    at = sorted(i for u in gone if (i := bisect_left(uids, u)) < len(uids) and uids[i] == u)
    if not at:
        return list(uids), list(old.rows), bytearray(old.bits), old.uid_array[:], old.modseq_array[:]
    keep = list(zip([0] + [i + 1 for i in at], at + [len(uids)], strict=True))
    return (_joined(uids, keep), _joined(old.rows, keep), bytearray(b"".join(old.bits[a:b] for a, b in keep)),
            _joined_array(old.uid_array, keep), _joined_array(old.modseq_array, keep))


def _joined(items: list, spans: list[tuple[int, int]]) -> list:
    out: list = []
    for a, b in spans:
        out += items[a:b]
    return out


def _joined_array(items: array, spans: list[tuple[int, int]]) -> array:
    out = array(items.typecode)
    for a, b in spans:
        out += items[a:b]
    return out


class RowCache:
    """Mailbox id -> :class:`MailboxRows`, refreshed on every use (see the module docstring)."""

    def __init__(self, engine: sa.Engine, max_rows: int = 400_000) -> None:
        self.engine = engine
        self.max_rows = max_rows
        self._boxes: OrderedDict[str, MailboxRows] = OrderedDict()
        self._lock = threading.Lock()
        self._box_locks: dict[str, threading.Lock] = {}
        self.loads = 0
        self.refreshes = 0

    def cached(self, mailbox_id: str) -> bool:
        return mailbox_id in self._boxes

    def peek(self, mailbox_id: str) -> MailboxRows | None:
        """The rows as last read, without bringing them up to date (no query): the caller compares their
        ``highest_modseq``/``uidnext`` with the mailbox row it read."""
        return self._boxes.get(mailbox_id)

    def clear(self) -> None:
        with self._lock:
            self._boxes.clear()

    def get(self, mailbox_id: str, size_hint: int) -> MailboxRows | None:
        """The up-to-date rows of a mailbox, or None when caching it is not worth it (small mailbox, or a
        mailbox bigger than the whole budget). Synchronous: call on a worker thread."""
        if size_hint < MIN_CACHED or size_hint > self.max_rows:
            return None
        with self._lock:
            box_lock = self._box_locks.setdefault(mailbox_id, threading.Lock())
        with box_lock:
            with self.engine.connect() as conn, conn.begin():
                head = conn.execute(sa.select(mailboxes.c.highest_modseq, mailboxes.c.uidnext)
                                    .where(mailboxes.c.id == mailbox_id)).first()
                if head is None:
                    self._drop(mailbox_id)
                    return None
                hm, uidnext = int(head[0]), int(head[1])
                old = self._boxes.get(mailbox_id)
                if old is not None and old.highest_modseq == hm and old.uidnext == uidnext:
                    fresh = old
                elif old is not None:
                    fresh = self._refresh(conn, old, hm, uidnext)
                else:
                    fresh = self._load(conn, mailbox_id, hm, uidnext)
            self._keep(fresh)
            return fresh

    def _load(self, conn: sa.Connection, mailbox_id: str, hm: int, uidnext: int) -> MailboxRows:
        self.loads += 1
        where = [messages.c.mailbox_id == mailbox_id]
        rows = raw_rows(conn, _row_select().where(*where).order_by(messages.c.uid))
        kws = keywords_of(conn, where)
        uids = [r[0] for r in rows]
        return MailboxRows(mailbox_id, hm, uidnext, uids, rows, kws, row_bits(rows), array("q", uids),
                           array("q", [r[MODSEQ] for r in rows]))

    def _refresh(self, conn: sa.Connection, old: MailboxRows, hm: int, uidnext: int) -> MailboxRows:
        where = [messages.c.mailbox_id == old.mailbox_id, messages.c.modseq > old.highest_modseq]
        delta = raw_rows(conn, _row_select().where(*where).order_by(messages.c.uid))
        if len(delta) > DELTA_FRACTION * max(len(old.rows), 1):
            return self._load(conn, old.mailbox_id, hm, uidnext)
        self.refreshes += 1
        gone = {int(u) for (u,) in raw_rows(conn, sa.select(vanished.c.uid).where(
            vanished.c.mailbox_id == old.mailbox_id, vanished.c.modseq > old.highest_modseq))}
        kws = dict(old.keywords)
        if delta:
            fresh_kws = keywords_of(conn, where)
            for r in delta:
                eid = r[3]
                if eid in fresh_kws:
                    kws[eid] = fresh_kws[eid]
                else:
                    kws.pop(eid, None)
        uids, rows, bits, uid_array, modseq_array = _without(old, gone)
        for r in delta:
            u = r[0]
            i = bisect_left(uids, u)
            if i < len(uids) and uids[i] == u:
                rows[i] = r
                bits[i] = row_bits([r])[0]
                modseq_array[i] = r[MODSEQ]
            elif i == len(uids):
                uids.append(u)
                rows.append(r)
                bits += row_bits([r])
                uid_array.append(u)
                modseq_array.append(r[MODSEQ])
            else:  # cannot happen (UIDs only grow) but stay correct if it does
                uids.insert(i, u)
                rows.insert(i, r)
                bits[i:i] = row_bits([r])
                uid_array.insert(i, u)
                modseq_array.insert(i, r[MODSEQ])
        return MailboxRows(old.mailbox_id, hm, uidnext, uids, rows, kws, bytes(bits), uid_array, modseq_array)

    def _keep(self, box: MailboxRows) -> None:
        with self._lock:
            self._boxes[box.mailbox_id] = box
            self._boxes.move_to_end(box.mailbox_id)
            total = sum(len(b.rows) for b in self._boxes.values())
            while total > self.max_rows and len(self._boxes) > 1:
                _, dropped = self._boxes.popitem(last=False)
                total -= len(dropped.rows)

    def _drop(self, mailbox_id: str) -> None:
        with self._lock:
            self._boxes.pop(mailbox_id, None)

