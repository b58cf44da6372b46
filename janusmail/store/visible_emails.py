"""Emails as JMAP sees them: an email exists only while it has a visible (not ``\\Deleted``) membership.

IMAP keeps a ``\\Deleted`` membership until EXPUNGE; JMAP has no such state, so an email whose memberships are
all ``\\Deleted`` is treated as destroyed (Email/get says notFound, /set cannot touch it, Thread/get leaves
it out). This service holds the reads that apply that rule and the writes that must check it in the same
transaction as they write (a check on another connection could pass just before an IMAP client marks the
last membership ``\\Deleted``).

Every read takes a list of ids and runs one query per 500 of them, by id only: the account is compared in
Python, because given to SQLite the condition makes it walk the account's index instead of the primary key.
These are page-sized reads (a client asks for tens of emails), so they go through ``conn.execute`` and its
compiled-statement cache; ``raw_rows`` (which compiles every time) pays off only for bulk reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from .emails import EmailUpdate, destroy_rows, update_each
from .model import BlobLocation, NotFound, StoreError
from .schema import blobs, email_keywords, emails, messages
from .writes import writes

if TYPE_CHECKING:
    from .sqltext import SqlText
    from .store import Store

__all__ = ["CHUNK", "EmailRow", "SetOutcome", "VisibleEmails", "visible_among"]

CHUNK = 500


@dataclass(frozen=True, slots=True)
class EmailRow:
    """What the store holds about one visible email, for building a JMAP Email object."""

    id: str
    blob_id: str
    thread_id: str
    size: int
    received_at: int
    #: System keywords as bits (``keywords.bits_to_keywords``).
    flags: int
    preview: str
    has_attachment: bool
    #: The mailboxes of its visible memberships.
    mailbox_ids: list[str]
    #: Its other keywords (lowercase keys, sorted); empty unless asked for.
    keywords: list[str]
    #: The ingest-time MIME cache (``janusmail.mime.parse`` output), None unless asked for; {} if unreadable.
    cache: dict[str, Any] | None
    #: Where its raw bytes are, None unless asked for.
    location: BlobLocation | None


@dataclass(frozen=True, slots=True)
class SetOutcome:
    """What ``VisibleEmails.apply`` could not do. ``update_errors``: per email id, ``NotFound(email_id)`` for an
    email that is not visible, or the store's reason; ``not_destroyed``: ids that were not visible emails."""

    update_errors: dict[str, StoreError]
    not_destroyed: list[str]


class _NothingToWrite(Exception):
    """Raised inside a write transaction to roll it back: nothing asked for is visible."""


def visible_among(conn: sa.Connection, account_id: str, ids: Sequence[str], sql: SqlText | None = None) -> set[str]:
    """Which of these ids are emails of the account with at least one visible membership (on ``conn``). With
    the store's ``sql`` (a write's hot path: JMAP /set) the statement runs as compiled text on the cursor."""
    out: set[str] = set()
    ids = list(ids)
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        rows = sql.run(conn, _VISIBLE_AMONG, {"ids": chunk}) if sql is not None else conn.execute(
            _VISIBLE_AMONG, {"ids": chunk})
        out.update(email_id for email_id, acct in rows if acct == account_id)
    return out


_VISIBLE_AMONG = (
    sa.select(messages.c.email_id, emails.c.account_id)
    .select_from(messages.join(emails, emails.c.id == messages.c.email_id))
    .where(messages.c.email_id.in_(sa.bindparam("ids", expanding=True)), messages.c.deleted.is_(False))
)


def _load_cache(raw: Any) -> dict[str, Any]:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}


class VisibleEmails:
    """Reads and writes of emails under JMAP's visibility rule. Reads run on any thread; ``apply`` is a write
    (``await store.call(store.visible_emails.apply, ...)`` runs it on the writer executor)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reads -------------------------------------------------------------------------------------------

    def among(self, account_id: str, ids: Sequence[str]) -> set[str]:
        """The visible emails of the account among ``ids``."""
        if not ids:
            return set()
        with self._store.engine.connect() as conn:
            return visible_among(conn, account_id, ids)

    def newest(self, account_id: str, limit: int) -> list[str]:
        """The ids of the account's newest visible emails (by receivedAt), at most ``limit``."""
        e = emails
        visible = sa.exists().where(messages.c.email_id == e.c.id, messages.c.deleted.is_(False))
        q = sa.select(e.c.id).where(e.c.account_id == account_id, visible).order_by(e.c.received_at.desc()).limit(limit)
        with self._store.engine.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def rows(
        self, account_id: str, ids: Sequence[str], *, keywords: bool = True, cache: bool = False,
        location: bool = False,
    ) -> list[EmailRow]:
        """The visible ones among ``ids``, in the order asked (duplicates once, unknown ids absent).

        One snapshot, three queries per 500 ids (rows, visible memberships, keywords if asked). ``cache``
        adds the MIME cache (a few KB per email), ``location`` where the raw bytes are (a join with blobs)."""
        cols = [
            emails.c.id,
            emails.c.account_id,
            emails.c.blob_id,
            emails.c.thread_id,
            emails.c.size,
            emails.c.received_at,
            emails.c.flags,
            emails.c.preview,
            emails.c.has_attachment,
        ]
        if cache:
            cols.append(emails.c.cache)
        src: Any = emails
        if location:
            cols += [blobs.c.sha256, blobs.c.size, blobs.c.pack, blobs.c.offset, blobs.c.type]
            src = emails.join(blobs, blobs.c.id == emails.c.blob_id)
        found: dict[str, tuple] = {}
        boxes: dict[str, list[str]] = {}
        others: dict[str, list[str]] = {}
        ids = list(dict.fromkeys(ids))
        with self._store.engine.connect() as conn, conn.begin():
            for i in range(0, len(ids), CHUNK):
                chunk = ids[i : i + CHUNK]
                for r in conn.execute(sa.select(*cols).select_from(src).where(emails.c.id.in_(chunk))):
                    if r[1] == account_id:
                        found[r[0]] = r
                memberships = sa.select(messages.c.email_id, messages.c.mailbox_id).where(
                    messages.c.email_id.in_(chunk), messages.c.deleted.is_(False)
                )
                for email_id, mailbox_id in conn.execute(memberships):
                    boxes.setdefault(email_id, []).append(mailbox_id)
                if keywords:
                    kw = sa.select(email_keywords.c.email_id, email_keywords.c.keyword).where(
                        email_keywords.c.email_id.in_(chunk)
                    )
                    for email_id, keyword in conn.execute(kw):
                        others.setdefault(email_id, []).append(keyword)
        out: list[EmailRow] = []
        loc_at = 10 if cache else 9
        for email_id in ids:
            r = found.get(email_id)
            if r is None or email_id not in boxes:
                continue
            loc = None
            if location:
                sha256, size, pack, offset, type_ = r[loc_at : loc_at + 5]
                loc = BlobLocation(r[2], sha256, size, pack, offset, type_)
            out.append(
                EmailRow(
                    r[0], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]), boxes[email_id],
                    sorted(others.get(email_id, ())), _load_cache(r[9]) if cache else None, loc,
                )  # fmt: skip
            )
        return out

    def thread_members(self, account_id: str, thread_ids: Sequence[str]) -> dict[str, list[str]]:
        """thread id -> its visible email ids, oldest first (receivedAt, then id: a stable total order);
        threads of another account or without a visible email are absent.

        By the thread index, the account checked here, not in SQL: with ``account_id = ?`` beside the ``IN``
        list SQLite walks the account's whole received_at index instead (about 0.1 s for a 100k account)."""
        out: dict[str, list[str]] = {}
        ids = list(dict.fromkeys(thread_ids))
        visible = (
            sa.select(messages.c.email_id)
            .where(messages.c.email_id == emails.c.id, messages.c.deleted.is_(False))
            .exists()
        )
        with self._store.engine.connect() as conn:
            for i in range(0, len(ids), CHUNK):
                q = (
                    sa.select(emails.c.thread_id, emails.c.id, emails.c.account_id)
                    .where(emails.c.thread_id.in_(ids[i : i + CHUNK]), visible)
                    .order_by(emails.c.thread_id, emails.c.received_at, emails.c.id)
                )
                for thread_id, email_id, owner in conn.execute(q):
                    if owner == account_id:
                        out.setdefault(thread_id, []).append(email_id)
        return out

    # -- writes ------------------------------------------------------------------------------------------

    @writes
    def apply(
        self, account_id: str, updates: dict[str, EmailUpdate] | None = None, destroys: Sequence[str] = ()
    ) -> SetOutcome:
        """Update, then destroy, the visible ones among the given emails, in ONE transaction that checks
        visibility itself. Each update succeeds or fails alone; ids that are not visible emails of the
        account are reported, not written. When nothing asked for is visible, nothing is written (no
        modseq, no event)."""
        updates = updates or {}
        destroys = list(destroys)
        errors: dict[str, StoreError] = {}
        visible: set[str] = set()
        done: set[str] = set()
        try:
            with self._store.write(account_id) as tx:
                visible = visible_among(tx.conn, account_id, list(dict.fromkeys([*updates, *destroys])),
                                        self._store.sql)
                todo = {i: u for i, u in updates.items() if i in visible}
                gone = [i for i in dict.fromkeys(destroys) if i in visible]
                if not todo and not gone:
                    raise _NothingToWrite
                for email_id, err in update_each(tx, account_id, todo).items():
                    if err is not None:
                        errors[email_id] = err
                if gone:
                    destroy_rows(tx, gone)
                    done.update(gone)
        except _NothingToWrite:
            pass
        except NotFound as exc:  # the account itself is gone (the transaction could not start): nothing is visible
            if exc.args and exc.args[0] != account_id:
                raise
            visible = set()
        for email_id in updates:
            if email_id not in visible:
                errors[email_id] = NotFound(email_id)
        return SetOutcome(errors, [i for i in destroys if i not in done])
