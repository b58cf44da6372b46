"""The memberships service: IMAP's operations on (mailbox, UID) rows: flags (STORE), COPY, MOVE, EXPUNGE,
\\Recent.

UIDs arrive as inclusive ranges ``[(lo, hi), ...]`` so that ``1:*`` over 100k messages is one SQL condition,
not 100k parameters. Keywords are per email (shared by every copy); ``\\Deleted`` is per membership.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import keywords as kwmod
from . import quotas
from .emails import after_membership_change
from .model import NotFound
from .schema import FLAG_DRAFT, FLAG_SEEN, email_keywords, emails, mailboxes, messages, vanished
from .thread_visibility import ThreadVisibility
from .uidranges import UidRanges, uid_condition
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

#: Flag bits the mailbox counters depend on (unseen, unread): changing only other keywords moves no counter.
COUNTED_BITS = FLAG_SEEN | FLAG_DRAFT



@dataclass
class StoreResult:
    """UIDs whose flags were written, and UIDs refused by UNCHANGEDSINCE (RFC 7162 [MODIFIED])."""

    updated: list[int]
    modified: list[int]
    modseq: int


class Memberships:
    """IMAP's writes by mailbox and UID ranges; JMAP's view of the same rows is the emails service."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def _box(self, conn: sa.Connection, account_id: str, mailbox_id: str) -> sa.Row:
        row = conn.execute(sa.select(mailboxes).where(mailboxes.c.id == mailbox_id,
                                                      mailboxes.c.account_id == account_id)).first()
        if row is None:
            raise NotFound(mailbox_id)
        return row

    @writes
    def store_flags(self, account_id: str, mailbox_id: str, uids: UidRanges, mode: str, flags: list[str],
                    deleted: bool | None, unchanged_since: int | None = None) -> StoreResult:
        """IMAP STORE. ``mode`` is add|remove|replace; ``flags`` are keywords in JMAP form ($seen, $forwarded,
        ...) with the client's spelling kept for display; ``deleted`` is the \\Deleted part (None = untouched).
        """
        kw = kwmod.normalize(flags)
        bits, other = kwmod.split(kw)
        with self._store.write(account_id) as tx:
            conn = tx.conn
            self._box(conn, account_id, mailbox_id)
            cond = [messages.c.mailbox_id == mailbox_id, uid_condition(messages.c.uid, uids)]
            rows = conn.execute(sa.select(messages.c.uid, messages.c.email_id, messages.c.modseq,
                                          messages.c.deleted).where(*cond)).all()
            modified = []
            if unchanged_since is not None:
                modified = [r.uid for r in rows if r.modseq > unchanged_since]
                rows = [r for r in rows if r.modseq <= unchanged_since]
            if not rows:
                return StoreResult([], modified, tx.modseq)
            email_ids = list({r.email_id for r in rows})
            if deleted is not None or mode == "replace" or bits & COUNTED_BITS:
                tx.affect_emails(email_ids)  # the counters see \Seen, \Draft and \Deleted
            for i in range(0, len(email_ids), 500):
                chunk = email_ids[i : i + 500]
                where = emails.c.id.in_(chunk)
                if mode == "add":
                    if bits:
                        conn.execute(sa.update(emails).where(where).values(flags=emails.c.flags.op("|")(bits)))
                    if other:
                        have = {(r.email_id, r.keyword) for r in conn.execute(
                            sa.select(email_keywords.c.email_id, email_keywords.c.keyword)
                            .where(email_keywords.c.email_id.in_(chunk), email_keywords.c.keyword.in_(list(other))))}
                        fresh = [{"email_id": e, "keyword": k, "display": d} for e in chunk for k, d in other.items()
                                 if (e, k) not in have]
                        if fresh:
                            conn.execute(sa.insert(email_keywords), fresh)
                elif mode == "remove":
                    if bits:
                        conn.execute(sa.update(emails).where(where).values(flags=emails.c.flags.op("&")(~bits & 0xFF)))
                    if other:
                        conn.execute(sa.delete(email_keywords).where(email_keywords.c.email_id.in_(chunk),
                                                                     email_keywords.c.keyword.in_(list(other))))
                else:
                    conn.execute(sa.update(emails).where(where).values(flags=bits))
                    conn.execute(sa.delete(email_keywords).where(email_keywords.c.email_id.in_(chunk)))
                    if other:
                        conn.execute(sa.insert(email_keywords), [{"email_id": e, "keyword": k, "display": d}
                                                                 for e in chunk for k, d in other.items()])
                conn.execute(sa.update(emails).where(where).values(modseq=tx.modseq))
                touched = conn.execute(sa.update(messages).where(messages.c.email_id.in_(chunk))
                                       .values(modseq=tx.modseq).returning(messages.c.mailbox_id)).all()
                tx.touch_mailbox(*{r[0] for r in touched})
                tx.log_many("Email", chunk, "u")
            target_uids = [r.uid for r in rows]
            if deleted is not None:
                for i in range(0, len(target_uids), 500):
                    conn.execute(sa.update(messages).where(messages.c.mailbox_id == mailbox_id,
                                                           messages.c.uid.in_(target_uids[i : i + 500]))
                                 .values(deleted=deleted, modseq=tx.modseq))
                tx.touch_mailbox(mailbox_id)
                # \Deleted hides a membership from JMAP: its mailboxIds changed, and maybe its thread's emailIds.
                tx.log_many("Email", email_ids, "u")
                for i in range(0, len(email_ids), 500):
                    threads = {r[0] for r in conn.execute(
                        sa.select(emails.c.thread_id).where(emails.c.id.in_(email_ids[i : i + 500])))}
                    tx.log_many("Thread", sorted(threads), "u")
            return StoreResult(sorted(target_uids), modified, tx.modseq)

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

    @writes
    def expunge(self, account_id: str, mailbox_id: str, uids: UidRanges | None = None) -> list[int]:
        """Remove \\Deleted memberships (optionally only within ``uids``); orphaned emails are destroyed."""
        with self._store.write(account_id) as tx:
            conn = tx.conn
            self._box(conn, account_id, mailbox_id)
            cond = [messages.c.mailbox_id == mailbox_id, messages.c.deleted.is_(True)]
            if uids is not None:
                cond.append(uid_condition(messages.c.uid, uids))
            rows = conn.execute(sa.select(messages.c.uid, messages.c.email_id).where(*cond)
                                .order_by(messages.c.uid)).all()
            if not rows:
                return []
            gone = [r.uid for r in rows]
            tx.affect_emails(list({r.email_id for r in rows}))
            for i in range(0, len(gone), 500):
                conn.execute(sa.delete(messages).where(messages.c.mailbox_id == mailbox_id,
                                                       messages.c.uid.in_(gone[i : i + 500])))
            conn.execute(sa.insert(vanished), [{"mailbox_id": mailbox_id, "uid": u, "modseq": tx.modseq} for u in gone])
            tx.touch_mailbox(mailbox_id)
            after_membership_change(tx, list({r.email_id for r in rows}))
            return gone

    @writes
    def claim_recent(self, mailbox_id: str) -> int:
        """IMAP4rev1 \\Recent: return the first UID this session may show as recent and claim the rest."""
        conn_ctx = self._store.engine.connect()
        conn = conn_ctx.execution_options(sqlite_begin="IMMEDIATE") if self._store.sqlite else conn_ctx
        with conn_ctx, conn.begin():  # take the write lock up front: concurrent SELECTs must not deadlock
            row = conn.execute(sa.select(mailboxes.c.recent_uid, mailboxes.c.uidnext)
                               .where(mailboxes.c.id == mailbox_id)).first()
            if row is None:
                raise NotFound(mailbox_id)
            if row.uidnext > row.recent_uid:
                conn.execute(sa.update(mailboxes).where(mailboxes.c.id == mailbox_id,
                                                        mailboxes.c.recent_uid == row.recent_uid)
                             .values(recent_uid=row.uidnext))
            return row.recent_uid
