"""Email-level writes, as JMAP sees them: keywords and mailbox sets per email, and destroy.

IMAP's view of the same operations (STORE, COPY, MOVE, EXPUNGE) is in ``membership.py``; both end in the same
rows and the same change log, so each protocol sees the other's changes at once.

The steps are plain functions over an open write transaction (``update_each``, ``update_one``,
``destroy_rows``) so that services can combine them with their own checks in ONE transaction
(``visible_emails.VisibleEmails.apply`` checks JMAP visibility first); ``EmailsMixin`` keeps the
stand-alone methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import keywords as kwmod
from .model import InvalidKeyword, NotFound, StoreError, TooManyKeywords
from .schema import email_keywords, emails, mailboxes, messages, thread_refs, threads, vanished
from .writes import writes

if TYPE_CHECKING:
    from .transaction import WriteTx


@dataclass
class EmailUpdate:
    """A change to one email. ``keywords``/``mailbox_ids`` replace; the add/remove sets patch."""

    keywords: list[str] | None = None
    add_keywords: list[str] = field(default_factory=list)
    remove_keywords: list[str] = field(default_factory=list)
    mailbox_ids: list[str] | None = None
    add_mailboxes: list[str] = field(default_factory=list)
    remove_mailboxes: list[str] = field(default_factory=list)


def destroy_rows(tx: WriteTx, email_ids: list[str]) -> None:
    """Delete emails with every membership (vanished rows for IMAP), keywords and full-text rows, inside
    ``tx``; threads left empty are destroyed, the others updated. The ids must be the account's."""
    conn = tx.conn
    for i in range(0, len(email_ids), 500):
        chunk = email_ids[i : i + 500]
        memb = conn.execute(
            sa.select(messages.c.mailbox_id, messages.c.uid).where(messages.c.email_id.in_(chunk))
        ).all()
        if memb:
            conn.execute(sa.insert(vanished), [{"mailbox_id": r.mailbox_id, "uid": r.uid, "modseq": tx.modseq}
                                               for r in memb])
            tx.touch_mailbox(*{r.mailbox_id for r in memb})
            conn.execute(sa.delete(messages).where(messages.c.email_id.in_(chunk)))
        thread_ids = {r[0] for r in conn.execute(sa.select(emails.c.thread_id).where(emails.c.id.in_(chunk)))}
        conn.execute(sa.delete(email_keywords).where(email_keywords.c.email_id.in_(chunk)))
        if tx.store.sqlite:
            conn.execute(sa.text("DELETE FROM email_fts WHERE email_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)), {"ids": chunk})
        conn.execute(sa.delete(emails).where(emails.c.id.in_(chunk)))
        tx.log_many("Email", chunk, "d")
        if not thread_ids:
            continue
        tids = sorted(thread_ids)
        alive = {r[0] for r in conn.execute(
            sa.select(emails.c.thread_id).where(emails.c.thread_id.in_(tids)).distinct())}
        empty = [t for t in tids if t not in alive]
        if empty:  # a thread with no email left is destroyed, with its refs (its id is never given again)
            conn.execute(sa.delete(thread_refs).where(thread_refs.c.thread_id.in_(empty)))
            conn.execute(sa.delete(threads).where(threads.c.id.in_(empty)))
            tx.log_many("Thread", empty, "d")
        if alive:
            conn.execute(sa.update(threads).where(threads.c.id.in_(sorted(alive))).values(modseq=tx.modseq))
            tx.log_many("Thread", sorted(alive), "u")


def own_mailbox_ids(conn: sa.Connection, account_id: str) -> set[str]:
    """The ids of the account's mailboxes (what an update may put an email into)."""
    return {r[0] for r in conn.execute(sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id))}


def update_each(tx: WriteTx, account_id: str, updates: dict[str, EmailUpdate]) -> dict[str, StoreError | None]:
    """Apply updates inside ``tx``, each in its own savepoint: one email's failure leaves the others."""
    conn = tx.conn
    own_boxes = own_mailbox_ids(conn, account_id)
    results: dict[str, StoreError | None] = {}
    for email_id, upd in updates.items():
        sp = conn.begin_nested()
        try:
            update_one(tx, account_id, email_id, upd, own_boxes)
            sp.commit()
            results[email_id] = None
        except StoreError as exc:
            sp.rollback()
            results[email_id] = exc
    return results


def update_one(tx: WriteTx, account_id: str, email_id: str, upd: EmailUpdate, own_boxes: set[str]) -> None:
    """One email's keyword and mailbox changes; NotFound / StoreError / TooManyKeywords leave it as it was
    (the caller's savepoint rolls back)."""
    conn = tx.conn
    row = conn.execute(sa.select(emails.c.flags).where(emails.c.id == email_id,
                                                         emails.c.account_id == account_id)).first()
    if row is None:
        raise NotFound(email_id)
    changed = False
    if upd.keywords is not None or upd.add_keywords or upd.remove_keywords:
        current = {r.keyword: r.display for r in conn.execute(
            sa.select(email_keywords).where(email_keywords.c.email_id == email_id))}
        for k in kwmod.bits_to_keywords(row.flags):
            current[k] = k
        new = kwmod.normalize(upd.keywords) if upd.keywords is not None else dict(current)
        for kw in upd.add_keywords:
            new.setdefault(kwmod.validate(kw), kw)
        for kw in upd.remove_keywords:
            try:
                new.pop(kwmod.validate(kw), None)
            except InvalidKeyword:
                pass
        if len(new) > kwmod.MAX_KEYWORDS:
            raise TooManyKeywords(email_id)
        if new.keys() != current.keys():
            _write_keywords(conn, email_id, new, current)
            changed = True
    if upd.mailbox_ids is not None or upd.add_mailboxes or upd.remove_mailboxes:
        memb = conn.execute(sa.select(messages.c.mailbox_id, messages.c.uid, messages.c.deleted)
                            .where(messages.c.email_id == email_id)).all()
        visible = {r.mailbox_id for r in memb if not r.deleted}
        target = set(upd.mailbox_ids) if upd.mailbox_ids is not None else set(visible)
        target |= set(upd.add_mailboxes)
        target -= set(upd.remove_mailboxes)
        if not target:
            raise StoreError("an email must be in at least one mailbox")
        unknown = target - own_boxes
        if unknown:
            raise NotFound(sorted(unknown)[0])
        removed = [r for r in memb if r.mailbox_id not in target]
        present = {r.mailbox_id for r in memb}
        added = sorted(target - present)
        # A \Deleted membership in a target mailbox becomes visible again.
        undeleted = [r for r in memb if r.mailbox_id in target and r.deleted]
        for r in removed:
            conn.execute(sa.delete(messages).where(messages.c.mailbox_id == r.mailbox_id, messages.c.uid == r.uid))
            conn.execute(sa.insert(vanished).values(mailbox_id=r.mailbox_id, uid=r.uid, modseq=tx.modseq))
            tx.touch_mailbox(r.mailbox_id)
        for r in undeleted:
            conn.execute(sa.update(messages).where(messages.c.mailbox_id == r.mailbox_id, messages.c.uid == r.uid)
                         .values(deleted=False, modseq=tx.modseq))
            tx.touch_mailbox(r.mailbox_id)
        for mid in added:
            uid = conn.execute(sa.update(mailboxes).where(mailboxes.c.id == mid)
                               .values(uidnext=mailboxes.c.uidnext + 1).returning(mailboxes.c.uidnext)).scalar_one() - 1
            conn.execute(sa.insert(messages).values(mailbox_id=mid, uid=uid, email_id=email_id, deleted=False,
                                                    modseq=tx.modseq))
            tx.touch_mailbox(mid)
        if removed or added or undeleted:
            changed = True
    if changed:
        _stamp_email(tx, email_id)

def _write_keywords(conn: sa.Connection, email_id: str, new: dict[str, str], current: dict[str, str]) -> None:
    bits, other = kwmod.split(new)
    _, old_other = kwmod.split(current)
    conn.execute(sa.update(emails).where(emails.c.id == email_id).values(flags=bits))
    gone = [k for k in old_other if k not in other]
    if gone:
        conn.execute(sa.delete(email_keywords).where(email_keywords.c.email_id == email_id,
                                                     email_keywords.c.keyword.in_(gone)))
    fresh = [{"email_id": email_id, "keyword": k, "display": d} for k, d in other.items() if k not in old_other]
    if fresh:
        conn.execute(sa.insert(email_keywords), fresh)

def _stamp_email(tx: WriteTx, email_id: str) -> None:
    """An email changed: new modseq on the email and on every membership (flags are shared by all copies)."""
    conn = tx.conn
    conn.execute(sa.update(emails).where(emails.c.id == email_id).values(modseq=tx.modseq))
    boxes = [r[0] for r in conn.execute(sa.update(messages).where(messages.c.email_id == email_id)
                                        .values(modseq=tx.modseq).returning(messages.c.mailbox_id))]
    tx.touch_mailbox(*boxes)
    tx.log("Email", email_id, "u")


class EmailsMixin:
    def _destroy_email_rows(self, tx: WriteTx, email_ids: list[str]) -> None:
        destroy_rows(tx, email_ids)

    @writes
    def destroy_emails(self, account_id: str, email_ids: list[str]) -> tuple[list[str], list[str]]:
        """Destroy emails (from every mailbox). Returns (destroyed, not_found)."""
        with self.write(account_id) as tx:
            found = []
            for i in range(0, len(email_ids), 500):
                found += [r[0] for r in tx.conn.execute(sa.select(emails.c.id).where(
                    emails.c.account_id == account_id, emails.c.id.in_(email_ids[i : i + 500])))]
            if found:
                destroy_rows(tx, found)
        fs = set(found)
        return found, [e for e in email_ids if e not in fs]

    @writes
    def update_emails(self, account_id: str, updates: dict[str, EmailUpdate]) -> dict[str, StoreError | None]:
        """Apply JMAP-style updates; each email succeeds or fails alone (the error is returned per id)."""
        with self.write(account_id) as tx:
            return update_each(tx, account_id, updates)
