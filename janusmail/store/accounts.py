"""Accounts: creation (with the default mailboxes every account starts with), lookup, credentials, deletion."""

from __future__ import annotations

import time

import sqlalchemy as sa

from . import credentials, ids
from .model import Account, AlreadyExists, NotFound
from .schema import accounts
from .writes import writes

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


class AccountsMixin:
    @writes
    def create_account(self, address: str, password_hash: str | None, scram_sha256: str | None = None) -> Account:
        address = normalize_address(address)
        if not address or "@" not in address:
            raise ValueError("an account is named by an email address")
        account_id = ids.mint(ids.ACCOUNT)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(accounts).values(
                        id=account_id,
                        address=address,
                        password_hash=password_hash,
                        scram_sha256=scram_sha256,
                        created_at=int(time.time()),
                        modseq=1,
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise AlreadyExists(address) from exc
        for sort_order, (name, role) in enumerate(DEFAULT_MAILBOXES):
            self.create_mailbox(account_id, name, role=role, sort_order=sort_order + 1)
        acct = self.get_account(account_id)
        assert acct is not None
        return acct

    def get_account(self, account_id: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.id == account_id)).first()
        return _account(row) if row else None

    def account_by_address(self, address: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(accounts).where(accounts.c.address == normalize_address(address))).first()
        return _account(row) if row else None

    def list_accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            return [_account(r) for r in conn.execute(sa.select(accounts).order_by(accounts.c.address))]

    @writes
    def set_credentials(self, account_id: str, password_hash: str, scram_sha256: str | None) -> None:
        """Replace the account password. Sessions logged in with the old one end (``* BYE``) at their next
        command, IDLE ones within seconds: the change is stamped and announced in the same transaction."""
        with self.engine.begin() as conn:
            res = conn.execute(
                sa.update(accounts)
                .where(accounts.c.id == account_id)
                .values(password_hash=password_hash, scram_sha256=scram_sha256)
            )
            if res.rowcount == 0:
                raise NotFound(account_id)
            credentials.record_change(conn, account_id, password=True, node_id=self.node_id)
        self.notifier.publish(credentials.event(account_id))

    def credential_epochs(self, account_id: str) -> tuple[int, int] | None:
        """``(credential_epoch, password_epoch)``, or ``None`` once the account is gone (see store.credentials)."""
        return credentials.epochs(self.engine, account_id)

    def credential_sequence(self) -> int:
        """The store-wide credential epoch now (a login's baseline; see store.credentials)."""
        return credentials.current_sequence(self.engine)

    @writes
    def set_jmap_enabled(self, account_id: str, enabled: bool) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(jmap_enabled=enabled))

    @writes
    def delete_account(self, account_id: str) -> None:
        """Delete an account and all its data (rows cascade; blob files are shared and collected separately)."""
        from .schema import changes, mailboxes, messages, vanished

        with self.engine.begin() as conn:
            box_ids = sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id)
            conn.execute(sa.delete(messages).where(messages.c.mailbox_id.in_(box_ids)))
            conn.execute(sa.delete(vanished).where(vanished.c.mailbox_id.in_(box_ids)))
            conn.execute(sa.delete(changes).where(changes.c.account_id == account_id))
            res = conn.execute(sa.delete(accounts).where(accounts.c.id == account_id))
            credentials.announce(conn, account_id, self.node_id)  # its sessions end: nothing left to log in to
        if res.rowcount == 0:
            raise NotFound(account_id)
        self.notifier.publish(credentials.event(account_id))

    def highest_modseq(self, account_id: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(accounts.c.modseq).where(accounts.c.id == account_id)).scalar_one()
