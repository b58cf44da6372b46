"""Contract of ``store.mailboxes``: the tree and its naming rules, isolation between accounts, the change log of
each write, and the counts both doors show (kept right across every kind of write)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from janusmail.store.emails import EmailUpdate
from janusmail.store.model import (
    AlreadyExists,
    HasChildren,
    HasEmails,
    InboxProtected,
    InvalidName,
    MailboxCounts,
    NotFound,
    RoleTaken,
)
from janusmail.store.writes import is_write
from tests.mailgen import simple

from .util import box, counts, ops


def test_writes_are_marked_and_reads_are_not(store) -> None:  # noqa: ANN001
    mb = store.mailboxes
    assert all(is_write(m) for m in (mb.create, mb.update, mb.destroy))
    assert not any(is_write(m) for m in (mb.list, mb.get, mb.by_path, mb.unknown, mb.counts))


def test_create_logs_a_creation_and_is_found_by_id_and_path(store, account) -> None:  # noqa: ANN001
    before = store.changes.highest_modseq(account.id)
    parent = store.mailboxes.create(account.id, "Lists", sort_order=7, subscribed=False)
    child = store.mailboxes.create(account.id, "rust", parent.id)
    assert (parent.name, parent.parent_id, parent.role, parent.sort_order, parent.subscribed) == (
        "Lists", None, None, 7, False)
    assert parent.modseq == before + 1 and child.modseq == before + 2 == store.changes.highest_modseq(account.id)
    assert ops(store, account.id, "Mailbox", before) == {(parent.id, "c"), (child.id, "c")}
    assert store.mailboxes.get(account.id, child.id) == child
    assert store.mailboxes.by_path(account.id, ["Lists", "rust"]) == child
    assert store.mailboxes.by_path(account.id, ["inBOX"]).role == "inbox"  # INBOX is case-insensitive
    assert store.mailboxes.by_path(account.id, ["lists"]) is None  # other names are not
    assert store.mailboxes.by_path(account.id, ["Lists", "go"]) is None
    assert child.uidvalidity not in {b.uidvalidity for b in store.mailboxes.list(account.id) if b.id != child.id}


@pytest.mark.parametrize("name", ["", "   ", "a/b", "tab\there", "del\x7f", "c1\x85", "é" * 128])
def test_invalid_names_are_refused_and_nothing_is_written(store, account, name) -> None:  # noqa: ANN001
    before = store.changes.highest_modseq(account.id)
    with pytest.raises(InvalidName):
        store.mailboxes.create(account.id, name)
    assert store.changes.highest_modseq(account.id) == before
    assert len(store.mailboxes.list(account.id)) == 6


def test_names_are_nfc_and_unique_among_siblings(store, account) -> None:  # noqa: ANN001
    longest = store.mailboxes.create(account.id, "é" * 127 + "x")  # 255 octets is allowed
    assert len(longest.name.encode()) == 255
    cafe = store.mailboxes.create(account.id, "Cafe\u0301")
    assert cafe.name == "Café"
    assert store.mailboxes.by_path(account.id, ["Cafe\u0301"]) == cafe
    with pytest.raises(AlreadyExists):
        store.mailboxes.create(account.id, "Café")
    with pytest.raises(AlreadyExists):
        store.mailboxes.create(account.id, "Inbox")
    nested = store.mailboxes.create(account.id, "INBOX", cafe.id)  # only the top level reserves INBOX
    assert store.mailboxes.by_path(account.id, ["Café", "INBOX"]) == nested
    assert store.mailboxes.create(account.id, "Café", cafe.id).parent_id == cafe.id


def test_roles_are_known_and_unique(store, account) -> None:  # noqa: ANN001
    with pytest.raises(InvalidName):
        store.mailboxes.create(account.id, "Odd", role="odd")
    with pytest.raises(RoleTaken):
        store.mailboxes.create(account.id, "Bin", role="trash")
    trash = box(store, account.id, "Trash")
    store.mailboxes.update(account.id, trash.id, role=None)
    assert store.mailboxes.create(account.id, "Bin", role="trash").role == "trash"
    with pytest.raises(RoleTaken):
        store.mailboxes.update(account.id, trash.id, role="trash")
    assert store.mailboxes.update(account.id, trash.id, role="all").role == "all"


def test_update_keeps_the_id_changes_only_what_is_given_and_logs_it(store, account) -> None:  # noqa: ANN001
    a = store.mailboxes.create(account.id, "A", sort_order=3, subscribed=True)
    b = store.mailboxes.create(account.id, "B")
    before = store.changes.highest_modseq(account.id)
    moved = store.mailboxes.update(account.id, a.id, name="A2", parent_id=b.id)
    assert (moved.id, moved.name, moved.parent_id, moved.sort_order, moved.subscribed) == (a.id, "A2", b.id, 3, True)
    assert moved.uidvalidity == a.uidvalidity and moved.modseq == before + 1
    assert ops(store, account.id, "Mailbox", before) == {(a.id, "u")}
    assert store.mailboxes.by_path(account.id, ["B", "A2"]) == moved
    again = store.mailboxes.update(account.id, a.id, sort_order=9, subscribed=False)
    assert (again.name, again.parent_id, again.sort_order, again.subscribed) == ("A2", b.id, 9, False)
    top = store.mailboxes.update(account.id, a.id, parent_id=None)
    assert top.parent_id is None and store.mailboxes.by_path(account.id, ["A2"]) == top
    assert store.mailboxes.update(account.id, a.id, name="A2").name == "A2"  # its own name is no clash


def test_refused_updates_change_nothing(store, account) -> None:  # noqa: ANN001
    a = store.mailboxes.create(account.id, "A")
    b = store.mailboxes.create(account.id, "B", a.id)
    store.mailboxes.create(account.id, "Taken")
    before = store.changes.highest_modseq(account.id)
    for kwargs, error in (({"parent_id": b.id}, InvalidName), ({"parent_id": a.id}, InvalidName),
                          ({"name": "Taken"}, AlreadyExists), ({"name": "inbox"}, AlreadyExists),
                          ({"name": "x/y"}, InvalidName), ({"parent_id": "F-no-such"}, NotFound),
                          ({"role": "inbox"}, RoleTaken), ({"role": "nonsense"}, InvalidName)):
        with pytest.raises(error):
            store.mailboxes.update(account.id, a.id, **kwargs)
    assert store.mailboxes.get(account.id, a.id) == a
    assert store.changes.highest_modseq(account.id) == before
    with pytest.raises(NotFound):
        store.mailboxes.update(account.id, "F-no-such", name="Z")


def test_another_accounts_mailbox_ids_answer_nothing(store, account) -> None:  # noqa: ANN001
    bob = store.accounts.create("bob@example.test", "x")
    mine = store.mailboxes.create(account.id, "Private")
    bobs = box(store, bob.id)
    assert store.mailboxes.get(bob.id, mine.id) is None
    assert mine.id not in {b.id for b in store.mailboxes.list(bob.id)}
    assert store.mailboxes.by_path(bob.id, ["Private"]) is None
    assert store.mailboxes.unknown(bob.id, [mine.id, bobs.id, "F-no-such"]) == [mine.id, "F-no-such"]
    assert store.mailboxes.unknown(account.id, []) == []
    before = store.changes.highest_modseq(bob.id)
    with pytest.raises(NotFound):
        store.mailboxes.create(bob.id, "Sub", mine.id)
    with pytest.raises(NotFound):
        store.mailboxes.update(bob.id, mine.id, name="Stolen")
    with pytest.raises(NotFound):
        store.mailboxes.update(bob.id, bobs.id, parent_id=mine.id)
    with pytest.raises(NotFound):
        store.mailboxes.destroy(bob.id, mine.id, remove_emails=True)
    assert store.mailboxes.get(account.id, mine.id) == mine
    assert store.changes.highest_modseq(bob.id) == before
    with pytest.raises(NotFound):
        store.mailboxes.create("A-no-such-account", "X")


def test_counts_of_another_accounts_mailbox_are_not_given(store, account) -> None:  # noqa: ANN001
    bob = store.accounts.create("bob@example.test", "x")
    inbox = box(store, account.id)
    store.emails.ingest(account.id, simple(1), (inbox.id,))
    assert store.mailboxes.counts(bob.id, [inbox.id]) == {}
    assert store.mailboxes.counts(bob.id, ["F-no-such"]) == {}
    assert inbox.id not in store.mailboxes.counts(bob.id)


def test_destroy_refuses_children_and_emails_and_removes_only_orphans(store, account) -> None:  # noqa: ANN001
    parent = store.mailboxes.create(account.id, "P")
    child = store.mailboxes.create(account.id, "C", parent.id)
    archive = box(store, account.id, "Archive")
    only_here = store.emails.ingest(account.id, simple(1, subject="alone"), (child.id,))
    also_elsewhere = store.emails.ingest(account.id, simple(2, subject="shared"), (child.id, archive.id))
    with pytest.raises(HasChildren):
        store.mailboxes.destroy(account.id, parent.id, remove_emails=True)
    with pytest.raises(HasEmails):
        store.mailboxes.destroy(account.id, child.id, remove_emails=False)
    before = store.changes.highest_modseq(account.id)
    assert store.mailboxes.destroy(account.id, child.id, remove_emails=True) == [only_here.email_id]
    assert store.changes.highest_modseq(account.id) == before + 1
    assert (child.id, "d") in ops(store, account.id, "Mailbox", before)
    assert ops(store, account.id, "Email", before) == {(only_here.email_id, "d"), (also_elsewhere.email_id, "u")}
    assert ops(store, account.id, "Thread", before) == {(only_here.thread_id, "d")}
    assert store.mailboxes.get(account.id, child.id) is None
    assert store.emails.raw(account.id, also_elsewhere.email_id) == simple(2, subject="shared")
    with pytest.raises(NotFound):
        store.emails.raw(account.id, only_here.email_id)
    assert store.mailboxes.destroy(account.id, parent.id, remove_emails=False) == []  # empty, childless now
    with pytest.raises(NotFound):
        store.mailboxes.destroy(account.id, parent.id, remove_emails=False)


def test_destroy_that_hides_an_email_from_jmap_logs_its_thread(store, account) -> None:  # noqa: ANN001
    # The email survives only in a \\Deleted membership: it leaves its thread's JMAP emailIds.
    work, archive = store.mailboxes.create(account.id, "Work"), box(store, account.id, "Archive")
    d = store.emails.ingest(account.id, simple(1), (work.id, archive.id))
    other = store.emails.ingest(account.id, simple(2), (work.id, archive.id))  # stays visible in Archive
    store.memberships.store_flags(account.id, archive.id, [(1, 1)], "add", [], True)
    assert store.visible_emails.thread_members(account.id, [d.thread_id]) == {d.thread_id: [d.email_id]}
    before = store.changes.highest_modseq(account.id)
    assert store.mailboxes.destroy(account.id, work.id, remove_emails=True) == []
    assert store.visible_emails.thread_members(account.id, [d.thread_id]) == {}
    assert ops(store, account.id, "Thread", before) == {(d.thread_id, "u")}  # not other's: still visible
    assert other.thread_id != d.thread_id


def test_the_inbox_is_never_destroyed_and_keeps_its_role(store, account) -> None:  # noqa: ANN001
    store.emails.ingest(account.id, simple(1), (box(store, account.id).id,))
    inbox = box(store, account.id)
    before = store.changes.highest_modseq(account.id)
    for remove in (True, False):
        with pytest.raises(InboxProtected):
            store.mailboxes.destroy(account.id, inbox.id, remove_emails=remove)
    for role in (None, "archive"):
        with pytest.raises(InboxProtected) as refused:
            store.mailboxes.update(account.id, inbox.id, name="Renamed", role=role)
        assert refused.value.prop == "role"
    with pytest.raises(InboxProtected) as refused:  # IMAP's INBOX is a top-level name
        store.mailboxes.update(account.id, inbox.id, parent_id=box(store, account.id, "Archive").id)
    assert refused.value.prop == "parentId"
    assert store.mailboxes.get(account.id, inbox.id) == inbox
    assert store.changes.highest_modseq(account.id) == before
    assert counts(store, account.id)[inbox.id].messages == 1
    # Everything else about it may change: name, place, order, subscription, and the role given again.
    kept = store.mailboxes.update(account.id, inbox.id, name="Posteingang", sort_order=3, role="inbox",
                                  parent_id=None)
    assert (kept.id, kept.name, kept.role, kept.sort_order, kept.parent_id) == (
        inbox.id, "Posteingang", "inbox", 3, None)


# -- counts ---------------------------------------------------------------------------------------------------


@dataclass
class _Mail:
    size: int
    thread: str
    seen: bool = False
    draft: bool = False


def _expected(members: dict[tuple[str, int], tuple[str, bool]], mails: dict[str, _Mail]) -> dict[str, MailboxCounts]:
    """The counts recomputed from the test's own model: (mailbox id, uid) -> (email id, \\Deleted)."""
    out: dict[str, MailboxCounts] = {}
    for mid in sorted({m for m, _ in members}):
        rows = [(e, d) for (m, _uid), (e, d) in members.items() if m == mid]
        live = {e for e, d in rows if not d}
        unread = {e for e in live if not mails[e].seen and not mails[e].draft}
        out[mid] = MailboxCounts(
            messages=len(rows), unseen=sum(not mails[e].seen for e, _ in rows), deleted=sum(d for _, d in rows),
            size=sum(mails[e].size for e, _ in rows), total_emails=len(live), unread_emails=len(unread),
            total_threads=len({mails[e].thread for e in live}), unread_threads=len({mails[e].thread for e in unread}))
    return out


def test_counts_follow_every_kind_of_write(store, account) -> None:  # noqa: ANN001
    """Ingest, flags, \\Deleted, copy (also into the same mailbox), move, expunge, JMAP update and destroy,
    mailbox destroy: after each, counts (all, per id) and counts_cached equal a recount of the model."""
    a = account.id
    inbox, archive, trash = box(store, a), box(store, a, "Archive"), box(store, a, "Trash")
    members: dict[tuple[str, int], tuple[str, bool]] = {}
    mails: dict[str, _Mail] = {}

    def deliver(raw: bytes, boxes: tuple[str, ...], keywords: tuple[str, ...] = (), deleted: bool = False) -> str:
        d = store.emails.ingest(a, raw, boxes, keywords, deleted=deleted)
        mails[d.email_id] = _Mail(d.size, d.thread_id, "$seen" in keywords, "$draft" in keywords)
        members.update({(mid, uid): (d.email_id, deleted) for mid, uid in d.uids.items()})
        return d.email_id

    def check() -> None:
        want = _expected(members, mails)
        assert counts(store, a) == want
        for b in store.mailboxes.list(a):
            assert counts(store, a, [b.id]) == ({b.id: want[b.id]} if b.id in want else {})

    e1 = deliver(simple(1, subject="plans", msgid="p@x"), (inbox.id,))
    e2 = deliver(simple(2, subject="Re: plans", msgid="r@x", references=["p@x"]), (inbox.id,), ("$seen",))
    e3 = deliver(simple(3, subject="draft"), (inbox.id, archive.id), ("$draft",))
    e4 = deliver(simple(4, subject="gone soon"), (archive.id,), deleted=True)
    assert mails[e1].thread == mails[e2].thread
    check()
    store.memberships.store_flags(a, inbox.id, [(1, 1)], "add", ["$seen"], None)
    mails[e1].seen = True
    check()
    store.memberships.store_flags(a, inbox.id, [(2, 2)], "add", [], True)
    members[(inbox.id, 2)] = (e2, True)
    check()
    for src, dst in store.memberships.copy(a, inbox.id, [(1, 1)], archive.id):
        members[(archive.id, dst)] = members[(inbox.id, src)]
    for src, dst in store.memberships.copy(a, archive.id, [(1, 1)], archive.id):  # a second copy, same mailbox
        members[(archive.id, dst)] = (members[(archive.id, src)][0], False)
    check()
    for src, dst in store.memberships.copy(a, inbox.id, [(3, 3)], trash.id, move=True):
        members[(trash.id, dst)] = members.pop((inbox.id, src))
    check()
    assert store.memberships.expunge(a, inbox.id) == [2]
    del members[(inbox.id, 2)]
    del mails[e2]  # it was in no other mailbox: destroyed
    check()
    assert store.emails.update(a, {e1: EmailUpdate(remove_keywords=["$seen"])}) == {e1: None}
    mails[e1].seen = False
    check()
    assert store.emails.destroy(a, [e3]) == ([e3], [])
    members = {k: v for k, v in members.items() if v[0] != e3}
    check()
    assert store.mailboxes.destroy(a, archive.id, remove_emails=True) == [e4]
    members = {k: v for k, v in members.items() if k[0] != archive.id}
    check()
    assert set(counts(store, a)) == {inbox.id}


def test_counts_read_after_a_write_are_the_new_numbers(store, account) -> None:  # noqa: ANN001
    """No read of counts hands out numbers a committed write made stale (the write that changes them keeps
    them: nothing is remembered across writes), and another account's numbers never leak in."""
    inbox = box(store, account.id)
    bob = store.accounts.create("bob@example.test", "x")
    store.emails.ingest(account.id, simple(1), (inbox.id,))
    assert store.mailboxes.counts(account.id)[inbox.id].unseen == 1
    store.memberships.store_flags(account.id, inbox.id, [(1, 1)], "add", ["$seen"], None)
    assert store.mailboxes.counts(account.id)[inbox.id].unseen == 0
    assert store.mailboxes.counts(account.id, [inbox.id])[inbox.id].unseen == 0
    store.emails.ingest(account.id, simple(2), (inbox.id,))
    assert store.mailboxes.counts(account.id)[inbox.id].messages == 2
    assert counts(store, bob.id) == {}
