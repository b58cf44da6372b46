"""Contract of ``store.changes`` (reads of the one change log): modseqs, ordered ranges, per-kind states and
snapshots, per account; on both backends."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from janusmail.store.model import IngestItem, InvalidName
from janusmail.store.writes import is_write
from tests.mailgen import simple

from .util import box, ops, states


def test_all_are_reads(store) -> None:  # noqa: ANN001
    ch = store.changes
    assert not any(is_write(m) for m in (ch.highest_modseq, ch.since, ch.kind_state, ch.snapshot))


def test_every_write_takes_the_next_modseq_and_a_refused_one_none(store, account) -> None:  # noqa: ANN001
    a = account.id
    assert store.changes.highest_modseq(a) == account.modseq == 1
    inbox = box(store, a)
    d = store.emails.ingest(a, simple(1), (inbox.id,))
    assert d.modseq == 2 == store.changes.highest_modseq(a)
    with pytest.raises(InvalidName):
        store.mailboxes.create(a, "a/b")
    assert store.changes.highest_modseq(a) == 2
    assert store.mailboxes.create(a, "New").modseq == 3 == store.changes.highest_modseq(a)


def test_highest_modseq_of_an_unknown_account_raises(store) -> None:  # noqa: ANN001
    with pytest.raises(sa.exc.NoResultFound):  # documented: the caller asked about an account that is not there
        store.changes.highest_modseq("A-no-such")


def test_since_is_exclusive_ordered_per_kind_and_limited(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    start = store.changes.highest_modseq(a)
    got = [store.emails.ingest(a, simple(i), (inbox.id,)) for i in range(4)]
    log = store.changes.since(a, "Email", start)
    assert [(c.modseq, c.object_id, c.op) for c in log] == [(d.modseq, d.email_id, "c") for d in got]
    assert [c.object_id for c in store.changes.since(a, "Email", got[1].modseq)] == [got[2].email_id,
                                                                                     got[3].email_id]
    assert [c.object_id for c in store.changes.since(a, "Email", start, limit=2)] == [got[0].email_id,
                                                                                      got[1].email_id]
    assert store.changes.since(a, "Email", got[3].modseq) == []
    assert {c.op for c in store.changes.since(a, "Mailbox", start)} == {"k"}
    assert store.changes.since(a, "Nonsense", 0) == []


def test_one_transaction_logs_each_object_once_with_the_strongest_op(store, account) -> None:  # noqa: ANN001
    """A batch that creates a thread and adds a reply to it logs the thread once, as created."""
    a = account.id
    inbox = box(store, a)
    start = store.changes.highest_modseq(a)
    root, reply = store.emails.ingest_many(a, [
        IngestItem(simple(1, subject="t", msgid="root@x"), (inbox.id,)),
        IngestItem(simple(2, subject="Re: t", references=["root@x"]), (inbox.id,))])
    assert root.thread_id == reply.thread_id
    assert [(c.object_id, c.op) for c in store.changes.since(a, "Thread", start)] == [(root.thread_id, "c")]
    assert [c.op for c in store.changes.since(a, "Mailbox", start)] == ["k"]
    store.emails.destroy(a, [root.email_id, reply.email_id])
    assert [c.op for c in store.changes.since(a, "Email", start)] == ["c", "c", "d", "d"]  # history is kept
    assert ops(store, a, "Thread", reply.modseq) == {(root.thread_id, "d")}


def test_kind_state_and_snapshot_move_only_with_their_kind(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    created = store.changes.highest_modseq(a)
    assert states(store, a) == {"Mailbox": created, "Email": 0, "Thread": 0}
    assert store.changes.snapshot(a) == {"Mailbox": created, "Email": 0, "Thread": 0, "EmailDelivery": 0}
    d = store.emails.ingest(a, simple(1), (inbox.id,))
    assert store.changes.snapshot(a) == {"Mailbox": d.modseq, "Email": d.modseq, "Thread": d.modseq,
                                         "EmailDelivery": d.modseq}
    flagged = store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", ["$seen"], None).modseq
    snap = store.changes.snapshot(a)
    assert (snap["Email"], snap["EmailDelivery"], snap["Thread"]) == (flagged, d.modseq, d.modseq)
    renamed = store.mailboxes.create(a, "Other").modseq
    assert store.changes.snapshot(a) == {"Mailbox": renamed, "Email": flagged, "Thread": d.modseq,
                                         "EmailDelivery": d.modseq}
    assert {k: v for k, v in store.changes.snapshot(a).items() if k != "EmailDelivery"} == states(store, a)
    assert store.changes.kind_state(a, "Nonsense") == 0


def test_another_accounts_log_is_invisible(store, account) -> None:  # noqa: ANN001
    a = account.id
    bob = store.accounts.create("bob@example.test", "x")
    bob_start = store.changes.highest_modseq(bob.id)
    bob_states = states(store, bob.id)
    store.emails.ingest(a, simple(1), (box(store, a).id,))
    store.mailboxes.create(a, "Mine")
    assert store.changes.highest_modseq(bob.id) == bob_start
    assert states(store, bob.id) == bob_states
    assert store.changes.since(bob.id, "Email", 0) == [] and store.changes.since(bob.id, "Thread", 0) == []
    assert {c.object_id for c in store.changes.since(bob.id, "Mailbox", 0)} == {
        b.id for b in store.mailboxes.list(bob.id)}
    assert store.changes.snapshot(bob.id)["EmailDelivery"] == 0
    assert store.changes.snapshot("A-no-such") == {"Mailbox": 0, "Email": 0, "Thread": 0, "EmailDelivery": 0}
    assert store.changes.since("A-no-such", "Email", 0) == []


async def test_the_notifier_hears_committed_writes_only(store, account) -> None:  # noqa: ANN001
    a = account.id
    sub = store.notifier.subscribe(a)
    try:
        with pytest.raises(InvalidName):
            await store.call(store.mailboxes.create, a, "a/b")
        made = await store.call(store.mailboxes.create, a, "Fine")
        events = await sub.wait(timeout=30)
        assert [ev.modseq for ev in events] == [made.modseq] and "Mailbox" in events[0].kinds
    finally:
        sub.close()
