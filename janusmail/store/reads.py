"""Reads both protocols share: the change log and states, mailbox counts, raw message bytes and MIME caches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from . import faults
from .model import BlobLocation, ChangeEntry, MailboxCounts, NotFound
from .schema import FLAG_DRAFT, FLAG_SEEN, blobs, changes, emails, mailboxes, messages
from .writes import writes


class ReadsMixin:
    def changes_since(self, account_id: str, kind: str, since: int, limit: int | None = None) -> list[ChangeEntry]:
        """Log rows of one kind with modseq > since, oldest first (one indexed range scan)."""
        q = (sa.select(changes.c.modseq, changes.c.object_id, changes.c.op)
             .where(changes.c.account_id == account_id, changes.c.kind == kind, changes.c.modseq > since)
             .order_by(changes.c.modseq, changes.c.seq))
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [ChangeEntry(r.modseq, r.object_id, r.op) for r in conn.execute(q)]

    def kind_state(self, account_id: str, kind: str) -> int:
        """The modseq of the newest change of this kind (a JMAP state), or 0."""
        with self.engine.connect() as conn:
            v = conn.execute(sa.select(sa.func.max(changes.c.modseq))
                             .where(changes.c.account_id == account_id, changes.c.kind == kind)).scalar()
        return int(v or 0)

    def state_snapshot(self, account_id: str) -> dict[str, int]:
        """The newest modseq of each change kind ("Mailbox", "Email", "Thread") and of the newest email creation
        ("EmailDelivery"), 0 when none, read on one connection (push's catch-up and event ids)."""
        q = (sa.select(changes.c.kind, sa.func.max(changes.c.modseq))
             .where(changes.c.account_id == account_id, changes.c.kind.in_(("Mailbox", "Email", "Thread")))
             .group_by(changes.c.kind))
        q_delivery = sa.select(sa.func.max(changes.c.modseq)).where(
            changes.c.account_id == account_id, changes.c.kind == "Email", changes.c.op == "c")
        with self.engine.connect() as conn:
            states = {kind: int(m or 0) for kind, m in conn.execute(q)}
            delivery = conn.execute(q_delivery).scalar()
        out = {k: states.get(k, 0) for k in ("Mailbox", "Email", "Thread")}
        out["EmailDelivery"] = int(delivery or 0)
        return out

    def unknown_mailboxes(self, account_id: str, mailbox_ids: Sequence[str]) -> list[str]:
        """The ids among ``mailbox_ids`` that are not mailboxes of this account, in the order given."""
        ids = list(mailbox_ids)
        if not ids:
            return []
        with self.engine.connect() as conn:
            have = {r[0] for r in conn.execute(
                sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id, mailboxes.c.id.in_(ids)))}
        return [i for i in ids if i not in have]

    def mailbox_counts(self, account_id: str, mailbox_ids: list[str] | None = None) -> dict[str, MailboxCounts]:
        """IMAP STATUS numbers and JMAP Mailbox counts for several mailboxes, in one grouped query."""
        m, e = messages, emails
        unread = (e.c.flags.op("&")(FLAG_SEEN | FLAG_DRAFT)) == 0
        unseen = (e.c.flags.op("&")(FLAG_SEEN)) == 0
        live = m.c.deleted.is_(False)
        q = (
            sa.select(
                m.c.mailbox_id,
                sa.func.count(),
                sa.func.sum(sa.case((unseen, 1), else_=0)),
                sa.func.sum(sa.case((m.c.deleted.is_(True), 1), else_=0)),
                sa.func.sum(e.c.size),
                sa.func.count(sa.distinct(sa.case((live, m.c.email_id)))),
                sa.func.count(sa.distinct(sa.case((sa.and_(live, unread), m.c.email_id)))),
                sa.func.count(sa.distinct(sa.case((live, e.c.thread_id)))),
                sa.func.count(sa.distinct(sa.case((sa.and_(live, unread), e.c.thread_id)))),
            )
            .select_from(m.join(e, e.c.id == m.c.email_id))
            .group_by(m.c.mailbox_id)
        )
        if mailbox_ids is not None:
            q = q.where(m.c.mailbox_id.in_(mailbox_ids))
        else:
            q = q.where(m.c.mailbox_id.in_(sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id)))
        out: dict[str, MailboxCounts] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(q):
                out[r[0]] = MailboxCounts(*(int(x or 0) for x in r[1:]))
        return out

    def mailbox_counts_cached(self, account_id: str, email_state: int | None = None) -> dict[str, MailboxCounts]:
        """All mailbox counts of an account, remembered per Email state.

        Counts cannot change without an Email change (delivery, flags, \\Deleted, membership, expunge all log
        one), and on a 100k mailbox the grouped count costs hundreds of milliseconds, so JMAP's Mailbox/get and
        Email/query totals share one computation per state.
        """
        state = self.kind_state(account_id, "Email") if email_state is None else email_state
        with self._counts_lock:
            hit = self._counts_cache.get(account_id)
        if hit is not None and hit[0] == state:
            return hit[1]
        counts = self.mailbox_counts(account_id, None)
        with self._counts_lock:
            if len(self._counts_cache) > 10_000:
                self._counts_cache.clear()
            self._counts_cache[account_id] = (state, counts)
        return counts

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
        with self.engine.connect() as conn:
            return {(r.sha256, r.mailbox_id) for r in conn.execute(q) if r.mailbox_id in wanted}

    def blob_location(self, account_id: str, blob_id: str) -> BlobLocation | None:
        """Where one of this account's blobs lives; None for anything else (no cross-account access)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(blobs.c.sha256, blobs.c.size, blobs.c.pack, blobs.c.offset, blobs.c.type)
                               .where(blobs.c.id == blob_id, blobs.c.account_id == account_id)).first()
        return BlobLocation(blob_id, row.sha256, row.size, row.pack, row.offset, row.type) if row else None

    def read_blob(self, account_id: str, blob_id: str, start: int = 0, end: int | None = None) -> bytes:
        loc = self.blob_location(account_id, blob_id)
        if loc is None:
            raise NotFound(blob_id)
        return self.blobs.read(loc.pack, loc.offset, loc.size, start, end)

    def read_location(self, loc: BlobLocation, start: int = 0, end: int | None = None) -> bytes:
        return self.blobs.read(loc.pack, loc.offset, loc.size, start, end)

    def email_location(self, account_id: str, email_id: str) -> BlobLocation:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(blobs.c.id, blobs.c.sha256, blobs.c.size, blobs.c.pack, blobs.c.offset,
                                         blobs.c.type)
                               .select_from(emails.join(blobs, blobs.c.id == emails.c.blob_id))
                               .where(emails.c.id == email_id, emails.c.account_id == account_id)).first()
        if row is None:
            raise NotFound(email_id)
        return BlobLocation(row.id, row.sha256, row.size, row.pack, row.offset, row.type)

    def message_cache(self, account_id: str, blob_id: str) -> dict[str, Any] | None:
        """The ingest-time MIME cache of the account's message stored as ``blob_id`` (any email with those
        bytes: identical messages share a blob), for reading a body part by its offsets; None if there is none
        or it is unreadable."""
        with self.engine.connect() as conn:
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

    def email_raw(self, account_id: str, email_id: str) -> bytes:
        return self.read_location(self.email_location(account_id, email_id))

    @writes
    def store_upload(self, account_id: str, data: bytes, type_: str | None) -> tuple[str, int]:
        """Store an uploaded blob (JMAP upload): durable bytes, then the account's row. Returns (blob_id, size)."""
        import hashlib
        import time

        from . import ids

        digest = hashlib.sha256(data).hexdigest()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(blobs.c.id).where(blobs.c.account_id == account_id,
                                                           blobs.c.sha256 == digest)).first()
        if row:
            return row.id, len(data)
        pack, offset = self.blobs.append(data)  # StorageUnavailable if the disk refuses
        blob_id = ids.mint(ids.BLOB)
        try:
            with faults.mapped(), self.engine.begin() as conn:
                conn.execute(sa.insert(blobs).values(id=blob_id, account_id=account_id, sha256=digest, size=len(data),
                                                     type=type_, pack=pack, offset=offset, created_at=int(time.time())))
        except sa.exc.IntegrityError:  # a concurrent upload of the same bytes won
            with self.engine.connect() as conn:
                return conn.execute(sa.select(blobs.c.id).where(blobs.c.account_id == account_id,
                                                                blobs.c.sha256 == digest)).scalar_one(), len(data)
        return blob_id, len(data)
