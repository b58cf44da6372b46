"""How far ``janusmail migrate`` got in each mailbox of a source IMAP server (``store.migration_progress``).

Why a table: a migration of a big account is interrupted (a dropped connection, Ctrl-C, a full disk) and run
again, and run again later to pick up what arrived since. IMAP names a message durably by (UIDVALIDITY, UID)
and hands out UIDs in ascending order, so "every UID up to N of this UIDVALIDITY is done" is the whole state a
source mailbox needs: one row per (account, source, source mailbox).

Why the row is written in the batch's own transaction: ``ingest_batch`` stores the messages and moves the mark
in ONE ``Store.write`` (the bulk ingest path's ``then`` step), so a run killed at any moment leaves the mark
exactly at the last committed batch: the next run neither skips nor duplicates a message. When the source's
UIDVALIDITY changes (the source renumbered the mailbox) the mark no longer means anything; the caller starts
the mailbox again and :meth:`MigrationProgress.digests_in` tells which messages are already copied (same bytes
in the target mailbox, ``\\Deleted`` ones included), so a restart copies no message twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .model import Delivered
from .schema import ID, blobs, emails, messages, metadata
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .ingest import Prepared
    from .store import Store
    from .transaction import WriteTx

__all__ = ["MigrationProgress", "Position"]

# The table of migration 0015, declared beside the only code that reads and writes it.
migration_progress_table = sa.Table(
    "migration_progress",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("source", sa.String(512), primary_key=True),  # "host:port/user" of the source server
    sa.Column("mailbox", sa.String(1024), primary_key=True),  # the source mailbox's name, as the source spells it
    sa.Column("uidvalidity", sa.BigInteger, nullable=False),
    sa.Column("last_uid", sa.BigInteger, nullable=False),  # every UID <= this (of that UIDVALIDITY) is done
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Position:
    uidvalidity: int
    last_uid: int


def _record(conn: sa.Connection, account_id: str, source: str, mailbox: str, pos: Position) -> None:
    t = migration_progress_table
    where = (t.c.account_id == account_id, t.c.source == source, t.c.mailbox == mailbox)
    values = {"uidvalidity": pos.uidvalidity, "last_uid": pos.last_uid, "updated_at": int(time.time())}
    if conn.execute(sa.update(t).where(*where).values(**values)).rowcount == 0:
        conn.execute(sa.insert(t).values(account_id=account_id, source=source, mailbox=mailbox, **values))


class MigrationProgress:
    """Per source mailbox: the UIDVALIDITY seen and the highest UID done (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def positions(self, account_id: str, source: str) -> dict[str, Position]:
        """Source mailbox name -> where the last run stopped, for this account and source."""
        t = migration_progress_table
        with self._store.read() as conn:
            rows = conn.execute(sa.select(t.c.mailbox, t.c.uidvalidity, t.c.last_uid)
                                .where(t.c.account_id == account_id, t.c.source == source)).all()
        return {r.mailbox: Position(int(r.uidvalidity), int(r.last_uid)) for r in rows}

    @writes
    def ingest_batch(self, account_id: str, source: str, mailbox: str, pos: Position,
                     prepared: list[Prepared]) -> list[Delivered]:
        """Store ``prepared`` (the bulk ingest path, one transaction) and move the mark to ``pos`` in that same
        transaction; with nothing to store (all skipped or failed), just the mark."""
        if not prepared:
            with self._store.transaction() as conn:  # no mail change: no modseq, no change log
                _record(conn, account_id, source, mailbox, pos)
            return []
        from . import ingest as ingesting  # not at import time (see Emails.prepare)

        def mark(tx: WriteTx, _done: list[Delivered]) -> None:
            _record(tx.conn, account_id, source, mailbox, pos)

        return ingesting.store_batch(self._store, account_id, prepared, then=mark)

    def digests_in(self, account_id: str, mailbox_id: str, digests: list[str]) -> set[str]:
        """Which of these SHA-256 digests the mailbox already holds, ``\\Deleted`` memberships included (a
        restarted mailbox must not copy again what an earlier run copied and the user marked deleted)."""
        wanted = list(dict.fromkeys(digests))
        found: set[str] = set()
        join = blobs.join(emails, sa.and_(emails.c.blob_id == blobs.c.id, emails.c.account_id == blobs.c.account_id)
                          ).join(messages, messages.c.email_id == emails.c.id)
        with self._store.read() as conn:
            for i in range(0, len(wanted), 500):
                q = (sa.select(blobs.c.sha256, messages.c.mailbox_id).select_from(join)
                     .where(blobs.c.account_id == account_id, blobs.c.sha256.in_(wanted[i : i + 500])))
                # mailbox filtered here, not in SQL: a digest has a handful of memberships (see digests_present)
                found.update(r.sha256 for r in conn.execute(q) if r.mailbox_id == mailbox_id)
        return found
