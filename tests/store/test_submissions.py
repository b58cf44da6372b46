"""The outbound queue below the JMAP door (janusmail/store/submissions.py), on SQLite and PostgreSQL: a row is
leased to one sender at a time, a held one is released (pending -> final) by its first claim and cannot be
canceled after, recorded attempts keep per-recipient status, and every account sees only its own rows."""

from __future__ import annotations

import pytest

from janusmail.store.model import NotFound
from janusmail.store.submissions import Attempt, CannotUnsend, Envelope, NewSubmission, SubmissionQuery
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


def test_batches_queue_claim_and_record_in_one_write_each(store) -> None:  # noqa: ANN001
    """What one EmailSubmission/set and one pass of the sender write: each call one write (one modseq), each row
    still succeeding or failing alone, and another account's rows untouched."""
    a, b, d = _setup(store)
    other = store.emails.ingest(b.id, simple(2), (store.mailboxes.by_path(b.id, ["INBOX"]).id,))
    env = Envelope("a@example.test", ("x@remote.test",))

    def modseq() -> int:
        return store.accounts.get(a.id).modseq

    before = modseq()
    made = store.submissions.create_many(a.id, [NewSubmission("I1", d.email_id, env),
                                                NewSubmission("I1", other.email_id, env),  # b's email: unknown
                                                NewSubmission("I1", d.email_id, env, send_at=1_050)], now=1_000)
    assert isinstance(made[1], NotFound) and [m.undo_status for m in (made[0], made[2])] == ["final", "pending"]
    assert modseq() == before + 1
    assert store.submissions.create_many(a.id, [NewSubmission("I1", "Mnope", env)], now=1_000)[0].args == ("Mnope",)
    assert modseq() == before + 1  # nothing queued: nothing written
    ids = [made[0].id, made[2].id]
    claimed = store.submissions.claim_many(a.id, [*ids, "Snope"], now=1_100)
    assert [(c.id, c.undo_status) for c in claimed] == [(ids[0], "final"), (ids[1], "final")]  # the held one released
    assert store.submissions.list(a.id, [ids[1]])[0].undo_status == "final"
    assert store.submissions.claim_many(b.id, ids, now=1_100) == []  # another account's rows
    assert store.submissions.claim_many(a.id, ids, now=1_101) == []  # leased
    store.submissions.destroy(a.id, ids[1])  # destroyed before its attempt is recorded: skipped
    at = modseq()
    store.submissions.record_attempts(a.id, [Attempt(ids[0], {"x@remote.test": ("yes", "250 ok")}, None, ("Gdsn",)),
                                             Attempt(ids[1], {"x@remote.test": ("no", "550 no")}, None)])
    assert modseq() == at + 1
    [row] = store.submissions.list(a.id)
    assert (row.id, row.delivery["x@remote.test"]["delivered"], row.attempts, row.next_attempt, row.dsn_blob_ids) == (
        ids[0], "yes", 1, None, ("Gdsn",))
    store.submissions.release_many(a.id, [ids[0]])  # (nothing due: releasing only drops a lease)
    assert store.submissions.due(now=10_000) == []


def test_a_release_gives_back_only_its_own_lease(store) -> None:  # noqa: ANN001
    """A sender whose lease ran out (a stalled local delivery) and that then stops must not clear the lease a
    second process took meanwhile: a third would send the row again while the second still does."""
    a, _, d = _setup(store)
    sub = store.submissions.create(a.id, "I1", d.email_id, Envelope("a@example.test", ("x@remote.test",)), now=1_000)
    [first] = store.submissions.claim_many(a.id, [sub.id], lease=300, now=1_000)
    assert first.lease_until == 1_300
    [second] = store.submissions.claim_many(a.id, [sub.id], lease=300, now=1_400)  # the first ran out
    store.submissions.release_many(a.id, [sub.id], held=first.lease_until)  # the first one stops, late
    assert store.submissions.due(now=1_500) == []  # still the second's
    store.submissions.release_many(a.id, [sub.id], held=second.lease_until)
    assert store.submissions.due(now=1_500) == [(a.id, sub.id)]
