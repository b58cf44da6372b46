"""Mailboxes: a tree of single-component names (the JMAP model); IMAP paths are derived with ``/``.

Rules enforced here so both protocols get them for free: names are NFC, non-empty, at most 255 octets, free
of the hierarchy delimiter and control characters, unique among siblings (``INBOX`` case-insensitively at the
top level); at most one mailbox per role; no parent loops; ids never change on rename or move; the inbox is
never destroyed, keeps its role and stays at the top level (``InboxProtected``: IMAP's INBOX must exist).

The service also answers the per-mailbox numbers both doors show (IMAP STATUS, JMAP Mailbox counts).
"""

from __future__ import annotations

import operator
import time
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import counters, ids
from .emails import after_membership_change
from .groupcommit import current_group
from .mailbox_structure import SHAPES, MailboxShape, shapes_from_rows
from .model import (
    AlreadyExists,
    HasChildren,
    HasEmails,
    InboxProtected,
    InvalidName,
    Mailbox,
    MailboxCounts,
    NotFound,
    RoleTaken,
)
from .schema import emails, mailboxes, messages, vanished
from .thread_visibility import ThreadVisibility
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store
    from .transaction import WriteTx

DELIMITER = "/"
ROLES = frozenset(
    {"inbox", "drafts", "sent", "archive", "junk", "trash", "all", "flagged", "important", "snoozed", "scheduled",
     "memos"}
)
UNSET = object()


_POSITION = {c.name: i for i, c in enumerate(mailboxes.c)}
#: The Mailbox fields and the counters of a ``select(mailboxes)`` row, by position (one C call each, where 20
#: attribute lookups per mailbox were most of the cost of reading the tree that every IMAP command reads).
_FIELDS = operator.itemgetter(*(_POSITION[n] for n in ("id", "account_id", "name", "parent_id", "role", "sort_order",
                                                      "subscribed", "uidvalidity", "uidnext", "recent_uid",
                                                      "highest_modseq", "modseq")))
_COUNTERS = operator.itemgetter(*(_POSITION[n] for n in counters.COLUMNS))


def mailbox_from_row(row: sa.Row) -> Mailbox:
    """A mailbox from a whole ``mailboxes`` row (``select(mailboxes)``), with its counters (``Mailbox.counts``)."""
    mid, account_id, name, parent_id, role, sort_order, subscribed, uidvalidity, uidnext, recent_uid, hm, modseq = (
        _FIELDS(row))
    return Mailbox(mid, account_id, name, parent_id, role, sort_order, bool(subscribed), uidvalidity, uidnext,
                   recent_uid, hm, modseq, MailboxCounts(*_COUNTERS(row)))


#: The account's mailboxes, built once: every IMAP command that names a mailbox reads the tree, and building
#: the statement per call (and its cache key) cost more than running it (issue 10 item 0).
_LIST = (sa.select(mailboxes).where(mailboxes.c.account_id == sa.bindparam("account_id"))
         .order_by(mailboxes.c.sort_order))


def check_name(name: str) -> str:
    if not isinstance(name, str):
        raise InvalidName("name must be a string")
    name = unicodedata.normalize("NFC", name)
    if not name or not name.strip():
        raise InvalidName("name must not be empty")
    if DELIMITER in name:
        raise InvalidName(f"name must not contain {DELIMITER!r}")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        raise InvalidName("name must not contain control characters")
    if len(name.encode("utf-8")) > 255:
        raise InvalidName("name is longer than 255 octets")
    return name


def paths(boxes: Sequence[Mailbox | MailboxShape]) -> dict[str, list[str]]:
    """Map mailbox id -> list of path components from the top (the IMAP name is ``"/".join``)."""
    by_id = {b.id: b for b in boxes}
    out: dict[str, list[str]] = {}

    def walk(b: Mailbox | MailboxShape, depth: int = 0) -> list[str]:
        if b.id in out:
            return out[b.id]
        parent = by_id.get(b.parent_id) if b.parent_id else None
        path = (walk(parent, depth + 1) if parent and depth < 256 else []) + [b.name]
        out[b.id] = path
        return path

    for b in boxes:
        walk(b)
    return out


def _check_sibling(conn: sa.Connection, account_id: str, parent_id: str | None, name: str,
                   exclude: str | None = None) -> None:
    q = sa.select(mailboxes.c.id, mailboxes.c.name, mailboxes.c.role).where(
        mailboxes.c.account_id == account_id,
        mailboxes.c.parent_id.is_(None) if parent_id is None else mailboxes.c.parent_id == parent_id,
    )
    for row in conn.execute(q):
        if row.id == exclude:
            continue
        same = row.name == name
        if parent_id is None and name.upper() == "INBOX" and (row.role == "inbox" or row.name.upper() == "INBOX"):
            same = True
        if same:
            raise AlreadyExists(name)


def _check_role(conn: sa.Connection, account_id: str, role: str | None, exclude: str | None = None) -> None:
    if role is None:
        return
    if role not in ROLES:
        raise InvalidName(f"unknown role {role!r}")
    row = conn.execute(
        sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id, mailboxes.c.role == role)
    ).first()
    if row is not None and row.id != exclude:
        raise RoleTaken(role)


def _check_parent(conn: sa.Connection, account_id: str, parent_id: str | None, moving: str | None = None) -> None:
    seen = 0
    cur = parent_id
    while cur is not None:
        if cur == moving:
            raise InvalidName("a mailbox cannot be moved under itself")
        row = conn.execute(
            sa.select(mailboxes.c.parent_id).where(mailboxes.c.id == cur, mailboxes.c.account_id == account_id)
        ).first()
        if row is None:
            raise NotFound(cur)
        cur = row.parent_id
        seen += 1
        if seen > 64:
            raise InvalidName("mailbox tree too deep")


def insert_mailbox(tx: WriteTx, name: str, parent_id: str | None, *, role: str | None, sort_order: int,
                   subscribed: bool) -> str:
    """Create a mailbox inside ``tx`` after checking name, parent, siblings and role; returns its id. Shared by
    ``Mailboxes.create`` and account creation (whose default mailboxes commit with the account)."""
    conn, account_id = tx.conn, tx.account_id
    name = check_name(name)
    _check_parent(conn, account_id, parent_id)
    _check_sibling(conn, account_id, parent_id, name)
    _check_role(conn, account_id, role)
    last = conn.execute(
        sa.select(sa.func.max(mailboxes.c.uidvalidity)).where(mailboxes.c.account_id == account_id)
    ).scalar()
    uidvalidity = max(int(time.time()) & 0xFFFFFFFF, (last or 0) + 1)
    mailbox_id = ids.mint(ids.MAILBOX)
    conn.execute(
        sa.insert(mailboxes).values(
            id=mailbox_id, account_id=account_id, name=name, parent_id=parent_id, role=role,
            sort_order=sort_order, subscribed=subscribed, uidvalidity=uidvalidity, uidnext=1,
            recent_uid=1, highest_modseq=tx.modseq, created_modseq=tx.modseq, modseq=tx.modseq,
        )
    )
    tx.log("Mailbox", mailbox_id, "c")
    return mailbox_id


class Mailboxes:
    """The account's mailbox tree, its writes, and the counts both doors show."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def list(self, account_id: str) -> list[Mailbox]:
        with self._store.read() as conn:  # (every IMAP command naming a mailbox: on the driver's cursor)
            return [mailbox_from_row(r) for r in self._store.sql.run(conn, _LIST, {"account_id": account_id})]

    def shapes(self, account_id: str, *, fresh: bool = False) -> tuple[MailboxShape, ...]:
        """The account's mailboxes without counters (names, parents, roles: what resolving a name needs), from
        the process's cache while no structural change committed since it was read (mailbox_structure.py).
        ``fresh``: read them anyway (a name the cached tree did not have). Inside a write transaction the
        cache is neither used nor filled: that transaction may have changed the tree and not committed yet."""
        store = self._store
        cache = store.mailbox_structure
        cached = cache.enabled and current_group() is None
        if cached and not fresh:
            hit = cache.lookup(account_id)
            if hit is not None:
                return hit
        stamp = store.read_stamp() if cached else None
        with store.read() as conn:
            loaded = shapes_from_rows(store.sql.run(conn, SHAPES, {"account_id": account_id}))
        if stamp is not None:
            cache.keep(account_id, stamp, loaded)
        return loaded

    def inbox_id(self, account_id: str) -> str | None:
        """The id of the account's INBOX (its top-level mailbox with role ``inbox``, else one named INBOX), from
        the cached shapes (:meth:`shapes`): what a delivery needs, without reading the tree and its counters."""
        for fresh in (False, True):
            top = [b for b in self.shapes(account_id, fresh=fresh) if b.parent_id is None]
            found = next((b for b in top if b.role == "inbox"), None) or next(
                (b for b in top if b.name == "INBOX"), None)
            if found is not None:
                return found.id
        return None

    def get(self, account_id: str, mailbox_id: str) -> Mailbox | None:
        with self._store.engine.connect() as conn:
            row = conn.execute(
                sa.select(mailboxes).where(mailboxes.c.id == mailbox_id, mailboxes.c.account_id == account_id)
            ).first()
        return mailbox_from_row(row) if row else None

    def by_path(self, account_id: str, path: list[str]) -> Mailbox | None:
        """Find a mailbox by path components; the first component ``INBOX`` matches case-insensitively."""
        boxes = self.list(account_id)
        parent: str | None = None
        found: Mailbox | None = None
        for i, comp in enumerate(path):
            comp = unicodedata.normalize("NFC", comp)
            found = None
            for b in boxes:
                if b.parent_id != parent:
                    continue
                if b.name == comp or (i == 0 and parent is None and b.role == "inbox" and comp.upper() == "INBOX"):
                    found = b
                    break
            if found is None:
                return None
            parent = found.id
        return found

    def unknown(self, account_id: str, mailbox_ids: Sequence[str]) -> list[str]:
        """The ids among ``mailbox_ids`` that are not mailboxes of this account, in the order given."""
        wanted = list(mailbox_ids)
        if not wanted:
            return []
        with self._store.engine.connect() as conn:
            have = {r[0] for r in conn.execute(
                sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id, mailboxes.c.id.in_(wanted)))}
        return [i for i in wanted if i not in have]

    # -- counts --------------------------------------------------------------------------------------------

    def counts(self, account_id: str, mailbox_ids: Sequence[str] | None = None) -> dict[str, MailboxCounts]:
        """IMAP STATUS numbers and JMAP Mailbox counts of the account's mailboxes (all, or these), read from
        the counters every write keeps exact (``counters.py``): one indexed read, whatever the mailbox size.
        Mailboxes without messages are absent (read them as zeros), like ids that are not the account's."""
        cols = [mailboxes.c[name] for name in counters.COLUMNS]
        q = sa.select(mailboxes.c.id, *cols).where(mailboxes.c.account_id == account_id)
        if mailbox_ids is not None:
            q = q.where(mailboxes.c.id.in_(list(mailbox_ids)))
        with self._store.engine.connect() as conn:
            return {r[0]: counters.to_counts(r[1:]) for r in conn.execute(q) if r[1]}

    def deleted_storage(self, account_id: str, mailbox_ids: Sequence[str]) -> dict[str, int]:
        """Octets an EXPUNGE of each mailbox would take off the account's STORAGE usage (IMAP STATUS
        DELETED-STORAGE, RFC 9208): the sizes of its \\Deleted memberships, as quota counts every membership
        (``quotas.py``). Counted when asked (no counter: clients rarely ask); mailboxes with none are absent."""
        out: dict[str, int] = {}
        ids = list(mailbox_ids)
        join = messages.join(emails, emails.c.id == messages.c.email_id)
        with self._store.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                q = (sa.select(messages.c.mailbox_id, sa.func.sum(emails.c.size)).select_from(join)
                     .where(messages.c.mailbox_id.in_(ids[i : i + 500]), messages.c.deleted.is_(True),
                            emails.c.account_id == account_id)
                     .group_by(messages.c.mailbox_id))
                out.update((r[0], int(r[1] or 0)) for r in conn.execute(q))
        return out

    def recount(self, account_id: str) -> dict[str, MailboxCounts]:
        """The same numbers counted from the memberships (what the counters must equal: tests, repair)."""
        with self._store.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id))]
            fresh = counters.recount(conn, ids)
        return {mid: counters.to_counts(fresh[mid]) for mid in ids if mid in fresh}

    # -- writes --------------------------------------------------------------------------------------------

    @writes
    def create(self, account_id: str, name: str, parent_id: str | None = None, *, role: str | None = None,
               sort_order: int = 0, subscribed: bool = True) -> Mailbox:
        with self._store.write(account_id) as tx:
            mailbox_id = insert_mailbox(tx, name, parent_id, role=role, sort_order=sort_order, subscribed=subscribed)
            row = tx.conn.execute(sa.select(mailboxes).where(mailboxes.c.id == mailbox_id)).one()
        return mailbox_from_row(row)

    @writes
    def update(self, account_id: str, mailbox_id: str, *, name: object = UNSET, parent_id: object = UNSET,
               role: object = UNSET, sort_order: object = UNSET, subscribed: object = UNSET) -> Mailbox:
        with self._store.write(account_id) as tx:
            conn = tx.conn
            row = conn.execute(
                sa.select(mailboxes).where(mailboxes.c.id == mailbox_id, mailboxes.c.account_id == account_id)
            ).first()
            if row is None:
                raise NotFound(mailbox_id)
            if row.role == "inbox" and role is not UNSET and role != "inbox":  # the inbox keeps its role
                raise InboxProtected(mailbox_id, prop="role")
            values: dict[str, object] = {}
            new_name = check_name(name) if name is not UNSET else row.name  # type: ignore[arg-type]
            new_parent = parent_id if parent_id is not UNSET else row.parent_id
            if new_name != row.name or new_parent != row.parent_id:
                if new_parent != row.parent_id:
                    _check_parent(conn, account_id, new_parent, moving=mailbox_id)  # type: ignore[arg-type]
                    if row.role == "inbox" and new_parent is not None:  # IMAP's INBOX is a top-level name
                        raise InboxProtected(mailbox_id, prop="parentId")
                _check_sibling(conn, account_id, new_parent, new_name, exclude=mailbox_id)  # type: ignore[arg-type]
                values.update(name=new_name, parent_id=new_parent)
            if role is not UNSET and role != row.role:
                _check_role(conn, account_id, role, exclude=mailbox_id)  # type: ignore[arg-type]
                values["role"] = role
            if sort_order is not UNSET:
                values["sort_order"] = sort_order
            if subscribed is not UNSET:
                values["subscribed"] = bool(subscribed)
            if values:
                values["modseq"] = tx.modseq
                conn.execute(sa.update(mailboxes).where(mailboxes.c.id == mailbox_id).values(**values))
                tx.log("Mailbox", mailbox_id, "u")
            row = conn.execute(sa.select(mailboxes).where(mailboxes.c.id == mailbox_id)).one()
        return mailbox_from_row(row)

    @writes
    def destroy(self, account_id: str, mailbox_id: str, *, remove_emails: bool) -> list[str]:
        """Destroy a mailbox. Its memberships go; emails left in no mailbox are destroyed (ids returned).

        ``remove_emails=False`` refuses a non-empty mailbox (JMAP's default); IMAP DELETE passes True. The
        inbox is never destroyed (``InboxProtected``). An email that survives only in ``\\Deleted`` memberships
        vanishes from JMAP: its thread is logged as changed (``ThreadVisibility``).
        """
        with self._store.write(account_id) as tx:
            conn = tx.conn
            row = conn.execute(
                sa.select(mailboxes.c.id, mailboxes.c.role)
                .where(mailboxes.c.id == mailbox_id, mailboxes.c.account_id == account_id)
            ).first()
            if row is None:
                raise NotFound(mailbox_id)
            if row.role == "inbox":
                raise InboxProtected(mailbox_id)
            child = conn.execute(sa.select(mailboxes.c.id).where(mailboxes.c.parent_id == mailbox_id).limit(1)).first()
            if child is not None:
                raise HasChildren(mailbox_id)
            members = conn.execute(
                sa.select(messages.c.email_id, messages.c.deleted).where(messages.c.mailbox_id == mailbox_id)
            ).all()
            email_ids = list(dict.fromkeys(r.email_id for r in members))
            if email_ids and not remove_emails:
                raise HasEmails(mailbox_id)
            tx.affect_emails(email_ids)
            seen = ThreadVisibility(tx, [r.email_id for r in members if not r.deleted])  # only these can vanish
            conn.execute(sa.delete(messages).where(messages.c.mailbox_id == mailbox_id))
            conn.execute(sa.delete(vanished).where(vanished.c.mailbox_id == mailbox_id))
            conn.execute(sa.delete(mailboxes).where(mailboxes.c.id == mailbox_id))
            tx.log("Mailbox", mailbox_id, "d")
            destroyed = after_membership_change(tx, email_ids)
            seen.log_changes()
        return destroyed
