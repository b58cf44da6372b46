"""Contract of ``store.memberships`` (IMAP's writes by mailbox and UID ranges): STORE, COPY, MOVE, EXPUNGE,
\\Recent; results, isolation between accounts and the change log of each, on both backends."""

from __future__ import annotations

import pytest

from janusmail.store.model import InvalidKeyword, NotFound, TooManyKeywords
from janusmail.store.writes import is_write
from tests.mailgen import simple

from .util import box, counts, keywords, mailbox_ids, ops


def _fill(store, account_id: str, mailbox_id: str, n: int) -> list[str]:  # noqa: ANN001
    return [store.emails.ingest(account_id, simple(i), (mailbox_id,)).email_id for i in range(1, n + 1)]


def test_all_are_writes(store) -> None:  # noqa: ANN001
    mb = store.memberships
    assert all(is_write(m) for m in (mb.store_flags, mb.copy, mb.expunge, mb.claim_recent))


def test_store_flags_add_remove_replace(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    e1, e2, e3 = _fill(store, a, inbox.id, 3)
    res = store.memberships.store_flags(a, inbox.id, [(1, 2)], "add", ["$seen", "$Forwarded", "Work"], None)
    assert res.updated == [1, 2] and res.modified == [] and res.modseq == store.changes.highest_modseq(a)
    assert keywords(store, a, e1) == keywords(store, a, e2) == {"$seen", "$forwarded", "work"}
    assert keywords(store, a, e3) == set()
    store.memberships.store_flags(a, inbox.id, [(2, 3)], "remove", ["$SEEN", "work", "absent"], None)
    assert keywords(store, a, e2) == {"$forwarded"} and keywords(store, a, e1) == {"$seen", "$forwarded", "work"}
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "replace", ["$flagged"], None)
    assert keywords(store, a, e1) == {"$flagged"}
    assert store.memberships.store_flags(a, inbox.id, [(7, 9)], "add", ["$seen"], None).updated == []
    assert store.keywords.in_mailbox(a, inbox.id) == ["$Forwarded"]  # the client's spelling is kept


def test_store_flags_logs_the_email_and_every_mailbox_holding_it(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    d = store.emails.ingest(a, simple(1), (inbox.id, archive.id))
    before = store.changes.highest_modseq(a)
    res = store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", ["$seen"], None)
    assert res.modseq == before + 1
    assert ops(store, a, "Email", before) == {(d.email_id, "u")}
    assert ops(store, a, "Mailbox", before) == {(inbox.id, "k"), (archive.id, "k")}  # flags are every copy's
    assert store.mailboxes.get(a, archive.id).highest_modseq == res.modseq
    assert counts(store, a)[archive.id].unseen == 0


def test_deleted_is_per_membership_and_changes_jmap_visibility(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    d = store.emails.ingest(a, simple(1), (inbox.id, archive.id), ("$seen",))
    before = store.changes.highest_modseq(a)
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "replace", [], True)  # replace also drops $seen
    assert mailbox_ids(store, a, d.email_id) == {archive.id} and keywords(store, a, d.email_id) == set()
    assert ops(store, a, "Email", before) == {(d.email_id, "u")}
    assert ops(store, a, "Thread", before) == {(d.thread_id, "u")}  # its thread's emailIds may change
    c = counts(store, a)
    assert (c[inbox.id].deleted, c[inbox.id].total_emails, c[archive.id].deleted) == (1, 0, 0)
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", ["$seen"], None)  # None: \Deleted untouched
    assert counts(store, a)[inbox.id].deleted == 1
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", [], False)
    assert mailbox_ids(store, a, d.email_id) == {inbox.id, archive.id}


def test_refused_keywords_write_nothing(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    _fill(store, a, inbox.id, 1)
    before = store.changes.highest_modseq(a)
    with pytest.raises(InvalidKeyword):
        store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", ["x" * 256], None)
    with pytest.raises(TooManyKeywords):
        store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", [f"k{i}" for i in range(201)], None)
    assert store.changes.highest_modseq(a) == before
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", ["x" * 255], None)
    assert store.keywords.in_mailbox(a, inbox.id) == ["x" * 255]


def test_another_accounts_mailboxes_answer_not_found_and_nothing_moves(store, account) -> None:  # noqa: ANN001
    a = account.id
    bob = store.accounts.create("bob@example.test", "x")
    inbox, bob_inbox = box(store, a), box(store, bob.id)
    _fill(store, a, inbox.id, 1)
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", [], True)
    mine, theirs = store.changes.highest_modseq(a), store.changes.highest_modseq(bob.id)
    with pytest.raises(NotFound):
        store.memberships.store_flags(bob.id, inbox.id, [(1, 1)], "add", ["$seen"], False)
    with pytest.raises(NotFound):
        store.memberships.copy(bob.id, inbox.id, [(1, 1)], bob_inbox.id)
    with pytest.raises(NotFound):
        store.memberships.copy(a, inbox.id, [(1, 1)], bob_inbox.id, move=True)
    with pytest.raises(NotFound):
        store.memberships.expunge(bob.id, inbox.id)
    with pytest.raises(NotFound):
        store.memberships.expunge(a, "F-no-such")
    assert (store.changes.highest_modseq(a), store.changes.highest_modseq(bob.id)) == (mine, theirs)
    c = counts(store, a)[inbox.id]
    assert (c.messages, c.unseen, c.deleted) == (1, 1, 1)  # still unseen, still \Deleted
    assert counts(store, bob.id) == {} and store.mailboxes.get(bob.id, bob_inbox.id).uidnext == 1


def test_copy_keeps_email_ids_and_gives_new_uids(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    store.emails.ingest(a, simple(0), (archive.id,))
    e1, e2, e3 = _fill(store, a, inbox.id, 3)
    before = store.changes.highest_modseq(a)
    assert store.memberships.copy(a, inbox.id, [(3, 3), (1, 1)], archive.id) == [(1, 2), (3, 3)]
    assert mailbox_ids(store, a, e1) == mailbox_ids(store, a, e3) == {inbox.id, archive.id}
    assert mailbox_ids(store, a, e2) == {inbox.id}
    assert ops(store, a, "Email", before) == {(e1, "u"), (e3, "u")}
    assert ops(store, a, "Mailbox", before) == {(archive.id, "k")}  # the source did not change
    assert store.mailboxes.get(a, archive.id).uidnext == 4
    assert store.memberships.copy(a, inbox.id, [(2, 2)], inbox.id) == [(2, 4)]  # into itself: a new UID
    assert counts(store, a)[inbox.id].messages == 4 and counts(store, a)[inbox.id].total_emails == 3
    assert store.memberships.copy(a, inbox.id, [(50, 60)], archive.id) == []


def test_move_removes_the_source_membership_and_records_it_vanished(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, trash = box(store, a), box(store, a, "Trash")
    e1, e2 = _fill(store, a, inbox.id, 2)
    before = store.changes.highest_modseq(a)
    assert store.memberships.copy(a, inbox.id, [(1, 2)], trash.id, move=True) == [(1, 1), (2, 2)]
    assert mailbox_ids(store, a, e1) == mailbox_ids(store, a, e2) == {trash.id}
    assert store.messages.vanished_uids(inbox.id, [(1, 10)], before) == [1, 2]
    assert ops(store, a, "Email", before) == {(e1, "u"), (e2, "u")}
    assert ops(store, a, "Mailbox", before) == {(inbox.id, "k"), (trash.id, "k")}
    assert counts(store, a, [inbox.id]) == {} and counts(store, a)[trash.id].messages == 2


def test_expunge_takes_only_deleted_memberships_within_the_uids(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox, archive = box(store, a), box(store, a, "Archive")
    e1, e2, e3, e4 = _fill(store, a, inbox.id, 4)
    store.memberships.copy(a, inbox.id, [(2, 2)], archive.id)
    assert store.memberships.expunge(a, inbox.id) == []  # nothing is \Deleted
    store.memberships.store_flags(a, inbox.id, [(2, 4)], "add", [], True)
    before = store.changes.highest_modseq(a)
    assert store.memberships.expunge(a, inbox.id, [(1, 3)]) == [2, 3]
    assert ops(store, a, "Email", before) == {(e2, "u"), (e3, "d")}  # e2 lives on in Archive
    assert (inbox.id, "k") in ops(store, a, "Mailbox", before)
    assert store.messages.vanished_uids(inbox.id, [(1, 10)], before) == [2, 3]
    assert mailbox_ids(store, a, e2) == {archive.id} and store.visible_emails.among(a, [e1, e3]) == {e1}
    assert store.memberships.expunge(a, inbox.id) == [4]
    assert counts(store, a)[inbox.id].messages == 1
    # UIDs are never given again: the next message takes 5, not 4.
    assert store.emails.ingest(a, simple(9), (inbox.id,)).uids == {inbox.id: 5}
    assert e4 not in store.visible_emails.among(a, [e4])


def test_claim_recent_hands_each_uid_to_one_session(store, account) -> None:  # noqa: ANN001
    a = account.id
    inbox = box(store, a)
    _fill(store, a, inbox.id, 2)
    assert store.memberships.claim_recent(inbox.id) == 1  # this session shows UIDs 1 and 2 as \Recent
    assert store.memberships.claim_recent(inbox.id) == 3  # the next one none of them
    _fill(store, a, inbox.id, 1)
    assert store.memberships.claim_recent(inbox.id) == 3
    assert store.mailboxes.get(a, inbox.id).recent_uid == 4
    with pytest.raises(NotFound):
        store.memberships.claim_recent("F-no-such")


def test_copy_keeps_deleted_and_undeleting_the_copy_logs_its_thread(store, account) -> None:  # noqa: ANN001
    """A copy keeps the source's flags, \\Deleted included (RFC 9051 §6.4.7): a message hidden from JMAP stays
    hidden after COPY / MOVE; clearing \\Deleted on the copy shows it again and logs its thread."""
    a = account.id
    inbox, archive, trash = box(store, a), box(store, a, "Archive"), box(store, a, "Trash")
    d = store.emails.ingest(a, simple(1), (inbox.id,))
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", [], True)
    assert store.visible_emails.thread_members(a, [d.thread_id]) == {}
    before = store.changes.highest_modseq(a)
    assert store.memberships.copy(a, inbox.id, [(1, 1)], archive.id) == [(1, 1)]
    assert store.memberships.copy(a, archive.id, [(1, 1)], trash.id, move=True) == [(1, 1)]
    assert store.visible_emails.thread_members(a, [d.thread_id]) == {}
    assert ops(store, a, "Thread", before) == set()
    assert store.mailboxes.counts(a, [trash.id])[trash.id].deleted == 1
    store.memberships.store_flags(a, trash.id, [(1, 1)], "remove", [], False)
    assert store.visible_emails.thread_members(a, [d.thread_id]) == {d.thread_id: [d.email_id]}
    assert {t for t, _op in ops(store, a, "Thread", before)} == {d.thread_id}
