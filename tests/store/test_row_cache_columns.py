"""The row cache's column copies (``MailboxRows.bits``, ``uid_array``, ``modseq_array``) and the searches that use
them: flag searches as byte masks (:mod:`janusmail.store.search.memory`) and numbering through a session's
snapshot (:mod:`janusmail.store.numbering`, ``SearchService.mailbox_search_known``).

Each fast path is checked against the slow one it replaces: a refreshed box against a fresh load, masks against
the generated per-row predicate, the snapshot shortcut against the walk."""

from __future__ import annotations

import random
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.store import mailbox_rows, message_views
from janusmail.store.flagbits import FLAG_SEEN
from janusmail.store.mailbox_rows import FLAGS as FLAG_BITS
from janusmail.store.mailbox_rows import MODSEQ, RECEIVED, UID, MailboxRows, RowCache, row_bits
from janusmail.store.numbering import in_snapshot, number_rows
from janusmail.store.search import ast as q
from janusmail.store.search import service as search_service
from janusmail.store.search.memory import compile_places, match_places
from tests.mailgen import simple

FLAGS = ("$seen", "$answered", "$flagged", "$draft")


@pytest.fixture
def inbox12(store: Any, account: Any, monkeypatch: Any) -> Any:
    """An INBOX of 12 messages that every reader treats as big (the row cache serves it)."""
    monkeypatch.setattr(mailbox_rows, "MIN_CACHED", 3)
    monkeypatch.setattr(search_service, "MIN_CACHED", 3)
    monkeypatch.setattr("janusmail.store.search.sort.MIN_CACHED", 3)
    inbox = store.mailboxes.by_path(account.id, ["INBOX"])
    for i in range(12):
        store.emails.ingest(account.id, simple(i), (inbox.id,))
    return inbox


def _columns(box: MailboxRows) -> tuple:
    return (box.uids, [tuple(r) for r in box.rows], box.bits, box.uid_array.tolist(), box.modseq_array.tolist())


def test_a_refreshed_box_has_the_columns_of_a_fresh_load(store: Any, account: Any, monkeypatch: Any) -> None:
    """Flag changes, \\Deleted, expunges at the start, middle and end, and arrivals: the box brought forward
    (slices around the removed places, patched rows) equals the box read from scratch, column by column."""
    monkeypatch.setattr(mailbox_rows, "MIN_CACHED", 3)
    inbox = store.mailboxes.by_path(account.id, ["INBOX"])
    for i in range(40):
        store.emails.ingest(account.id, simple(i), (inbox.id,))
    rnd = random.Random(5)
    cache = store.mailbox_rows
    assert cache.get(inbox.id, 40) is not None
    for round_ in range(6):
        uids = cache.get(inbox.id, 40).uids
        for _ in range(4):
            u = rnd.choice(uids)
            store.memberships.store_flags(account.id, inbox.id, [(u, u)], rnd.choice(["add", "remove"]),
                                          rnd.sample(FLAGS, rnd.randint(1, 2)), rnd.choice([None, True, False]))
        doomed = {uids[0], uids[-1], rnd.choice(uids)} if round_ % 2 else {rnd.choice(uids)}
        store.memberships.store_flags(account.id, inbox.id, [(u, u) for u in sorted(doomed)], "add", [], True)
        store.memberships.expunge(account.id, inbox.id, [(u, u) for u in sorted(doomed)])
        for i in range(rnd.randint(0, 3)):
            store.emails.ingest(account.id, simple(1000 + round_ * 10 + i), (inbox.id,))
        refreshes = cache.refreshes
        brought = cache.get(inbox.id, 40)
        assert cache.refreshes == refreshes + 1  # brought forward, not reloaded
        fresh = RowCache(store.engine).get(inbox.id, 40)
        assert brought is not None and fresh is not None
        assert _columns(brought) == _columns(fresh)
        assert brought.bits == row_bits(brought.rows)
        assert brought.uid_array.tolist() == [r[UID] for r in brought.rows]
        assert brought.modseq_array.tolist() == [r[MODSEQ] for r in brought.rows]


def _box(flags: list[int], deleted: list[bool], uids: list[int]) -> MailboxRows:
    rows = [(u, int(d), 10 + u, f"M{u}", f, 0, 100, "T") for u, f, d in zip(uids, flags, deleted, strict=True)]
    return MailboxRows("F1", 99, (uids[-1] + 1) if uids else 1, list(uids), rows, {}, row_bits(rows),
                       array("q", uids), array("q", [r[MODSEQ] for r in rows]))


def _flag_trees() -> st.SearchStrategy[q.Condition]:
    leaves = st.one_of(
        st.sampled_from([q.All(), q.Nothing(), q.Deleted(), *(q.Keyword(f) for f in FLAGS)]),
        st.lists(st.tuples(st.integers(1, 60), st.integers(0, 20)), max_size=3).map(
            lambda rs: q.UidIn(tuple((lo, lo + n) for lo, n in rs))),
    )
    return st.recursive(leaves, lambda kids: st.one_of(
        st.builds(q.Not, kids),
        st.lists(kids, max_size=3).map(lambda xs: q.And(tuple(xs))),
        st.lists(kids, max_size=3).map(lambda xs: q.Or(tuple(xs))),
    ), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(tree=_flag_trees(), data=st.data())
def test_flag_masks_match_the_row_predicate(tree: q.Condition, data: Any) -> None:
    uids = sorted(data.draw(st.sets(st.integers(1, 80), max_size=50)))
    flags = data.draw(st.lists(st.integers(0, 15), min_size=len(uids), max_size=len(uids)))
    deleted = data.draw(st.lists(st.booleans(), min_size=len(uids), max_size=len(uids)))
    below = data.draw(st.none() | st.integers(1, 90))
    box = _box(flags, deleted, uids)
    n = len(uids) if below is None else sum(1 for u in uids if u < below)
    fn = compile_places(tree, {})
    assert fn is not None
    assert match_places(box, tree, below) == fn(box.rows[:n])


def _walk(rows: list[tuple[int, int]], known: list[int]) -> tuple[list[int], list[int], list[int]]:
    place = {u: i + 1 for i, u in enumerate(known)}
    hits = [(u, m) for u, m in rows if u in place]
    return [u for u, _ in hits], [place[u] for u, _ in hits], [m for _, m in hits]


@settings(max_examples=300, deadline=None)
@given(known=st.sets(st.integers(1, 400), max_size=120), found=st.sets(st.integers(1, 420), max_size=120))
def test_in_snapshot_numbers_like_a_lookup(known: set[int], found: set[int]) -> None:
    rows = [(u, u * 3) for u in sorted(found)]
    snapshot = array("q", sorted(known))
    assert in_snapshot(rows, snapshot) == _walk(rows, sorted(known))


def test_search_known_takes_the_shortcut_only_for_the_exact_snapshot(store: Any, account: Any, inbox12: Any,
                                                                      monkeypatch: Any) -> None:
    inbox = inbox12
    store.memberships.store_flags(account.id, inbox.id, [(2, 4), (9, 9)], "add", ["$seen"], None)
    store.memberships.store_flags(account.id, inbox.id, [(3, 3)], "add", [], True)
    store.memberships.expunge(account.id, inbox.id, [(3, 3)])
    walks: list[int] = []
    real = search_service.in_snapshot
    monkeypatch.setattr(search_service, "in_snapshot", lambda rows, known: walks.append(1) or real(rows, known))
    unseen = q.Not(q.Keyword("$seen"))
    search = store.search

    def known_search(known: Any, below: int) -> tuple[list[int], list[int], list[int]]:
        got = search.mailbox_search_known(account.id, inbox.id, unseen, known, below_uid=below, size_hint=12)
        expected = _walk(search.mailbox_search(account.id, inbox.id, unseen, below_uid=below), list(known))
        assert got == expected
        return got

    exact = array("q", [u for u in range(1, 13) if u != 3])
    uids, seqs, _ = known_search(exact, 13)
    assert uids == [1, 5, 6, 7, 8, 10, 11, 12] and seqs == [1, 4, 5, 6, 7, 9, 10, 11]
    assert walks == []  # the snapshot is the cached mailbox: places are sequence numbers
    uids, seqs, _ = known_search(array("q", [u for u in range(1, 13) if u != 3][:-2]), 11)
    assert uids == [1, 5, 6, 7, 8, 10] and walks == []  # (a session that has not seen the newest two yet)
    uids, seqs, _ = known_search(array("q", range(1, 13)), 13)  # still shows 3 (its expunge not reported yet)
    assert uids == [1, 5, 6, 7, 8, 10, 11, 12] and seqs == [1, 5, 6, 7, 8, 10, 11, 12] and walks == [1]
    known_search(array("q", [1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13]), 13)  # same length, other content
    assert walks == [1, 1]
    known_search([u for u in range(1, 13) if u != 3], 13)  # not an array: the walk
    assert walks == [1, 1, 1]


@settings(max_examples=300, deadline=None)
@given(known=st.sets(st.integers(1, 400), max_size=120), found=st.sets(st.integers(1, 420), max_size=120))
def test_number_rows_numbers_like_a_lookup(known: set[int], found: set[int]) -> None:
    rows = [(u, "x") for u in sorted(found)]
    out, seqs = number_rows(rows, array("q", sorted(known)))
    uids, expected, _ = _walk([(u, 0) for u in sorted(found)], sorted(known))
    assert [r[0] for r in out] == uids and seqs == expected


def test_fetch_rows_numbers_through_the_snapshot(store: Any, account: Any, inbox12: Any, monkeypatch: Any) -> None:
    """``fetch_rows(..., known=)``: only the rows the snapshot holds, with their sequence numbers; from the row
    cache by place when the snapshot is exactly the cached mailbox, by the walk otherwise (and on SQL)."""
    monkeypatch.setattr("janusmail.store.message_views.SQL_ROWS", 0)
    inbox = inbox12
    store.memberships.store_flags(account.id, inbox.id, [(5, 6)], "add", [], True)
    store.memberships.expunge(account.id, inbox.id, [(5, 6)])
    walks: list[int] = []
    real = message_views.number_rows
    monkeypatch.setattr(message_views, "number_rows", lambda rows, known: walks.append(1) or real(rows, known))
    views = store.messages

    def read(known: Any, ranges: list[tuple[int, int]], below: int, **kw: Any) -> tuple[list[int], list[int]]:
        data = views.fetch_rows(inbox.id, ranges, below_uid=below, covered=12, size_hint=12, known=known, **kw)
        plain = views.fetch_rows(inbox.id, ranges, below_uid=below, **kw)  # (SQL, unnumbered)
        rows, seqs = real(plain.rows, list(known))
        assert [tuple(r) for r in data.rows] == [tuple(r) for r in rows] and data.seqs == seqs
        return [r[UID] for r in data.rows], data.seqs

    exact = array("q", [1, 2, 3, 4, 7, 8, 9, 10, 11, 12])
    assert read(exact, [(1, 3), (2, 8), (11, 99)], 13) == ([1, 2, 3, 4, 7, 8, 11, 12], [1, 2, 3, 4, 5, 6, 9, 10])
    assert read(exact[:-1], [(4, 99)], 12) == ([4, 7, 8, 9, 10, 11], [4, 5, 6, 7, 8, 9])
    assert store.mailbox_rows.cached(inbox.id) and walks == []  # by place: the snapshot is the cached mailbox
    stale = array("q", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])  # 5 and 6 gone, not reported yet
    assert read(stale, [(1, 99)], 13) == ([1, 2, 3, 4, 7, 8, 9, 10, 11, 12], [1, 2, 3, 4, 7, 8, 9, 10, 11, 12])
    assert walks == [1]
    store.memberships.store_flags(account.id, inbox.id, [(8, 8)], "add", ["$flagged"], None)
    changed = views.fetch_rows(inbox.id, [(1, 99)], changedsince=1, below_uid=13, covered=12, size_hint=12,
                               known=exact)
    assert 8 in [r[UID] for r in changed.rows] and changed.seqs is not None and walks == [1, 1]
    assert views.fetch_rows(inbox.id, [(1, 99)], below_uid=13).seqs is None  # not asked: not numbered


def test_sort_known_numbers_only_the_exact_snapshot(store: Any, account: Any, inbox12: Any) -> None:
    """``mailbox_sort_known``: with the snapshot the row cache's mailbox, each UID's number is its place + 1
    (what a lookup in the snapshot gives); with another snapshot no numbers (the door numbers them itself)."""
    inbox = inbox12
    store.memberships.store_flags(account.id, inbox.id, [(2, 4), (9, 9)], "add", ["$seen"], None)
    store.memberships.store_flags(account.id, inbox.id, [(6, 6)], "add", [], True)
    store.memberships.expunge(account.id, inbox.id, [(6, 6)])
    keys = [q.SortKey("receivedAt", ascending=False)]
    unseen = q.Not(q.Keyword("$seen"))
    search = store.search
    exact = array("q", [u for u in range(1, 13) if u != 6])
    for cond, below, known in ((unseen, 13, exact), (q.All(), 13, exact), (unseen, 11, exact[:-2])):
        uids, seqs, modseqs = search.mailbox_sort_known(account.id, inbox.id, cond, keys, known, below_uid=below,
                                                        size_hint=12, with_modseq=True)
        plain, plain_modseqs = search.mailbox_sort(account.id, inbox.id, cond, keys, below_uid=below, size_hint=12,
                                                   with_modseq=True)
        assert (uids, modseqs) == (plain, plain_modseqs) and uids
        rows = store.messages.fetch_rows(inbox.id, [(1, 99)], below_uid=below).rows  # (SQL)
        wanted = [r for r in rows if cond == q.All() or not r[FLAG_BITS] & FLAG_SEEN]
        assert uids == [r[UID] for r in sorted(wanted, key=lambda r: (-r[RECEIVED], r[UID]))]
        place = {u: i + 1 for i, u in enumerate(known)}
        assert seqs == [place[u] for u in uids]
    stale = array("q", range(1, 13))  # 6's expunge not reported yet
    assert search.mailbox_sort_known(account.id, inbox.id, unseen, keys, stale, below_uid=13, size_hint=12)[1] is None
