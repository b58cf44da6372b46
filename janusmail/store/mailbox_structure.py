"""The account's mailbox tree without its counters, cached per process and kept exact by a shared counter.

Why: every IMAP SELECT, EXAMINE, APPEND, COPY and MOVE resolves a mailbox name, which needs the account's tree
(names are paths of parent links). Reading the tree was the largest single statement of the event loop under
the logged-in stress profile (about 10% of its time, issue 10), to learn almost always what the previous command
learned: mailboxes are created, renamed and deleted rarely, while their counters move on every write.

What is cached: :class:`MailboxShape`, the fields that only a Mailbox create, update or destroy changes (name,
parent, role, sort order, subscription, UIDVALIDITY). Counters, UIDNEXT and HIGHESTMODSEQ are never cached:
whoever needs them reads the mailbox row (STATUS, LIST, SELECT's snapshot).

How it stays exact: a write that creates, updates or destroys a mailbox adds :data:`TREE` to its change event's
kinds (``WriteTx.log``); a notifier watcher bumps ``<database>-mailboxes`` (:mod:`janusmail.store.shared_counter`)
after the COMMIT, before the writer's caller is answered, in whichever process committed (and again in processes
that hear the event). A cache entry remembers the counter's value read *before* the tree was read, so a tree is
reused only while no structural change has committed since it was read. A process that died between its COMMIT
and its bump leaves entries stale until the next structural change of any account. The callers make a created or
deleted mailbox harmless (a name not found is looked up again in a fresh read; a mailbox found but gone meanwhile
fails its own read as "no such mailbox"); a renamed one is not: until then its OLD name still reaches it in the
processes that had cached it. That takes a crash inside a window of microseconds, and a rename.

PostgreSQL (several hosts, no shared memory): no counter, no cache, every lookup reads the tree.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import sqlalchemy as sa

from .schema import mailboxes
from .shared_counter import SharedCounter

__all__ = ["TREE", "MailboxShape", "StructureCache"]

#: The pseudo change kind of a structural mailbox change (no change-log row carries it; JMAP push ignores it).
TREE = "MailboxTree"

#: Accounts whose trees one process keeps (least recently used dropped first); a tree is a few hundred bytes
#: per mailbox.
MAX_ACCOUNTS = 4096


@dataclass(frozen=True, slots=True)
class MailboxShape:
    """What a mailbox is called and where it sits: the fields that change only with the mailbox itself."""

    id: str
    name: str
    parent_id: str | None
    role: str | None
    sort_order: int
    subscribed: bool
    uidvalidity: int


#: The account's mailbox shapes, in the order ``Mailboxes.list`` gives its rows.
SHAPES = (sa.select(mailboxes.c.id, mailboxes.c.name, mailboxes.c.parent_id, mailboxes.c.role,
                    mailboxes.c.sort_order, mailboxes.c.subscribed, mailboxes.c.uidvalidity)
          .where(mailboxes.c.account_id == sa.bindparam("account_id"))
          .order_by(mailboxes.c.sort_order))


def shapes_from_rows(rows: list[tuple]) -> tuple[MailboxShape, ...]:
    return tuple(MailboxShape(i, n, p, r, o, bool(s), v) for i, n, p, r, o, s, v in rows)


class StructureCache:
    """Per account: (counter value read before the tree was, shapes). Thread-safe: sessions read on the event
    loop and on the store's threads. ``Mailboxes.shapes`` decides when it may be used (not inside a write
    transaction) and which value stamps a fresh read (the one read before its read transaction began)."""

    def __init__(self, signal: SharedCounter, max_accounts: int = MAX_ACCOUNTS) -> None:
        self.signal = signal
        self._max = max_accounts
        self._entries: OrderedDict[str, tuple[int, tuple[MailboxShape, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.signal.enabled

    def stamp(self) -> int | None:
        """The counter now: read it BEFORE the read transaction whose tree :meth:`keep` will store."""
        return self.signal.read()

    def lookup(self, account_id: str) -> tuple[MailboxShape, ...] | None:
        """The account's shapes if no structural change committed since they were read, else None."""
        now = self.signal.read()
        if now is None:
            return None
        with self._lock:
            hit = self._entries.get(account_id)
            if hit is None or hit[0] != now:
                return None
            self._entries.move_to_end(account_id)
            return hit[1]

    def keep(self, account_id: str, stamp: int, shapes: tuple[MailboxShape, ...]) -> None:
        with self._lock:
            self._entries[account_id] = (stamp, shapes)
            self._entries.move_to_end(account_id)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
        self.signal.close()
