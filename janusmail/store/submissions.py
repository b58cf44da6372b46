"""Email submissions and the outbound queue (JMAP EmailSubmission, RFC 8621 §7): durable, one row per send.

Why one table for both: an EmailSubmission *is* the queue entry. Creating one is a write like any other
(modseq, change log kind ``EmailSubmission``), so a crash after the client saw ``created`` can lose nothing:
the row is committed before the answer, and the sender (janusmail/smtp/outbound.py) only ever works from rows.
Sending is at-least-once per recipient: a recipient is marked delivered in the same transaction that records
the attempt, and an attempt holds a lease (``lease_until``) so two processes or nodes never send one row at
the same time; a crash between the SMTP 250 and the recording can resend to that recipient once, never lose.
A recipient here is marked delivered in the very transaction that stores its copy (``deliver_local``), so
local delivery happens exactly once.

States: ``undo_status`` is ``pending`` until ``send_at`` (a FUTURERELEASE hold, RFC 4865), while the client
may cancel it; ``final`` once released to the sender; ``canceled``. ``next_attempt`` is when the sender should
look at the row again (NULL: nothing left to do). Per recipient ``delivery`` holds RFC 8621 §7's
DeliveryStatus (``queued`` / ``yes`` / ``no`` with the last SMTP reply). ``dsn_blob_ids`` / ``mdn_blob_ids`` list
the reports for it: the DSNs the sender wrote itself (``record_attempts``), then whatever reports arrive by
delivery naming the row's ``message_id`` (janusmail/store/report_links.py, in the delivering write).

System rows (``origin`` not NULL, e.g. ``vacation``: janusmail/store/vacation.py) are messages the server sends
on the account's behalf without the user asking. They ride the same queue (durability, retries, the sender's
leases) but are no EmailSubmission: ``list`` and ``query`` skip them, the door cannot cancel or destroy them,
and their writes log no ``EmailSubmission`` change (a client would be told of ids it can never fetch). Their
commits carry the kind ``OUTBOX`` instead, a change-log-less event kind that only wakes the sender.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from janusmail.mime.reports import MAX_ID

from . import ids
from .model import NotFound, StoreError
from .schema import ID, emails, metadata
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .ingest import Prepared
    from .model import Delivered
    from .store import Store
    from .transaction import WriteTx

__all__ = [
    "KIND",
    "LOCAL_REPLY",
    "OUTBOX",
    "Attempt",
    "CannotUnsend",
    "Envelope",
    "NewSubmission",
    "Submission",
    "SubmissionQuery",
    "Submissions",
    "email_submissions_table",
]

#: The change-log kind (the JMAP type name, as "Mailbox" and "Identity" are).
KIND = "EmailSubmission"
#: The event kind of a commit that queued or re-queued a system row: no change-log rows (no client state moves),
#: it only wakes the sender (janusmail/smtp/outbound.py) in the process that committed it.
OUTBOX = "Outbox"

email_submissions_table = sa.Table(
    "email_submissions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("identity_id", ID, nullable=False),
    sa.Column("email_id", ID, nullable=False),
    sa.Column("thread_id", ID, nullable=False),
    sa.Column("blob_id", ID, nullable=False),  # the message exactly as it is sent
    sa.Column("envelope", sa.Text, nullable=False),  # JSON {"mailFrom": Address, "rcptTo": [Address]}
    sa.Column("send_at", sa.BigInteger, nullable=False),
    sa.Column("undo_status", sa.String(16), nullable=False),
    sa.Column("delivery", sa.Text, nullable=False),  # JSON {rcpt: {"delivered", "smtpReply"}}
    sa.Column("dsn_blob_ids", sa.Text, nullable=False, server_default="[]"),
    # JSON list of the MDNs received for it, in order (report_links.py, migration 0019)
    sa.Column("mdn_blob_ids", sa.Text, nullable=False, server_default="[]"),
    # the sent message's Message-ID (no brackets; NULL if it has none): what a report names it by
    sa.Column("message_id", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt", sa.BigInteger, nullable=True, index=True),
    sa.Column("lease_until", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # NULL: the user's EmailSubmission; otherwise what queued this system row ("vacation"), hidden from JMAP
    sa.Column("origin", sa.String(16), nullable=True),
)
#: A received report finds the submissions it answers through this (report_links.py): the account's rows only.
sa.Index("ix_email_submissions_account_message_id", email_submissions_table.c.account_id,
         email_submissions_table.c.message_id)


#: The longest Message-ID (octets) kept on a row: it is indexed (PostgreSQL's btree refuses entries past ~2.7
#: KB), and RFC 5322 lines stop at 998 octets anyway. The reports' parser looks up none longer (one bound).
MAX_MESSAGE_ID = MAX_ID

#: The reply recorded for a recipient delivered into a mailbox here.
LOCAL_REPLY = "250 2.0.0 Delivered"


class _AlreadyDelivered(Exception):
    """Undoes a local copy whose recipient the submission row already counts as delivered (deliver_local)."""


class _NothingQueued(Exception):
    """Rolls back a write with nothing to write (no email of a ``create_many`` exists, every row of a
    ``record_attempts`` is gone): no modseq, no event."""


class CannotUnsend(StoreError):
    """The submission was already released to the sender (RFC 8621 §7.5 ``cannotUnsend``)."""

    code = "cannotUnsend"


@dataclass(frozen=True, slots=True)
class Envelope:
    """SMTP envelope: ``mail_from`` and ``rcpt_to`` addresses with their ESMTP parameters (or None)."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    mail_from_parameters: dict[str, str | None] | None = None
    rcpt_parameters: tuple[dict[str, str | None] | None, ...] = ()

    def to_json(self) -> dict[str, Any]:
        params = self.rcpt_parameters or (None,) * len(self.rcpt_to)
        return {
            "mailFrom": {"email": self.mail_from, "parameters": self.mail_from_parameters},
            "rcptTo": [{"email": r, "parameters": p} for r, p in zip(self.rcpt_to, params, strict=True)],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Envelope:
        rcpts = data.get("rcptTo") or []
        return cls(data["mailFrom"]["email"], tuple(r["email"] for r in rcpts),
                   data["mailFrom"].get("parameters"), tuple(r.get("parameters") for r in rcpts))


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one delivery attempt of a submission found (``Submissions.record_attempts``): per recipient
    (delivered ``yes`` / ``no`` / ``queued``, the SMTP reply), when to try again (None: done) and the blob ids
    of the DSNs it stored for the sender."""

    submission_id: str
    results: dict[str, tuple[str, str]]
    next_attempt: int | None
    dsn_blob_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewSubmission:
    """One submission to queue (``Submissions.create_many``): the email to send, checked ``envelope`` and an
    optional FUTURERELEASE ``send_at`` (epoch seconds)."""

    identity_id: str
    email_id: str
    envelope: Envelope
    send_at: int | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    id: str
    account_id: str
    identity_id: str
    email_id: str
    thread_id: str
    blob_id: str
    envelope: Envelope
    send_at: int
    undo_status: str
    delivery: dict[str, dict[str, str]]
    dsn_blob_ids: tuple[str, ...]
    attempts: int
    next_attempt: int | None
    created_at: int
    #: blob ids of the MDNs received for it, in order of receipt (report_links.py)
    mdn_blob_ids: tuple[str, ...] = ()
    #: the lease the row was read under (epoch seconds; None: not leased): ``release_many(held=...)`` gives back
    #: only that lease, never one another process took after it ran out
    lease_until: int | None = None


@dataclass(frozen=True, slots=True)
class SubmissionQuery:
    """EmailSubmission/query's FilterCondition (RFC 8621 §7.3), all parts ANDed; ``sort`` pairs of
    (``emailId`` | ``threadId`` | ``sentAt``, ascending)."""

    identity_ids: tuple[str, ...] | None = None
    email_ids: tuple[str, ...] | None = None
    thread_ids: tuple[str, ...] | None = None
    undo_status: str | None = None
    before: int | None = None
    after: int | None = None
    sort: tuple[tuple[str, bool], ...] = field(default_factory=tuple)


def _row(r: Any) -> Submission:
    return Submission(r.id, r.account_id, r.identity_id, r.email_id, r.thread_id, r.blob_id,
                      Envelope.from_json(json.loads(r.envelope)), int(r.send_at), r.undo_status,
                      json.loads(r.delivery), tuple(json.loads(r.dsn_blob_ids)), int(r.attempts),
                      None if r.next_attempt is None else int(r.next_attempt), int(r.created_at),
                      tuple(json.loads(r.mdn_blob_ids)), None if r.lease_until is None else int(r.lease_until))


_SORT_COLUMNS = {"emailId": "email_id", "threadId": "thread_id", "sentAt": "send_at"}


class Submissions:
    """``store.submissions``: EmailSubmission records and the outbound queue they form."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reads --------------------------------------------------------------------------------------------

    def list(self, account_id: str, submission_ids: Sequence[str] | None = None) -> list[Submission]:
        t = email_submissions_table
        q = (sa.select(t).where(t.c.account_id == account_id, t.c.origin.is_(None))
             .order_by(t.c.created_at, t.c.id))
        if submission_ids is not None:
            if not submission_ids:
                return []
            q = q.where(t.c.id.in_(list(submission_ids)))
        with self._store.read() as conn:
            return [_row(r) for r in conn.execute(q)]

    def query(self, account_id: str, spec: SubmissionQuery) -> list[str]:
        """Ids matching ``spec`` in its order (then creation order): one query on the account's rows."""
        t = email_submissions_table
        q = sa.select(t.c.id).where(t.c.account_id == account_id, t.c.origin.is_(None))
        for col, values in ((t.c.identity_id, spec.identity_ids), (t.c.email_id, spec.email_ids),
                            (t.c.thread_id, spec.thread_ids)):
            if values is not None:
                q = q.where(col.in_(list(values)))
        if spec.undo_status is not None:
            q = q.where(t.c.undo_status == spec.undo_status)
        if spec.before is not None:
            q = q.where(t.c.send_at < spec.before)
        if spec.after is not None:
            q = q.where(t.c.send_at >= spec.after)
        order = [(t.c[_SORT_COLUMNS[p]].asc() if asc else t.c[_SORT_COLUMNS[p]].desc()) for p, asc in spec.sort]
        q = q.order_by(*order, t.c.created_at, t.c.id)
        with self._store.read() as conn:
            return list(conn.execute(q).scalars())

    # -- writes of the account (modseq + change log) -------------------------------------------------------

    @writes
    def create(self, account_id: str, identity_id: str, email_id: str, envelope: Envelope, *,
               send_at: int | None = None, now: int | None = None) -> Submission:
        """Queue ``email_id`` for sending with ``envelope`` (checked by the caller: the JMAP door derives and
        validates it). The email's current blob is what will be sent. ``NotFound`` for an unknown email."""
        (made,) = self.create_many(account_id, [NewSubmission(identity_id, email_id, envelope, send_at)], now=now)
        if isinstance(made, StoreError):
            raise made
        return made

    @writes
    def create_many(self, account_id: str, wanted: Sequence[NewSubmission], *, now: int | None = None
                    ) -> list[Submission | StoreError]:
        """Queue several emails in ONE write (one EmailSubmission/set): per item, in order, its Submission or
        ``NotFound`` for an email the account does not have (that item alone is not queued)."""
        t = emails
        out: list[Submission | StoreError] = []
        try:
            with self._store.write(account_id) as tx:
                email_ids = list(dict.fromkeys(w.email_id for w in wanted))
                found: dict[str, Any] = {}
                for i in range(0, len(email_ids), 500):  # by primary key, the account compared here (see emails.py)
                    for r in tx.conn.execute(sa.select(t.c.id, t.c.account_id, t.c.blob_id, t.c.thread_id,
                                                       t.c.message_id)
                                             .where(t.c.id.in_(email_ids[i : i + 500]))):
                        if r.account_id == account_id:
                            found[r.id] = r
                rows: list[dict[str, Any]] = []
                for w in wanted:
                    email = found.get(w.email_id)
                    if email is None:
                        out.append(NotFound(w.email_id))
                        continue
                    sub, row = self._new_row(tx, w.identity_id, w.email_id, email.thread_id, email.blob_id,
                                             w.envelope, send_at=w.send_at, now=now, message_id=email.message_id)
                    out.append(sub)
                    rows.append(row)
                if not rows:
                    raise _NothingQueued  # rolled back: no modseq, no event
                tx.conn.execute(sa.insert(email_submissions_table), rows)
        except _NothingQueued:
            pass
        return out

    @writes
    def create_with_email(self, account_id: str, identity_id: str, message: Prepared, envelope: Envelope, *,
                          now: int | None = None) -> tuple[Delivered, Submission]:
        """Store a message and queue it for sending in ONE transaction (SMTP submission): the message goes where
        ``message`` (a prepared ingest item: the Sent mailbox, ``$seen``) says, the submission references that
        email. Either both exist after the commit or neither does, so an acknowledged message is never lost and
        a refused one (quota, a mailbox gone) never half-sent. Raises what ingest raises."""
        # not at import time: ingest needs the search index, which needs the emails service
        from . import ingest

        made: list[Submission] = []

        def queue(tx: WriteTx, done: list[Delivered]) -> None:
            d = done[0]
            mids = message.cache.get("message_ids") or []
            made.append(self._insert(tx, identity_id, d.email_id, d.thread_id, d.blob_id, envelope, now=now,
                                     message_id=mids[0] if mids else None))

        delivered = ingest.store_batch(self._store, account_id, [message], then=queue)[0]
        return delivered, made[0]

    @classmethod
    def _insert(cls, tx: WriteTx, identity_id: str, email_id: str, thread_id: str, blob_id: str, envelope: Envelope,
                *, send_at: int | None = None, now: int | None = None, message_id: str | None = None
                ) -> Submission:
        """The submission row, inside the caller's write of the sending account."""
        sub, row = cls._new_row(tx, identity_id, email_id, thread_id, blob_id, envelope, send_at=send_at, now=now,
                                message_id=message_id)
        tx.conn.execute(sa.insert(email_submissions_table).values(**row))
        return sub

    @staticmethod
    def _new_row(tx: WriteTx, identity_id: str, email_id: str, thread_id: str, blob_id: str, envelope: Envelope,
                 *, send_at: int | None = None, now: int | None = None, message_id: str | None = None
                 ) -> tuple[Submission, dict[str, Any]]:
        """A new submission and its row (logged as created in ``tx``; the caller inserts the row). ``message_id``
        is the sent message's (the email's ``message_id``): received reports name the submission by it. One
        too long for the index (past RFC 5322's line length) is not kept; no report could be matched by it."""
        now = int(time.time()) if now is None else now
        send_at = now if send_at is None else max(now, int(send_at))
        sub_id = ids.mint("S")
        delivery = {r: {"delivered": "queued", "smtpReply": "250 2.1.5 Queued"} for r in envelope.rcpt_to}
        undo_status = "pending" if send_at > now else "final"
        row = {
            "id": sub_id, "account_id": tx.account_id, "identity_id": identity_id, "email_id": email_id,
            "thread_id": thread_id, "blob_id": blob_id, "envelope": json.dumps(envelope.to_json()),
            "send_at": send_at, "undo_status": undo_status,
            "delivery": json.dumps(delivery), "dsn_blob_ids": "[]", "attempts": 0, "next_attempt": send_at,
            "lease_until": None, "created_at": now, "mdn_blob_ids": "[]",
            "message_id": message_id if message_id and len(message_id.encode()) <= MAX_MESSAGE_ID else None,
        }  # fmt: skip
        tx.log(KIND, sub_id, "c")
        return Submission(sub_id, tx.account_id, identity_id, email_id, thread_id, blob_id, envelope, send_at,
                          undo_status, delivery, (), 0, send_at, now), row

    @writes
    def cancel(self, account_id: str, submission_id: str) -> None:
        """Undo a send still on hold (``undoStatus`` pending -> canceled); ``CannotUnsend`` once released."""
        t = email_submissions_table
        with self._store.write(account_id) as tx:
            status = tx.conn.execute(
                sa.select(t.c.undo_status).where(t.c.id == submission_id, t.c.account_id == account_id,
                                                 t.c.origin.is_(None))
            ).scalar()
            if status is None:
                raise NotFound(submission_id)
            if status == "canceled":
                return
            if status != "pending":
                raise CannotUnsend("the message was already released for delivery")
            tx.conn.execute(sa.update(t).where(t.c.id == submission_id).values(
                undo_status="canceled", next_attempt=None, lease_until=None))
            tx.log(KIND, submission_id, "u")

    @writes
    def destroy(self, account_id: str, submission_id: str) -> str:
        """Forget a submission (RFC 8621 §7.5: it does not unsend; a held one is canceled with it). Returns the
        id of its email: the door's onSuccess* arguments act on it after the row is gone."""
        t = email_submissions_table
        with self._store.write(account_id) as tx:
            gone = tx.conn.execute(sa.delete(t).where(t.c.id == submission_id, t.c.account_id == account_id,
                                                      t.c.origin.is_(None)).returning(t.c.email_id)).first()
            if gone is None:
                raise NotFound(submission_id)
            tx.log(KIND, submission_id, "d")
            return str(gone.email_id)

    # -- system rows (see the module docstring) ---------------------------------------------------------------

    def queue_system(self, tx: WriteTx, blob_id: str, mail_from: str, rcpt_to: Sequence[str], origin: str, *,
                     now: int | None = None) -> str:
        """Inside the caller's write (``tx``, of the account that sends): queue the account's blob ``blob_id``
        to ``rcpt_to`` as a hidden system row of ``origin``, due now. Returns its id. The caller owns the
        transaction because the row belongs with the caller's own bookkeeping (the vacation reply log)."""
        now = int(time.time()) if now is None else now
        sub_id = ids.mint("S")
        envelope = Envelope(mail_from, tuple(rcpt_to))
        delivery = {r: {"delivered": "queued", "smtpReply": "250 2.1.5 Queued"} for r in envelope.rcpt_to}
        tx.conn.execute(sa.insert(email_submissions_table).values(
            id=sub_id, account_id=tx.account_id, identity_id="", email_id="", thread_id="", blob_id=blob_id,
            envelope=json.dumps(envelope.to_json()), send_at=now, undo_status="final",
            delivery=json.dumps(delivery), dsn_blob_ids="[]", attempts=0, next_attempt=now, lease_until=None,
            created_at=now, origin=origin))
        tx.kinds.add(OUTBOX)  # wakes the sender; no client-visible state moves
        return sub_id

    # -- the sender's side (janusmail/smtp/outbound.py) -----------------------------------------------------

    def due(self, now: int | None = None, limit: int = 50) -> list[tuple[str, str]]:
        """(account id, submission id) of rows whose next attempt is due and that nobody holds a lease on:
        an indexed range read on ``next_attempt`` (what is due, never the whole store)."""
        t = email_submissions_table
        now = int(time.time()) if now is None else now
        q = (sa.select(t.c.account_id, t.c.id)
             .where(t.c.next_attempt <= now, sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now))
             .order_by(t.c.next_attempt).limit(limit))
        with self._store.read() as conn:
            return [(r.account_id, r.id) for r in conn.execute(q)]

    def queue_depth(self) -> dict[str, int]:
        """Rows the sender still has work on (``next_attempt`` set), as ``pending`` (released, waiting for a
        delivery attempt or its retry) and ``held`` (FUTURERELEASE, not released yet): one count over the
        ``next_attempt`` index, which holds only queued rows' times (what was sent or canceled has none). A
        range (``>= 0``), not ``IS NOT NULL``: SQLite's planner scans the table for the latter."""
        t = email_submissions_table
        q = sa.select(t.c.undo_status, sa.func.count()).where(t.c.next_attempt >= 0).group_by(t.c.undo_status)
        depth = {"pending": 0, "held": 0}
        with self._store.read() as conn:
            for status, n in conn.execute(q):
                depth["held" if status == "pending" else "pending"] += int(n)
        return depth

    def next_due(self) -> int | None:
        """When the earliest pending attempt is due (epoch seconds), for the sender's sleep."""
        t = email_submissions_table
        with self._store.read() as conn:
            return conn.execute(sa.select(sa.func.min(t.c.next_attempt))).scalar()

    @writes
    def claim(self, account_id: str, submission_id: str, *, lease: int = 300, now: int | None = None
              ) -> Submission | None:
        """Take the row for one attempt (``claim_many`` of one row): None when the row is gone, not due, leased by
        someone else, or canceled."""
        taken = self.claim_many(account_id, [submission_id], lease=lease, now=now)
        return taken[0] if taken else None

    @writes
    def claim_many(self, account_id: str, submission_ids: Sequence[str], *, lease: int = 300,
                   now: int | None = None) -> list[Submission]:
        """Take the account's rows among ``submission_ids`` that are due and free, for one attempt each (in the
        order asked): a lease on each (so no other process sends them meanwhile) and a held submission whose time
        has come released (pending -> final: from now on it cannot be undone). Rows gone, not due, leased by
        someone else or canceled are left out. One write for the batch: the leases are no change a client can
        see (no modseq); only releasing a held row is (its account's write, only then)."""
        t = email_submissions_table
        now = int(time.time()) if now is None else now
        wanted = list(dict.fromkeys(submission_ids))
        free = sa.or_(t.c.lease_until.is_(None), t.c.lease_until < now)
        rows: dict[str, Any] = {}
        with self._store.transaction() as conn:
            for i in range(0, len(wanted), 500):
                taken = [r[0] for r in conn.execute(sa.update(t).where(
                    t.c.id.in_(wanted[i : i + 500]), t.c.account_id == account_id, t.c.next_attempt <= now, free
                ).values(lease_until=now + lease).returning(t.c.id))]
                if taken:
                    rows.update((r.id, r) for r in conn.execute(sa.select(t).where(t.c.id.in_(taken))))
        held = [sid for sid, r in rows.items() if r.undo_status == "pending"]
        if held:  # (system rows are never held: they are final from the start)
            with self._store.write(account_id) as tx:  # released: undoStatus pending -> final, which clients see
                for i in range(0, len(held), 500):
                    tx.conn.execute(sa.update(t).where(t.c.id.in_(held[i : i + 500]), t.c.undo_status == "pending")
                                    .values(undo_status="final"))
                tx.log_many(KIND, held, "u")
        out = []
        for sid in wanted:
            r = rows.get(sid)
            if r is None or r.undo_status == "canceled":
                continue
            sub = _row(r)
            out.append(replace(sub, undo_status="final") if sid in held else sub)
        return out

    @writes
    def release(self, account_id: str, submission_id: str) -> None:
        """Give up a lease without an attempt to record (the sender is stopping): the row is due again now,
        not when the lease would have run out."""
        self.release_many(account_id, [submission_id])

    @writes
    def release_many(self, account_id: str, submission_ids: Sequence[str], *, held: int | None = None) -> None:
        """``release`` of several rows of the account in one write. ``held``: the lease the caller took
        (``Submission.lease_until`` of its claim); a row whose lease is another one now (ours ran out and another
        process claimed it) keeps it."""
        t = email_submissions_table
        wanted = list(dict.fromkeys(submission_ids))
        mine = [] if held is None else [t.c.lease_until == held]
        with self._store.transaction() as conn:
            for i in range(0, len(wanted), 500):
                conn.execute(sa.update(t).where(t.c.id.in_(wanted[i : i + 500]), t.c.account_id == account_id,
                                                *mine).values(lease_until=None))

    @writes
    def deliver_local(self, account_id: str, message: Prepared, submission_account_id: str, submission_id: str,
                      rcpt: str) -> Delivered | None:
        """The sender's local delivery of ``rcpt`` (an address of ``account_id``, the receiving account, first so
        the call runs on that account's writer lane): ``message`` (prepared for its Inbox) is stored, and the
        submission's ``delivery[rcpt]`` becomes ``yes``, in ONE transaction. So an attempt whose record is lost
        afterwards (``record_attempt`` refused, the process killed) never delivers to that recipient twice: the
        next attempt finds it delivered. Returns None, storing nothing, when the row already said so. A row
        destroyed meanwhile does not stop the delivery (destroying a submission does not unsend it)."""
        from . import ingest  # not at import time (see create_with_email)

        t = email_submissions_table

        def mark(tx: WriteTx, done: list[Delivered]) -> None:
            cur = tx.conn.execute(sa.select(t.c.delivery).where(
                t.c.id == submission_id, t.c.account_id == submission_account_id)).scalar()
            if cur is None:
                return
            delivery = json.loads(cur)
            if delivery.get(rcpt, {}).get("delivered") == "yes":
                raise _AlreadyDelivered
            delivery[rcpt] = {**delivery.get(rcpt, {}), "delivered": "yes", "smtpReply": LOCAL_REPLY}
            tx.conn.execute(sa.update(t).where(t.c.id == submission_id).values(delivery=json.dumps(delivery)))

        try:
            return ingest.store_batch(self._store, account_id, [message], then=mark)[0]
        except _AlreadyDelivered:  # its savepoint rolled back: nothing of this copy was kept
            return None

    @writes
    def record_attempt(self, account_id: str, submission_id: str, results: dict[str, tuple[str, str]], *,
                       next_attempt: int | None, dsn_blob_ids: Iterable[str] = ()) -> None:
        """After one attempt: each recipient's (delivered, smtpReply), when to try again (None: done), the
        lease dropped, and any DSN stored for the sender. One write (one change for the client)."""
        self.record_attempts(account_id, [Attempt(submission_id, results, next_attempt, tuple(dsn_blob_ids))])

    @writes
    def record_attempts(self, account_id: str, attempts: Sequence[Attempt]) -> None:
        """``record_attempt`` of several rows of the account in ONE write (the sender records a batch at once):
        their rows read by one query, written by one executemany; rows destroyed meanwhile are skipped."""
        t = email_submissions_table
        by_id = {a.submission_id: a for a in attempts}  # (one attempt per row at a time: the lease)
        wanted = list(by_id)
        try:
            with self._store.write(account_id) as tx:
                current: dict[str, Any] = {}
                for i in range(0, len(wanted), 500):
                    current.update((r.id, r) for r in tx.conn.execute(
                        sa.select(t.c.id, t.c.delivery, t.c.dsn_blob_ids, t.c.attempts, t.c.origin)
                        .where(t.c.id.in_(wanted[i : i + 500]), t.c.account_id == account_id)))
                if not current:
                    raise _NothingQueued  # all destroyed meanwhile: nothing to record, no state moves
                rows = []
                for sid, cur in current.items():
                    a = by_id[sid]
                    delivery = json.loads(cur.delivery)
                    for rcpt, (delivered, reply) in a.results.items():
                        # (an MDN's ``displayed`` may have come in between: kept)
                        delivery[rcpt] = {**delivery.get(rcpt, {}), "delivered": delivered, "smtpReply": reply}
                    rows.append({"sid": sid, "new_delivery": json.dumps(delivery),
                                 "new_dsns": json.dumps([*json.loads(cur.dsn_blob_ids), *a.dsn_blob_ids]),
                                 "new_attempts": cur.attempts + 1, "new_next": a.next_attempt})
                    if cur.origin is None:  # a system row's progress is nobody's JMAP change
                        tx.log(KIND, sid, "u")
                tx.conn.execute(_RECORD_ATTEMPT, rows)
        except _NothingQueued:
            pass


_RECORD_ATTEMPT = (
    sa.update(email_submissions_table)
    .where(email_submissions_table.c.id == sa.bindparam("sid"))
    .values(delivery=sa.bindparam("new_delivery"), dsn_blob_ids=sa.bindparam("new_dsns"),
            attempts=sa.bindparam("new_attempts"), next_attempt=sa.bindparam("new_next"), lease_until=None)
)
