"""The accounts service: creation (with the default mailboxes every account starts with), lookup, the JMAP
switch, deletion. Passwords live in the credentials service (``store.credentials``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import credentials, ids
from .mailboxes import insert_mailbox
from .model import Account, AlreadyExists
from .schema import accounts
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

#: Mailboxes every new account gets: (name, role). INBOX is the only one IMAP names specially.
DEFAULT_MAILBOXES: tuple[tuple[str, str], ...] = (
    ("INBOX", "inbox"),
    ("Drafts", "drafts"),
    ("Sent", "sent"),
    ("Archive", "archive"),
    ("Junk", "junk"),
    ("Trash", "trash"),
)


def _account(row: sa.Row) -> Account:
    return Account(row.id, row.address, bool(row.jmap_enabled), row.modseq)


def normalize_address(address: str) -> str:
    return address.strip().lower()


class Accounts:
    """Accounts by id and address. Every write is one ``Store.write`` transaction."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @writes
    def create(self, address: str, password_hash: str | None, scram_sha256: str | None = None) -> Account:
        """A new account with its default mailboxes, in ONE transaction: a crash never leaves an account
        with only some of them. Raises ``AlreadyExists`` for a taken address."""
        address = normalize_address(address)
        if not address or "@" not in address:
            raise ValueError("an account is named by an email address")
        account_id = ids.mint(ids.ACCOUNT)
        store = self._store
        try:
            new = {"id": account_id, "address": address, "password_hash": password_hash,
                   "scram_sha256": scram_sha256, "created_at": int(time.time())}
            with store.write(account_id, new_account=new) as tx:
                for sort_order, (name, role) in enumerate(DEFAULT_MAILBOXES):
                    insert_mailbox(tx, name, None, role=role, sort_order=sort_order + 1, subscribed=True)
        except sa.exc.IntegrityError as exc:
            raise AlreadyExists(address) from exc
        acct = self.get(account_id)
        assert acct is not None
        return acct

    def get(self, account_id: str) -> Account | None:
        with self._store.read() as conn:  # in a write call: sees the account it just created
            row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
        return _account(row) if row else None

    def by_address(self, address: str) -> Account | None:
        with self._store.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.address == normalize_address(address))).first()
        return _account(row) if row else None

    def recipient(self, address: str) -> tuple[str, str] | None:
        """(account id, INBOX id) of the account that receives mail for ``address`` here, by its own address or
        an alias (``store.identities``), or None. Read fresh each time: an address whose account was deleted and
        made again must reach the new one (LMTP, local delivery of sent mail)."""
        acct = self.by_address(address)
        account_id = acct.id if acct is not None else self._store.identities.alias_owner(address)
        if account_id is None:
            return None
        inbox = self._store.mailboxes.by_path(account_id, ["INBOX"])
        return None if inbox is None else (account_id, inbox.id)

    def list(self) -> list[Account]:
        with self._store.engine.connect() as conn:
            return [_account(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.address))]

    @writes
    def set_jmap_enabled(self, account_id: str, enabled: bool) -> None:
        """Switch JMAP on or off for an account (and with it RFC 9698's JMAPACCESS capability)."""
        with self._store.write(account_id) as tx:
            tx.conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(jmap_enabled=enabled))

    @writes
    def delete(self, account_id: str) -> None:
        """Delete an account and all its data (rows cascade; pack bytes are shared and collected separately).
        Its sessions end: the deletion is announced like a credential change, in the same transaction."""
        from .schema import changes, mailboxes, messages, vanished

        store = self._store
        with store.write(account_id) as tx:  # NotFound when there is no such account
            conn = tx.conn
            box_ids = sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id)
            conn.execute(sa.delete(messages).where(messages.c.mailbox_id.in_(box_ids)))
            conn.execute(sa.delete(vanished).where(vanished.c.mailbox_id.in_(box_ids)))
            conn.execute(sa.delete(changes).where(changes.c.account_id == account_id))
            conn.execute(sa.delete(accounts).where(accounts.c.id == account_id))
            credentials.announce(conn, account_id, store.node_id)  # nothing left to log in to
            tx.forget()  # the account row is gone: no change-log rows, no per-mailbox stamps
        store.notifier.publish(credentials.event(account_id))
