"""Ingest can create memberships already carrying IMAP's ``\\Deleted`` (APPEND with that flag), in the same
transaction as the message, through every entry point: ``ingest``, ``ingest_many`` and the group-committed
``deliver``. SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from janusmail.store.model import IngestItem
from janusmail.store.schema import messages
from tests.mailgen import simple


def inbox(store, account) -> str:  # noqa: ANN001
    return next(m.id for m in store.mailboxes.list(account.id) if m.role == "inbox")


def deleted_by_uid(store, mailbox_id: str) -> dict[int, bool]:  # noqa: ANN001
    with store.read() as conn:
        rows = conn.execute(sa.select(messages.c.uid, messages.c.deleted)
                            .where(messages.c.mailbox_id == mailbox_id)).all()
    return {r.uid: bool(r.deleted) for r in rows}


async def test_memberships_can_start_deleted(store, account) -> None:  # noqa: ANN001
    box = inbox(store, account)
    a = store.emails.ingest(account.id, simple(1), [box], ["$seen"], deleted=True)
    b, c = store.emails.ingest_many(account.id, [IngestItem(simple(2), (box,), (), None, True),
                                          IngestItem(simple(3), (box,))])
    d = await store.deliver(account.id, simple(4), (box,), deleted=True)
    e = await store.deliver(account.id, simple(5), (box,))
    uid = {x.email_id: x.uids[box] for x in (a, b, c, d, e)}
    assert deleted_by_uid(store, box) == {uid[a.email_id]: True, uid[b.email_id]: True, uid[c.email_id]: False,
                                          uid[d.email_id]: True, uid[e.email_id]: False}
    counts = store.mailboxes.counts(account.id, [box])[box]
    assert (counts.messages, counts.deleted) == (5, 3)  # IMAP sees every membership ...
    assert counts.total_emails == 2  # ... JMAP leaves the \Deleted ones out, as after STORE +FLAGS \Deleted
