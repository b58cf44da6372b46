"""The outbound queue below the JMAP door (janusmail/store/submissions.py), on SQLite and PostgreSQL: a row is
leased to one sender at a time, a held one is released (pending -> final) by its first claim and cannot be
canceled after, recorded attempts keep per-recipient status, and every account sees only its own rows."""

from __future__ import annotations

import pytest

from janusmail.store.model import NotFound
from janusmail.store.submissions import CannotUnsend, Envelope, SubmissionQuery
from tests.mailgen import simple


def _setup(store):  # noqa: ANN001, ANN202
    a = store.accounts.create("a@example.test", "hash")
    b = store.accounts.create("b@example.test", "hash")
    inbox = store.mailboxes.by_path(a.id, ["INBOX"])
    d = store.emails.ingest(a.id, simple(1), (inbox.id,))
    return a, b, d


def test_lease_release_and_record(store) -> None:  # noqa: ANN001
    a, b, d = _setup(store)
    env = Envelope("a@example.test", ("x@remote.test", "y@remote.test"))
    sub = store.submissions.create(a.id, "I1", d.email_id, env, send_at=1_100, now=1_000)
    assert sub.undo_status == "pending" and sub.next_attempt == 1_100
    assert store.submissions.due(now=1_050) == []  # held
    assert store.submissions.due(now=1_100) == [(a.id, sub.id)]
    claimed = store.submissions.claim(a.id, sub.id, now=1_100)
    assert claimed is not None and claimed.undo_status == "final"
    assert store.submissions.claim(a.id, sub.id, now=1_101) is None  # leased: nobody else sends it now
    assert store.submissions.due(now=1_101) == []
    with pytest.raises(CannotUnsend):
        store.submissions.cancel(a.id, sub.id)
    store.submissions.record_attempt(a.id, sub.id, {"x@remote.test": ("yes", "250 ok"),
                                                    "y@remote.test": ("queued", "451 later")}, next_attempt=1_200)
    [row] = store.submissions.list(a.id)
    assert row.delivery["x@remote.test"]["delivered"] == "yes" and row.attempts == 1 and row.next_attempt == 1_200
    assert store.submissions.due(now=1_200) == [(a.id, sub.id)]  # the lease was dropped with the record
    assert store.submissions.list(b.id) == [] and store.submissions.list(b.id, [sub.id]) == []
    with pytest.raises(NotFound):
        store.submissions.destroy(b.id, sub.id)
    assert store.submissions.query(a.id, SubmissionQuery(email_ids=(d.email_id,))) == [sub.id]
    assert store.submissions.query(a.id, SubmissionQuery(undo_status="pending")) == []


def test_cancel_while_held(store) -> None:  # noqa: ANN001
    a, _, d = _setup(store)
    sub = store.submissions.create(a.id, "I1", d.email_id, Envelope("a@example.test", ("x@remote.test",)),
                                   send_at=2_000, now=1_000)
    store.submissions.cancel(a.id, sub.id)
    assert store.submissions.list(a.id)[0].undo_status == "canceled"
    assert store.submissions.due(now=5_000) == []
    assert store.submissions.claim(a.id, sub.id, now=5_000) is None
