"""The push subscriptions service (janusmail/store/push_subscriptions.py) on SQLite and PostgreSQL: one account's
subscriptions are invisible to another, the code must match to verify, expiry is clamped and swept, the
per-account cap holds, and no write moves the account's modseq (no mail changed)."""

from __future__ import annotations

import pytest

from janusmail.store.model import NotFound
from janusmail.store.push_subscriptions import MAX_LIFETIME, MAX_PER_ACCOUNT, TooManySubscriptions, WrongCode


def test_lifecycle(store) -> None:  # noqa: ANN001
    a = store.accounts.create("a@example.test", "hash")
    b = store.accounts.create("b@example.test", "hash")
    before = store.changes.snapshot(a.id)
    sub = store.push_subscriptions.create(a.id, "dev", "https://push.example/1", types=["Email"], now=1_000,
                                          expires=10**12)
    assert sub.expires == 1_000 + MAX_LIFETIME and not sub.verified and sub.types == ("Email",)
    assert store.push_subscriptions.list(b.id) == [] and store.push_subscriptions.list(b.id, [sub.id]) == []
    with pytest.raises(NotFound):
        store.push_subscriptions.update(b.id, sub.id, verification_code=sub.verification_code)
    with pytest.raises(NotFound):
        store.push_subscriptions.destroy(b.id, sub.id)
    with pytest.raises(WrongCode):
        store.push_subscriptions.update(a.id, sub.id, verification_code="wrong")
    assert store.push_subscriptions.deliverable(a.id, now=1_001) == []  # not verified yet
    done = store.push_subscriptions.update(a.id, sub.id, verification_code=sub.verification_code, now=1_000)
    assert done.verified and done.types == ("Email",)
    assert [s.id for s in store.push_subscriptions.deliverable(a.id, now=1_001)] == [sub.id]
    assert store.push_subscriptions.update(a.id, sub.id, types=None).types is None
    assert store.push_subscriptions.deliverable(a.id, now=1_000 + MAX_LIFETIME) == []  # expired
    assert store.push_subscriptions.sweep(now=1_000 + MAX_LIFETIME) == 1
    assert store.push_subscriptions.list(a.id) == []
    assert store.changes.snapshot(a.id) == before  # no modseq, no change log


def test_cap_per_account(store) -> None:  # noqa: ANN001
    a = store.accounts.create("a@example.test", "hash")
    for i in range(MAX_PER_ACCOUNT):
        store.push_subscriptions.create(a.id, f"dev{i}", "https://push.example/x")
    with pytest.raises(TooManySubscriptions):
        store.push_subscriptions.create(a.id, "one more", "https://push.example/x")
