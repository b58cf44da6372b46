"""Delivery reports received for a submission (RFC 8621 §7 ``dsnBlobIds`` / ``mdnBlobIds``).

When a delivery stores a report into an account (``IngestItem.inbound``: LMTP, the sender's local delivery),
ingest calls :func:`link_report` inside that same write: the submissions OF THAT ACCOUNT whose sent message the
report names (``janusmail.mime.reports`` found the Message-ID at parse time) get the report's blob id appended,
in order of receipt, and an ``EmailSubmission`` change is logged, so /changes and push see it with the
delivery. One indexed lookup on (account_id, message_id): its cost grows with neither the mailbox nor other
accounts, and only reports pay it (everything else never gets here). A report naming nothing of the account's
is simply delivered; another account's submissions are never read, whatever the report says.

Why only deliveries, not IMAP APPEND or JMAP Email/import: a report "received for" a submission arrives by
mail. Copies a client files itself (a migration, a restore, drag and drop between servers) were received
elsewhere, possibly long ago, and must not rewrite the submission's history; the same bytes delivered twice
(one blob) are listed once. The DSNs Janus writes itself (janusmail/smtp/outbound.py bounces) are stored as no
delivery: ``record_attempts`` lists them with the attempt that failed, so they come first. System rows
(vacation replies) are nobody's EmailSubmission and are not matched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa

from janusmail.mime.reports import DSN, MDN

from .submissions import KIND, MAX_MESSAGE_ID, email_submissions_table

if TYPE_CHECKING:  # pragma: no cover
    from .transaction import WriteTx

__all__ = ["link_report"]

#: Reports kept per submission and kind: anyone who knows a sent Message-ID (a list post) can send reports naming
#: it, and each one rewrites the JSON list; past this many the report is still delivered, just not listed.
MAX_LISTED = 100

_P = sa.bindparam
_T = email_submissions_table

_ANSWERED = (sa.select(_T.c.id, _T.c.dsn_blob_ids, _T.c.mdn_blob_ids, _T.c.delivery)
             .where(_T.c.account_id == _P("account_id"), _T.c.message_id == _P("message_id"), _T.c.origin.is_(None))
             .order_by(_T.c.created_at, _T.c.id))
_APPEND = {
    DSN: sa.update(_T).where(_T.c.id == _P("sid")).values(dsn_blob_ids=_P("new_ids"), delivery=_P("new_delivery")),
    MDN: sa.update(_T).where(_T.c.id == _P("sid")).values(mdn_blob_ids=_P("new_ids"), delivery=_P("new_delivery")),
}


def link_report(tx: WriteTx, report: Mapping[str, str], blob_id: str) -> list[str]:
    """Inside the delivering write (``tx``, of the receiving account): list ``blob_id`` on each of the account's
    submissions whose message ``report`` (the parse's ``{"kind", "message_id"}``) answers. Returns their ids
    (empty: it answers none of them, and nothing was written)."""
    kind, message_id = report.get("kind"), report.get("message_id")
    if kind not in _APPEND or not message_id or len(message_id.encode()) > MAX_MESSAGE_ID:
        return []
    sql = tx.store.sql
    rows = sql.run(tx.conn, _ANSWERED, {"account_id": tx.account_id, "message_id": message_id})
    updates = []
    for sid, dsns, mdns, delivery in rows:
        listed = json.loads(dsns if kind == DSN else mdns)
        if blob_id in listed or len(listed) >= MAX_LISTED:  # the same report again (same blob), or enough
            continue
        updates.append({"sid": sid, "new_ids": json.dumps([*listed, blob_id]),
                        "new_delivery": _displayed(delivery, report)})
        tx.log(KIND, sid, "u")
    if updates:
        sql.many(tx.conn, _APPEND[kind], updates)
    return [u["sid"] for u in updates]


def _displayed(delivery: str, report: Mapping[str, str]) -> str:
    """The submission's ``delivery`` (JSON) with ``displayed: yes`` for the recipient an MDN says displayed the
    message (RFC 8621 §7 deliveryStatus: "the recipient's system claims the message content has been displayed
    to the recipient"). Other dispositions (deleted, dispatched, processed) and recipients the submission never
    had leave it as it was: an MDN is the recipient's claim, never proof, and it may not say more than that."""
    if report.get("disposition") != "displayed" or not report.get("recipient"):
        return delivery
    status = json.loads(delivery)
    wanted = report["recipient"].lower()
    for rcpt, entry in status.items():
        if rcpt.lower() == wanted and isinstance(entry, dict):
            entry["displayed"] = "yes"
            return json.dumps(status)
    return delivery
