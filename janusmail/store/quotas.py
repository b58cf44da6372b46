"""Account quotas: the limits an administrator sets and the usage every write keeps exact (issue 11 QUOTA,
RFC 9208; issue 12 JMAP Quota, RFC 9425). One model, two doors: IMAP GETQUOTA and JMAP Quota/get read the same
numbers, and every door's refusal (IMAP ``NO [OVERQUOTA]``, LMTP ``552 5.2.2``, JMAP ``overQuota``) comes from
``OverQuota`` raised here.

What counts: every membership, as Dovecot counts and as RFC 9208 words it ("messages stored within the
mailboxes governed by the quota root"). A message in two mailboxes counts twice (MESSAGE 2, STORAGE twice its
size) although its bytes are stored once, and a ``\\Deleted`` message counts until it is expunged. So an
account's usage is, by definition, the sum of its mailboxes' counters ``n_messages`` and ``n_size``
(``counters.py``), and it is kept by the same mechanism: the counter tracker of every write transaction knows
how much each mailbox moved, and at flush hands the account-wide difference to :func:`record_usage`, which adds
it to ``accounts.used_messages`` / ``used_storage``. No write path has to remember quotas for usage to stay
exact; reading it is one primary-key read, whatever the account's size.

Why on the account row: every write transaction already updates that row (its modseq) first, so it holds the
row's lock (PostgreSQL) or the database's write lock (SQLite) from its start. :func:`admit`, called by the writes
that add memberships (ingest, IMAP COPY, a JMAP update adding a mailbox) before they write anything, reads usage
under that lock: two concurrent APPENDs
to one account are serialised, and the second sees the first's message.

The rule: a write that adds to a resource is refused when the resource would end above its limit. Writes that
add nothing (MOVE within the account, flags, expunge, destroy) always pass, so an account over a lowered limit
can still be cleaned up. Limits are set by the administrator (``janusmail quota set``); IMAP SETQUOTA is refused.

JMAP: a Quota object exists per resource that has a limit (``hardLimit`` is mandatory in RFC 9425), with the
fixed ids ``storage`` and ``messages``. Setting, changing or removing a limit logs it created/updated/destroyed
in the change log (kind ``Quota``); a write that moves usage logs the existing ones updated, so Quota/changes and
state strings follow usage too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .model import NotFound, OverQuota
from .schema import accounts, changes, emails, mailboxes
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store
    from .transaction import WriteTx

#: The change-log kind (and JMAP data type) of quota objects.
KIND = "Quota"
#: Resource -> JMAP Quota id. Fixed: one account has one quota per resource.
STORAGE = "storage"
MESSAGES = "messages"
RESOURCES = (STORAGE, MESSAGES)
_UNSET = object()


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """An account's usage and limits. Storage in octets; a limit of None means none."""

    storage_used: int
    messages_used: int
    storage_limit: int | None
    messages_limit: int | None

    def used(self, resource: str) -> int:
        return self.storage_used if resource == STORAGE else self.messages_used

    def limit(self, resource: str) -> int | None:
        return self.storage_limit if resource == STORAGE else self.messages_limit

    def limited(self) -> list[str]:
        """The resources that have a limit (the JMAP Quota objects that exist), in a fixed order."""
        return [r for r in RESOURCES if self.limit(r) is not None]


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """The whole server's usage: accounts, messages (memberships, as quotas count them) and octets."""

    accounts: int
    messages: int
    storage: int


def _usage(row: sa.Row) -> QuotaUsage:
    return QuotaUsage(int(row.used_storage), int(row.used_messages), row.quota_storage, row.quota_messages)


def _columns() -> tuple[sa.Column, ...]:
    c = accounts.c
    return (c.used_storage, c.used_messages, c.quota_storage, c.quota_messages)


def admit(tx: WriteTx, *, storage: int, messages: int) -> None:
    """Refuse (``OverQuota``) a write about to add ``messages`` memberships of ``storage`` octets in total when
    that would take a resource above its limit. Call it before writing anything (ingest: before the bytes go
    to disk, or after ``ingest.place`` stored them only once its own read of usage found room). Growth already
    admitted in the same transaction counts as used. The usage is the one the transaction read with its modseq
    (``WriteTx.usage``): usage moves only at the transaction's flush, after every admit."""
    used, count, quota_storage, quota_messages = tx.usage
    pending_storage, pending_messages = tx.quota_admitted
    used_storage = int(used) + pending_storage
    used_messages = int(count) + pending_messages
    if storage > 0 and quota_storage is not None and used_storage + storage > quota_storage:
        raise OverQuota(STORAGE)
    if messages > 0 and quota_messages is not None and used_messages + messages > quota_messages:
        raise OverQuota(MESSAGES)
    tx.quota_admitted = (pending_storage + max(storage, 0), pending_messages + max(messages, 0))


def admit_memberships(tx: WriteTx, email_ids: list[str]) -> None:
    """:func:`admit` for new memberships of existing emails (COPY): one per id given (repeats count)."""
    sizes: dict[str, int] = {}
    distinct = list(set(email_ids))
    for i in range(0, len(distinct), 500):
        sizes.update((r[0], int(r[1])) for r in tx.conn.execute(
            sa.select(emails.c.id, emails.c.size).where(emails.c.id.in_(distinct[i : i + 500]))))
    admit(tx, storage=sum(sizes.get(e, 0) for e in email_ids), messages=len(email_ids))


def recount(conn: sa.Connection, account_id: str) -> tuple[int, int]:
    """(octets, memberships) of the account from its mailboxes' counters: the definition of usage (an
    overflowing write sets usage to it; tests compare the kept columns with it)."""
    row = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(mailboxes.c.n_size), 0),
                                 sa.func.coalesce(sa.func.sum(mailboxes.c.n_messages), 0))
                       .where(mailboxes.c.account_id == account_id)).one()
    return int(row[0]), int(row[1])


def record_usage(tx: WriteTx, moved: tuple[int, int] | None) -> None:
    """At flush (``WriteTx``): the transaction moved the account's memberships by ``moved`` = (memberships,
    octets), or, when the counters recounted instead of diffing (``None``), by an unknown amount: recount.
    Updates the usage columns and logs the account's Quota objects as updated."""
    conn, c = tx.conn, accounts.c
    if moved is None:
        storage, messages = recount(conn, tx.account_id)
        row = conn.execute(sa.update(accounts).where(c.id == tx.account_id)
                           .where(sa.or_(c.used_storage != storage, c.used_messages != messages))
                           .values(used_storage=storage, used_messages=messages)
                           .returning(c.quota_storage, c.quota_messages)).first()
    else:
        d_messages, d_storage = moved
        if not d_messages and not d_storage:
            return
        row = tx.store.sql.first(conn, _ADD_USAGE, {"account_id": tx.account_id, "d_storage": d_storage,
                                                    "d_messages": d_messages})
    if row is None:  # nothing changed (recount), or the account is being deleted
        return
    if row[0] is not None:
        tx.log(KIND, STORAGE, "u")
    if row[1] is not None:
        tx.log(KIND, MESSAGES, "u")


class Quotas:
    """Reads of usage and limits, and the administrator's limit changes."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, account_id: str) -> QuotaUsage:
        """Usage and limits of the account (one primary-key read); ``NotFound`` for no such account."""
        with self._store.engine.connect() as conn:
            row = conn.execute(sa.select(*_columns()).where(accounts.c.id == account_id)).first()
        if row is None:
            raise NotFound(account_id)
        return _usage(row)

    def with_state(self, account_id: str) -> tuple[QuotaUsage, int]:
        """Usage and the Quota state (modseq of the newest Quota change) read on one connection, state first
        (so the state is never newer than the numbers): JMAP Quota/get."""
        with self._store.engine.connect() as conn, conn.begin():
            state = conn.execute(sa.select(sa.func.max(changes.c.modseq))
                                 .where(changes.c.account_id == account_id, changes.c.kind == KIND)).scalar()
            row = conn.execute(sa.select(*_columns()).where(accounts.c.id == account_id)).first()
        if row is None:
            raise NotFound(account_id)
        return _usage(row), int(state or 0)

    def totals(self) -> UsageTotals:
        """Accounts and their usage summed over the server (the metrics' store size): one pass over the
        account rows, whose usage every write keeps exact; no message is looked at."""
        c = accounts.c
        q = sa.select(sa.func.count(), sa.func.sum(c.used_messages), sa.func.sum(c.used_storage))
        with self._store.engine.connect() as conn:
            n, messages, storage = conn.execute(q).one()
        return UsageTotals(int(n or 0), int(messages or 0), int(storage or 0))

    def recount(self, account_id: str) -> tuple[int, int]:
        """(octets, memberships) counted from the memberships themselves (tests, repair)."""
        from .counters import recount as recount_mailboxes

        with self._store.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.select(mailboxes.c.id).where(mailboxes.c.account_id == account_id))]
            fresh = recount_mailboxes(conn, ids)
        return sum(v[3] for v in fresh.values()), sum(v[0] for v in fresh.values())

    @writes
    def set_limits(self, account_id: str, *, storage: object = _UNSET, messages: object = _UNSET) -> QuotaUsage:
        """Set (an int >= 0), remove (None) or keep (omitted) each limit. A limit below current usage is
        allowed: nothing is deleted, the account just cannot grow until it is cleaned up."""
        for value in (storage, messages):
            if value is not _UNSET and value is not None and (type(value) is not int or value < 0):
                raise ValueError("a limit is a whole number >= 0, or None for no limit")
        with self._store.write(account_id) as tx:
            c = accounts.c
            row = tx.conn.execute(sa.select(*_columns()).where(c.id == account_id)).one()
            before = _usage(row)
            values: dict[str, object] = {}
            for resource, value, column in ((STORAGE, storage, "quota_storage"), (MESSAGES, messages, "quota_messages")):
                old = before.limit(resource)
                if value is _UNSET or value == old:
                    continue
                values[column] = value
                tx.log(KIND, resource, "c" if old is None else ("d" if value is None else "u"))
            if values:
                tx.conn.execute(sa.update(accounts).where(c.id == account_id).values(**values))
            row = tx.conn.execute(sa.select(*_columns()).where(c.id == account_id)).one()
            return _usage(row)


# -- statements built once, run on the driver's cursor (``Store.sql``): writes that add mail, and every write that
# moves usage, run them ----------------------------------------------------------------------------------------

_USAGE = sa.select(*_columns()).where(accounts.c.id == sa.bindparam("account_id"))
#: (used storage, used messages, storage quota, message quota) of ``account_id`` (``ingest.place``'s pre-check)
USAGE = _USAGE
_ADD_USAGE = (sa.update(accounts).where(accounts.c.id == sa.bindparam("account_id"))
              .values(used_storage=accounts.c.used_storage + sa.bindparam("d_storage"),
                      used_messages=accounts.c.used_messages + sa.bindparam("d_messages"))
              .returning(accounts.c.quota_storage, accounts.c.quota_messages))
