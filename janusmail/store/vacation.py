"""The account's vacation response (JMAP VacationResponse, RFC 8621 §8) and the log of whom it answered.

Why a singleton without a row: RFC 8621 gives every account exactly one VacationResponse (id ``singleton``),
disabled until the user turns it on. It is derived (all defaults) until first changed, so no migration backfills
old accounts and account creation knows nothing of it; its first update inserts the row. Every update is one
``Store.write`` logged under kind ``VacationResponse``, so /get's state string moves and the notifier hears it.

Why the reply log lives here: RFC 3834 §2 asks a responder not to answer the same sender more than once in a
period (seven days, as Sieve's vacation default). ``queue_reply`` reads and stamps the log in the very write
transaction that queues the reply, which takes the account's row lock first (``WriteTx``), so two deliveries to
one account cannot both pass the check. Turning the response on again (a new absence) forgets the log.

The reply is queued on the durable outbound queue (``store.submissions``) as a *system* row: origin
``vacation``, never listed by EmailSubmission/get or /query and never logged under that kind, so the user sees
no submission they did not make (submissions.py says how). Deciding whether a message deserves a reply (its
headers) and writing the reply are the delivery side's business (janusmail/smtp/vacation.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .model import NotFound
from .schema import ID, metadata
from .writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = ["KIND", "REPLY_PERIOD", "SINGLETON", "Responder", "Vacation", "VacationResponse"]

#: The change-log kind (the JMAP type name).
KIND = "VacationResponse"
#: The one object's id (RFC 8621 §8).
SINGLETON = "singleton"
#: At most one reply per sender in this many seconds (RFC 3834 §2; Sieve vacation's default :days 7).
REPLY_PERIOD = 7 * 24 * 3600
#: The submission origin of the replies (submissions.py hides such rows from the user's views).
ORIGIN = "vacation"

# The tables of migration 0014, declared beside the only code that reads and writes them.
vacation_responses_table = sa.Table(
    "vacation_responses",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("is_enabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("from_date", sa.BigInteger, nullable=True),  # epoch seconds
    sa.Column("to_date", sa.BigInteger, nullable=True),
    sa.Column("subject", sa.Text, nullable=True),
    sa.Column("text_body", sa.Text, nullable=True),
    sa.Column("html_body", sa.Text, nullable=True),
)

vacation_replies_table = sa.Table(
    "vacation_replies",
    metadata,
    sa.Column("account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("sender", sa.String(320), primary_key=True),  # lowercased envelope sender
    sa.Column("replied_at", sa.BigInteger, nullable=False),
)

#: The fields an update may set.
FIELDS = ("is_enabled", "from_date", "to_date", "subject", "text_body", "html_body")


@dataclass(frozen=True, slots=True)
class VacationResponse:
    is_enabled: bool = False
    from_date: int | None = None
    to_date: int | None = None
    subject: str | None = None
    text_body: str | None = None
    html_body: str | None = None

    def active_at(self, now: float) -> bool:
        """Enabled and ``now`` inside [fromDate, toDate) (an open end is no limit)."""
        return (self.is_enabled and (self.from_date is None or now >= self.from_date)
                and (self.to_date is None or now < self.to_date))


@dataclass(frozen=True, slots=True)
class Responder:
    """What the delivery side needs to answer a message: the response and the account's own addresses (its
    address first, then its aliases), which neither get a reply nor are replied to unnamed."""

    response: VacationResponse
    addresses: tuple[str, ...]


class Vacation:
    """``store.vacation``: the account's VacationResponse and its reply log."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- reads ----------------------------------------------------------------------------------------------

    def get(self, account_id: str) -> VacationResponse:
        """The account's response (the defaults, disabled, until first changed). ``NotFound`` for no account."""
        t = vacation_responses_table
        with self._store.read() as conn:
            row = conn.execute(sa.select(t).where(t.c.account_id == account_id)).first()
        if row is not None:
            return _response(row)
        if self._store.accounts.get(account_id) is None:
            raise NotFound(account_id)
        return VacationResponse()

    def responder(self, account_id: str, now: float | None = None) -> Responder | None:
        """The response and addresses when it is active at ``now``, else None: the one read a delivery costs
        (an account that never set a response costs one indexed miss)."""
        now = time.time() if now is None else now
        with self._store.read() as conn:  # (on the driver's cursor: every delivery runs it)
            row = self._store.sql.first(conn, _RESPONSE, {"account_id": account_id})
        if row is None:
            return None
        response = VacationResponse(bool(row[0]), _int(row[1]), _int(row[2]), row[3], row[4], row[5])
        if not response.active_at(now):
            return None
        addresses = tuple(self._store.identities.addresses(account_id))
        return Responder(response, addresses) if addresses else None

    def replied_at(self, account_id: str, sender: str) -> int | None:
        """When ``sender`` was last answered (epoch seconds), or None."""
        r = vacation_replies_table
        with self._store.read() as conn:
            return conn.execute(sa.select(r.c.replied_at).where(
                r.c.account_id == account_id, r.c.sender == sender.strip().lower())).scalar()

    # -- writes ---------------------------------------------------------------------------------------------

    @writes
    def update(self, account_id: str, **values: Any) -> VacationResponse:
        """Change some fields (``FIELDS``); logs one ``VacationResponse`` update. Switching the response on
        (from off) starts a new absence: the reply log is emptied, so everyone gets the new text once."""
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise ValueError(f"not VacationResponse fields: {sorted(unknown)}")
        t, r = vacation_responses_table, vacation_replies_table
        with self._store.write(account_id) as tx:
            row = tx.conn.execute(sa.select(t).where(t.c.account_id == account_id)).first()
            old = _response(row) if row is not None else VacationResponse()
            new = replace(old, **values)
            fields = {f: getattr(new, f) for f in FIELDS}
            if row is None:
                tx.conn.execute(sa.insert(t).values(account_id=account_id, **fields))
            else:
                tx.conn.execute(sa.update(t).where(t.c.account_id == account_id).values(**fields))
            if new.is_enabled and not old.is_enabled:
                tx.conn.execute(sa.delete(r).where(r.c.account_id == account_id))
            tx.log(KIND, SINGLETON, "u")
        return new

    @writes
    def queue_reply(self, account_id: str, sender: str, message: bytes, *, now: int | None = None,
                    period: int = REPLY_PERIOD) -> str | None:
        """Queue ``message`` (the finished reply) to ``sender`` unless it was answered within ``period``
        seconds; stamps the log in the same transaction. Returns the (hidden) submission id, or None when the
        sender was answered recently (nothing written). The reply's envelope sender is ``<>`` (RFC 3834 §3.3:
        nothing answers or bounces an automatic reply)."""
        now = int(time.time()) if now is None else now
        key = sender.strip().lower()
        last = self.replied_at(account_id, key)
        if last is not None and last > now - period:  # the common "already answered": no write at all
            return None
        blob_id, _ = self._store.blobs.upload(account_id, message, "message/rfc822")
        r = vacation_replies_table
        with self._store.write(account_id) as tx:  # the account row is locked: the check below is final
            last = tx.conn.execute(sa.select(r.c.replied_at).where(
                r.c.account_id == account_id, r.c.sender == key)).scalar()
            if last is not None and last > now - period:
                return None
            if last is None:
                tx.conn.execute(sa.insert(r).values(account_id=account_id, sender=key, replied_at=now))
            else:
                tx.conn.execute(sa.update(r).where(r.c.account_id == account_id, r.c.sender == key)
                                .values(replied_at=now))
            return self._store.submissions.queue_system(tx, blob_id, "", (sender.strip(),), ORIGIN, now=now)


def _response(row: Any) -> VacationResponse:
    return VacationResponse(bool(row.is_enabled), _int(row.from_date), _int(row.to_date), row.subject,
                            row.text_body, row.html_body)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


_RESPONSE = sa.select(vacation_responses_table.c.is_enabled, vacation_responses_table.c.from_date,
                      vacation_responses_table.c.to_date, vacation_responses_table.c.subject,
                      vacation_responses_table.c.text_body, vacation_responses_table.c.html_body).where(
    vacation_responses_table.c.account_id == sa.bindparam("account_id"))
