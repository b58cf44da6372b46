"""Typed reads of messages in a mailbox, for a door that shows a mailbox as a numbered list (IMAP).

``store.messages`` (:class:`MessageViews`) answers with plain data — tuples, lists, arrays, dataclasses — so
the door renders without knowing tables, SQL or the row cache:

* :meth:`MessageViews.fetch_rows`: the rows of one FETCH (or of the read-back after STORE), with keywords,
  MIME cache and blob locations as asked; served from the row cache (:mod:`.mailbox_rows`) when that is
  cheaper, which only the store can judge;
* :meth:`MessageViews.mailbox_snapshot`: what SELECT/EXAMINE shows (UID list, counters, keywords in use),
  remembered per mailbox content so a warm SELECT reads one row (:mod:`.mailbox_snapshots`);
* :meth:`MessageViews.mailbox_delta`: what changed since a session's last look (new UIDs, vanished UIDs,
  flag changes), in one read;
* :meth:`MessageViews.flag_changes`, :meth:`MessageViews.vanished_uids`: CONDSTORE/QRESYNC reads;
* :meth:`MessageViews.first_unseen`, :meth:`MessageViews.recent_counts`: IMAP4rev1's ``[UNSEEN n]`` and
  STATUS RECENT;
* :attr:`MessageViews.render_cache`: per-Store memo tables the door's renderers fill (see :mod:`.memo`).

Rows follow the layout of :mod:`.mailbox_rows` (``UID, DELETED, MODSEQ, EMAIL_ID, FLAGS, RECEIVED, SIZE,
THREAD_ID`` then, when asked, the MIME cache and the blob columns). Every method is synchronous (call it
through ``store.call``) and each answers from one connection, so the door needs one thread hop per command.
The queries are the ones the IMAP code ran before they moved here (bulk reads through :func:`.rawrows.raw_rows`,
UID ranges as ``BETWEEN``, no per-message query).

The reads every command may make (SELECT's snapshot, the catch-up after a command) are statements built once,
at import, with bound parameters: SQLAlchemy then neither rebuilds the expression nor recomputes its cache key
per call, which cost more than the query itself (a grouped count built per call: ~0.75 ms of Python; prebuilt:
~0.09 ms); FETCH's statements, whose shape varies, are compiled once per shape (:mod:`.sqltext`). Issue 10
item 0, measured with ``bench/command_cost.py``.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from . import mailbox_rows
from .mailbox_rows import CACHE, EMAIL_ID, UID, Row
from .mailbox_snapshots import Shown, SnapshotCache, advance, keyword_displays, merge_keywords
from .memo import Memos
from .model import BlobLocation
from .numbering import number_rows
from .rawrows import raw_rows, raw_scalars
from .schema import FLAG_SEEN, blobs, email_keywords, emails, mailboxes, messages, vanished
from .sqltext import SqlText
from .uidranges import UidRanges, bound_condition, bound_params, uid_condition

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = ["FetchRows", "FlagChange", "MailboxChanges", "MailboxDelta", "MailboxSnapshot", "MessageViews"]


@dataclass
class FetchRows:
    """The rows of one FETCH (ascending UID) and what rendering needs besides them: ``keywords`` maps email id
    to its sorted keyword spellings (only emails that have some), ``locations`` email id to its message bytes
    (when ``blob`` was asked)."""

    rows: list[Row]
    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    locations: dict[str, BlobLocation] = field(default_factory=dict)
    #: UID -> save date (epoch seconds) of each membership, when ``saved`` was asked (IMAP SAVEDATE, RFC 8514)
    saved: dict[int, int] = field(default_factory=dict)
    #: with ``known`` (an IMAP session's snapshot): the rows are only those it holds, and these are their
    #: sequence numbers
    seqs: list[int] | None = None


def _numbered(data: FetchRows, known: Sequence[int] | None) -> FetchRows:
    if known is not None:
        data.rows, data.seqs = number_rows(data.rows, known)
    return data


#: At most this many messages covered, :meth:`MessageViews.fetch_rows` reads SQL even when the mailbox's rows are
#: cached: a few primary-key reads cost less than bringing the cache up to date, and never wait for another
#: thread's load of it (such reads run on the event loop's thread, ``Store.read_inline``; IMAP FETCH's INLINE_ROWS)
SQL_ROWS = 64
#: Above this many messages, reading a mailbox's whole UID list (a SELECT of a mailbox whose snapshot is not cached)
#: leaves a ``Store.read_inline`` read for a reader thread: 100,000 UIDs took 38 ms, a stall of every session
INLINE_LOAD = 10_000


class _Head(NamedTuple):
    """The mailbox row as SELECT reads it (``_HEAD``)."""

    uidvalidity: int
    uidnext: int
    highest_modseq: int
    recent_uid: int
    n_messages: int
    n_unseen: int  # memberships without \\Seen (\\Deleted ones too): 0 means no [UNSEEN n] to look for


class FlagChange(NamedTuple):
    """A membership whose flags changed: system flag bits of the email, its membership's ``\\Deleted``, and
    its keywords (display spellings, sorted)."""

    uid: int
    modseq: int
    flags: int
    deleted: bool
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class MailboxChanges:
    """Expunged UIDs (ascending) and changed memberships (ascending UID) in a MODSEQ window."""

    vanished: list[int]
    changed: list[FlagChange]


@dataclass(frozen=True)
class MailboxSnapshot:
    """A mailbox as SELECT shows it: ``uids`` ascending, all below ``uidnext``; ``keywords`` in use (IMAP
    spelling); ``recent_from`` the first UID \\Recent for the caller (None unless it claimed them).

    ``uids`` is the store's cached array, shared by every session that selected the same content: read it, or
    copy it before changing it (8 bytes per message per session otherwise: 800 KB for each idler of 100k)."""

    mailbox_id: str
    uidvalidity: int
    uidnext: int
    highest_modseq: int
    recent_uid: int
    uids: array
    keywords: list[str]
    recent_from: int | None = None
    #: the lowest UID (below ``uidnext``) not \Seen, when asked for (IMAP4rev1's ``[UNSEEN n]``)
    first_unseen: int | None = None


@dataclass(frozen=True)
class MailboxDelta:
    """What changed since a session's last look. ``new_uids``: at or above its UIDNEXT (ascending);
    ``vanished`` and ``changed``: below it, with MODSEQ in (its HIGHESTMODSEQ, ``highest_modseq``];
    ``recent_from``: the first UID of the new \\Recent messages it claimed, if it asked to. ``recent_uid``: the
    mailbox's first unclaimed \\Recent UID as read (a claim is worth making only below ``uidnext``)."""

    uidnext: int
    highest_modseq: int
    new_uids: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)
    changed: list[FlagChange] = field(default_factory=list)
    recent_from: int | None = None
    recent_uid: int = 0

    def worth_claiming(self, claimed_below: int = 0) -> bool:
        """Would a \\Recent claim take anything for a session that sees these new messages? Not when every
        one of them was claimed already (by their appenders, by other sessions), nor when all are below
        ``claimed_below`` (the caller's own claims): the claim is a write, and it would write nothing."""
        return bool(self.new_uids) and self.recent_uid < self.uidnext and self.new_uids[-1] >= claimed_below


class MessageViews:
    """Read views over a mailbox's messages (see the module docstring). Wired as ``store.messages``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        #: Memo tables of this Store for renderers of immutable message data (rendered ENVELOPEs...).
        self.render_cache = Memos()
        #: FETCH's statements, compiled once per shape, and the statements below, compiled once (see
        #: :mod:`.sqltext`): the store's
        self._sql: SqlText = store.sql
        #: What SELECT showed of each mailbox, by content (see :mod:`.mailbox_snapshots`).
        self.snapshots = SnapshotCache()

    # -- FETCH -------------------------------------------------------------------------------------------------

    def fetch_rows(self, mailbox_id: str, ranges: UidRanges, *, keywords: bool = False, part_offsets: bool = False,
                   blob: bool = False, changedsince: int | None = None, below_uid: int | None = None,
                   covered: int = 0, size_hint: int = 0, saved: bool = False,
                   known: Sequence[int] | None = None) -> FetchRows:
        """The memberships of ``mailbox_id`` with a UID in ``ranges`` (and < ``below_uid``, and MODSEQ >
        ``changedsince``), ascending.

        ``keywords``: fill :attr:`FetchRows.keywords`; ``part_offsets``: append the MIME cache column (CACHE);
        ``blob``: append the blob columns and fill :attr:`FetchRows.locations`; ``saved``: fill
        :attr:`FetchRows.saved` from the same rows (no second read). ``covered`` (how many messages
        the ranges cover) and ``size_hint`` (the mailbox size) let a metadata-only read of many messages (more
        than :data:`SQL_ROWS`) come from the row cache (kept exact by MODSEQ; it always carries keywords);
        ``size_hint=0`` never does.

        ``known`` (an IMAP session's snapshot, ascending UIDs; a copy it will not change meanwhile): keep only the
        rows it holds and number them (:attr:`FetchRows.seqs`). Why here: numbering 100k rows in Python cost
        half as much as rendering them, and from the row cache it is free when the snapshot is exactly the
        cached mailbox (:meth:`MailboxRows.is_snapshot`): a row's place is its number."""
        cache = self._store.mailbox_rows
        if (not (blob or part_offsets or saved) and covered > SQL_ROWS
                and (covered >= mailbox_rows.MIN_CACHED or cache.cached(mailbox_id))):
            box = cache.get(mailbox_id, size_hint)
            if box is not None:
                if known is not None and changedsince is None and box.is_snapshot(known, below_uid):
                    spans = box.spans(ranges, below_uid=below_uid)
                    rows: list[Row] = []
                    seqs: list[int] = []
                    for a, b in spans:
                        rows += box.rows[a:b]
                        seqs += range(a + 1, b + 1)
                    return FetchRows(rows, box.keywords, seqs=seqs)
                return _numbered(FetchRows(box.select(ranges, below_uid=below_uid, changedsince=changedsince),
                                           box.keywords), known)
        return _numbered(self._query_rows(mailbox_id, ranges, keywords=keywords, part_offsets=part_offsets,
                                          blob=blob, changedsince=changedsince, below_uid=below_uid, saved=saved),
                         known)

    def _query_rows(self, mailbox_id: str, ranges: UidRanges, *, keywords: bool, part_offsets: bool, blob: bool,
                    changedsince: int | None, below_uid: int | None, saved: bool = False) -> FetchRows:
        """One query: the rows, each with its email's keywords (a correlated ``group_concat``/``string_agg``,
        :data:`_KEYWORD_LISTS`). The statements are compiled once per shape (columns, conditions, number of UID
        spans and single UIDs) and kept in :attr:`_sql`."""
        nspans, nsingles, params = _uid_params(ranges)
        params["mailbox_id"] = mailbox_id
        if below_uid is not None:
            params["below"] = below_uid
        if changedsince is not None:
            params["since"] = changedsince
        where_shape = (nspans, nsingles, below_uid is not None, changedsince is not None)

        def where() -> list[Any]:
            m = messages.c
            cond = [m.mailbox_id == _P("mailbox_id"), _uid_condition(m.uid, nspans, nsingles)]
            if below_uid is not None:
                cond.append(m.uid < _P("below"))
            if changedsince is not None:
                cond.append(m.modseq > _P("since"))
            return cond

        #: where the keywords column sits (before ``saved_at``, which stays last)
        kw_at = CACHE + (1 if part_offsets else 0) + (5 if blob else 0)

        def rows_select() -> sa.Select:
            m, e, b = messages, emails, blobs
            cols: list[Any] = [m.c.uid, m.c.deleted, m.c.modseq, e.c.id, e.c.flags, e.c.received_at, e.c.size,
                               e.c.thread_id]
            if part_offsets:
                cols.append(e.c.cache)
            join = m.join(e, e.c.id == m.c.email_id)
            if blob:
                cols += [b.c.id, b.c.sha256, b.c.size, b.c.pack, b.c.offset]
                join = join.join(b, b.c.id == e.c.blob_id)
            if keywords:
                assert len(cols) == kw_at
                cols.append(_KEYWORD_LISTS[self._store.sqlite])
            if saved:
                cols.append(m.c.saved_at)  # last: the columns before keep their places
            return sa.select(*cols).select_from(join).where(*where()).order_by(m.c.uid)

        out = FetchRows([])
        with self._store.statement_read() as conn:  # one statement: its own consistent read
            rows = self._sql.rows(conn, ("rows", part_offsets, blob, saved, keywords, *where_shape), rows_select,
                                  params)
        if keywords:  # the keyword column leaves the rows: they keep the shape every reader of them knows
            out.keywords = {r[EMAIL_ID]: _keyword_tuple(r[kw_at]) for r in rows if r[kw_at]}
            rows = [r[:kw_at] + r[kw_at + 1 :] for r in rows]
        if blob:
            base = CACHE + 1 if part_offsets else CACHE
            for r in rows:
                if r[EMAIL_ID] not in out.locations:
                    out.locations[r[EMAIL_ID]] = BlobLocation(*r[base : base + 5])
        if saved:
            out.saved = {int(r[UID]): int(r[-1]) for r in rows}
        out.rows = rows
        return out

    def mime_caches(self, email_ids: list[str]) -> dict[str, bytes]:
        """The MIME cache (orjson of the parse at ingest) of some emails, by id; ids not found are absent."""
        out: dict[str, bytes] = {}
        with self._store.statement_read() as conn:
            for i in range(0, len(email_ids), 500):
                q = sa.select(emails.c.id, emails.c.cache).where(emails.c.id.in_(email_ids[i : i + 500]))
                for email_id, cache in raw_rows(conn, q):
                    out[email_id] = bytes(cache)
        return out

    def previews(self, email_ids: list[str]) -> dict[str, str]:
        """The preview text computed at ingest (``emails.preview``) of some emails, by id; ids not found are
        absent. IMAP FETCH PREVIEW (RFC 8970) reads this column, never the message."""
        out: dict[str, str] = {}
        with self._store.statement_read() as conn:
            for i in range(0, len(email_ids), 500):
                q = sa.select(emails.c.id, emails.c.preview).where(emails.c.id.in_(email_ids[i : i + 500]))
                for email_id, preview in raw_rows(conn, q):
                    out[email_id] = preview or ""
        return out

    def vanished_uids(self, mailbox_id: str, ranges: UidRanges, since: int) -> list[int]:
        """UIDs in ``ranges`` expunged with a MODSEQ above ``since``, ascending (``VANISHED (EARLIER)``)."""
        with self._store.statement_read() as conn:
            return sorted(raw_scalars(conn, sa.select(vanished.c.uid).where(
                vanished.c.mailbox_id == mailbox_id, vanished.c.modseq > since,
                uid_condition(vanished.c.uid, ranges))))

    # -- SELECT and catching up ---------------------------------------------------------------------------------

    def mailbox_snapshot(self, account_id: str, mailbox_id: str, *, claim_recent: bool = False,
                         first_unseen: bool = False) -> MailboxSnapshot | None:
        """The mailbox row, its UID list and the keywords in use, from one read transaction; None if the mailbox
        is gone (or is not ``account_id``'s). ``claim_recent`` (IMAP4rev1 SELECT) takes its \\Recent messages for
        the caller first: a write, made only when there is something to claim (UIDNEXT above the first unclaimed
        UID), so a SELECT of a mailbox without new mail writes nothing. ``first_unseen``: also fill
        :attr:`MailboxSnapshot.first_unseen` (IMAP4rev1's ``[UNSEEN n]``) in the same transaction."""
        with self._first_snapshot_conn() as conn:
            head = self._head(conn, mailbox_id, account_id)
            if head is None:
                return None
            if not claim_recent or head.uidnext <= head.recent_uid:
                # nothing unclaimed: the claim would return the first unclaimed UID and write nothing
                recent_from = head.recent_uid if claim_recent else None
                return self._snapshot(conn, mailbox_id, head, recent_from, first_unseen)
        from .model import NotFound

        try:  # the claim comes before the snapshot, so every UID this session shows as \\Recent is its own
            # (a write: on the writer lane, with its group, not a write transaction of this reader thread)
            recent_from = self._store.write_call(self._store.memberships.claim_recent, mailbox_id)
        except NotFound:
            return None
        with self._snapshot_conn() as conn:
            head = self._head(conn, mailbox_id, account_id)
            return None if head is None else self._snapshot(conn, mailbox_id, head, recent_from, first_unseen)

    def _head(self, conn: sa.Connection, mailbox_id: str, account_id: str) -> _Head | None:
        row = self._sql.first(conn, _HEAD, {"mailbox_id": mailbox_id, "account_id": account_id})
        return None if row is None else _Head(*row)

    def _first_snapshot_conn(self) -> Any:
        """The connection of a snapshot read before any \\Recent claim. On SQLite ``store.read()``: inside an
        IMAP command's shared read (``Store.shared_read``) the transaction the credential check and the mailbox
        tree were read in (a SQLite read transaction is one snapshot), so SELECT costs one BEGIN; a fresh
        connection autobegins one transaction for all its statements too. PostgreSQL needs REPEATABLE READ."""
        return self._store.read() if self._store.sqlite else self._snapshot_conn()

    def _snapshot_conn(self) -> Any:
        """A connection in a read transaction that sees one snapshot for all its statements (SQLite's read
        transaction is one; PostgreSQL needs REPEATABLE READ)."""
        conn = self._store.engine.connect()
        if not self._store.sqlite:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        return _Transaction(conn)

    def _snapshot(self, conn: sa.Connection, mailbox_id: str, head: Any, recent_from: int | None,
                  first_unseen: bool) -> MailboxSnapshot:
        """The rest of a snapshot, in the transaction that read ``head`` (so UIDs, keywords and counters agree):
        what SELECT showed last time when the mailbox row names the same content, else brought forward or
        read (:mod:`.mailbox_snapshots`). The UID array is the cached one, never changed once stored: the
        sessions share it and copy it only when they change their view (``SelectedMailbox``)."""
        shown = self._shown(conn, mailbox_id, head)
        first = None
        if first_unseen and shown.uids:
            if not shown.first_unseen_known:
                first = (self._sql.scalar(conn, _FIRST_UNSEEN, {"mailbox_id": mailbox_id, "below": head.uidnext})
                         if head.n_unseen else None)
                shown = replace(shown, first_unseen=first, first_unseen_known=True)
                self.snapshots.put(mailbox_id, shown)
            first = shown.first_unseen
        return MailboxSnapshot(mailbox_id, head.uidvalidity, head.uidnext, head.highest_modseq, head.recent_uid,
                               shown.uids, keyword_displays(shown.keywords), recent_from, first)

    def _shown(self, conn: sa.Connection, mailbox_id: str, head: Any) -> Shown:
        """The UIDs and keywords of the content the mailbox row ``head`` names (see :mod:`.mailbox_snapshots`)."""
        cache = self.snapshots
        old = cache.get(mailbox_id)
        key = (head.uidvalidity, head.highest_modseq, head.uidnext)
        if old is not None and old.names(*key):
            cache.hits += 1
            return old
        shown = None
        if (old is not None and old.uidvalidity == head.uidvalidity and old.highest_modseq <= head.highest_modseq
                and old.uidnext <= head.uidnext):
            shown = self._advance(conn, mailbox_id, old, head)
        if shown is None:
            if head.n_messages > INLINE_LOAD:  # every UID of a big mailbox: not on the event loop's thread
                self._store.needs_thread()
            cache.builds += 1
            shown = Shown(*key, _load_uids(conn, mailbox_id, head.uidnext), self._keywords(conn, mailbox_id, head))
        cache.put(mailbox_id, shown)
        return shown

    def _advance(self, conn: sa.Connection, mailbox_id: str, old: Shown, head: Any) -> Shown | None:
        """``old`` brought forward to ``head`` with ONE read bounded by what changed since (the catch-up's
        :data:`_DELTA_BODY`: new UIDs, vanished UIDs, changed memberships with their keywords); None when the
        result does not add up to the mailbox's message counter (then the caller reads it all)."""
        p = {"mailbox_id": mailbox_id, "lo": old.uidnext, "hi": head.uidnext, "since": old.highest_modseq,
             "upto": head.highest_modseq}
        new_uids: list[int] = []
        gone: list[int] = []
        old_changed = False
        stamped: set[int] = set()  # new memberships among the changed rows (all of them, normally)
        new_keywords: list[str] = []
        for kind, uid, _modseq, _deleted, _flags, listed in self._sql.run(conn, _DELTA_BODY[self._store.sqlite], p):
            if kind == 0:
                new_uids.append(uid)
            elif kind == 1:
                gone.append(uid)
            elif uid < old.uidnext:
                old_changed = True
            else:
                stamped.add(uid)
                if listed:
                    new_keywords.extend(listed.split(KEYWORD_SEPARATOR))
        uids = advance(old, new_uids, gone)
        if len(uids) != head.n_messages:
            return None
        self.snapshots.advances += 1
        key = (head.uidvalidity, head.highest_modseq, head.uidnext)
        if gone or old_changed:
            # flags changed or messages left: a keyword may have gone out of use, read them again
            return Shown(*key, uids, self._keywords(conn, mailbox_id, head))
        keywords = dict(old.keywords)  # only new messages: their keywords join the ones in use
        if new_uids and (len(stamped) != len(new_uids)
                         or not merge_keywords(keywords, ((d.lower(), d) for d in new_keywords))):
            keywords = self._keywords(conn, mailbox_id, head)
        first_kept = old.first_unseen_known and old.first_unseen is not None  # earlier than any new UID
        return Shown(*key, uids, keywords, old.first_unseen if first_kept else None, first_kept)

    def _keywords(self, conn: sa.Connection, mailbox_id: str, head: Any) -> dict[str, str]:
        """The keywords in use (key -> IMAP spelling): from the row cache (:mod:`.mailbox_rows`) when it holds
        this very content, else the grouped query over the mailbox's memberships."""
        box = self._store.mailbox_rows.peek(mailbox_id)
        if box is not None and (box.highest_modseq, box.uidnext) == (head.highest_modseq, head.uidnext):
            # only emails still in the rows: a refresh drops expunged rows but keeps their keyword entries
            present = {r[EMAIL_ID] for r in box.rows}
            displays: set[str] = set()
            for email_id, spellings in box.keywords.items():
                if email_id in present:
                    displays.update(spellings)
            out: dict[str, str] = {}
            if merge_keywords(out, ((d.lower(), d) for d in displays)):
                return out
        return dict(self._sql.run(conn, _KEYWORDS, {"mailbox_id": mailbox_id}))

    def mailbox_delta(self, mailbox_id: str, *, uidvalidity: int, uidnext: int, modseq: int,
                      claim_recent: bool = False, claimed_below: int = 0) -> MailboxDelta | None:
        """What changed since the caller saw ``uidnext``/``modseq`` (its HIGHESTMODSEQ); None if the mailbox is
        gone or its UIDVALIDITY is no longer ``uidvalidity``. Unchanged counters cost one indexed read.
        ``claim_recent``: claim the new messages' \\Recent (IMAP4rev1 SELECT, not EXAMINE), unless all of them are
        below ``claimed_below`` (the caller claimed those already: its own APPEND, ``IngestItem.claim_recent``)."""
        with self._store.statement_read() as conn:
            delta = read_delta(self._sql, conn, mailbox_id, uidvalidity, uidnext, modseq)
        if delta is not None and claim_recent and delta.worth_claiming(claimed_below):
            return replace(delta, recent_from=self._store.write_call(self._store.memberships.claim_recent, mailbox_id))
        return delta

    def flag_changes(self, mailbox_id: str, since: int, upto: int, below_uid: int) -> MailboxChanges:
        """Expunges and flag changes with ``since`` < MODSEQ <= ``upto`` among UIDs below ``below_uid``
        (QRESYNC at SELECT, RFC 7162 §3.2.5)."""
        with self._store.statement_read() as conn:
            got = _delta_rows(self._sql, conn, mailbox_id, below_uid, below_uid, since, upto, MailboxDelta(0, 0))
        return MailboxChanges(got.vanished, got.changed)

    def first_unseen(self, mailbox_id: str, below_uid: int) -> int | None:
        """The lowest UID below ``below_uid`` whose email is not \\Seen (IMAP4rev1 ``[UNSEEN n]``)."""
        with self._store.statement_read() as conn:
            return conn.execute(_FIRST_UNSEEN, {"mailbox_id": mailbox_id, "below": below_uid}).scalar()

    def recent_counts(self, mailbox_ids: list[str]) -> dict[str, int]:
        """Messages nobody has yet seen as \\Recent (UID >= the mailbox's first unclaimed one), per mailbox;
        mailboxes with none are absent."""
        if not mailbox_ids:
            return {}
        with self._store.statement_read() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(_RECENT_COUNTS, {"mailbox_ids": list(mailbox_ids)})}


# -- statements built once (see the module docstring) ---------------------------------------------------------

_P = sa.bindparam
_M = messages.c
_LIVE = sa.and_(_M.mailbox_id == _P("mailbox_id"), _M.uid < _P("uidnext"))

_HEAD = (sa.select(mailboxes.c.uidvalidity, mailboxes.c.uidnext, mailboxes.c.highest_modseq, mailboxes.c.recent_uid,
                   mailboxes.c.n_messages, mailboxes.c.n_unseen)
         .where(mailboxes.c.id == _P("mailbox_id"), mailboxes.c.account_id == _P("account_id")))
_DELTA_HEAD = (sa.select(mailboxes.c.uidnext, mailboxes.c.highest_modseq, mailboxes.c.uidvalidity,
                          mailboxes.c.recent_uid)
               .where(mailboxes.c.id == _P("mailbox_id")))
# three scalar subqueries: min and max are index seeks, only the count walks the index
_UID_SPAN = sa.select(
    sa.select(sa.func.count()).select_from(messages).where(_LIVE).scalar_subquery(),
    sa.select(sa.func.min(_M.uid)).where(_LIVE).scalar_subquery(),
    sa.select(sa.func.max(_M.uid)).where(_LIVE).scalar_subquery(),
)
_HOLES = (sa.select(vanished.c.uid)
          .where(vanished.c.mailbox_id == _P("mailbox_id"), vanished.c.uid > _P("lo"), vanished.c.uid < _P("hi"))
          .order_by(vanished.c.uid))
#: the keywords in use, one per case-insensitive key (IMAP spelling), sorted by key
_KEYWORDS = (sa.select(email_keywords.c.keyword, sa.func.min(email_keywords.c.display))
             .select_from(messages.join(email_keywords, email_keywords.c.email_id == _M.email_id))
             .where(_M.mailbox_id == _P("mailbox_id"))
             .group_by(email_keywords.c.keyword)
             .order_by(email_keywords.c.keyword))
#: IMAP4rev1's [UNSEEN n]: the (mailbox, uid) key walked in order, stopping at the first unseen message (``min()``
#: over the join read every membership of the mailbox, and in a mailbox whose mail is all read, every one)
_FIRST_UNSEEN = (sa.select(_M.uid)
                 .select_from(messages.join(emails, emails.c.id == _M.email_id))
                 .where(_M.mailbox_id == _P("mailbox_id"), _M.uid < _P("below"),
                        emails.c.flags.op("&")(FLAG_SEEN) == 0)
                 .order_by(_M.uid).limit(1))
_RECENT_COUNTS = (sa.select(_M.mailbox_id, sa.func.count())
                  .select_from(messages.join(mailboxes, mailboxes.c.id == _M.mailbox_id))
                  .where(_M.mailbox_id.in_(_P("mailbox_ids", expanding=True)), _M.uid >= mailboxes.c.recent_uid)
                  .group_by(_M.mailbox_id))
#: an email's keywords in one column of the row that names it (IMAP atoms and JMAP keywords hold no space):
#: FETCH FLAGS reads rows and keywords in ONE statement, without a BEGIN, a second query and a COMMIT
KEYWORD_SEPARATOR = " "
_SEPARATOR_SQL = sa.literal_column(f"'{KEYWORD_SEPARATOR}'")  # a literal: the raw-cursor path binds no others
_KEYWORD_LISTS = {
    sqlite: (sa.select((sa.func.group_concat if sqlite else sa.func.string_agg)(email_keywords.c.display,
                                                                               _SEPARATOR_SQL))
             .where(email_keywords.c.email_id == emails.c.id)
             .scalar_subquery().label("keyword_list"))
    for sqlite in (True, False)
}


def _delta_body(sqlite: bool) -> sa.CompoundSelect:
    """A catch-up's rows in ONE statement (kind, uid, modseq, deleted, flags, keywords), ordered by kind then UID:
    kind 0 the new memberships (UID in [lo, hi)), 1 the vanished UIDs and 2 the changed memberships with MODSEQ
    in (since, upto], each branch by its own index (no UID bound on those two: with one, SQLite walked the
    mailbox's (mailbox, uid) key instead, every message and every vanished row, which only grow; the caller drops
    the few at or above the session's UIDNEXT). Run by every IMAP command of a session whose mailbox other
    clients write, and by a SELECT bringing its remembered snapshot forward (``_advance``): three statements were
    three trips into SQLite (each a GIL hand-over with the writer lane)."""
    zero, no = sa.literal_column("0"), sa.false()
    new = (sa.select(zero.label("kind"), _M.uid.label("uid"), zero.label("modseq"), no.label("deleted"),
                     zero.label("flags"), sa.null().label("kw"))
           .where(_M.mailbox_id == _P("mailbox_id"), _M.uid >= _P("lo"), _M.uid < _P("hi")))
    gone = (sa.select(sa.literal_column("1"), vanished.c.uid, zero, no, zero, sa.null())
            .where(vanished.c.mailbox_id == _P("mailbox_id"), vanished.c.modseq > _P("since"),
                   vanished.c.modseq <= _P("upto")))
    changed = (sa.select(sa.literal_column("2"), _M.uid, _M.modseq, _M.deleted, emails.c.flags,
                         _KEYWORD_LISTS[sqlite])
               .select_from(messages.join(emails, emails.c.id == _M.email_id))
               .where(_M.mailbox_id == _P("mailbox_id"), _M.modseq > _P("since"), _M.modseq <= _P("upto")))
    return sa.union_all(new, gone, changed).order_by(sa.literal_column("kind"), sa.literal_column("uid"))


_DELTA_BODY = {sqlite: _delta_body(sqlite) for sqlite in (True, False)}

# -- helpers (one connection, given) ------------------------------------------------------------------------------


def _uid_params(ranges: UidRanges) -> tuple[int, int, dict[str, Any]]:
    """The shape of :func:`.uidranges.uid_condition` for these ranges (spans, single UIDs) and its values."""
    (nspans, nsingles), params = bound_params(ranges)
    return nspans, nsingles, params


def _uid_condition(col: Any, nspans: int, nsingles: int) -> Any:
    """:func:`.uidranges.uid_condition` with bound parameters (``lo0``/``hi0``..., ``s0``...) for the values."""
    return bound_condition(col, (nspans, nsingles))


class _Transaction:
    """``with``: the connection, in a transaction that is rolled back (reads only) and closed at the end."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sa.Connection:
        self.conn.begin()
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()  # rolls the read transaction back


def read_delta(sql: SqlText, conn: sa.Connection, mailbox_id: str, uidvalidity: int, uidnext: int, modseq: int
               ) -> MailboxDelta | None:
    """``MessageViews.mailbox_delta`` on ``conn``, without claiming \\Recent: what changed since ``uidnext`` /
    ``modseq`` (None: no such mailbox, or another UIDVALIDITY). Depends only on its arguments and the committed
    mailbox, so one answer serves every session that asks the same (``mailbox_deltas.py``)."""
    row = sql.first(conn, _DELTA_HEAD, {"mailbox_id": mailbox_id})
    if row is None or row[2] != uidvalidity:
        return None
    top, hm = row[0], row[1]
    if hm == modseq and top == uidnext:
        return MailboxDelta(top, hm, recent_uid=row[3])
    return _delta_rows(sql, conn, mailbox_id, uidnext, max(top, uidnext), modseq, max(hm, modseq),
                       MailboxDelta(top, hm, recent_uid=row[3]))


def _delta_rows(sql: SqlText, conn: sa.Connection, mailbox_id: str, below: int, top: int, since: int, upto: int,
                out: MailboxDelta) -> MailboxDelta:
    """Fill ``out`` from :data:`_DELTA_BODY`: the new UIDs in [``below``, ``top``), and below ``below`` the
    vanished UIDs and the changed memberships with MODSEQ in (``since``, ``upto``]."""
    params = {"mailbox_id": mailbox_id, "lo": below, "hi": top, "since": since, "upto": upto}
    for kind, uid, mseq, deleted, flags, kw in sql.run(conn, _DELTA_BODY[conn.dialect.name == "sqlite"], params):
        if kind == 0:
            out.new_uids.append(uid)
        elif uid >= below:  # a change of a membership the session has not seen yet: it is among the new
            continue
        elif kind == 1:
            out.vanished.append(uid)
        else:
            out.changed.append(FlagChange(uid, mseq, flags, bool(deleted), _keyword_tuple(kw)))
    return out


def _keyword_tuple(listed: str | None) -> tuple[str, ...]:
    """An email's keywords, sorted, from its :data:`_KEYWORD_LISTS` column (None: it has none)."""
    return tuple(sorted(listed.split(KEYWORD_SEPARATOR))) if listed else ()


def _fetch_uids(conn: sa.Connection, mailbox_id: str, uidnext: int) -> array:
    """All UIDs below ``uidnext``, ascending, row by row (through the raw DBAPI cursor: no Row objects)."""
    ph = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    raw = conn.connection.dbapi_connection
    assert raw is not None
    cur = raw.cursor()
    try:
        cur.execute(f"SELECT uid FROM messages WHERE mailbox_id = {ph} AND uid < {ph} ORDER BY uid",  # noqa: S608
                    (mailbox_id, uidnext))
        return array("q", [r[0] for r in cur.fetchall()])
    finally:
        cur.close()


def _load_uids(conn: sa.Connection, mailbox_id: str, uidnext: int) -> array:
    """All UIDs of a mailbox below ``uidnext``, ascending, without reading them one by one when possible.

    UIDs are handed out in order and every removed membership leaves a ``vanished`` row, so the UID list is
    ``[min, max]`` minus the vanished UIDs in that range. One aggregate query gives count/min/max; if the
    range is full (the common case) the array is built from ``range`` in C; if the vanished rows explain the
    gaps exactly they are subtracted; otherwise (or when the gaps outnumber the messages) the UIDs are read
    row by row. 100k messages load in ~10 ms instead of ~50 ms.
    """
    n, lo, hi = conn.execute(_UID_SPAN, {"mailbox_id": mailbox_id, "uidnext": uidnext}).one()
    if not n:
        return array("q")
    gaps = hi - lo + 1 - n
    if gaps == 0:
        return array("q", range(lo, hi + 1))
    if gaps <= n:
        holes = list(conn.execute(_HOLES, {"mailbox_id": mailbox_id, "lo": lo, "hi": hi}).scalars())
        if len(holes) == gaps:
            out = array("q")
            start = lo
            for h in holes:
                out.extend(range(start, h))
                start = h + 1
            out.extend(range(start, hi + 1))
            return out
    return _fetch_uids(conn, mailbox_id, uidnext)
