"""``store.messages`` reads behind SELECT and STATUS (issue 10 item 0), on SQLite and PostgreSQL: the snapshot
with IMAP4rev1's first unseen UID in the same read, the \\Recent claim made only when there is something to
claim (a SELECT of a mailbox without new mail writes nothing), another account's mailbox is no snapshot, and
FETCH's statements compiled once per shape."""

from __future__ import annotations

from typing import Any

import pytest

from tests.mailgen import simple


@pytest.fixture
def box(store, account):  # noqa: ANN001, ANN201
    return store.mailboxes.by_path(account.id, ["INBOX"])


def fill(store, account, box, n: int, start: int = 0) -> None:  # noqa: ANN001
    for i in range(start, start + n):
        store.emails.ingest(account.id, simple(i), (box.id,))


def test_snapshot_carries_first_unseen(store, account, box) -> None:  # noqa: ANN001
    v = store.messages
    assert v.mailbox_snapshot(account.id, box.id, first_unseen=True).first_unseen is None  # empty
    fill(store, account, box, 4)
    store.memberships.store_flags(account.id, box.id, [(1, 2)], "add", ["$seen"], None)
    snap = v.mailbox_snapshot(account.id, box.id, first_unseen=True)
    assert snap.first_unseen == 3 == v.first_unseen(box.id, snap.uidnext)
    assert v.mailbox_snapshot(account.id, box.id).first_unseen is None  # only when asked
    store.memberships.store_flags(account.id, box.id, [(1, 4)], "add", ["$seen"], None)
    assert v.mailbox_snapshot(account.id, box.id, first_unseen=True).first_unseen is None


def test_recent_is_claimed_only_when_there_is_something_to_claim(store, account, box,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    claims: list[str] = []
    real = store.memberships.claim_recent

    def claim(mailbox_id: str) -> Any:
        claims.append(mailbox_id)
        return real(mailbox_id)

    monkeypatch.setattr(store.memberships, "claim_recent", claim)
    v = store.messages
    fill(store, account, box, 3)
    first = v.mailbox_snapshot(account.id, box.id, claim_recent=True)
    assert first.recent_from == 1 and list(first.uids) == [1, 2, 3] and claims == [box.id]
    again = v.mailbox_snapshot(account.id, box.id, claim_recent=True)
    assert again.recent_from == again.uidnext == 4 and claims == [box.id]  # nothing new: no write
    fill(store, account, box, 1, start=9)
    third = v.mailbox_snapshot(account.id, box.id, claim_recent=True)
    assert third.recent_from == 4 and third.uidnext == 5 and claims == [box.id, box.id]
    assert v.recent_counts([box.id]) == {}


def test_snapshot_of_another_accounts_mailbox_is_none(store, account, box) -> None:  # noqa: ANN001
    other = store.accounts.create("other@example.test", None)
    assert store.messages.mailbox_snapshot(other.id, box.id) is None
    assert store.messages.mailbox_snapshot(other.id, box.id, claim_recent=True) is None
    assert store.messages.mailbox_snapshot(account.id, box.id) is not None


def test_fetch_statements_compile_once_per_shape(store, account, box) -> None:  # noqa: ANN001
    v = store.messages
    fill(store, account, box, 6)
    store.memberships.store_flags(account.id, box.id, [(2, 3)], "add", ["Work"], None)
    first = v.fetch_rows(box.id, [(1, 3)], keywords=True)
    compiled = v._sql.compiles
    second = v.fetch_rows(box.id, [(2, 4)], keywords=True)  # same shape, other values: no new compile
    assert v._sql.compiles == compiled
    assert [r[0] for r in first.rows] == [1, 2, 3] and [r[0] for r in second.rows] == [2, 3, 4]
    assert set(second.keywords.values()) == {("Work",)} and len(second.keywords) == 2
    mixed = v.fetch_rows(box.id, [(1, 1), (3, 3), (5, 6)], below_uid=6, changedsince=0)  # a new shape
    assert [r[0] for r in mixed.rows] == [1, 3, 5] and v._sql.compiles == compiled + 1
    many = v.fetch_rows(box.id, [(u, u) for u in range(1, 1200, 2)])  # single UIDs in IN lists of 500
    assert [r[0] for r in many.rows] == [1, 3, 5]
    assert v.fetch_rows(box.id, []).rows == []
