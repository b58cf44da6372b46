"""SELECT's remembered snapshots (janusmail.store.mailbox_snapshots) on SQLite and PostgreSQL: after every kind of
write (arrivals, flag and keyword changes from IMAP and JMAP, expunges, moves out), the snapshot served from the
cache (as it was, brought forward, or rebuilt) equals one read from scratch, for the UIDs, the keywords in use
and the first unseen UID; a write made through another Store (another worker or node) is seen too."""

from __future__ import annotations

import random

import pytest

from janusmail.store.emails import EmailUpdate
from janusmail.store.mailbox_snapshots import Shown, SnapshotCache, merge_keywords
from tests.mailgen import simple


def _fresh(store, account_id: str, mailbox_id: str):  # noqa: ANN001, ANN202
    """The snapshot read from scratch (no remembered snapshot, no row cache)."""
    views = store.messages
    saved = views.snapshots
    views.snapshots = SnapshotCache()
    rows = store.mailbox_rows
    kept = dict(rows._boxes)
    rows.clear()
    try:
        return views.mailbox_snapshot(account_id, mailbox_id, first_unseen=True)
    finally:
        views.snapshots = saved
        rows._boxes.update(kept)


def _same(store, account_id: str, mailbox_id: str) -> None:  # noqa: ANN001
    got = store.messages.mailbox_snapshot(account_id, mailbox_id, first_unseen=True)
    want = _fresh(store, account_id, mailbox_id)
    assert got is not None and want is not None
    assert list(got.uids) == list(want.uids)
    assert got.keywords == want.keywords
    assert got.first_unseen == want.first_unseen
    assert (got.uidnext, got.highest_modseq) == (want.uidnext, want.highest_modseq)


@pytest.mark.parametrize("seed", [5, 7])
def test_snapshot_follows_every_write(store, account, seed: int) -> None:  # noqa: ANN001
    a = account.id
    inbox = store.mailboxes.by_path(a, ["INBOX"])
    other = store.mailboxes.create(a, "Other")
    rnd = random.Random(seed)
    n = 0

    def arrive(k: int, keywords: tuple[str, ...] = ()) -> None:
        nonlocal n
        for _ in range(k):
            store.emails.ingest(a, simple(n), (inbox.id,), keywords)
            n += 1

    arrive(12, ("$seen",))
    _same(store, a, inbox.id)
    views = store.messages
    hits = views.snapshots.hits
    _same(store, a, inbox.id)  # unchanged: served as it was
    assert views.snapshots.hits > hits
    for step in range(40):
        op = rnd.choice(["arrive", "arrive_kw", "flag", "unflag", "seen", "delete", "expunge", "jmap", "move"])
        snap = store.messages.mailbox_snapshot(a, inbox.id)
        uids = list(snap.uids) if snap else []
        pick = rnd.choice(uids) if uids else None
        if op == "arrive":
            arrive(rnd.randint(1, 3))
        elif op == "arrive_kw":
            arrive(1, (rnd.choice(["Todo", "todo", "$seen", "Blue"]),))
        elif op == "flag" and pick:
            store.memberships.store_flags(a, inbox.id, [(pick, pick)], "add", [rnd.choice(["Todo", "Red"])], None)
        elif op == "unflag" and pick:
            store.memberships.store_flags(a, inbox.id, [(1, 10_000)], "remove", [rnd.choice(["Todo", "Red", "Blue"])],
                                          None)
        elif op == "seen" and pick:
            store.memberships.store_flags(a, inbox.id, [(pick, pick)], rnd.choice(["add", "remove"]), ["$seen"], None)
        elif op == "delete" and pick:
            store.memberships.store_flags(a, inbox.id, [(pick, pick)], "add", [], True)
        elif op == "expunge":
            store.memberships.expunge(a, inbox.id)
        elif op in ("jmap", "move") and pick:
            email_id = store.messages.fetch_rows(inbox.id, [(pick, pick)]).rows[0][3]
            update = (EmailUpdate(add_keywords=[rnd.choice(["Green", "$flagged"])]) if op == "jmap"
                      else EmailUpdate(mailbox_ids=[other.id]))
            assert store.emails.update(a, {email_id: update}) == {email_id: None}
        if step % 2:  # the row cache brought up to date first: it serves the keywords in use
            store.messages.fetch_rows(inbox.id, [(1, 10_000)], covered=10_000, size_hint=10_000)
        _same(store, a, inbox.id)
    assert views.snapshots.advances > 0


def test_another_store_writes_are_seen(store, account, tmp_path) -> None:  # noqa: ANN001
    from janusmail.store.store import Store

    a = account.id
    inbox = store.mailboxes.by_path(a, ["INBOX"])
    for i in range(3):
        store.emails.ingest(a, simple(i), (inbox.id,))
    _same(store, a, inbox.id)
    url = None if store.sqlite else store.engine.url.render_as_string(hide_password=False)
    second = Store.open(tmp_path / "data", url)
    try:
        second.emails.ingest(a, simple(9), (inbox.id,), ("Later",))
        second.memberships.store_flags(a, inbox.id, [(1, 1)], "add", [], True)
        second.memberships.expunge(a, inbox.id)
    finally:
        second.close()
    snap = store.messages.mailbox_snapshot(a, inbox.id)
    assert snap is not None and list(snap.uids) == [2, 3, 4] and snap.keywords == ["Later"]
    _same(store, a, inbox.id)


def test_merge_keywords_reports_a_second_spelling() -> None:
    into: dict[str, str] = {}
    assert merge_keywords(into, [("todo", "Todo"), ("red", "Red"), ("todo", "Todo")])
    assert not merge_keywords(into, [("todo", "TODO")])
    assert into == {"todo": "Todo", "red": "Red"}


@pytest.mark.parametrize("budget", [10, 1000])
def test_cache_budget(budget: int) -> None:
    from array import array

    cache = SnapshotCache(max_uids=budget)
    for k in range(5):
        cache.put(f"m{k}", Shown(1, 1, 9, array("q", range(8)), {}))
    kept = [k for k in range(5) if cache.get(f"m{k}") is not None]
    assert kept == ([4] if budget == 10 else [0, 1, 2, 3, 4])
