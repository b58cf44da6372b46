"""Contract of ``store.emails``: ingest (one transaction per batch, all or nothing), JMAP-style updates and
destroys with their change log, and an email's bytes and MIME cache, never another account's."""

from __future__ import annotations

import hashlib

import pytest

from janusmail.store.emails import EmailUpdate
from janusmail.store.keywords import MAX_KEYWORDS
from janusmail.store.model import (
    IngestItem,
    InvalidKeyword,
    NotFound,
    StorageUnavailable,
    StoreError,
    TooLarge,
    TooManyKeywords,
)
from janusmail.store.transaction import WriteTx
from janusmail.store.writes import is_write
from tests.mailgen import simple

from .util import box, counts, keywords, mailbox_ids, ops


def test_writes_are_marked_and_reads_are_not(store) -> None:  # noqa: ANN001
    em = store.emails
    assert all(is_write(m) for m in (em.ingest, em.ingest_many, em.ingest_each, em.update, em.destroy))
    assert not any(is_write(m) for m in (em.prepare, em.digests_present, em.location, em.raw, em.message_cache))


def test_ingest_stores_and_logs_one_delivery(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    raw = simple(1, subject="hello")
    before = store.changes.highest_modseq(a)
    d = store.emails.ingest(a, raw, (inbox.id, archive.id), ("$seen", "Work"), received_at=1_700_000_000)
    assert d.modseq == before + 1 == store.changes.highest_modseq(a)
    assert (d.size, d.received_at, d.uids) == (len(raw), 1_700_000_000, {inbox.id: 1, archive.id: 1})
    assert ops(store, a, "Email", before) == {(d.email_id, "c")}
    assert ops(store, a, "Thread", before) == {(d.thread_id, "c")}
    assert ops(store, a, "Mailbox", before) == {(inbox.id, "k"), (archive.id, "k")}
    assert store.changes.snapshot(a)["EmailDelivery"] == d.modseq
    assert store.mailboxes.get(a, inbox.id).highest_modseq == d.modseq
    assert keywords(store, a, d.email_id) == {"$seen", "work"}
    assert store.emails.raw(a, d.email_id) == raw
    loc = store.emails.location(a, d.email_id)
    assert (loc.blob_id, loc.size, loc.sha256) == (d.blob_id, len(raw), hashlib.sha256(raw).hexdigest())
    cache = store.emails.message_cache(a, d.blob_id)
    assert isinstance(cache, dict) and cache.get("subject") == "hello"
    reply = store.emails.ingest(a, simple(2, subject="Re: hello", references=["msg1@example.test"]), (inbox.id,))
    assert reply.thread_id == d.thread_id and reply.uids == {inbox.id: 2}
    assert ops(store, a, "Thread", d.modseq) == {(d.thread_id, "u")}


def test_ingest_many_is_one_transaction_with_consecutive_uids(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    before = store.changes.highest_modseq(a)
    items = [IngestItem(simple(i), (inbox.id,)) for i in range(3)] + [IngestItem(simple(0), (inbox.id,))]
    got = store.emails.ingest_many(a, items)
    assert [d.uids[inbox.id] for d in got] == [1, 2, 3, 4]
    assert {d.modseq for d in got} == {before + 1} == {store.changes.highest_modseq(a)}
    assert got[0].blob_id == got[3].blob_id and got[0].email_id != got[3].email_id  # same bytes, one blob
    assert ops(store, a, "Email", before) == {(d.email_id, "c") for d in got}
    assert store.emails.ingest_many(a, []) == []
    assert store.changes.highest_modseq(a) == before + 1  # an empty batch writes nothing


def _nothing_stored(store, a: str, inbox_id: str, modseq: int, digests: list[str]) -> None:  # noqa: ANN001
    assert store.changes.highest_modseq(a) == modseq
    assert counts(store, a) == {}
    assert store.mailboxes.get(a, inbox_id).uidnext == 1
    assert store.changes.since(a, "Email", 0) == [] and store.changes.since(a, "Thread", 0) == []
    assert store.emails.digests_present(a, digests, [inbox_id]) == set()
    assert store.visible_emails.newest(a, 10) == []


def test_a_batch_that_fails_after_its_inserts_leaves_nothing(store, account, monkeypatch) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    raws = [simple(i) for i in range(3)]
    before = store.changes.highest_modseq(a)

    def last_step_fails(tx: WriteTx) -> None:  # marking the delivery is the batch's last step, after every insert
        raise RuntimeError("the transaction fails at its end")

    monkeypatch.setattr(WriteTx, "delivery", last_step_fails)
    with pytest.raises(RuntimeError):
        store.emails.ingest_many(a, [IngestItem(r, (inbox.id,)) for r in raws])
    _nothing_stored(store, a, inbox.id, before, [hashlib.sha256(r).hexdigest() for r in raws])
    monkeypatch.undo()
    d = store.emails.ingest(a, raws[0], (inbox.id,))  # the rolled-back UIDs and bytes are not in the way
    assert d.uids == {inbox.id: 1} and store.emails.raw(a, d.email_id) == raws[0]


def test_a_refused_item_refuses_the_whole_batch(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    bob = store.accounts.create("bob@example.test", "x")
    good = IngestItem(simple(1), (inbox.id,))
    before = store.changes.highest_modseq(a)
    digests = [hashlib.sha256(simple(1)).hexdigest()]
    for bad, error in ((IngestItem(simple(2), (box(store, bob.id).id,)), NotFound),
                       (IngestItem(simple(2), ("F-no-such",)), NotFound),
                       (IngestItem(simple(2), ()), NotFound),
                       (IngestItem(simple(2), (inbox.id,), ("$recent",)), InvalidKeyword),
                       (IngestItem(simple(2), (inbox.id,), tuple(f"k{i}" for i in range(MAX_KEYWORDS + 1))),
                        TooManyKeywords)):
        with pytest.raises(error):
            store.emails.ingest_many(a, [good, bad])
        _nothing_stored(store, a, inbox.id, before, digests)
    store.max_message_size = 100
    with pytest.raises(TooLarge):
        store.emails.ingest_many(a, [IngestItem(b"x" * 10, (inbox.id,)), IngestItem(b"y" * 101, (inbox.id,))])
    _nothing_stored(store, a, inbox.id, before, digests)
    assert counts(store, bob.id) == {}


def test_a_mailbox_named_twice_holds_the_message_once(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    try:
        d = store.emails.ingest(a, simple(1), (inbox.id, inbox.id))
    except StoreError:  # refusing it is as good as storing it once
        assert counts(store, a) == {}
        return
    assert counts(store, a)[inbox.id].messages == 1
    assert store.mailboxes.get(a, inbox.id).uidnext == d.uids[inbox.id] + 1


def test_ingest_each_answers_every_item_and_stores_the_good_ones_together(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    bob = store.accounts.create("bob@example.test", "x")
    store.max_message_size = 1000
    before = store.changes.highest_modseq(a)
    out = store.emails.ingest_each(a, [
        IngestItem(simple(1), (inbox.id,)),
        IngestItem(simple(2), ("F-no-such", inbox.id)),
        IngestItem(simple(3), (box(store, bob.id).id,)),
        IngestItem(simple(4), ()),
        IngestItem(b"x" * 1001, (inbox.id,)),
        IngestItem(simple(5), (inbox.id,), ("$recent",)),
        IngestItem(simple(6), (archive.id, archive.id), ("$seen",)),
    ])
    assert [type(r).__name__ for r in out] == ["Delivered", "NotFound", "NotFound", "NotFound", "TooLarge",
                                               "InvalidKeyword", "Delivered"]
    assert out[1].args == ("F-no-such",)
    good = [out[0], out[6]]
    assert {d.modseq for d in good} == {before + 1} == {store.changes.highest_modseq(a)}  # one transaction
    assert (good[0].uids, good[1].uids) == ({inbox.id: 1}, {archive.id: 1})
    assert counts(store, a)[inbox.id].messages == counts(store, a)[archive.id].messages == 1
    assert counts(store, bob.id) == {}
    assert store.emails.ingest_each(a, []) == []


def test_ingest_each_retries_a_batch_refused_as_a_whole_one_by_one(store, account, monkeypatch) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    monkeypatch.setattr(store.mailboxes, "unknown", lambda account_id, ids: [])  # a check that passed ...
    before = store.changes.highest_modseq(a)
    out = store.emails.ingest_each(a, [IngestItem(simple(1), (inbox.id,)), IngestItem(simple(2), ("F-gone",)),
                                       IngestItem(simple(3), (inbox.id,))])  # ... and a mailbox gone since
    assert [type(r).__name__ for r in out] == ["Delivered", "NotFound", "Delivered"]
    assert (out[0].modseq, out[2].modseq) == (before + 1, before + 2)  # each alone; the refused batch left none
    assert counts(store, a)[inbox.id].messages == 2


def test_ingest_each_lets_a_whole_storage_refusal_through(store, account, monkeypatch) -> None:  # noqa: ANN001
    from janusmail.store import ingest

    a = account.id
    inbox = box(store, a)
    real = ingest.store_batch
    calls: list[int] = []
    refuse_call = [1]  # which store_batch call (counted from 1) the disk refuses

    def refusing(store_, account_id, prep):  # noqa: ANN001, ANN202
        calls.append(len(prep))
        if len(calls) in refuse_call:
            raise StorageUnavailable(full=True)
        return real(store_, account_id, prep)

    monkeypatch.setattr(ingest, "store_batch", refusing)
    items = [IngestItem(simple(i), (inbox.id,)) for i in range(1, 4)]
    with pytest.raises(StorageUnavailable):  # nothing stored: the caller says "try again later"
        store.emails.ingest_each(a, items)
    assert counts(store, a) == {}
    calls.clear()
    refuse_call[:] = [3]
    monkeypatch.setattr(store.mailboxes, "unknown", lambda account_id, ids: [])
    out = store.emails.ingest_each(a, [*items[:2], IngestItem(simple(9), ("F-gone",)), items[2]])
    # The batch is refused (a mailbox gone); one by one, the disk refuses the second: that item's answer.
    assert [type(r).__name__ for r in out] == ["Delivered", "StorageUnavailable", "NotFound", "Delivered"]
    assert calls == [4, 1, 1, 1, 1]
    assert counts(store, a)[inbox.id].messages == 2


def test_ingest_deleted_is_invisible_to_jmap_and_to_digests_present(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    live = store.emails.ingest(a, simple(1), (inbox.id, archive.id))
    hidden = store.emails.ingest(a, simple(2), (inbox.id,), deleted=True)
    d1, d2 = (hashlib.sha256(simple(i)).hexdigest() for i in (1, 2))
    assert store.emails.digests_present(a, [d1, d2, "0" * 64], [inbox.id, archive.id]) == {
        (d1, inbox.id), (d1, archive.id)}
    assert store.emails.digests_present(a, [d1], [archive.id]) == {(d1, archive.id)}
    assert store.emails.digests_present(a, [], [inbox.id]) == set()
    assert store.emails.digests_present(a, [d1], []) == set()
    assert store.visible_emails.among(a, [live.email_id, hidden.email_id]) == {live.email_id}
    counts = store.mailboxes.counts(a, [inbox.id])[inbox.id]
    assert (counts.messages, counts.deleted, counts.total_emails) == (2, 1, 1)


def test_update_keywords_replace_add_remove_and_log(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    d = store.emails.ingest(a, simple(1), (inbox.id, archive.id), ("Work",))
    e = d.email_id
    before = store.changes.highest_modseq(a)
    assert store.emails.update(a, {e: EmailUpdate(add_keywords=["$Seen", "WORK", "Later"])}) == {e: None}
    assert keywords(store, a, e) == {"$seen", "work", "later"}
    assert store.changes.highest_modseq(a) == before + 1
    assert ops(store, a, "Email", before) == {(e, "u")}
    assert ops(store, a, "Mailbox", before) == {(inbox.id, "k"), (archive.id, "k")}  # flags are every copy's
    assert store.emails.update(a, {e: EmailUpdate(remove_keywords=["LATER", "$seen", "not-there"])}) == {e: None}
    assert keywords(store, a, e) == {"work"}
    assert store.emails.update(a, {e: EmailUpdate(keywords=["$flagged", "$draft"])}) == {e: None}
    assert keywords(store, a, e) == {"$flagged", "$draft"}
    quiet = store.changes.highest_modseq(a)
    assert store.emails.update(a, {e: EmailUpdate(add_keywords=["$FLAGGED"])}) == {e: None}  # nothing new
    assert store.changes.since(a, "Email", quiet) == []


def test_update_failures_are_per_email_and_leave_that_email_as_it_was(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    ok = store.emails.ingest(a, simple(1), (inbox.id,)).email_id
    bad = store.emails.ingest(a, simple(2), (inbox.id,), ("Keep",)).email_id
    too_many = [f"k{i}" for i in range(MAX_KEYWORDS + 1)]
    for upd, error in ((EmailUpdate(add_keywords=["$seen", "$recent"]), InvalidKeyword),
                       (EmailUpdate(add_keywords=too_many), TooManyKeywords),
                       (EmailUpdate(add_keywords=["$seen"], mailbox_ids=[]), StoreError),
                       (EmailUpdate(add_keywords=["$seen"], mailbox_ids=["F-no-such"]), NotFound)):
        result = store.emails.update(a, {ok: EmailUpdate(add_keywords=["Done"]), bad: upd})
        assert result[ok] is None and isinstance(result[bad], error)
        assert keywords(store, a, bad) == {"keep"} and mailbox_ids(store, a, bad) == {inbox.id}
    assert keywords(store, a, ok) == {"done"}


def test_update_mailboxes_moves_memberships_with_new_uids(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive, trash = box(store, a), box(store, a, "Archive"), box(store, a, "Trash")
    store.emails.ingest(a, simple(0), (archive.id,))
    e = store.emails.ingest(a, simple(1), (inbox.id,)).email_id
    before = store.changes.highest_modseq(a)
    assert store.emails.update(a, {e: EmailUpdate(add_mailboxes=[archive.id])}) == {e: None}
    assert mailbox_ids(store, a, e) == {inbox.id, archive.id}
    assert store.mailboxes.get(a, archive.id).uidnext == 3  # took UID 2 there
    assert ops(store, a, "Email", before) == {(e, "u")}
    assert ops(store, a, "Mailbox", before) == {(inbox.id, "k"), (archive.id, "k")}
    assert store.emails.update(a, {e: EmailUpdate(mailbox_ids=[trash.id])}) == {e: None}
    assert mailbox_ids(store, a, e) == {trash.id}
    assert store.emails.update(a, {e: EmailUpdate(add_mailboxes=[inbox.id], remove_mailboxes=[trash.id])}) == {
        e: None}
    assert mailbox_ids(store, a, e) == {inbox.id}
    assert store.mailboxes.get(a, inbox.id).uidnext == 3  # UIDs are never reused: a new one, not 1 again
    assert store.messages.vanished_uids(inbox.id, [(1, 10)], before) == [1]  # IMAP hears the removal
    store.memberships.store_flags(a, inbox.id, [(2, 2)], "add", [], True)
    assert mailbox_ids(store, a, e) == set()
    # Putting it (back) into a mailbox where its membership is \Deleted makes that membership visible again.
    assert store.emails.update(a, {e: EmailUpdate(mailbox_ids=[inbox.id])}) == {e: None}
    assert mailbox_ids(store, a, e) == {inbox.id} and counts(store, a)[inbox.id].deleted == 0


def test_another_accounts_email_ids_answer_nothing(store, account) -> None:  # noqa: ANN001
    a = account.id
    bob = store.accounts.create("bob@example.test", "x")
    inbox, bob_inbox = box(store, a), box(store, bob.id)
    d = store.emails.ingest(a, simple(1), (inbox.id,))
    bob_before = store.changes.highest_modseq(bob.id)
    with pytest.raises(NotFound):
        store.emails.location(bob.id, d.email_id)
    with pytest.raises(NotFound):
        store.emails.raw(bob.id, d.email_id)
    assert store.emails.message_cache(bob.id, d.blob_id) is None
    assert store.emails.digests_present(bob.id, [hashlib.sha256(simple(1)).hexdigest()], [inbox.id]) == set()
    result = store.emails.update(bob.id, {d.email_id: EmailUpdate(add_keywords=["$seen"],
                                                                  add_mailboxes=[bob_inbox.id])})
    assert isinstance(result[d.email_id], NotFound)
    assert store.emails.destroy(bob.id, [d.email_id]) == ([], [d.email_id])
    assert store.changes.since(bob.id, "Email", bob_before) == []
    assert keywords(store, a, d.email_id) == set() and mailbox_ids(store, a, d.email_id) == {inbox.id}
    with pytest.raises(NotFound):
        store.emails.location(a, "M-no-such")
    assert store.emails.message_cache(a, "G-no-such") is None


def test_destroy_reports_what_it_did_and_logs_threads(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    root = store.emails.ingest(a, simple(1, subject="t", msgid="root@x"), (inbox.id,))
    reply = store.emails.ingest(a, simple(2, subject="Re: t", references=["root@x"]), (inbox.id, archive.id))
    alone = store.emails.ingest(a, simple(3, subject="other"), (archive.id,))
    assert reply.thread_id == root.thread_id
    before = store.changes.highest_modseq(a)
    destroyed, missing = store.emails.destroy(a, ["M-no-such", reply.email_id, alone.email_id])
    assert sorted(destroyed) == sorted([reply.email_id, alone.email_id]) and missing == ["M-no-such"]
    assert store.changes.highest_modseq(a) == before + 1
    assert ops(store, a, "Email", before) == {(reply.email_id, "d"), (alone.email_id, "d")}
    assert ops(store, a, "Thread", before) == {(root.thread_id, "u"), (alone.thread_id, "d")}
    assert ops(store, a, "Mailbox", before) == {(inbox.id, "k"), (archive.id, "k")}
    with pytest.raises(NotFound):
        store.emails.raw(a, reply.email_id)
    assert store.emails.destroy(a, [reply.email_id]) == ([], [reply.email_id])
    assert store.visible_emails.thread_members(a, [root.thread_id]) == {root.thread_id: [root.email_id]}
