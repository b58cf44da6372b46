"""Subscription waits: long ones share their loop's timers (janusmail.store.notifier._Alarms), short ones keep
their own; either way a wait ends by its timeout or by an event, and nothing stays referenced afterwards."""

from __future__ import annotations

import asyncio

import pytest

from janusmail.store import notifier as notifier_mod
from janusmail.store.notifier import ChangeEvent, Notifier


@pytest.fixture
def tiny_alarms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every wait of 10 ms or more shares a timer, in 10 ms slots (the real thresholds are seconds)."""
    monkeypatch.setattr(notifier_mod, "SHARED_ALARM_FROM", 0.01)
    monkeypatch.setattr(notifier_mod, "ALARM_RESOLUTION", 0.01)


async def test_waits_share_timers_and_leave_nothing_behind(tiny_alarms: None) -> None:
    n = Notifier()
    loop = asyncio.get_running_loop()
    subs = [n.subscribe("a") for _ in range(50)]
    waits = [asyncio.ensure_future(s.wait(0.05)) for s in subs]
    await asyncio.sleep(0)  # every wait is now pending on a shared slot
    alarms = n._alarms[loop]
    assert sum(len(futs) for _, futs in alarms._slots.values()) == 50
    assert len(alarms._slots) <= 7  # 50 deadlines, at most a few 10 ms slots (not 50 timers)
    # an event ends the waits of its account at once, and takes them off the shared timers
    n.deliver(ChangeEvent("a", 7, frozenset({"Email"})))
    got = await asyncio.wait_for(asyncio.gather(*waits), 30)
    assert all([ev.modseq for ev in events] == [7] for events in got)
    assert loop not in n._alarms  # no timer left: the loop is not referenced any more
    # a timeout ends a wait with nothing
    assert await asyncio.wait_for(subs[0].wait(0.02), 30) == []
    assert loop not in n._alarms
    for s in subs:
        s.close()


async def test_short_waits_keep_their_own_timer_and_interrupt_ends_shared_ones(tiny_alarms: None) -> None:
    n = Notifier()
    loop = asyncio.get_running_loop()
    sub = n.subscribe("a")
    assert await asyncio.wait_for(sub.wait(0.001), 30) == []  # under SHARED_ALARM_FROM: a timer of its own
    assert loop not in n._alarms
    waiting = asyncio.ensure_future(sub.wait(3600))  # shared, an hour away: only interrupt() ends it
    await asyncio.sleep(0)
    assert loop in n._alarms
    sub.interrupt()  # (what IMAP DONE does)
    assert await asyncio.wait_for(waiting, 30) == []
    assert loop not in n._alarms
    sub.close()
