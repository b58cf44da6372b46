"""``store.metadata``: IMAP METADATA entries (RFC 5464) of a mailbox or of the account's server view.

Why the store holds them: they are account state like any other (they must survive restarts, go with the
mailbox they annotate and never be visible to another account), so they live in tables of their own
(``mailbox_metadata``, ``server_metadata``, migration 0010) and every change is one ``Store.write``.

The model is deliberately plain: an entry is a lower-case name (``/shared/comment``; entry names are
case-insensitive) and a value of octets; ``mailbox_id=None`` means the server. Which names a client may use,
and the computed entries (``/private/specialuse`` from a mailbox's role, ``/shared/admin``), are the IMAP
door's business. The store enforces the limits, inside the write's transaction so two sessions cannot race
past them: a value of at most :attr:`Metadata.max_value_size` octets and at most :attr:`Metadata.max_entries`
entries per account (server and mailboxes together).

No change-log row: JMAP has no view of these entries, and IMAP sessions ask for them when they want them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .model import NotFound, StoreError
from .schema import mailbox_metadata, mailboxes, server_metadata
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = ["Metadata", "MetadataTooLarge", "MetadataTooMany", "entries_below"]


class MetadataTooLarge(StoreError):
    """A value is bigger than the store keeps (IMAP ``[METADATA MAXSIZE n]``); nothing was written."""

    code = "metadataTooLarge"

    def __init__(self, limit: int) -> None:
        super().__init__(str(limit))
        self.limit = limit


class MetadataTooMany(StoreError):
    """The write would take the account past its number of entries (IMAP ``[METADATA TOOMANY]``)."""

    code = "metadataTooMany"


def entries_below(rows: Iterable[tuple[str, bytes]], names: Sequence[str], depth: int | None
                  ) -> list[tuple[str, bytes]]:
    """The entries among ``rows`` named in ``names`` or below one of them, at most ``depth`` levels below
    (None: any depth; RFC 5464 §4.2.2), sorted by name, each once."""
    out: dict[str, bytes] = {}
    for name, value in rows:
        for want in names:
            if name == want:
                out[name] = value
                break
            if depth != 0 and name.startswith(want + "/"):
                extra = name[len(want) + 1 :].count("/") + 1
                if depth is None or extra <= depth:
                    out[name] = value
                    break
    return sorted(out.items())


class Metadata:
    """Entries by owner (a mailbox id, or None for the server view of the account)."""

    #: the largest value kept, in octets
    max_value_size = 64 * 1024
    #: the most entries one account may have (server and all mailboxes)
    max_entries = 1000

    def __init__(self, store: Store) -> None:
        self._store = store

    @staticmethod
    def _owner(mailbox_id: str | None) -> tuple[sa.Table, sa.Column]:
        if mailbox_id is None:
            return server_metadata, server_metadata.c.account_id
        return mailbox_metadata, mailbox_metadata.c.mailbox_id

    @staticmethod
    def _check_mailbox(conn: sa.Connection, account_id: str, mailbox_id: str | None) -> None:
        if mailbox_id is None:
            return
        row = conn.execute(sa.select(mailboxes.c.id).where(mailboxes.c.id == mailbox_id,
                                                           mailboxes.c.account_id == account_id)).first()
        if row is None:
            raise NotFound(mailbox_id)

    def get(self, account_id: str, mailbox_id: str | None, names: Sequence[str], depth: int | None = 0
            ) -> list[tuple[str, bytes]]:
        """The entries named (lower case) and, with ``depth``, those below them: ``[(name, value)]`` sorted by
        name. Raises ``NotFound`` for a mailbox that is not the account's."""
        table, key = self._owner(mailbox_id)
        with self._store.engine.connect() as conn:
            self._check_mailbox(conn, account_id, mailbox_id)
            rows = conn.execute(sa.select(table.c.name, table.c.value)
                                .where(key == (account_id if mailbox_id is None else mailbox_id))).all()
        return entries_below(((r.name, bytes(r.value)) for r in rows), names, depth)

    def count(self, account_id: str) -> int:
        """How many entries the account has (server and mailboxes)."""
        with self._store.engine.connect() as conn:
            return self._count(conn, account_id)

    @staticmethod
    def _count(conn: sa.Connection, account_id: str) -> int:
        boxes = sa.select(sa.func.count()).select_from(
            mailbox_metadata.join(mailboxes, mailboxes.c.id == mailbox_metadata.c.mailbox_id)
        ).where(mailboxes.c.account_id == account_id)
        server = sa.select(sa.func.count()).select_from(server_metadata).where(
            server_metadata.c.account_id == account_id)
        return int(conn.execute(boxes).scalar_one()) + int(conn.execute(server).scalar_one())

    @writes
    def set(self, account_id: str, mailbox_id: str | None, entries: Sequence[tuple[str, bytes | None]]) -> None:
        """Set (bytes) or remove (None) entries, all or nothing. Raises ``NotFound`` (mailbox not the
        account's), :class:`MetadataTooLarge`, :class:`MetadataTooMany`."""
        if any(v is not None and len(v) > self.max_value_size for _, v in entries):
            raise MetadataTooLarge(self.max_value_size)
        table, key = self._owner(mailbox_id)
        owner = account_id if mailbox_id is None else mailbox_id
        final: dict[str, bytes | None] = dict(entries)  # the last value given for a name wins
        with self._store.write(account_id) as tx:
            conn = tx.conn
            self._check_mailbox(conn, account_id, mailbox_id)
            names = list(final)
            have = {r[0] for r in conn.execute(sa.select(table.c.name).where(key == owner, table.c.name.in_(names)))}
            added = sum(1 for n, v in final.items() if v is not None and n not in have)
            removed = sum(1 for n, v in final.items() if v is None and n in have)
            if added > removed and self._count(conn, account_id) + added - removed > self.max_entries:
                raise MetadataTooMany(str(self.max_entries))
            gone = [n for n, v in final.items() if v is None or n in have]
            if gone:
                conn.execute(sa.delete(table).where(key == owner, table.c.name.in_(gone)))
            rows = [{key.name: owner, "name": n, "value": v} for n, v in final.items() if v is not None]
            if rows:
                conn.execute(sa.insert(table), rows)
