"""``store.messages`` (MessageViews) on SQLite and PostgreSQL: the typed reads IMAP FETCH/SELECT/STATUS use,
checked against the store's own writes (flags, expunges, arrivals, \\Recent claims), and the row-cache path
giving the same rows as the query path. Plus the per-Store memo tables (janusmail.store.memo)."""

from __future__ import annotations

import threading

import pytest

from janusmail.store import mailbox_rows
from janusmail.store.flagbits import FLAG_FLAGGED, FLAG_SEEN
from janusmail.store.mailbox_rows import CACHE, DELETED, EMAIL_ID, FLAGS, MODSEQ, UID
from janusmail.store.memo import Memo, Memos
from janusmail.store.message_views import FlagChange
from tests.mailgen import simple


@pytest.fixture
def box(store, account):  # noqa: ANN001, ANN201
    return store.mailboxes.by_path(account.id, ["INBOX"])


def fill(store, account, box, n: int, start: int = 0) -> None:  # noqa: ANN001
    for i in range(start, start + n):
        store.emails.ingest(account.id, simple(i), (box.id,))


def test_fetch_rows_columns_keywords_and_locations(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 5)
    store.memberships.store_flags(account.id, box.id, [(2, 2)], "add", ["$seen", "Work"], None)
    store.memberships.store_flags(account.id, box.id, [(3, 3)], "add", [], True)
    v = store.messages
    plain = v.fetch_rows(box.id, [(1, 5)])
    assert [r[UID] for r in plain.rows] == [1, 2, 3, 4, 5]
    assert plain.keywords == {} and plain.locations == {}
    assert len(plain.rows[0]) == CACHE  # metadata only
    assert plain.rows[1][FLAGS] & FLAG_SEEN and bool(plain.rows[2][DELETED]) and not plain.rows[0][DELETED]
    full = v.fetch_rows(box.id, [(2, 3)], keywords=True, part_offsets=True, blob=True)
    assert [r[UID] for r in full.rows] == [2, 3]
    assert full.keywords == {full.rows[0][EMAIL_ID]: ("Work",)}
    cache = full.rows[0][CACHE]
    assert b'"envelope"' in bytes(cache)
    loc = full.locations[full.rows[0][EMAIL_ID]]
    assert store.blobs.read_location(loc).startswith(b"From: Sender")
    blob_only = v.fetch_rows(box.id, [(2, 2)], blob=True)
    assert blob_only.locations[blob_only.rows[0][EMAIL_ID]] == loc  # blob columns right after the metadata
    assert v.mime_caches([full.rows[0][EMAIL_ID], "nope"]) == {full.rows[0][EMAIL_ID]: bytes(cache)}


def test_fetch_rows_filters(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 6)
    res = store.memberships.store_flags(account.id, box.id, [(2, 2), (5, 5)], "add", ["$flagged"], None)
    v = store.messages
    assert [r[UID] for r in v.fetch_rows(box.id, [(1, 6)], below_uid=4).rows] == [1, 2, 3]
    assert [r[UID] for r in v.fetch_rows(box.id, [(1, 6)], changedsince=res.modseq - 1).rows] == [2, 5]
    assert all(r[MODSEQ] == res.modseq for r in v.fetch_rows(box.id, [(2, 2), (5, 5)]).rows)
    assert [r[UID] for r in v.fetch_rows(box.id, [(1, 1), (4, 9)]).rows] == [1, 4, 5, 6]
    assert v.fetch_rows(box.id, []).rows == []


def test_fetch_rows_row_cache_agrees_with_query(store, account, box, monkeypatch) -> None:  # noqa: ANN001
    """Metadata reads of many messages come from the row cache; they must equal the direct query, also
    after changes, and reads that need bodies or part offsets never use the cache."""
    monkeypatch.setattr(mailbox_rows, "MIN_CACHED", 3)
    monkeypatch.setattr("janusmail.store.message_views.SQL_ROWS", 0)  # (small reads otherwise go to SQL)
    fill(store, account, box, 8)
    v = store.messages

    def both(**kw: object) -> None:
        direct = v.fetch_rows(box.id, [(1, 99)], keywords=True, **kw)
        cached = v.fetch_rows(box.id, [(1, 99)], keywords=True, covered=8, size_hint=8, **kw)
        assert [tuple(r) for r in cached.rows] == [tuple(r) for r in direct.rows]
        # the cache carries the whole mailbox's keywords: compare those of the rows read
        ids = {r[EMAIL_ID] for r in direct.rows}
        assert {k: kw for k, kw in cached.keywords.items() if k in ids} == direct.keywords

    both()
    assert store.mailbox_rows.cached(box.id) and store.mailbox_rows.loads == 1
    store.memberships.store_flags(account.id, box.id, [(3, 3)], "add", ["Red"], None)
    store.memberships.store_flags(account.id, box.id, [(4, 4)], "add", [], True)
    store.memberships.expunge(account.id, box.id)
    fill(store, account, box, 1, start=50)
    both()
    both(below_uid=6)
    both(changedsince=3)
    assert store.mailbox_rows.refreshes >= 1
    before = store.mailbox_rows.loads + store.mailbox_rows.refreshes
    body = v.fetch_rows(box.id, [(1, 99)], part_offsets=True, covered=8, size_hint=8)
    assert len(body.rows[0]) == CACHE + 1
    assert store.mailbox_rows.loads + store.mailbox_rows.refreshes == before  # the query path
    # size_hint=0 (STORE's read-back) never uses the cache, even for a cached mailbox
    assert v.fetch_rows(box.id, [(1, 99)], size_hint=0).rows
    assert store.mailbox_rows.loads + store.mailbox_rows.refreshes == before


def test_mailbox_snapshot_and_recent(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 4)
    store.memberships.store_flags(account.id, box.id, [(1, 1)], "add", ["Todo"], None)
    store.memberships.store_flags(account.id, box.id, [(2, 2)], "add", [], True)
    store.memberships.expunge(account.id, box.id)
    v = store.messages
    peek = v.mailbox_snapshot(account.id, box.id)
    assert peek is not None
    assert list(peek.uids) == [1, 3, 4] and peek.uidnext == 5 and peek.recent_from is None
    assert peek.keywords == ["Todo"] and peek.recent_uid == 1
    fresh = store.mailboxes.get(account.id, box.id)
    assert (peek.uidvalidity, peek.highest_modseq) == (fresh.uidvalidity, fresh.highest_modseq)
    first = v.mailbox_snapshot(account.id, box.id, claim_recent=True)
    second = v.mailbox_snapshot(account.id, box.id, claim_recent=True)
    assert first is not None and second is not None
    assert first.recent_from == 1 and second.recent_from == 5  # claimed once
    assert v.recent_counts([box.id]) == {}
    fill(store, account, box, 2, start=10)
    assert v.recent_counts([box.id, "none"]) == {box.id: 2} and v.recent_counts([]) == {}
    assert v.mailbox_snapshot(account.id, "no-such-box") is None
    assert v.mailbox_snapshot(account.id, "no-such-box", claim_recent=True) is None


def test_mailbox_delta_and_flag_changes(store, account, box) -> None:  # noqa: ANN001
    fill(store, account, box, 3)
    v = store.messages
    snap = v.mailbox_snapshot(account.id, box.id)
    assert snap is not None
    known = dict(uidvalidity=snap.uidvalidity, uidnext=snap.uidnext, modseq=snap.highest_modseq)
    quiet = v.mailbox_delta(box.id, **known)
    assert quiet is not None and (quiet.new_uids, quiet.vanished, quiet.changed) == ([], [], [])
    fill(store, account, box, 1, start=9)
    res = store.memberships.store_flags(account.id, box.id, [(2, 2)], "add", ["$flagged", "Blue"], None)
    store.memberships.store_flags(account.id, box.id, [(1, 1)], "add", [], True)
    gone = store.memberships.expunge(account.id, box.id)
    assert gone == [1]
    d = v.mailbox_delta(box.id, **known, claim_recent=True)
    assert d is not None
    assert d.new_uids == [4] and d.vanished == [1] and d.uidnext == 5
    assert d.highest_modseq == store.mailboxes.get(account.id, box.id).highest_modseq
    assert FlagChange(2, res.modseq, FLAG_FLAGGED, False, ("Blue",)) in d.changed
    assert all(c.uid < 4 for c in d.changed)  # only UIDs the caller knew
    assert d.recent_from == 1  # nothing had been claimed before
    ch = v.flag_changes(box.id, snap.highest_modseq, d.highest_modseq, snap.uidnext)
    assert ch.vanished == [1] and ch.changed == d.changed
    assert v.flag_changes(box.id, d.highest_modseq, d.highest_modseq, 5).changed == []
    assert v.vanished_uids(box.id, [(1, 10)], snap.highest_modseq) == [1]
    assert v.vanished_uids(box.id, [(2, 10)], snap.highest_modseq) == []
    assert v.vanished_uids(box.id, [(1, 10)], d.highest_modseq) == []
    assert v.mailbox_delta(box.id, **{**known, "uidvalidity": snap.uidvalidity + 1}) is None
    other = store.mailboxes.create(account.id, "Temp")
    store.mailboxes.destroy(account.id, other.id, remove_emails=True)
    assert v.mailbox_delta(other.id, **known) is None


def test_first_unseen(store, account, box) -> None:  # noqa: ANN001
    v = store.messages
    assert v.first_unseen(box.id, 100) is None
    fill(store, account, box, 4)
    store.memberships.store_flags(account.id, box.id, [(1, 2)], "add", ["$seen"], None)
    assert v.first_unseen(box.id, 100) == 3
    assert v.first_unseen(box.id, 3) is None


def test_render_cache_belongs_to_the_store(store, tmp_path) -> None:  # noqa: ANN001
    from janusmail.store.store import Store

    other = Store.open(tmp_path / "other")
    try:
        a = store.messages.render_cache.memo("t", 10)
        assert store.messages.render_cache.memo("t", 99) is a  # same table by name
        a.put("k", b"v")
        assert other.messages.render_cache.memo("t", 10).get("k") is None
        assert a.get("k") == b"v"
    finally:
        other.close()


def test_memo_bounds_and_first_value_wins() -> None:
    m: Memo[int, bytes] = Memo(10)
    for i in range(25):
        m.put(i, b"%d" % i)
    assert len(m) <= 10 and m.get(24) == b"24" and m.get(0) is None  # the oldest went first
    m.put(24, b"other")
    assert m.get(24) == b"24"
    sized: Memo[str, bytes] = Memo(100, cost=len)
    sized.put("a", b"x" * 60)
    sized.put("b", b"x" * 60)
    assert "b" in sized and "a" not in sized
    get = sized.get
    sized.clear()
    sized.put("c", b"y")
    assert get("c") == b"y"  # the bound get survives clear()
    memos = Memos()
    memos.memo("x", 5).put(1, 1)
    memos.clear()
    assert len(memos.memo("x", 5)) == 0 and "x" in memos


def test_memo_concurrent_puts_stay_bounded() -> None:
    m: Memo[tuple[int, int], int] = Memo(500)

    def work(t: int) -> None:
        for i in range(2000):
            m.put((t, i), i)
            m.get((t, i // 2))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 < len(m) <= 500
