"""``store.mailbox_deltas``: many sessions asking "what changed" at once get one shared read, and each the same
answer its own ``messages.mailbox_delta`` gives, whatever it knew before (SQLite and PostgreSQL). \\Recent goes to
exactly one claimer."""

from __future__ import annotations

import asyncio

import pytest

from janusmail.store import mailbox_deltas
from tests.mailgen import simple


@pytest.fixture
def box(store, account):  # noqa: ANN001, ANN201
    return store.mailboxes.by_path(account.id, ["INBOX"])


def test_many_sessions_one_change_each_gets_its_own_answer(store, account, box, monkeypatch) -> None:  # noqa: ANN001
    for i in range(4):
        store.emails.ingest(account.id, simple(i), (box.id,))
    v = store.messages
    early = v.mailbox_snapshot(account.id, box.id)  # sessions that selected before the next changes
    store.memberships.store_flags(account.id, box.id, [(2, 2)], "add", ["$seen", "Work"], None)
    middle = v.mailbox_snapshot(account.id, box.id)
    # the change every session is woken for: a flag change, an expunge and two arrivals
    store.memberships.store_flags(account.id, box.id, [(3, 3)], "add", ["Blue"], None)
    store.memberships.store_flags(account.id, box.id, [(1, 1)], "add", [], True)
    assert store.memberships.expunge(account.id, box.id) == [1]
    store.emails.ingest(account.id, simple(10), (box.id,))
    store.emails.ingest(account.id, simple(11), (box.id,))
    now = v.mailbox_snapshot(account.id, box.id)
    assert early is not None and middle is not None and now is not None

    def known(snap) -> dict:  # noqa: ANN001
        return {"uidvalidity": snap.uidvalidity, "uidnext": snap.uidnext, "modseq": snap.highest_modseq}

    # 60 sessions: three views of the mailbox, some IMAP4rev1 (claim \Recent), one of another UIDVALIDITY
    asks = [(box.id, known([early, middle, now][i % 3]), i % 4 == 1) for i in range(60)]
    asks.append((box.id, {**known(now), "uidvalidity": now.uidvalidity + 1}, False))
    reads: list[int] = []
    real = store.mailbox_deltas.read_many

    def counting(wants):  # noqa: ANN001, ANN202
        reads.append(len(wants))
        return real(wants)

    monkeypatch.setattr(store.mailbox_deltas, "read_many", counting)

    async def all_at_once() -> list:
        return await asyncio.gather(*(store.mailbox_deltas.delta(b, **k, claim_recent=c) for b, k, c in asks))

    got = asyncio.run(all_at_once())
    assert sum(reads) == len(asks) and len(reads) <= mailbox_deltas.MAX_READS + 1  # batched, not one read each
    assert got[-1] is None  # another UIDVALIDITY: the mailbox this session knew is gone
    claimed = [d.recent_from for d, (_, _, claim) in zip(got, asks, strict=True) if claim and d.recent_from]
    assert claimed == [1]  # one claimer of the new messages, given everything not claimed before
    for d, (b, k, _) in zip(got[:-1], asks[:-1], strict=True):
        own = v.mailbox_delta(b, **k)  # what the session's own read says (no claim: compared without it)
        assert own is not None and d is not None
        assert (d.uidnext, d.highest_modseq, d.new_uids, d.vanished, d.changed) == \
            (own.uidnext, own.highest_modseq, own.new_uids, own.vanished, own.changed)
    by_view = {tuple(k.values()): d for (_, k, _), d in zip(asks[:-1], got[:-1], strict=True)}
    assert by_view[tuple(known(now).values())].new_uids == []  # up to date: nothing new
    e = by_view[tuple(known(early).values())]
    assert e.new_uids == [5, 6] and e.vanished == [1] and {c.uid for c in e.changed} == {2, 3}
    m = by_view[tuple(known(middle).values())]
    assert m.new_uids == [5, 6] and {c.uid for c in m.changed} == {3}  # the earlier flag change was known


def test_a_failed_read_reaches_every_waiter(store, account, box, monkeypatch) -> None:  # noqa: ANN001
    snap = store.messages.mailbox_snapshot(account.id, box.id)
    assert snap is not None

    def broken(wants):  # noqa: ANN001, ANN202
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store.mailbox_deltas, "read_many", broken)

    async def ask() -> list:
        return await asyncio.gather(
            *(store.mailbox_deltas.delta(box.id, uidvalidity=snap.uidvalidity, uidnext=snap.uidnext,
                                         modseq=snap.highest_modseq) for _ in range(5)),
            return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(ask()))
