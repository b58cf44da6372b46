"""Per-mailbox counters kept exact by the write transaction that changes them (issue 10 item 1).

STATUS, SELECT, LIST-STATUS, JMAP Mailbox/get and query totals read eight numbers from the mailbox row
(``mailboxes.n_*``) instead of counting memberships: on a 100k mailbox the grouped count cost 600-700 ms, the
row read costs a primary-key lookup.

How they stay exact without recounting a mailbox on every write: every number is a sum over THREADS of what the
thread's memberships contribute to each mailbox (messages, unseen, \\Deleted, size, live emails, unread emails,
and distinct live / unread threads, which are not sums over emails but are over threads). A write that is about
to change emails, memberships or flags names the threads it touches (``WriteTx.affect_threads`` /
``affect_emails``) BEFORE it changes them; the transaction reads those threads' contributions once before and
once at flush, and adds the difference to the mailbox rows. The cost is that of the touched threads, never of
the mailbox or the account. A write touching very many threads (``STORE 1:*`` on a big mailbox) recounts the
touched mailboxes instead, once, at flush: the same cost as the old count, paid by the write, not by every read.

``recount`` is the definition (the grouped count these columns replace): tests compare the two after random
operations, and a repair tool can rewrite the columns from it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .model import MailboxCounts
from .schema import FLAG_DRAFT, FLAG_SEEN, emails, mailboxes, messages

if TYPE_CHECKING:  # pragma: no cover
    from .sqltext import SqlText

#: The counter columns, in MailboxCounts field order.
COLUMNS: tuple[str, ...] = ("n_messages", "n_unseen", "n_deleted", "n_size", "n_emails", "n_unread_emails",
                            "n_threads", "n_unread_threads")
#: Above this many touched threads a write recounts its touched mailboxes instead of diffing threads.
DIFF_LIMIT = 2000

Vector = tuple[int, int, int, int, int, int, int, int]
ZERO: Vector = (0, 0, 0, 0, 0, 0, 0, 0)


def _aggregates() -> list[sa.ColumnElement]:
    m, e = messages, emails
    unread = (e.c.flags.op("&")(FLAG_SEEN | FLAG_DRAFT)) == 0
    unseen = (e.c.flags.op("&")(FLAG_SEEN)) == 0
    live = m.c.deleted.is_(False)
    return [
        sa.func.count(),
        sa.func.sum(sa.case((unseen, 1), else_=0)),
        sa.func.sum(sa.case((m.c.deleted.is_(True), 1), else_=0)),
        sa.func.sum(e.c.size),
        sa.func.count(sa.distinct(sa.case((live, m.c.email_id)))),
        sa.func.count(sa.distinct(sa.case((sa.and_(live, unread), m.c.email_id)))),
        sa.func.count(sa.distinct(sa.case((live, e.c.thread_id)))),
        sa.func.count(sa.distinct(sa.case((sa.and_(live, unread), e.c.thread_id)))),
    ]


def _vector(row: Sequence) -> Vector:
    return tuple(int(x or 0) for x in row)  # type: ignore[return-value]


def recount(conn: sa.Connection, mailbox_ids: Sequence[str]) -> dict[str, Vector]:
    """The counters of these mailboxes counted from their memberships (the definition of the columns)."""
    out: dict[str, Vector] = {}
    join = messages.join(emails, emails.c.id == messages.c.email_id)
    ids = list(mailbox_ids)
    for i in range(0, len(ids), 500):
        q = (sa.select(messages.c.mailbox_id, *_aggregates()).select_from(join)
             .where(messages.c.mailbox_id.in_(ids[i : i + 500])).group_by(messages.c.mailbox_id))
        out.update((r[0], _vector(r[1:])) for r in conn.execute(q))
    return out


def write_columns(conn: sa.Connection, values: dict[str, Vector]) -> None:
    """Set the counter columns of these mailboxes to these values."""
    for mid, vec in values.items():
        conn.execute(sa.update(mailboxes).where(mailboxes.c.id == mid).values(dict(zip(COLUMNS, vec, strict=True))))


def add_columns(sql: SqlText, conn: sa.Connection, deltas: dict[str, Vector],
                touch: Collection[str] = (), modseq: int | None = None) -> set[str]:
    """Add these differences to the counter columns (one UPDATE per mailbox that changed). The mailboxes also
    in ``touch`` get ``highest_modseq = modseq`` in that same UPDATE (one statement, not two, for the mailbox a
    STORE, EXPUNGE or APPEND changed); returns those, which the caller need not touch again."""
    done: set[str] = set()
    for mid, vec in deltas.items():
        if any(vec):
            params = {"mid": mid, **{f"d_{name}": d for name, d in zip(COLUMNS, vec, strict=True)}}
            if modseq is not None and mid in touch:
                sql.count(conn, _ADD_TOUCH, {**params, "modseq": modseq})
                done.add(mid)
            else:
                sql.count(conn, _ADD, params)
    return done


def to_counts(row: Sequence) -> MailboxCounts:
    return MailboxCounts(*(int(x or 0) for x in row))


class CounterTracker:
    """The counters part of one write transaction (held by ``WriteTx``); ``sql``: the store's statements."""

    __slots__ = ("_affected", "_before", "_emptied", "_overflow", "_sql", "_thread_of", "touched_by_flush")

    def __init__(self, sql: SqlText) -> None:
        self._before: dict[str, dict[str, Vector]] = {}  # thread id -> {mailbox id: contribution} before
        #: emails already seen by affect_emails: their threads are in ``_before`` (an email never changes thread)
        self._affected: set[str] = set()
        #: email id -> thread id, as read in this transaction (``threads_of``)
        self._thread_of: dict[str, str] = {}
        #: threads this transaction destroyed (no email left): they contribute nothing at flush, unread
        self._emptied: set[str] = set()
        self._overflow = False
        self._sql = sql
        #: mailboxes whose highest_modseq the last flush set with their counters
        self.touched_by_flush: set[str] = set()

    def affect_threads(self, conn: sa.Connection, thread_ids: Iterable[str], *, created: bool = False) -> None:
        """These threads are about to change: remember what they contribute now (first call per thread wins).
        ``created``: threads this transaction just made, with no email yet: they contribute nothing, known
        without a read (a delivery that starts a thread, the common case, reads its thread once, at flush)."""
        if self._overflow:
            return
        new = [t for t in set(thread_ids) if t not in self._before]
        if not new:
            return
        if len(self._before) + len(new) > DIFF_LIMIT:
            self._overflow = True  # recount the touched mailboxes at flush instead
            self._before.clear()
            return
        per_thread = {} if created else _per_thread(self._sql, conn, new)
        for t in new:
            self._before[t] = per_thread.get(t, {})

    def affect_emails(self, conn: sa.Connection, email_ids: Sequence[str]) -> None:
        """These emails (their flags or memberships) are about to change."""
        if self._overflow or not email_ids:
            return
        affected = self._affected
        ids = [e for e in dict.fromkeys(email_ids) if e not in affected]  # (a STORE of flags and \\Deleted: twice)
        if not ids:
            return
        affected.update(ids)
        self.affect_threads(conn, self.threads_of(conn, ids))

    def threads_of(self, conn: sa.Connection, email_ids: Sequence[str]) -> set[str]:
        """The threads of these emails, each email read once per transaction (its thread never changes; a STORE
        of \\Deleted needs them for the counters and again for the Thread change log)."""
        known = self._thread_of
        missing = [e for e in dict.fromkeys(email_ids) if e not in known]
        for i in range(0, len(missing), 500):
            known.update(self._sql.run(conn, _THREADS_OF, {"ids": missing[i : i + 500]}))
        return {known[e] for e in email_ids if e in known}

    def know_threads(self, thread_of: dict[str, str]) -> None:
        """Emails whose threads the caller read with its own rows (EXPUNGE joins them to the memberships it
        removes): :meth:`threads_of` answers from these instead of reading them again."""
        self._thread_of.update(thread_of)

    def threads_emptied(self, thread_ids: Iterable[str]) -> None:
        """These threads were destroyed, having no email left: :meth:`flush` knows they contribute nothing now
        without reading them (EXPUNGE of a message alone in its thread then reads its thread once, not twice)."""
        self._emptied.update(thread_ids)

    def flush(self, conn: sa.Connection, touched: Collection[str], modseq: int | None = None
              ) -> tuple[int, int] | None:
        """Apply the differences (or recount ``touched`` mailboxes after an overflow). Returns how much the
        account's memberships moved in all, (memberships, octets), which is what quotas count (``quotas.py``);
        None after an overflow, when only a recount knows. With ``modseq``, the ``touched`` mailboxes whose
        counters move get their highest_modseq in the same UPDATE (listed in :attr:`touched_by_flush`)."""
        if self._overflow:
            ids = sorted(set(touched))
            fresh = recount(conn, ids)
            write_columns(conn, {mid: fresh.get(mid, ZERO) for mid in ids})
            return None
        if not self._before:
            return (0, 0)
        still = [t for t in self._before if t not in self._emptied]
        after = _per_thread(self._sql, conn, still) if still else {}
        deltas: dict[str, list[int]] = {}
        for t, before in self._before.items():
            now = after.get(t, {})
            for mid in before.keys() | now.keys():
                b, a = before.get(mid, ZERO), now.get(mid, ZERO)
                if a != b:
                    acc = deltas.setdefault(mid, [0] * 8)
                    for k in range(8):
                        acc[k] += a[k] - b[k]
        self.touched_by_flush = add_columns(self._sql, conn, {mid: tuple(v) for mid, v in deltas.items()},  # type: ignore[misc]
                                            touched, modseq)
        # A destroyed mailbox's rows are gone but its difference is here: the account total stays exact.
        return sum(v[0] for v in deltas.values()), sum(v[3] for v in deltas.values())


def _per_thread(sql: SqlText, conn: sa.Connection, thread_ids: list[str]) -> dict[str, dict[str, Vector]]:
    """{thread id: {mailbox id: contribution}} for these threads.

    The memberships are read as plain rows and summed here rather than grouped by the database: a touched
    thread is a handful of rows, and the grouped statement (four ``count(DISTINCT ...)``, each a temporary
    b-tree) cost three times the plain read on SQLite; every write runs this twice, on the writer lane, while
    the write lock is held (issue 10). ``recount`` keeps the grouped statement as the definition."""
    groups: dict[tuple[str, str], list] = {}
    for i in range(0, len(thread_ids), 500):
        for row in sql.run(conn, _THREAD_MEMBERSHIPS, {"ids": thread_ids[i : i + 500]}):
            groups.setdefault((row[0], row[1]), []).append(row)
    out: dict[str, dict[str, Vector]] = {}
    for (thread_id, mailbox_id), rows in groups.items():
        out.setdefault(thread_id, {})[mailbox_id] = _contribution(rows)
    return out


def _contribution(rows: list) -> Vector:
    """One thread's contribution to one mailbox from its memberships (thread, mailbox, email, deleted, flags,
    size): what ``_aggregates`` computes for that group."""
    unseen = deleted = size = 0
    live: set[str] = set()
    unread: set[str] = set()
    for _t, _m, email_id, is_deleted, flags, octets in rows:  # (every column is NOT NULL)
        if not flags & FLAG_SEEN:
            unseen += 1
        size += octets
        if is_deleted:
            deleted += 1
        else:
            live.add(email_id)
            if not flags & (FLAG_SEEN | FLAG_DRAFT):
                unread.add(email_id)
    return (len(rows), unseen, deleted, size, len(live), len(unread), 1 if live else 0, 1 if unread else 0)


# -- statements built once, run on the driver's cursor (``Store.sql``): every write runs them twice, and building
# the per-thread select (and its cache key) per call cost more than running it on a small thread (issue 10: ~14% of
# the writer thread's time) ---------------------------------------------------------------------------------------

_THREAD_MEMBERSHIPS = (sa.select(emails.c.thread_id, messages.c.mailbox_id, messages.c.email_id, messages.c.deleted,
                                 emails.c.flags, emails.c.size)
                       .select_from(messages.join(emails, emails.c.id == messages.c.email_id))
                       .where(emails.c.thread_id.in_(sa.bindparam("ids", expanding=True))))
_THREADS_OF = sa.select(emails.c.id, emails.c.thread_id).where(emails.c.id.in_(sa.bindparam("ids", expanding=True)))
_ADD = (sa.update(mailboxes).where(mailboxes.c.id == sa.bindparam("mid"))
        .values({name: mailboxes.c[name] + sa.bindparam(f"d_{name}") for name in COLUMNS}))
_ADD_TOUCH = (sa.update(mailboxes).where(mailboxes.c.id == sa.bindparam("mid"))
              .values({**{name: mailboxes.c[name] + sa.bindparam(f"d_{name}") for name in COLUMNS},
                       "highest_modseq": sa.bindparam("modseq")}))
