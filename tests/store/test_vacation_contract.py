"""Contract of ``store.vacation`` (VacationResponse and its reply log) and of the hidden system rows it puts on
the outbound queue (``store.submissions``), on both backends."""

from __future__ import annotations

import pytest

from janusmail.store.model import NotFound
from janusmail.store.submissions import SubmissionQuery
from janusmail.store.vacation import REPLY_PERIOD, VacationResponse
from janusmail.store.writes import is_write

DAY = 24 * 3600


def test_default_singleton_costs_no_write(store, account) -> None:  # noqa: ANN001
    before = store.changes.highest_modseq(account.id)
    assert store.vacation.get(account.id) == VacationResponse()
    assert store.vacation.responder(account.id) is None
    assert store.changes.highest_modseq(account.id) == before
    assert store.changes.kind_state(account.id, "VacationResponse") == 0
    with pytest.raises(NotFound):
        store.vacation.get("A-no-such-account")
    assert is_write(store.vacation.update) and is_write(store.vacation.queue_reply)
    assert not is_write(store.vacation.get) and not is_write(store.vacation.responder)


def test_update_is_logged_and_kept(store, account) -> None:  # noqa: ANN001
    v = store.vacation
    v.update(account.id, is_enabled=True, subject="Away", text_body="Back Monday.", from_date=1000)
    state = store.changes.kind_state(account.id, "VacationResponse")
    assert state > 0
    assert [(c.object_id, c.op) for c in store.changes.since(account.id, "VacationResponse", 0)] == [
        ("singleton", "u")]
    v.update(account.id, html_body="<p>Back</p>", from_date=None)
    got = v.get(account.id)
    assert got == VacationResponse(True, None, None, "Away", "Back Monday.", "<p>Back</p>")
    assert store.changes.kind_state(account.id, "VacationResponse") > state
    with pytest.raises(ValueError):
        v.update(account.id, colour="red")


def test_responder_window_and_addresses(store, account) -> None:  # noqa: ANN001
    v = store.vacation
    store.identities.add_alias(account.id, "desk@example.test")
    v.update(account.id, is_enabled=True, from_date=10_000, to_date=20_000)
    assert v.responder(account.id, now=9_999) is None
    assert v.responder(account.id, now=20_000) is None
    r = v.responder(account.id, now=15_000)
    assert r is not None and r.addresses == ("alice@example.test", "desk@example.test")
    v.update(account.id, is_enabled=False)
    assert v.responder(account.id, now=15_000) is None


def test_once_per_sender_per_period_and_hidden_from_jmap(store, account) -> None:  # noqa: ANN001
    v, subs = store.vacation, store.submissions
    v.update(account.id, is_enabled=True)
    now = 1_000_000
    first = v.queue_reply(account.id, "Bob@Else.test", b"Subject: away\r\n\r\nx\r\n", now=now)
    assert first is not None
    assert v.queue_reply(account.id, "bob@else.test", b"x", now=now + DAY) is None  # same sender, any case
    assert v.queue_reply(account.id, "carol@else.test", b"y", now=now + DAY) is not None
    assert v.replied_at(account.id, "BOB@else.test") == now
    # after the period the sender is answered again
    again = v.queue_reply(account.id, "bob@else.test", b"z", now=now + REPLY_PERIOD + 1)
    assert again is not None and again != first
    # the rows are on the queue (due), with a null return path, but no EmailSubmission of the user
    due = dict((sid, acct) for acct, sid in subs.due(now=now + REPLY_PERIOD + 1))
    assert due.get(first) == account.id and due.get(again) == account.id
    assert subs.list(account.id) == [] and subs.list(account.id, [first]) == []
    assert subs.query(account.id, SubmissionQuery()) == []
    assert store.changes.kind_state(account.id, "EmailSubmission") == 0
    for refused in (subs.cancel, subs.destroy):
        with pytest.raises(NotFound):
            refused(account.id, first)
    # the sender works it like any row; its progress is no EmailSubmission change
    claimed = subs.claim(account.id, first, now=now + REPLY_PERIOD + 1)
    assert claimed is not None and claimed.envelope.mail_from == "" and claimed.envelope.rcpt_to == ("Bob@Else.test",)
    assert store.blobs.read(account.id, claimed.blob_id) == b"Subject: away\r\n\r\nx\r\n"
    subs.record_attempt(account.id, first, {"Bob@Else.test": ("yes", "250 ok")}, next_attempt=None)
    assert store.changes.kind_state(account.id, "EmailSubmission") == 0
    assert first not in dict((sid, a) for a, sid in subs.due(now=now + REPLY_PERIOD + 1))


def test_switching_on_again_forgets_the_log(store, account) -> None:  # noqa: ANN001
    v = store.vacation
    v.update(account.id, is_enabled=True)
    assert v.queue_reply(account.id, "bob@else.test", b"x", now=1000) is not None
    v.update(account.id, subject="still away")  # an edit while on keeps the log
    assert v.queue_reply(account.id, "bob@else.test", b"x", now=2000) is None
    v.update(account.id, is_enabled=False)
    v.update(account.id, is_enabled=True)  # a new absence
    assert v.replied_at(account.id, "bob@else.test") is None
    assert v.queue_reply(account.id, "bob@else.test", b"x", now=3000) is not None


def test_account_deletion_takes_it_along(store, account) -> None:  # noqa: ANN001
    store.vacation.update(account.id, is_enabled=True)
    store.vacation.queue_reply(account.id, "bob@else.test", b"x")
    store.accounts.delete(account.id)
    with pytest.raises(NotFound):
        store.vacation.get(account.id)
    assert store.vacation.replied_at(account.id, "bob@else.test") is None
