"""The accounts service: creation (with the default mailboxes every account starts with), lookup, the JMAP
switch, deletion. Passwords live in the credentials service (``store.credentials``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import credentials, ids
from .mailbox_structure import TREE
from .mailboxes import insert_mailbox
from .model import Account, AlreadyExists
from .schema import accounts
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

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


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """One account as the web admin lists it (janusmail/admin): flags, usage and limits from the account row
    alone (usage is kept exact by every write, see quotas.py), so listing every account is one query."""

    id: str
    address: str
    jmap_enabled: bool
    is_admin: bool
    disabled: bool
    created_at: int
    storage_used: int
    messages_used: int
    storage_limit: int | None
    messages_limit: int | None


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
        return self.recipients([address])[address]

    def recipients(self, addresses: Sequence[str]) -> dict[str, tuple[str, str] | None]:
        """``recipient`` of many addresses at once (the sender's batch): one query per 500 for the accounts, one
        for the aliases of the rest, then each account's INBOX."""
        given = list(dict.fromkeys(addresses))
        by_norm: dict[str, list[str]] = {}
        for address in given:
            by_norm.setdefault(normalize_address(address), []).append(address)
        norms = list(by_norm)
        owner: dict[str, str] = {}
        store = self._store
        with store.read() as conn:
            for i in range(0, len(norms), 500):
                for address, account_id in store.sql.run(conn, _OWNERS, {"addresses": norms[i : i + 500]}):
                    owner.update((a, account_id) for a in by_norm.get(address, ()))
        rest = [a for a in given if a not in owner]
        if rest:
            owner.update(store.identities.alias_owners(rest))
        # (the INBOX from the process's cached mailbox shapes: an LMTP delivery read the whole tree, counters
        # and all, twice per message; a new account is a new id, so it is never found in an old tree)
        inboxes = {account_id: store.mailboxes.inbox_id(account_id) for account_id in dict.fromkeys(owner.values())}
        out: dict[str, tuple[str, str] | None] = {}
        for address in given:
            account_id = owner.get(address)
            inbox_id = inboxes.get(account_id) if account_id is not None else None
            out[address] = None if account_id is None or inbox_id is None else (account_id, inbox_id)
        return out

    def list(self) -> list[Account]:
        with self._store.engine.connect() as conn:
            return [_account(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.address))]

    def summaries(self, account_id: str | None = None) -> list[AccountSummary]:
        """Every account (or just ``account_id``) with its flags and usage, by address."""
        c = accounts.c
        q = sa.select(c.id, c.address, c.jmap_enabled, c.is_admin, c.disabled, c.created_at, c.used_storage,
                      c.used_messages, c.quota_storage, c.quota_messages).order_by(c.address)
        if account_id is not None:
            q = q.where(c.id == account_id)
        with self._store.engine.connect() as conn:
            return [AccountSummary(r[0], r[1], bool(r[2]), bool(r[3]), bool(r[4]), int(r[5]), int(r[6]),
                                   int(r[7]), r[8], r[9]) for r in conn.execute(q)]

    def is_admin(self, account_id: str) -> bool:
        """May this account use the web admin? (False for a disabled or missing account.)"""
        q = sa.select(accounts.c.is_admin, accounts.c.disabled).where(accounts.c.id == account_id)
        with self._store.engine.connect() as conn:
            row = conn.execute(q).first()
        return row is not None and bool(row[0]) and not bool(row[1])

    @writes
    def set_admin(self, account_id: str, admin: bool) -> None:
        """Grant or withdraw the web admin; ``NotFound`` when there is no such account. The admin re-reads the
        flag on every request, so withdrawing it takes effect at the next page."""
        with self._store.write(account_id) as tx:
            tx.conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(is_admin=admin))

    @writes
    def set_disabled(self, account_id: str, disabled: bool) -> None:
        """Disable an account (no login through any door) or enable it again. Like a password change, it is
        stamped and announced as a credential change in the same transaction, so the account's sessions end
        (``* BYE`` at the next command, IDLE and push within seconds: janusmail.auth.revocation)."""
        store = self._store
        with store.write(account_id) as tx:  # NotFound when there is no such account
            tx.conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(disabled=disabled))
            credentials.record_change(tx.conn, account_id, node_id=store.node_id)
        store.notifier.publish(credentials.event(account_id))

    @writes
    def set_jmap_enabled(self, account_id: str, enabled: bool) -> None:
        """Switch JMAP on or off for an account (and with it RFC 9698's JMAPACCESS capability). A credential
        change: a JMAP request remembered as accepted (janusmail.auth.http_memo) is checked again."""
        store = self._store
        with store.write(account_id) as tx:
            tx.conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(jmap_enabled=enabled))
            credentials.record_change(tx.conn, account_id, node_id=store.node_id)
        store.notifier.publish(credentials.event(account_id))

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
            tx.kinds.add(TREE)  # (but its cached mailbox trees go, in every process: mailbox_structure.py)
        store.notifier.publish(credentials.event(account_id))


#: the accounts whose own addresses these are (LMTP's RCPT and DATA, local delivery of sent mail)
_OWNERS = sa.select(accounts.c.address, accounts.c.id).where(
    accounts.c.address.in_(sa.bindparam("addresses", expanding=True)))
