"""Received reports linked to their submission in the delivering write (janusmail/store/report_links.py), on
SQLite and PostgreSQL: an MDN or DSN delivered to the sending account is listed on the submissions of THAT
account whose message it names, in order of receipt and after the server's own DSNs, with an EmailSubmission
change in the same modseq as the delivery; another account's reports, copies a client files itself (not
inbound), reports naming nothing and a duplicate delivery change nothing; rows made before migration 0019
are found too."""

from __future__ import annotations

from alembic import command

from janusmail.store.db import alembic_config
from janusmail.store.model import IngestItem
from janusmail.store.submissions import KIND, Envelope
from tests.mailgen import simple
from tests.reportgen import dsn, mdn


def _sent(store, address: str, msgid: str):  # noqa: ANN001, ANN202
    """An account with a message in Sent (Message-ID ``msgid``) and a submission of it."""
    acct = store.accounts.create(address, "hash")
    sent = store.mailboxes.by_path(acct.id, ["Sent"])
    d = store.emails.ingest(acct.id, simple(1, msgid=msgid, frm=address), (sent.id,), ("$seen",))
    sub = store.submissions.create(acct.id, "I1", d.email_id, Envelope(address, ("carol@remote.test",)))
    return acct, sub


def _deliver(store, account_id: str, raw: bytes, *, inbound: bool = True):  # noqa: ANN001, ANN202
    inbox = store.mailboxes.by_path(account_id, ["INBOX"])
    return store.emails.ingest_many(account_id, [IngestItem(raw, (inbox.id,), inbound=inbound)])[0]


def _sub(store, account_id: str, sub_id: str):  # noqa: ANN001, ANN202
    return store.submissions.list(account_id, [sub_id])[0]


def test_mdn_and_dsns_are_listed_in_the_delivering_write(store) -> None:  # noqa: ANN001
    a, sub = _sent(store, "a@example.test", "sent-a@example.test")
    before = store.changes.highest_modseq(a.id)
    first_mdn = mdn("sent-a@example.test")
    receipt = _deliver(store, a.id, first_mdn)
    got = _sub(store, a.id, sub.id)
    assert got.mdn_blob_ids == (receipt.blob_id,) and got.dsn_blob_ids == ()
    # logged with the delivery itself: one modseq, the Email and the EmailSubmission change together
    assert receipt.modseq == before + 1
    assert [(c.object_id, c.op, c.modseq) for c in store.changes.since(a.id, KIND, before)] == [
        (sub.id, "u", receipt.modseq)]
    # a DSN the server wrote itself comes first (record_attempts), a remote MTA's is appended after it
    store.submissions.record_attempt(a.id, sub.id, {"carol@remote.test": ("no", "550 no")}, next_attempt=None,
                                     dsn_blob_ids=["Gown"])
    bounce = _deliver(store, a.id, dsn("sent-a@example.test"))
    second = _deliver(store, a.id, mdn("sent-a@example.test", frm="Dave <dave@remote.test>"))
    got = _sub(store, a.id, sub.id)
    assert got.dsn_blob_ids == ("Gown", bounce.blob_id)
    assert got.mdn_blob_ids == (receipt.blob_id, second.blob_id)  # in order of receipt
    # the same bytes delivered again are the same blob: listed once, and no change is logged for it
    at = store.changes.highest_modseq(a.id)
    assert _deliver(store, a.id, first_mdn).blob_id == receipt.blob_id
    assert _sub(store, a.id, sub.id).mdn_blob_ids == (receipt.blob_id, second.blob_id)
    assert store.changes.since(a.id, KIND, at) == []


def test_reports_never_cross_accounts(store) -> None:  # noqa: ANN001
    a, sub = _sent(store, "a@example.test", "shared@example.test")
    b, other = _sent(store, "b@example.test", "shared@example.test")  # the same Message-ID in b's account
    c = store.accounts.create("c@example.test", "hash")  # no submission at all
    at_a = store.changes.highest_modseq(a.id)
    to_b = _deliver(store, b.id, mdn("shared@example.test"))
    _deliver(store, c.id, dsn("shared@example.test"))
    assert _sub(store, a.id, sub.id).mdn_blob_ids == () and _sub(store, a.id, sub.id).dsn_blob_ids == ()
    assert store.changes.highest_modseq(a.id) == at_a  # a's account did not move at all
    assert _sub(store, b.id, other.id).mdn_blob_ids == (to_b.blob_id,)  # b's own submission: linked
    assert store.changes.since(c.id, KIND, 0) == []


def test_what_is_not_linked(store) -> None:  # noqa: ANN001
    a, sub = _sent(store, "a@example.test", "sent-a@example.test")
    before = store.changes.highest_modseq(a.id)
    _deliver(store, a.id, mdn("sent-a@example.test"), inbound=False)  # APPEND / import: filed, not received
    _deliver(store, a.id, mdn("unknown@example.test"))  # names nothing of a's
    _deliver(store, a.id, mdn(None, fields="\x00garbage\r\n::\r\n"))  # names nothing at all
    _deliver(store, a.id, simple(7, in_reply_to="sent-a@example.test"))  # an ordinary reply
    got = _sub(store, a.id, sub.id)
    assert got.mdn_blob_ids == () and got.dsn_blob_ids == ()
    assert store.changes.since(a.id, KIND, before) == []
    inbox = store.mailboxes.by_path(a.id, ["INBOX"])
    assert store.mailboxes.counts(a.id, [inbox.id])[inbox.id].messages == 4  # every one delivered as usual
    receipt = _deliver(store, a.id, mdn("sent-a@example.test"))  # while a delivered one is linked
    assert _sub(store, a.id, sub.id).mdn_blob_ids == (receipt.blob_id,)


def test_the_email_may_be_gone(store) -> None:  # noqa: ANN001
    """onSuccessDestroyEmail: the sent email is destroyed, the submission keeps the Message-ID it went with."""
    a, sub = _sent(store, "a@example.test", "gone@example.test")
    store.emails.destroy(a.id, [sub.email_id])
    receipt = _deliver(store, a.id, mdn("gone@example.test"))
    assert _sub(store, a.id, sub.id).mdn_blob_ids == (receipt.blob_id,)


def test_rows_from_before_the_migration_are_matched(store) -> None:  # noqa: ANN001
    a, sub = _sent(store, "a@example.test", "old@example.test")
    cfg = alembic_config()
    for target in ("0018", "head"):  # the column is dropped and filled again from the emails
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if target == "0018" else command.upgrade)(cfg, target)
    receipt = _deliver(store, a.id, dsn("old@example.test"))
    assert _sub(store, a.id, sub.id).dsn_blob_ids == (receipt.blob_id,)


def test_every_submission_of_the_message_is_told(store) -> None:  # noqa: ANN001
    """The same email submitted twice (a resend): a report for that Message-ID answers both."""
    a, first = _sent(store, "a@example.test", "twice@example.test")
    second = store.submissions.create(a.id, "I1", first.email_id, Envelope("a@example.test", ("x@remote.test",)))
    receipt = _deliver(store, a.id, mdn("twice@example.test"))
    assert [s.mdn_blob_ids for s in store.submissions.list(a.id, [first.id, second.id])] == [
        (receipt.blob_id,), (receipt.blob_id,)]


def test_a_submission_lists_at_most_max_listed_reports(store) -> None:  # noqa: ANN001
    """Anyone who knows a sent Message-ID can send reports naming it: past MAX_LISTED they are delivered but not
    listed (each one rewrote a growing JSON list, and EmailSubmission/get returned all of it)."""
    from janusmail.store import report_links

    a, sub = _sent(store, "a@example.test", "sent-cap@example.test")
    with store.write(a.id) as tx:
        for i in range(report_links.MAX_LISTED + 5):
            report_links.link_report(tx, {"kind": "mdn", "message_id": "sent-cap@example.test"}, f"G{i:04d}")
    assert len(_sub(store, a.id, sub.id).mdn_blob_ids) == report_links.MAX_LISTED
