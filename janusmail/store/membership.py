"""The memberships service: IMAP's operations on (mailbox, UID) rows: flags (STORE), COPY, MOVE, EXPUNGE,
\\Recent.

UIDs arrive as inclusive ranges ``[(lo, hi), ...]`` so that ``1:*`` over 100k messages is one SQL condition,
not 100k parameters. Keywords are per email (shared by every copy); ``\\Deleted`` is per membership.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import keywords as kwmod
from . import quotas
from .emails import settle_emails
from .model import NotFound
from .schema import FLAG_DRAFT, FLAG_SEEN, email_keywords, emails, mailboxes, messages, vanished
from .thread_visibility import ThreadVisibility
from .uidranges import UidRanges, bound_condition, bound_params, uid_condition
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .sqltext import SqlText
    from .store import Store

#: Flag bits the mailbox counters depend on (unseen, unread): changing only other keywords moves no counter.
COUNTED_BITS = FLAG_SEEN | FLAG_DRAFT



@dataclass
class StoreResult:
    """UIDs whose flags were written, and UIDs refused by UNCHANGEDSINCE (RFC 7162 [MODIFIED]).

    ``previous``: each written UID's MODSEQ just before this write. A session may treat the write as the only
    change it has not been told about only when that MODSEQ is one it has already reported (IMAP STORE
    ``.SILENT``, FETCH setting ``\\Seen``); otherwise another session's change came in between and is still owed
    to its client."""

    updated: list[int]
    modified: list[int]
    modseq: int
    previous: dict[int, int] = field(default_factory=dict)


class Memberships:
    """IMAP's writes by mailbox and UID ranges; JMAP's view of the same rows is the emails service."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _box(self, conn: sa.Connection, account_id: str, mailbox_id: str) -> None:
        """``NotFound`` unless the mailbox exists and is the account's."""
        if self._store.sql.first(conn, _BOX, {"mailbox_id": mailbox_id, "account_id": account_id}) is None:
            raise NotFound(mailbox_id)

    @writes
    def store_flags(self, account_id: str, mailbox_id: str, uids: UidRanges, mode: str, flags: list[str],
                    deleted: bool | None, unchanged_since: int | None = None) -> StoreResult:
        """IMAP STORE. ``mode`` is add|remove|replace; ``flags`` are keywords in JMAP form ($seen, $forwarded,
        ...) with the client's spelling kept for display; ``deleted`` is the \\Deleted part (None = untouched).

        The statements are built once and run on the driver's cursor (``Store.sql``); the rows one per shape
        of the UID set: a small STORE is about a dozen statements, and SQLAlchemy's per-statement machinery was
        most of its cost (issue 10)."""
        kw = kwmod.normalize(flags)
        bits, other = kwmod.split(kw)
        sql = self._store.sql
        with self._store.write(account_id) as tx:
            conn = tx.conn
            shape, params = bound_params(uids)
            params["mailbox_id"], params["account_id"] = mailbox_id, account_id
            rows = sql.rows(conn, ("store_flags", shape), lambda: _store_rows(bound_condition(_M.uid, shape)), params)
            if not rows:
                raise NotFound(mailbox_id)
            if rows[0][0] is None:  # the mailbox's row alone: no message in the set
                rows = []
            tx.know_threads({r[1]: r[4] for r in rows})
            modified = []
            if unchanged_since is not None:
                modified = [r[0] for r in rows if r[2] > unchanged_since]
                rows = [r for r in rows if r[2] <= unchanged_since]
            if not rows:  # no such message (expunged meanwhile), or every one MODIFIED: nothing to write
                tx.discard()
                return StoreResult([], modified, tx.modseq - 1)  # (the account's modseq, unmoved)
            email_ids = list({r[1] for r in rows})
            if deleted is not None or mode == "replace" or bits & COUNTED_BITS:
                tx.affect_emails(email_ids)  # the counters see \Seen, \Draft and \Deleted
            m = tx.modseq
            keywords = list(other)
            target_uids = [r[0] for r in rows]
            # \Deleted of a small set rides on the UPDATE that stamps the emails' memberships (one statement,
            # not two, on the writer lane); a big one is set by UID chunks below
            deleted_inline = deleted is not None and len(email_ids) <= 500 and len(target_uids) <= 500
            for i in range(0, len(email_ids), 500):
                chunk = email_ids[i : i + 500]
                p = {"ids": chunk, "modseq": m}
                if mode == "add":
                    sql.count(conn, _ADD_FLAGS, {**p, "bits": bits})  # (0: the modseq alone)
                    if other:  # (a keyword already there keeps its display)
                        sql.many(conn, _ADD_KEYWORD, [{"email_id": e, "keyword": k, "display": d}
                                                      for e in chunk for k, d in other.items()])
                elif mode == "remove":
                    if bits:
                        sql.count(conn, _KEEP_FLAGS, {**p, "mask": ~bits & 0xFF})
                    else:
                        sql.count(conn, _ADD_FLAGS, {**p, "bits": 0})  # (the modseq alone)
                    if other:
                        sql.count(conn, _DROP_KEYWORDS, {"ids": chunk, "keywords": keywords})
                else:
                    sql.count(conn, _SET_FLAGS, {**p, "bits": bits})
                    sql.count(conn, _DROP_ALL_KEYWORDS, {"ids": chunk})
                    sql.many(conn, _INSERT_KEYWORD, [{"email_id": e, "keyword": k, "display": d}
                                                     for e in chunk for k, d in other.items()])
                if deleted_inline:
                    touched = sql.run(conn, _TOUCH_SET_DELETED, {**p, "mailbox_id": mailbox_id, "uids": target_uids,
                                                                 "deleted": deleted})
                else:
                    touched = sql.run(conn, _TOUCH_MEMBERSHIPS, p)
                tx.touch_mailbox(*{r[0] for r in touched})
                tx.log_many("Email", chunk, "u")
            if deleted is not None:
                for i in range(0, 0 if deleted_inline else len(target_uids), 500):
                    sql.count(conn, _SET_DELETED, {"mailbox_id": mailbox_id, "uids": target_uids[i : i + 500],
                                                   "deleted": deleted, "modseq": m})
                tx.touch_mailbox(mailbox_id)
                # \Deleted hides a membership from JMAP: its mailboxIds changed, and maybe its thread's emailIds.
                tx.log_many("Email", email_ids, "u")
                tx.log_many("Thread", sorted(tx.threads_of(email_ids)), "u")
            return StoreResult(sorted(target_uids), modified, tx.modseq, {r[0]: r[2] for r in rows})

    @writes
    def copy(self, account_id: str, src_id: str, uids: UidRanges, dst_id: str,
                      *, move: bool = False) -> list[tuple[int, int]]:
        """IMAP COPY/MOVE: the same emails gain a membership in ``dst`` (same EMAILID); returns (src, dst) UIDs."""
        with self._store.write(account_id) as tx:
            conn = tx.conn
            self._box(conn, account_id, src_id)
            self._box(conn, account_id, dst_id)
            rows = conn.execute(sa.select(messages.c.uid, messages.c.email_id, messages.c.deleted).where(
                messages.c.mailbox_id == src_id, uid_condition(messages.c.uid, uids)).order_by(messages.c.uid)).all()
            if not rows:
                return []
            email_ids = list({r.email_id for r in rows})
            if not move:  # a MOVE adds as much as it removes: never refused (quotas.py)
                quotas.admit_memberships(tx, [r.email_id for r in rows])
            tx.affect_emails(email_ids)
            # The copy keeps the source's flags, \Deleted included (RFC 9051 §6.4.7, RFC 6851 §3.3); JMAP visibility
            # can only flip for a \Deleted source, so only those are checked.
            seen = ThreadVisibility(tx, [r.email_id for r in rows if r.deleted])
            top = conn.execute(sa.update(mailboxes).where(mailboxes.c.id == dst_id)
                               .values(uidnext=mailboxes.c.uidnext + len(rows))
                               .returning(mailboxes.c.uidnext)).scalar_one()
            first = top - len(rows)
            pairs = [(r.uid, first + i) for i, r in enumerate(rows)]
            saved = int(time.time())  # SAVEDATE (RFC 8514): a copy or a move is saved in dst now
            conn.execute(sa.insert(messages), [
                {"mailbox_id": dst_id, "uid": first + i, "email_id": r.email_id, "deleted": r.deleted, "modseq": tx.modseq,
                 "saved_at": saved}
                for i, r in enumerate(rows)
            ])
            tx.touch_mailbox(dst_id)
            if move:
                src_uids = [r.uid for r in rows]
                for i in range(0, len(src_uids), 500):
                    conn.execute(sa.delete(messages).where(messages.c.mailbox_id == src_id,
                                                           messages.c.uid.in_(src_uids[i : i + 500])))
                conn.execute(sa.insert(vanished), [{"mailbox_id": src_id, "uid": u, "modseq": tx.modseq}
                                                   for u in src_uids])
                tx.touch_mailbox(src_id)
            for i in range(0, len(email_ids), 500):
                conn.execute(sa.update(emails).where(emails.c.id.in_(email_ids[i : i + 500])).values(modseq=tx.modseq))
            tx.log_many("Email", email_ids, "u")
            seen.log_changes()
            return pairs

    def anything_deleted(self, account_id: str, mailbox_id: str) -> bool:
        """Whether the mailbox may hold a \\Deleted message, from its counter (one primary-key read): False
        means an EXPUNGE there has nothing to do and need not queue on the writer lane at all. True also for a
        mailbox that is not the account's (the write then says ``NotFound``).

        Why: clients send EXPUNGE and CLOSE with nothing marked (a CLOSE after reading, an EXPUNGE on a timer), and
        each took the one write lock for a savepoint, a modseq bump it then gave back and a read, queued behind
        every other write (issue 10). Under the logged-in stress profile, where ten sessions mark and expunge one
        mailbox, about a fifth of the EXPUNGEs now stay off the lane; most of the others still find nothing, as
        another session's EXPUNGE in the same group commit took the messages first. The answer is what the
        latest commit says: a message marked \\Deleted after this read is left for the next EXPUNGE, as if it
        had been marked just after this one ran."""
        with self._store.read() as conn:
            row = self._store.sql.first(conn, _DELETED_COUNT, {"mailbox_id": mailbox_id, "account_id": account_id})
        return row is None or row[0] > 0

    @writes
    def expunge(self, account_id: str, mailbox_id: str, uids: UidRanges | None = None) -> list[int]:
        """Remove \\Deleted memberships (optionally only within ``uids``); orphaned emails are destroyed.

        Few statements on the writer lane (issue 10): one read gives the rows and the mailbox's owner,
        each email's thread (for the counters and the thread log) and its number of memberships, so an email
        whose every membership goes here is known to be orphaned without asking again. Its memberships go with
        it (cascade, ``emails.destroy_rows``); only the other emails' memberships are deleted here."""
        sql = self._store.sql
        with self._store.write(account_id) as tx:
            conn = tx.conn
            params = {"mailbox_id": mailbox_id, "account_id": account_id}
            if uids is None:
                rows = sql.run(conn, _EXPUNGE_ALL, params)
            else:
                shape, bound = bound_params(uids)
                rows = sql.rows(conn, ("expunge", shape), lambda: _expunge_rows(bound_condition(_M.uid, shape)),
                                {**bound, **params})
            if not rows:
                raise NotFound(mailbox_id)
            if rows[0][0] is None:  # the mailbox's row alone: nothing is \Deleted there
                tx.discard()  # (no modseq, no sync, no wake-up for nothing)
                return []
            gone = [r[0] for r in rows]
            tx.know_threads({r[1]: r[2] for r in rows})
            email_ids = list(dict.fromkeys(r[1] for r in rows))
            tx.affect_emails(email_ids)
            leaving = Counter(r[1] for r in rows)
            copies = {r[1]: r[3] for r in rows}
            orphans = [e for e in email_ids if copies[e] <= leaving[e]]
            live = [e for e in email_ids if copies[e] > leaving[e]]
            if live:
                keep = set(live)
                live_uids = [r[0] for r in rows if r[1] in keep]
                for i in range(0, len(live_uids), 500):
                    sql.count(conn, _DELETE_MEMBERSHIPS, {"mailbox_id": mailbox_id, "uids": live_uids[i : i + 500]})
            sql.many(conn, _INSERT_VANISHED, [{"mailbox_id": mailbox_id, "uid": u, "modseq": tx.modseq} for u in gone])
            tx.touch_mailbox(mailbox_id)
            settle_emails(tx, live, orphans)
            return gone

    @writes
    def claim_recent(self, mailbox_id: str) -> int:
        """IMAP4rev1 \\Recent: return the first UID this session may show as recent and claim the rest.
        ``Store.transaction``: on its own, a transaction that takes the write lock up front (concurrent SELECTs
        must not deadlock); on a writer lane, a savepoint of the group's transaction (a connection of its own
        there would wait for the write lock the group holds)."""
        with self._store.transaction() as conn:
            return claim_recent_in(self._store.sql, conn, mailbox_id)


def claim_recent_in(sql: SqlText, conn: sa.Connection, mailbox_id: str, upto: int | None = None,
                    head: tuple[int, int] | None = None) -> int:
    """In the caller's write transaction: claim the unclaimed \\Recent UIDs of the mailbox below ``upto`` (all of
    them: below its UIDNEXT) and return the first UID of the claim (the claim is empty when that is not below
    ``upto``). ``NotFound`` for no such mailbox. ``head``: the mailbox's (first unclaimed UID, UIDNEXT) as the
    caller's transaction has them now (a delivery read them when it took its UIDs): no read here."""
    row = head if head is not None else sql.first(conn, _RECENT, {"mailbox_id": mailbox_id})
    if row is None:
        raise NotFound(mailbox_id)
    recent_uid, uidnext = row
    top = uidnext if upto is None else min(upto, uidnext)
    if top > recent_uid:
        sql.count(conn, _CLAIM, {"mailbox_id": mailbox_id, "recent_uid": recent_uid, "uidnext": top})
    return recent_uid


# -- statements built once, run on the driver's cursor (``Store.sql``): IMAP's STORE, EXPUNGE and SELECT run them
# on every command ---------------------------------------------------------------------------------------------

_P = sa.bindparam
_M = messages.c
_BOX = sa.select(mailboxes.c.id).where(mailboxes.c.id == _P("mailbox_id"), mailboxes.c.account_id == _P("account_id"))
_DELETED_COUNT = sa.select(mailboxes.c.n_deleted).where(mailboxes.c.id == _P("mailbox_id"),
                                                        mailboxes.c.account_id == _P("account_id"))
_IDS = emails.c.id.in_(_P("ids", expanding=True))
_ADD_FLAGS = sa.update(emails).where(_IDS).values(flags=emails.c.flags.op("|")(_P("bits")), modseq=_P("modseq"))
_KEEP_FLAGS = sa.update(emails).where(_IDS).values(flags=emails.c.flags.op("&")(_P("mask")), modseq=_P("modseq"))
_SET_FLAGS = sa.update(emails).where(_IDS).values(flags=_P("bits"), modseq=_P("modseq"))
_KW_IDS = email_keywords.c.email_id.in_(_P("ids", expanding=True))
_KW = email_keywords.c
#: a keyword added unless the email has it: the test rides on the insert (one statement per STORE, not a read of
#: the keywords there and then the insert of the missing ones; the primary key answers the NOT EXISTS)
_ADD_KEYWORD = sa.insert(email_keywords).from_select(
    ["email_id", "keyword", "display"],
    sa.select(_P("email_id", type_=sa.String), _P("keyword", type_=sa.String), _P("display", type_=sa.String))
    .where(~sa.exists().where(_KW.email_id == _P("email_id", type_=sa.String),
                              _KW.keyword == _P("keyword", type_=sa.String))))
_DROP_KEYWORDS = sa.delete(email_keywords).where(_KW_IDS, email_keywords.c.keyword.in_(_P("keywords", expanding=True)))
_DROP_ALL_KEYWORDS = sa.delete(email_keywords).where(_KW_IDS)
_INSERT_KEYWORD = sa.insert(email_keywords).values(email_id=_P("email_id"), keyword=_P("keyword"),
                                                    display=_P("display"))
_TOUCH_MEMBERSHIPS = (sa.update(messages).where(_M.email_id.in_(_P("ids", expanding=True)))
                      .values(modseq=_P("modseq")).returning(_M.mailbox_id))
_SET_DELETED = (sa.update(messages).where(_M.mailbox_id == _P("mailbox_id"), _M.uid.in_(_P("uids", expanding=True)))
                .values(deleted=_P("deleted"), modseq=_P("modseq")))
#: _TOUCH_MEMBERSHIPS and _SET_DELETED in one: the emails' memberships get the modseq, the named ones of the
#: mailbox (all among them: the STORE read them by these emails) also \Deleted set or cleared
_TOUCH_SET_DELETED = (sa.update(messages).where(_M.email_id.in_(_P("ids", expanding=True)))
                      .values(modseq=_P("modseq"), deleted=sa.case(
                          (sa.and_(_M.mailbox_id == _P("mailbox_id"), _M.uid.in_(_P("uids", expanding=True))),
                           _P("deleted", type_=sa.Boolean)), else_=_M.deleted))
                      .returning(_M.mailbox_id))
_OTHER = messages.alias("other")
#: how many memberships the row's email has in all (an email whose every one is expunged is destroyed)
_COPIES = sa.select(sa.func.count()).where(_OTHER.c.email_id == _M.email_id).scalar_subquery()


def _store_rows(condition: sa.ColumnElement) -> sa.Select:
    """STORE's one read: (uid, email id, modseq, deleted, thread id) of the mailbox's messages in the set, by
    primary keys. As in :func:`_expunge_rows`, the mailbox is the left side of outer joins: no row when it is not
    the account's, one row of NULLs when none of its messages is in the set; the threads come with the rows (the
    counters and the Thread change log need them). One statement where three were (issue 10: STORE runs on the
    single writer lane)."""
    rows = mailboxes.outerjoin(messages, sa.and_(_M.mailbox_id == mailboxes.c.id, condition))
    return (sa.select(_M.uid, _M.email_id, _M.modseq, _M.deleted, emails.c.thread_id)
            .select_from(rows.outerjoin(emails, emails.c.id == _M.email_id))
            .where(mailboxes.c.id == _P("mailbox_id"), mailboxes.c.account_id == _P("account_id"))
            .order_by(_M.uid))


def _expunge_rows(*condition: sa.ColumnElement) -> sa.Select:
    """EXPUNGE's one read: (uid, email id, thread id, memberships of the email) of the mailbox's \\Deleted
    rows in UID order, by primary keys and the mailbox's rows. The mailbox is the left side of outer joins, so
    the answer also says whether it is the account's: no row when not, one row of NULLs when it is but has
    nothing to expunge (no second statement to tell the two apart, a frequent case under concurrent EXPUNGEs)."""
    rows = mailboxes.outerjoin(messages, sa.and_(_M.mailbox_id == mailboxes.c.id, _M.deleted.is_(True), *condition))
    return (sa.select(_M.uid, _M.email_id, emails.c.thread_id, _COPIES)
            .select_from(rows.outerjoin(emails, emails.c.id == _M.email_id))  # (a membership's email is there)
            .where(mailboxes.c.id == _P("mailbox_id"), mailboxes.c.account_id == _P("account_id"))
            .order_by(_M.uid))


_EXPUNGE_ALL = _expunge_rows()
_DELETE_MEMBERSHIPS = sa.delete(messages).where(_M.mailbox_id == _P("mailbox_id"), _M.uid.in_(_P("uids", expanding=True)))
_INSERT_VANISHED = sa.insert(vanished).values(mailbox_id=_P("mailbox_id"), uid=_P("uid"), modseq=_P("modseq"))
_RECENT = sa.select(mailboxes.c.recent_uid, mailboxes.c.uidnext).where(mailboxes.c.id == _P("mailbox_id"))
_CLAIM = (sa.update(mailboxes).where(mailboxes.c.id == _P("mailbox_id"), mailboxes.c.recent_uid == _P("recent_uid"))
          .values(recent_uid=_P("uidnext")))
