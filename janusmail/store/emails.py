"""The emails service: storing new messages (ingest), JMAP-style updates and destroys, and reading an
email's bytes and ingest-time MIME cache.

IMAP's view of the same rows (STORE, COPY, MOVE, EXPUNGE) is the memberships service (``membership.py``); both
end in the same rows and the same change log, so each protocol sees the other's changes at once.

The write steps are plain functions over an open write transaction (``update_each``, ``update_one``,
``destroy_rows``, ``after_membership_change``) so that services combine them with their own checks in ONE
transaction (``visible_emails.VisibleEmails.apply`` checks JMAP visibility first; the mailboxes and
memberships services destroy emails left in no mailbox).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from . import keywords as kwmod
from .model import BlobLocation, Delivered, IngestItem, InvalidKeyword, NotFound, StoreError, TooManyKeywords
from .schema import blobs, email_keywords, emails, mailboxes, messages, thread_refs, threads, vanished
from .search.index import delete_text
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from . import ingest as ingesting
    from .store import Store
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
    tx.affect_emails(email_ids)
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
        delete_text(conn, tx.store.sqlite, chunk)
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


def after_membership_change(tx: WriteTx, email_ids: list[str]) -> list[str]:
    """Emails whose memberships changed (EXPUNGE, mailbox destroy): destroy the ones left in no mailbox, log
    the rest as updated. Returns the destroyed ids."""
    if not email_ids:
        return []
    conn = tx.conn
    orphans: list[str] = []
    for i in range(0, len(email_ids), 500):
        chunk = email_ids[i : i + 500]
        still = {r[0] for r in conn.execute(
            sa.select(messages.c.email_id).where(messages.c.email_id.in_(chunk)).distinct()
        )}
        orphans.extend(e for e in chunk if e not in still)
        live = [e for e in chunk if e in still]
        if live:
            conn.execute(sa.update(emails).where(emails.c.id.in_(live)).values(modseq=tx.modseq))
            tx.log_many("Email", live, "u")
    if orphans:
        destroy_rows(tx, orphans)
    return orphans


def own_mailbox_ids(conn: sa.Connection, account_id: str) -> set[str]:
    """The ids of the account's mailboxes (what an update may put an email into)."""
    return {r[0] for r in conn.execute(sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id))}


def update_each(tx: WriteTx, account_id: str, updates: dict[str, EmailUpdate]) -> dict[str, StoreError | None]:
    """Apply updates inside ``tx``; one email's failure leaves the others (the error is its result).

    Keyword-only updates (the common case: mark read, flag, label) are applied as one set of statements for
    the whole batch (:func:`_update_keywords`); updates that move an email between mailboxes go one by one,
    each in its own savepoint."""
    conn = tx.conn
    tx.affect_emails([eid for eid, upd in updates.items() if _moves_counters(upd)])  # one batch, before any change
    keyword_only = {eid: upd for eid, upd in updates.items() if not _changes_mailboxes(upd)}
    results = _update_keywords(tx, account_id, keyword_only) if keyword_only else {}
    own_boxes: set[str] | None = None
    for email_id, upd in updates.items():
        if email_id in keyword_only:
            continue
        if own_boxes is None:
            own_boxes = own_mailbox_ids(conn, account_id)
        sp = conn.begin_nested()
        try:
            update_one(tx, account_id, email_id, upd, own_boxes)
            sp.commit()
            results[email_id] = None
        except StoreError as exc:
            sp.rollback()
            results[email_id] = exc
    return {eid: results[eid] for eid in updates}


def _changes_mailboxes(upd: EmailUpdate) -> bool:
    return bool(upd.mailbox_ids is not None or upd.add_mailboxes or upd.remove_mailboxes)


def _new_keywords(current: dict[str, str], upd: EmailUpdate, email_id: str) -> dict[str, str]:
    """The email's keywords after ``upd`` ({key: display}); InvalidKeyword / TooManyKeywords refuse it."""
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
    return new


def _update_keywords(tx: WriteTx, account_id: str, updates: dict[str, EmailUpdate]) -> dict[str, StoreError | None]:
    """Keyword-only updates of many emails in a fixed number of statements (not a few per email): read the
    emails' flags and keywords, decide every email's result in Python, then write the differences grouped by
    value (one UPDATE per distinct flag word, one DELETE per keyword removed, one INSERT of all new pairs, one
    modseq stamp). Refused emails (NotFound, invalid or too many keywords) are simply not written."""
    conn = tx.conn
    ids = list(updates)
    flags: dict[str, int] = {}
    current: dict[str, dict[str, str]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        flags.update((r[0], r[1]) for r in conn.execute(
            sa.select(emails.c.id, emails.c.flags).where(emails.c.account_id == account_id, emails.c.id.in_(chunk))))
        mine = [e for e in chunk if e in flags]
        if mine:
            for r in conn.execute(sa.select(email_keywords.c.email_id, email_keywords.c.keyword,
                                            email_keywords.c.display).where(email_keywords.c.email_id.in_(mine))):
                current.setdefault(r[0], {})[r[1]] = r[2]
    results: dict[str, StoreError | None] = {}
    new_bits: dict[int, list[str]] = {}
    gone: dict[str, list[str]] = {}
    fresh: list[dict[str, str]] = []
    changed: list[str] = []
    for eid, upd in updates.items():
        if eid not in flags:
            results[eid] = NotFound(eid)
            continue
        have = dict(current.get(eid, {}))
        for k in kwmod.bits_to_keywords(flags[eid]):
            have[k] = k
        try:
            new = _new_keywords(have, upd, eid)
        except StoreError as exc:
            results[eid] = exc
            continue
        results[eid] = None
        if new.keys() == have.keys():
            continue
        changed.append(eid)
        bits, other = kwmod.split(new)
        _, old_other = kwmod.split(have)
        if bits != flags[eid]:
            new_bits.setdefault(bits, []).append(eid)
        for k in old_other.keys() - other.keys():
            gone.setdefault(k, []).append(eid)
        fresh.extend({"email_id": eid, "keyword": k, "display": d} for k, d in other.items() if k not in old_other)
    for bits, group in new_bits.items():
        for i in range(0, len(group), 500):
            conn.execute(sa.update(emails).where(emails.c.id.in_(group[i : i + 500])).values(flags=bits))
    for keyword, group in gone.items():
        for i in range(0, len(group), 500):
            conn.execute(sa.delete(email_keywords).where(email_keywords.c.keyword == keyword,
                                                         email_keywords.c.email_id.in_(group[i : i + 500])))
    if fresh:
        conn.execute(sa.insert(email_keywords), fresh)
    for i in range(0, len(changed), 500):
        chunk = changed[i : i + 500]
        conn.execute(sa.update(emails).where(emails.c.id.in_(chunk)).values(modseq=tx.modseq))
        boxes = conn.execute(sa.update(messages).where(messages.c.email_id.in_(chunk))
                             .values(modseq=tx.modseq).returning(messages.c.mailbox_id)).all()
        tx.touch_mailbox(*{r[0] for r in boxes})
    tx.log_many("Email", changed, "u")
    return results


#: keywords the mailbox counters depend on (unseen, unread)
_COUNTED_KEYWORDS = frozenset({"$seen", "$draft"})


def _moves_counters(upd: EmailUpdate) -> bool:
    """Whether this update can change a mailbox counter: a mailbox change, or \\Seen / \\Draft."""
    return bool(upd.keywords is not None or upd.mailbox_ids is not None or upd.add_mailboxes
                or upd.remove_mailboxes
                or any(k.lower() in _COUNTED_KEYWORDS for k in (*upd.add_keywords, *upd.remove_keywords)))


def update_one(tx: WriteTx, account_id: str, email_id: str, upd: EmailUpdate, own_boxes: set[str]) -> None:
    """One email's keyword and mailbox changes; NotFound / StoreError / TooManyKeywords leave it as it was
    (the caller's savepoint rolls back). The caller has named the email to the counters (``tx.affect_emails``)
    when ``_moves_counters(upd)``."""
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
        new = _new_keywords(current, upd, email_id)
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


class Emails:
    """Emails of an account: ingest, JMAP updates and destroys, bytes and MIME cache by email or blob id."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- ingest --------------------------------------------------------------------------------------------

    def prepare(self, item: IngestItem) -> ingesting.Prepared:
        """CPU part of ingest (parse, hash, validate keywords); runs outside any transaction (see ingest.py)."""
        from . import ingest as ingesting  # not at import time: ingest needs the search index, which needs us

        return ingesting.prepare(item, self._store.max_message_size)

    @writes
    def ingest(self, account_id: str, raw: bytes, mailbox_ids: tuple[str, ...] | list[str],
               keywords: tuple[str, ...] | list[str] = (), received_at: int | None = None, *,
               deleted: bool = False) -> Delivered:
        """One message; ``deleted``: its memberships start with IMAP's ``\\Deleted`` (see IngestItem)."""
        item = IngestItem(raw, tuple(mailbox_ids), tuple(keywords), received_at, deleted)
        return self.ingest_many(account_id, [item])[0]

    @writes
    def ingest_many(self, account_id: str, items: list[IngestItem],
                    prepared: list[ingesting.Prepared] | None = None) -> list[Delivered]:
        """Store a batch of messages in one transaction; returns one Delivered per item, in order."""
        if not items and not prepared:
            return []
        from . import ingest as ingesting

        prep = prepared if prepared is not None else [self.prepare(it) for it in items]
        return ingesting.store_batch(self._store, account_id, prep)

    def digests_present(self, account_id: str, digests: list[str],
                        mailbox_ids: list[str] | set[str]) -> set[tuple[str, str]]:
        """Which (sha256, mailbox id) pairs already hold a live message: the import's "already there" test.

        One indexed query per call (blobs by digest, then their emails, then memberships), so an importer can
        ask once per batch instead of once per message. The mailbox filter is applied here, not in SQL: with a
        mailbox condition the planner (SQLite without statistics, on a fresh import) walks the whole mailbox
        per call, which makes a large import quadratic; a digest has only a handful of memberships.
        A \\Deleted membership does not count: it is invisible to JMAP and on its way out, so bytes that only
        survive there are not "in the mailbox" any more.
        """
        if not digests or not mailbox_ids:
            return set()
        wanted = set(mailbox_ids)
        q = (sa.select(blobs.c.sha256, messages.c.mailbox_id)
             .select_from(blobs.join(emails, sa.and_(emails.c.blob_id == blobs.c.id,
                                                     emails.c.account_id == blobs.c.account_id))
                          .join(messages, messages.c.email_id == emails.c.id))
             .where(blobs.c.account_id == account_id, blobs.c.sha256.in_(list(set(digests))),
                    messages.c.deleted.is_(False)))
        with self._store.engine.connect() as conn:
            return {(r.sha256, r.mailbox_id) for r in conn.execute(q) if r.mailbox_id in wanted}

    # -- JMAP writes ---------------------------------------------------------------------------------------

    @writes
    def destroy(self, account_id: str, email_ids: list[str]) -> tuple[list[str], list[str]]:
        """Destroy emails (from every mailbox). Returns (destroyed, not_found)."""
        with self._store.write(account_id) as tx:
            found = []
            for i in range(0, len(email_ids), 500):
                found += [r[0] for r in tx.conn.execute(sa.select(emails.c.id).where(
                    emails.c.account_id == account_id, emails.c.id.in_(email_ids[i : i + 500])))]
            if found:
                destroy_rows(tx, found)
        fs = set(found)
        return found, [e for e in email_ids if e not in fs]

    @writes
    def update(self, account_id: str, updates: dict[str, EmailUpdate]) -> dict[str, StoreError | None]:
        """Apply JMAP-style updates; each email succeeds or fails alone (the error is returned per id)."""
        with self._store.write(account_id) as tx:
            return update_each(tx, account_id, updates)

    # -- bytes and parse cache -----------------------------------------------------------------------------

    def location(self, account_id: str, email_id: str) -> BlobLocation:
        """Where the email's raw bytes live; ``NotFound`` for another account's email."""
        with self._store.engine.connect() as conn:
            row = conn.execute(sa.select(blobs.c.id, blobs.c.sha256, blobs.c.size, blobs.c.pack, blobs.c.offset,
                                         blobs.c.type)
                               .select_from(emails.join(blobs, blobs.c.id == emails.c.blob_id))
                               .where(emails.c.id == email_id, emails.c.account_id == account_id)).first()
        if row is None:
            raise NotFound(email_id)
        return BlobLocation(row.id, row.sha256, row.size, row.pack, row.offset, row.type)

    def raw(self, account_id: str, email_id: str) -> bytes:
        """The email's bytes as stored."""
        return self._store.blobs.read_location(self.location(account_id, email_id))

    def message_cache(self, account_id: str, blob_id: str) -> dict[str, Any] | None:
        """The ingest-time MIME cache of the account's message stored as ``blob_id`` (any email with those
        bytes: identical messages share a blob), for reading a body part by its offsets; None if there is none
        or it is unreadable."""
        with self._store.engine.connect() as conn:
            row = conn.execute(sa.select(emails.c.cache)
                               .where(emails.c.account_id == account_id, emails.c.blob_id == blob_id)
                               .limit(1)).first()
        if row is None:
            return None
        try:
            cache = orjson.loads(row.cache)
        except orjson.JSONDecodeError:
            return None
        return cache if isinstance(cache, dict) else None
