"""IMAP subscriptions to names that have no mailbox (RFC 9051 §6.3.7 allows them; JMAP never sees them).

A subscription to an existing mailbox is the mailbox's ``subscribed`` column (``update_mailbox``); only a name
without a mailbox lives here, in ``orphan_subscriptions``, until a mailbox of that name is created (IMAP CREATE
then subscribes it and drops the orphan). The writes go through ``Store.write`` like every other: they bump the
account's modseq (nothing JMAP reads: no change-log row) and tell the notifier, so other IMAP sessions of the
account re-check their view the way they do after a mailbox-tree change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .schema import orphan_subscriptions as table
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store


class Subscriptions:
    """The account's orphan subscriptions (IMAP names, ``/``-delimited, INBOX canonical)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def names(self, account_id: str) -> set[str]:
        """The names subscribed to without a mailbox."""
        with self._store.engine.connect() as conn:
            return set(conn.execute(sa.select(table.c.name).where(table.c.account_id == account_id)).scalars())

    @writes
    def subscribe(self, account_id: str, name: str) -> None:
        """Subscribe to a name that has no mailbox; subscribing twice is no error (one row).
        Raises ``NotFound`` when the account does not exist."""
        c = table.c
        where = (c.account_id == account_id, c.name == name)
        if self._has(where):  # already subscribed: nothing to write, nobody to wake
            return
        with self._store.write(account_id) as tx:
            if tx.conn.execute(sa.select(c.name).where(*where)).first() is None:  # a concurrent SUBSCRIBE
                tx.conn.execute(sa.insert(table).values(account_id=account_id, name=name))

    @writes
    def unsubscribe(self, account_id: str, name: str) -> bool:
        """Drop an orphan subscription; False when there was none (nothing is written then)."""
        c = table.c
        where = (c.account_id == account_id, c.name == name)
        if not self._has(where):  # the common case (UNSUBSCRIBE of a real mailbox) takes no write lock
            return False
        with self._store.write(account_id) as tx:
            return bool(tx.conn.execute(sa.delete(table).where(*where)).rowcount)

    def _has(self, where: tuple[sa.ColumnElement[bool], ...]) -> bool:
        with self._store.engine.connect() as conn:
            return conn.execute(sa.select(table.c.name).where(*where)).first() is not None
