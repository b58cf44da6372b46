"""SelectedMailbox on both backends: loading the UID snapshot (contiguous, with vanished holes, and the
row-by-row fallback), sequence/UID resolution, and sync: new mail, flags, deferred expunges, own changes."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from janusmail.imap.codec import NumberSet, SequenceSet
from janusmail.imap.selected import BadSequence, MailboxGone, SelectedMailbox, _remove
from janusmail.store.schema import messages
from tests.mailgen import simple


@dataclass
class FakeSession:
    store: object
    rev2: bool = False
    utf8: bool = False
    condstore: bool = False
    qresync: bool = False
    out: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def take(self) -> list[bytes]:
        out, self.out = self.out, []
        return out

    def check_is_due(self) -> bool:
        """No command credential check pending: catch-up reads go through ``store.mailbox_deltas``."""
        return False


@pytest.fixture
def box(store, account):  # noqa: ANN001, ANN201
    return store.mailboxes.by_path(account.id, ["INBOX"])


def fill(store, account, box, n: int) -> list[int]:  # noqa: ANN001
    return [store.emails.ingest(account.id, simple(i), (box.id,)).uids[box.id] for i in range(n)]


def load(store, box, **kw) -> SelectedMailbox:  # noqa: ANN001
    fresh = store.mailboxes.get(box.account_id, box.id)
    return SelectedMailbox.load(store, fresh, readonly=kw.get("readonly", False),
                                claim_recent=kw.get("claim_recent", False))


def test_load_contiguous_and_with_holes(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 10)
    assert list(load(store, box).uids) == list(range(1, 11))
    store.memberships.store_flags(account.id, box.id, [(3, 4), (9, 9)], "add", [], True)
    store.memberships.expunge(account.id, box.id)
    assert list(load(store, box).uids) == [1, 2, 5, 6, 7, 8, 10]
    store.memberships.store_flags(account.id, box.id, [(1, 1), (10, 10)], "add", [], True)
    store.memberships.expunge(account.id, box.id)
    assert list(load(store, box).uids) == [2, 5, 6, 7, 8]


def test_load_falls_back_when_vanished_rows_are_missing(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 6)
    with store.engine.begin() as conn:  # a hole without a vanished row (e.g. pruned history)
        conn.execute(sa.delete(messages).where(messages.c.mailbox_id == box.id, messages.c.uid == 3))
    assert list(load(store, box).uids) == [1, 2, 4, 5, 6]


def test_resolve(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 5)
    store.memberships.store_flags(account.id, box.id, [(2, 2)], "add", [], True)
    store.memberships.expunge(account.id, box.id)
    sel = load(store, box)  # uids 1 3 4 5
    assert sel.resolve(SequenceSet.parse("2:3"), uid=False) == [(3, 4)]
    assert sel.resolve(SequenceSet.parse("*"), uid=False) == [(5, 5)]
    assert sel.resolve(SequenceSet.parse("4:*"), uid=True) == [(4, 5)]
    assert sel.resolve(SequenceSet.parse("7:*"), uid=True) == [(5, 5)]  # n:* covers the last message
    assert sel.resolve(SequenceSet.parse("9"), uid=True) == []
    with pytest.raises(BadSequence):
        sel.resolve(SequenceSet.parse("5"), uid=False)
    assert sel.resolve(SequenceSet(saved=True), uid=False) == []
    sel.saved_uids = NumberSet([(3, 4), (9, 9)])
    assert sel.resolve(SequenceSet(saved=True), uid=True) == [(3, 4)]
    assert sel.uid_to_seq(3) == 2 and sel.uid_to_seq(2) is None and sel.seq_to_uid(4) == 5
    assert sel.uids_in([(1, 3), (5, 9)]) == [1, 3, 5]


def test_resolve_empty_mailbox(store, account, box) -> None:  # noqa: ANN001
    sel = load(store, box)
    assert sel.resolve(SequenceSet.parse("1:*"), uid=True) == []
    with pytest.raises(BadSequence):
        sel.resolve(SequenceSet.parse("1:*"), uid=False)


async def test_sync_new_flags_and_deferred_expunge(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 3)
    s = FakeSession(store, condstore=True)
    sel = load(store, box)
    # nothing changed: no output even when forced
    await sel.sync(s, expunges=True, force=True)
    assert s.take() == []
    store.emails.ingest(account.id, simple(9), (box.id,))
    res = store.memberships.store_flags(account.id, box.id, [(2, 2)], "add", ["$flagged"], None)
    store.memberships.store_flags(account.id, box.id, [(1, 1)], "add", [], True)
    store.memberships.expunge(account.id, box.id)
    sel.dirty = True
    await sel.sync(s, expunges=False)  # e.g. after FETCH: no EXPUNGE yet
    out = s.take()
    assert b"* 4 EXISTS\r\n" in out
    assert b"* 2 FETCH (UID 2 FLAGS (\\Flagged) MODSEQ (%d))\r\n" % res.modseq in out
    assert not any(b"EXPUNGE" in line for line in out)
    assert sel.pending_expunge == {1} and sel.exists == 4
    await sel.sync(s, expunges=True)  # the next command that allows it
    assert s.take() == [b"* 1 EXPUNGE\r\n"]
    assert list(sel.uids) == [2, 3, 4]


async def test_sync_skips_own_flag_changes(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 2)
    s = FakeSession(store, rev2=True)
    sel = load(store, box)
    res = store.memberships.store_flags(account.id, box.id, [(1, 2)], "add", ["$seen"], None)
    sel.note_own_flags([1], res.modseq)
    sel.dirty = True
    await sel.sync(s, expunges=True)
    assert s.take() == [b"* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n"]


async def test_expunge_lines_and_qresync(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 5)
    s = FakeSession(store)
    sel = load(store, box)
    sel.expunge_lines(s, [2, 4, 99])
    assert s.take() == [b"* 4 EXPUNGE\r\n", b"* 2 EXPUNGE\r\n"]  # descending: numbers stay valid
    assert list(sel.uids) == [1, 3, 5]
    s.qresync = True
    sel.expunge_lines(s, [1, 5])
    assert s.take() == [b"* VANISHED 1,5\r\n"]


async def test_recent_claimed_once(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 2)
    first = load(store, box, claim_recent=True)
    second = load(store, box, claim_recent=True)
    assert first.recent_count() == 2 and second.recent_count() == 0
    store.emails.ingest(account.id, simple(5), (box.id,))
    s = FakeSession(store)
    first.dirty = True
    await first.sync(s, expunges=True)
    assert s.take() == [b"* 3 EXISTS\r\n", b"* 3 RECENT\r\n"]
    assert first.is_recent(3)


async def test_sync_mailbox_gone(store, account, box) -> None:  # noqa: ANN001
    other = store.mailboxes.create(account.id, "Temp")
    sel = load(store, other)
    store.mailboxes.destroy(account.id, other.id, remove_emails=True)
    with pytest.raises(MailboxGone):
        await sel.sync(FakeSession(store), expunges=True, force=True)


def test_peek_recent_shows_without_claiming(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 3)
    sel = load(store, box, readonly=True)
    assert sel.recent_count() == 0 and not sel.is_recent(1)
    sel.peek_recent(2)
    assert sel.recent_count() == 2 and sel.is_recent(2) and not sel.is_recent(1)
    assert sel.recent_ranges == [(2, 3)]
    sel.peek_recent(4)  # nothing unclaimed
    assert sel.recent_count() == 0 and sel.recent_ranges == []
    claimer = load(store, box, claim_recent=True)  # EXAMINE's peek claimed nothing
    assert claimer.recent_count() == 3


def test_load_of_a_gone_mailbox(store, account, box) -> None:  # noqa: ANN001
    other = store.mailboxes.create(account.id, "Temp")
    store.mailboxes.destroy(account.id, other.id, remove_emails=True)
    for claim in (False, True):
        with pytest.raises(MailboxGone):
            SelectedMailbox.load(store, other, readonly=False, claim_recent=claim)


@given(st.lists(st.integers(1, 3000), unique=True).map(sorted), st.data())
def test_removing_uids_keeps_the_rest_in_order(uids: list[int], data: st.DataObject) -> None:
    """Every way ``_remove`` takes (a few in place, runs copied, one pass over most of the mailbox) leaves
    exactly the UIDs not removed, ascending; UIDs that are not there are ignored."""
    gone = data.draw(st.sets(st.sampled_from(uids) if uids else st.nothing())
                     | st.sets(st.integers(1, 3100), max_size=80))
    arr = array("q", uids)
    _remove(arr, gone)
    assert list(arr) == [u for u in uids if u not in gone]


def test_an_expunge_leaves_the_shared_snapshot_array_alone() -> None:
    """The UID array may be the store's snapshot, shared by other sessions: the first removal works on a copy."""
    shared = array("q", range(1, 101))
    box = SelectedMailbox("m", 1, shared, readonly=False, uidnext=101, known_modseq=1)
    box.remove_uids([5, 50])
    assert list(shared) == list(range(1, 101))
    assert len(box.uids) == 98 and 5 not in box.uids and 50 not in box.uids


@pytest.mark.parametrize("removed", [1, 32, 33, 75, 76, 2500])  # in place (<= 32); runs copied; one pass (> 75)
def test_removing_uids_from_a_big_mailbox_each_way(removed: int) -> None:
    uids = list(range(2, 10002, 2))  # 5,000 UIDs
    gone = set(uids[7::len(uids) // removed][:removed]) | {1, 3, 10003}  # (and three that are not there)
    arr = array("q", uids)
    _remove(arr, gone)
    assert list(arr) == [u for u in uids if u not in gone]
