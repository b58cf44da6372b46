"""IMAP REPLACE and UID REPLACE (RFC 8508): a new message in, the one it replaces out, in ONE transaction.

RFC 8508 §3 makes the pair atomic: a client must never see both messages, nor neither. So the replacement is
one ``store.write``: the ingest's own write step (``ingest.store_batch``) adds the new message, and
:func:`remove_membership` -- a write step of the same transaction -- expunges the old membership, whatever
its ``\\Deleted`` flag (REPLACE does not ask for one). If the old message is gone by then (another session
expunged it), the whole transaction rolls back and the caller gets ``NotFound``: nothing was appended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .emails import after_membership_change
from .model import Delivered, IngestItem, NotFound
from .schema import mailboxes, messages, vanished
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .ingest import Prepared
    from .store import Store
    from .transaction import WriteTx

__all__ = ["Replacements", "remove_membership"]


def remove_membership(tx: WriteTx, mailbox_id: str, uid: int) -> str:
    """Expunge one membership of ``tx``'s account inside ``tx``: its UID goes to ``vanished`` (QRESYNC, other
    sessions), an email left in no mailbox is destroyed. Returns the email id; raises ``NotFound`` when the
    mailbox is not the account's or the UID is not in it."""
    conn = tx.conn
    row = conn.execute(
        sa.select(messages.c.email_id)
        .select_from(messages.join(mailboxes, mailboxes.c.id == messages.c.mailbox_id))
        .where(messages.c.mailbox_id == mailbox_id, messages.c.uid == uid,
               mailboxes.c.account_id == tx.account_id)
    ).first()
    if row is None:
        raise NotFound(f"{mailbox_id}/{uid}")
    email_id = row[0]
    tx.affect_emails([email_id])  # before the rows change: the mailbox counters move by the difference
    conn.execute(sa.delete(messages).where(messages.c.mailbox_id == mailbox_id, messages.c.uid == uid))
    conn.execute(sa.insert(vanished), [{"mailbox_id": mailbox_id, "uid": uid, "modseq": tx.modseq}])
    tx.touch_mailbox(mailbox_id)
    after_membership_change(tx, [email_id])
    return email_id


class Replacements:
    """``store.replacements``: IMAP REPLACE's one write."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @writes
    def replace(self, account_id: str, mailbox_id: str, uid: int, item: IngestItem,
                prepared: Prepared | None = None) -> Delivered:
        """Store ``item`` (into its ``mailbox_ids``: the selected mailbox or another one) and expunge
        ``(mailbox_id, uid)``, in one transaction. Raises ``NotFound`` (nothing stored) when the target
        mailbox or the old message does not exist, and the ingest's own errors (TooLarge, StorageUnavailable,
        quota refusals) as an APPEND would. ``prepared``: the item as ``Store.prepare_ingest`` made it ready
        off the writer lane (else it is parsed here)."""
        # not at import time: ingest needs the search index, which needs the emails service
        from . import ingest

        prep = prepared if prepared is not None else self._store.emails.prepare(item)
        return ingest.store_batch(self._store, account_id, [prep],
                                  then=lambda tx, _done: remove_membership(tx, mailbox_id, uid))[0]
