"""The sender's local path (janusmail/smtp/outbound.py delivering to an account here), on SQLite and PostgreSQL:
a recipient's copy and the submission's note that the recipient has it are one transaction, so an attempt
whose record is lost (``record_attempt`` refused, the process killed before it) never delivers twice.

Driven below the server: the queue runner works on a store of its own, one pass at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest

from janusmail.config import OutboundConfig
from janusmail.smtp.outbound import Outbound
from janusmail.store.model import IngestItem, StorageUnavailable
from janusmail.store.submissions import LOCAL_REPLY, Envelope

RAW = (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: once\r\nMessage-ID: <once@example.test>\r\n"
       b"\r\nOnly one copy, please.\r\n")


def _inbox_count(store, account_id: str) -> int:  # noqa: ANN001
    inbox = store.mailboxes.by_path(account_id, ["INBOX"])
    return store.mailboxes.counts(account_id)[inbox.id].messages


def test_a_lost_attempt_record_never_delivers_a_local_copy_twice(store, tmp_path: Path,  # noqa: ANN001
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    a = store.accounts.create("a@example.test", "hash")
    b = store.accounts.create("b@example.test", "hash")
    sent = store.emails.ingest(a.id, RAW, (store.mailboxes.by_path(a.id, ["INBOX"]).id,))
    sub = store.submissions.create(a.id, "I1", sent.email_id, Envelope("a@example.test", ("b@example.test",)))
    config = SimpleNamespace(outbound=OutboundConfig(relay="smtp://127.0.0.1:9"), hostname="mx.test",
                             data_dir=tmp_path)
    runner = Outbound(store, config)

    def refused(*args: object, **kwargs: object) -> None:
        raise StorageUnavailable("the disk is full")

    with monkeypatch.context() as m:  # the attempt delivers, then its record is refused
        m.setattr(store.submissions, "record_attempts", refused)
        assert asyncio.run(runner.run_due()) == 1
    assert _inbox_count(store, b.id) == 1
    [row] = store.submissions.list(a.id)
    assert row.delivery["b@example.test"] == {"delivered": "yes", "smtpReply": LOCAL_REPLY}  # with the copy
    assert row.attempts == 0 and row.next_attempt is not None  # the record itself was lost: due again
    store.submissions.release(a.id, sub.id)  # as when the lost attempt's lease runs out
    assert asyncio.run(runner.run_due()) == 1
    assert _inbox_count(store, b.id) == 1  # the retry found the recipient served
    [row] = store.submissions.list(a.id)
    assert row.next_attempt is None and row.attempts == 1 and row.delivery["b@example.test"]["delivered"] == "yes"
    # the guard is in the transaction itself: a second delivery for a served recipient stores nothing
    prepared = store.emails.prepare(IngestItem(RAW, (store.mailboxes.by_path(b.id, ["INBOX"]).id,)))
    assert store.submissions.deliver_local(b.id, prepared, a.id, sub.id, "b@example.test") is None
    assert _inbox_count(store, b.id) == 1
    # and a destroyed submission does not stop a delivery (destroying one never unsends)
    store.submissions.destroy(a.id, sub.id)
    assert store.submissions.deliver_local(b.id, prepared, a.id, sub.id, "b@example.test") is not None
    assert _inbox_count(store, b.id) == 2


def test_a_batch_whose_lease_runs_short_releases_the_rest_for_a_fresh_claim(store, tmp_path: Path,  # noqa: ANN001
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows claimed together share one lease: when what is left of it is too short for the next attempt, the
    rest are released and the same pass claims them again with a lease of their own; nothing is lost or sent
    twice."""
    from janusmail.smtp import outbound

    a = store.accounts.create("a@example.test", "hash")
    b = store.accounts.create("b@example.test", "hash")
    inbox = store.mailboxes.by_path(a.id, ["INBOX"]).id
    for i in range(3):
        sent = store.emails.ingest(a.id, RAW.replace(b"once", f"n{i}".encode()), (inbox,))
        store.submissions.create(a.id, "I1", sent.email_id, Envelope("a@example.test", ("b@example.test",)))
    config = SimpleNamespace(outbound=OutboundConfig(relay="smtp://127.0.0.1:9"), hostname="mx.test",
                             data_dir=tmp_path)
    monkeypatch.setattr(outbound, "MIN_ATTEMPT", outbound.LEASE)  # never enough left after a batch's first
    assert asyncio.run(Outbound(store, config).run_due()) == 3
    assert _inbox_count(store, b.id) == 3
    assert all(r.attempts == 1 and r.next_attempt is None for r in store.submissions.list(a.id))


def test_a_pass_stopped_during_its_claim_leaves_the_rows_due(store, tmp_path: Path,  # noqa: ANN001
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The server stops while a claim is on the store's thread: the claim commits anyway, and its leases must be
    given back, or the next start would leave the messages alone for the whole lease (ten minutes)."""
    import threading

    a = store.accounts.create("a@example.test", "hash")
    sent = store.emails.ingest(a.id, RAW, (store.mailboxes.by_path(a.id, ["INBOX"]).id,))
    sub = store.submissions.create(a.id, "I1", sent.email_id, Envelope("a@example.test", ("x@remote.test",)))
    config = SimpleNamespace(outbound=OutboundConfig(relay="smtp://127.0.0.1:9"), hostname="mx.test",
                             data_dir=tmp_path)
    claimed, go = threading.Event(), threading.Event()
    real_claim = store.submissions.claim_many

    def slow_claim(*args: object, **kwargs: object) -> object:
        taken = real_claim(*args, **kwargs)  # committed: the rows are leased
        claimed.set()
        go.wait(60)
        return taken

    monkeypatch.setattr(store.submissions, "claim_many", slow_claim)

    async def stop_mid_claim() -> None:
        task = asyncio.create_task(Outbound(store, config).run_due())
        assert await asyncio.to_thread(claimed.wait, 60)
        task.cancel()
        go.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_mid_claim())
    assert store.submissions.due() == [(a.id, sub.id)]  # no lease left on it: the next start sends it at once
