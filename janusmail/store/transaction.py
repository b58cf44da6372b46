"""The one write path: a transaction that bumps the account's modseq, logs changes and notifies after commit.

Every write in the store (and any new write a protocol layer needs) goes through ``Store.write(account_id)``:

    with store.write(account_id) as tx:
        tx.conn.execute(...)
        tx.log("Email", email_id, "u")
        tx.touch_mailbox(mailbox_id)

so IMAP CONDSTORE/QRESYNC, JMAP state strings and ``/changes``, IDLE and push all read one ordered log.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import quotas
from .counters import CounterTracker
from .mailbox_structure import TREE
from .model import NotFound
from .notifier import ChangeEvent
from .schema import accounts, changes, mailboxes

if TYPE_CHECKING:
    from .store import Store

# When one transaction touches an object twice, the op that must win in the log.
_OP_RANK = {"k": 0, "u": 1, "c": 2, "d": 3}


class WriteTx:
    def __init__(self, store: Store, conn: sa.Connection, account_id: str,
                 new_account: Mapping[str, object] | None = None) -> None:
        self.store = store
        self.conn = conn
        self.account_id = account_id
        if new_account is not None:  # the account is created by this transaction (with its first objects)
            conn.execute(sa.insert(accounts).values(**new_account, modseq=0))
        row = store.sql.first(conn, _NEXT_MODSEQ, {"account_id": account_id})
        if row is None:
            raise NotFound(account_id)
        self.modseq: int = row[0]
        #: the account's (used storage, used messages, storage quota, message quota) as this transaction began,
        #: read with the modseq (``quotas.admit`` needs no read of its own; nothing before it moves usage)
        self.usage: tuple[int, int, int | None, int | None] = row[1:]
        self._log: dict[tuple[str, str], str] = {}
        self._touched: set[str] = set()
        self._counters = CounterTracker(store.sql)
        self.kinds: set[str] = set()
        #: (octets, memberships) this transaction was allowed to add so far (``quotas.admit``)
        self.quota_admitted: tuple[int, int] = (0, 0)
        #: set by :meth:`discard`: ``Store.write`` rolls the block back instead of committing it
        self.discarded = False

    def discard(self) -> None:
        """This write turned out to change nothing (an EXPUNGE that finds nothing \\Deleted): everything the block
        did is rolled back when it ends, the modseq bump included, and nothing is logged or announced.

        Why: such a write still moved the account's modseq, wrote its page and synced a COMMIT under the one write
        lock, and woke every session of the account to find nothing new. Under concurrent EXPUNGEs of one mailbox
        (the stress loop) most of them find that another session's EXPUNGE took the messages already."""
        self.discarded = True

    def log(self, kind: str, object_id: str, op: str) -> None:
        key = (kind, object_id)
        old = self._log.get(key)
        if old is None or _OP_RANK[op] > _OP_RANK[old]:
            if old == "c" and op == "u":
                return
            self._log[key] = op
        self.kinds.add(kind)
        if kind == "Mailbox" and op != "k":  # created, renamed, moved or destroyed: cached trees are stale
            self.kinds.add(TREE)

    def log_many(self, kind: str, object_ids: list[str], op: str) -> None:
        for oid in object_ids:
            self.log(kind, oid, op)

    def affect_emails(self, email_ids: Sequence[str]) -> None:
        """These emails' flags or memberships are about to change: call BEFORE changing them, so the mailbox
        counters (``counters.py``) move by exactly the difference."""
        self._counters.affect_emails(self.conn, email_ids)

    def threads_of(self, email_ids: Sequence[str]) -> set[str]:
        """The threads of these emails (read once per transaction, shared with the counters)."""
        return self._counters.threads_of(self.conn, email_ids)

    def know_threads(self, thread_of: dict[str, str]) -> None:
        """{email id: thread id} the caller already read in this transaction: ``threads_of`` (and so
        ``affect_emails``) will not read them again (an email never changes thread)."""
        self._counters.know_threads(thread_of)

    def threads_emptied(self, thread_ids: Iterable[str]) -> None:
        """These threads were just destroyed for having no email left (``emails.destroy_rows``): the counters
        need not read what they contribute at flush (nothing)."""
        self._counters.threads_emptied(thread_ids)

    def affect_threads(self, thread_ids: Iterable[str], *, created: bool = False) -> None:
        """Emails are about to be added to (or removed from) these threads: call BEFORE the rows change.
        ``created``: threads this transaction made (no email yet; nothing to read)."""
        self._counters.affect_threads(self.conn, thread_ids, created=created)

    def touch_mailbox(self, *mailbox_ids: str) -> None:
        """Mark mailboxes whose contents changed: bumps HIGHESTMODSEQ and logs a counts-only Mailbox change."""
        self._touched.update(mailbox_ids)

    def forget(self) -> None:
        """Nothing of this transaction goes to the change log (the account itself is being deleted)."""
        self._counters = CounterTracker(self.store.sql)
        self._log.clear()
        self._touched.clear()
        self.kinds.clear()

    def delivery(self) -> None:
        """A new email arrived (JMAP's EmailDelivery push type)."""
        self.kinds.add("EmailDelivery")

    def _flush(self) -> None:
        counters = self._counters
        # usage = the counters' sum; a touched mailbox whose counters move gets its highest_modseq with them
        quotas.record_usage(self, counters.flush(self.conn, self._touched, self.modseq))
        sql = self.store.sql
        if self._touched:
            ids = sorted(self._touched)
            rest = [mid for mid in ids if mid not in counters.touched_by_flush]
            for i in range(0, len(rest), 500):
                sql.count(self.conn, _TOUCH, {"ids": rest[i : i + 500], "modseq": self.modseq})
            for mid in ids:
                self.log("Mailbox", mid, "k")
        if not self._log:
            return
        account_id, modseq = self.account_id, self.modseq
        if len(self._log) <= LOG_ROWS_PER_INSERT:
            params: dict[str, object] = {"account_id": account_id, "modseq": modseq}
            for i, ((kind, oid), op) in enumerate(self._log.items()):
                params[f"k{i}"], params[f"o{i}"], params[f"p{i}"] = kind, oid, op
            sql.count(self.conn, _log_insert(len(self._log)), params)
        else:
            sql.many(self.conn, _LOG, [
                {"account_id": account_id, "modseq": modseq, "kind": k, "object_id": oid, "op": op}
                for (k, oid), op in self._log.items()
            ])

    def event(self) -> ChangeEvent:
        return ChangeEvent(self.account_id, self.modseq, frozenset(self.kinds), frozenset(self._touched))


# -- statements built once, run on the driver's cursor (``Store.sql``): every write runs them ---------------------

_NEXT_MODSEQ = (sa.update(accounts).where(accounts.c.id == sa.bindparam("account_id"))
                .values(modseq=accounts.c.modseq + 1)
                .returning(accounts.c.modseq, accounts.c.used_storage, accounts.c.used_messages,
                           accounts.c.quota_storage, accounts.c.quota_messages))
_TOUCH = (sa.update(mailboxes).where(mailboxes.c.id.in_(sa.bindparam("ids", expanding=True)))
          .values(highest_modseq=sa.bindparam("modseq")))

_LOG = sa.insert(changes).values({c: sa.bindparam(c) for c in ("account_id", "modseq", "kind", "object_id", "op")})
#: A write logging at most this many rows (three for most IMAP writes) logs them with one multi-row INSERT, which
#: the driver steps once, where an executemany steps once per row (each step a hand-over of the GIL on the writer
#: lane, under the write lock); bigger writes keep one executemany (a statement count that does not grow).
LOG_ROWS_PER_INSERT = 16


@functools.cache
def _log_insert(n: int) -> sa.Insert:
    """The INSERT of ``n`` change rows of one transaction (built once per ``n``: ``Store.sql`` caches its text by
    the statement object)."""
    return sa.insert(changes).values([
        {"account_id": sa.bindparam("account_id"), "modseq": sa.bindparam("modseq"), "kind": sa.bindparam(f"k{i}"),
         "object_id": sa.bindparam(f"o{i}"), "op": sa.bindparam(f"p{i}")}
        for i in range(n)
    ])
