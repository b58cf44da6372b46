"""The store's reads behind the scrape-time metrics (janusmail/observability/collectors.py), on SQLite and
PostgreSQL: server-wide usage from the account rows, the outbound queue's depth by state, live push
subscriptions; and the group-commit hook the metrics record from."""

from __future__ import annotations

import asyncio

from janusmail.store.submissions import Envelope
from janusmail.store.writes import writes
from tests.mailgen import simple


def test_totals_queue_depth_and_push_subscriptions(store) -> None:  # noqa: ANN001
    assert store.quotas.totals().accounts == 0 and store.submissions.queue_depth() == {"pending": 0, "held": 0}
    a = store.accounts.create("a@example.test", "hash")
    b = store.accounts.create("b@example.test", "hash")
    inbox = store.mailboxes.by_path(a.id, ["INBOX"])
    one = store.emails.ingest(a.id, simple(1), (inbox.id,))
    store.emails.ingest(a.id, simple(2), (inbox.id, store.mailboxes.by_path(a.id, ["Archive"]).id))
    store.emails.ingest(b.id, simple(3), (store.mailboxes.by_path(b.id, ["INBOX"]).id,))
    totals = store.quotas.totals()
    assert totals.accounts == 2 and totals.messages == 4  # the message in two mailboxes counts twice
    assert totals.storage == sum(store.quotas.get(x.id).storage_used for x in (a, b)) > 0

    env = Envelope("a@example.test", ("x@remote.test",))
    released = store.submissions.create(a.id, "I1", one.email_id, env, send_at=1_000, now=1_000)
    store.submissions.create(a.id, "I1", one.email_id, env, send_at=5_000, now=1_000)  # FUTURERELEASE
    done = store.submissions.create(a.id, "I1", one.email_id, env, send_at=1_000, now=1_000)
    store.submissions.record_attempt(a.id, done.id, {"x@remote.test": ("yes", "250 ok")}, next_attempt=None)
    assert store.submissions.queue_depth() == {"pending": 1, "held": 1}
    store.submissions.record_attempt(a.id, released.id, {"x@remote.test": ("no", "550 no")}, next_attempt=None)
    assert store.submissions.queue_depth() == {"pending": 0, "held": 1}

    sub = store.push_subscriptions.create(a.id, "dev", "https://push.example/1")
    store.push_subscriptions.create(b.id, "dev", "https://push.example/2")  # never verified
    assert store.push_subscriptions.count_deliverable() == 0
    store.push_subscriptions.update(a.id, sub.id, verification_code=sub.verification_code)
    assert store.push_subscriptions.count_deliverable() == 1
    assert store.push_subscriptions.count_deliverable(now=sub.expires) == 0


def test_group_commits_are_reported(store) -> None:  # noqa: ANN001
    seen: list[tuple[int, float, float]] = []

    def report(calls: int, commit: float, total: float) -> None:
        seen.append((calls, commit, total))

    @writes
    def after_them(_account_id: str) -> None:
        """A write of its own: the lane runs groups one after another and reports each before it takes the next."""

    store.on_group_commit = report
    a = store.accounts.create("a@example.test", "hash")
    inbox = store.mailboxes.by_path(a.id, ["INBOX"]).id

    async def deliver() -> None:
        await asyncio.gather(*(store.deliver(a.id, simple(i), (inbox,)) for i in range(5)))
        # the hook runs on the writer lane after the callers woke, so it may trail the last delivery: once a
        # later group has run, the deliveries' groups have been reported
        await store.call(after_them, a.id)

    asyncio.run(deliver())
    assert seen and all(calls >= 1 and 0 <= commit <= total for calls, commit, total in seen)
    assert store.quotas.totals().messages == 5
