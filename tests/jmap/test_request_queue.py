"""maxConcurrentRequests queues before it refuses (issue 10 item 5).

A request over its account's limit waits, first come first served, for a slot; only a full queue (or a wait
past ``queue_wait_ms``) gets 429; a limit of 0 means no cap. The end-to-end test holds requests inside the
server at a store call (an event, not a pause) and watches the queue through the slots' ``queued`` hook.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import janusmail.jmap.settings as jmap_settings
from janusmail.jmap.slots import AccountSlots
from janusmail.jmap.types import mailbox as mailbox_type
from tests.jmap.test_front_harness import PASSWORDS, USING, client_for, start_server

DEADLINE = 60  # a safety net for the waits below, never a measure

# -- the slots alone ------------------------------------------------------------------------------------------


def test_limit_zero_means_no_cap() -> None:
    async def main() -> list[bool]:
        slots = AccountSlots(0, max_queue=0, wait=0)
        async with slots.hold("a") as one, slots.hold("a") as two, slots.hold("a") as three:
            return [one, two, three]

    assert asyncio.run(main()) == [True, True, True]


def test_waiters_get_freed_slots_in_order_and_a_full_queue_refuses() -> None:
    async def main() -> None:
        slots = AccountSlots(1, max_queue=2, wait=DEADLINE)
        order: list[str] = []
        release = asyncio.Event()

        async def holder() -> None:
            async with slots.hold("a") as ok:
                assert ok
                await release.wait()
                order.append("holder")

        async def waiter(name: str) -> None:
            async with slots.hold("a") as ok:
                assert ok
                assert slots.active("a") == 1  # handed over, never more than the limit
                order.append(name)

        first = asyncio.create_task(holder())
        await asyncio.sleep(0)  # let the holder take the slot (one loop turn, not a timing)
        w1 = asyncio.create_task(waiter("w1"))
        await asyncio.sleep(0)
        w2 = asyncio.create_task(waiter("w2"))
        await asyncio.sleep(0)
        assert slots.active("a") == 1 and slots.waiting("a") == 2
        async with slots.hold("a") as ok:  # the queue is full: refused at once
            assert not ok
        async with slots.hold("b") as ok:  # another account is not affected
            assert ok
        release.set()
        await asyncio.gather(first, w1, w2)
        assert order == ["holder", "w1", "w2"]
        assert slots.active("a") == 0 and slots.waiting("a") == 0

    asyncio.run(main())


def test_a_wait_that_runs_out_is_refused_and_a_cancelled_waiter_leaves_the_queue() -> None:
    async def main() -> None:
        slots = AccountSlots(1, max_queue=4, wait=0.01)
        async with slots.hold("a") as ok:
            assert ok
            async with slots.hold("a") as late:  # nobody frees the slot: the bounded wait ends in a refusal
                assert not late
            slots.wait = DEADLINE
            gone = asyncio.create_task(_hold_once(slots))
            await asyncio.sleep(0)
            assert slots.waiting("a") == 1
            gone.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gone
            assert slots.waiting("a") == 0
        assert slots.active("a") == 0  # the cancelled waiter took nothing with it
        async with slots.hold("a") as ok:
            assert ok

    asyncio.run(main())


async def _hold_once(slots: AccountSlots) -> None:
    async with slots.hold("a"):
        pass


# -- over real HTTP -------------------------------------------------------------------------------------------


class _Watched(AccountSlots):
    """AccountSlots that tells the test thread how many requests have started waiting."""

    instances: list[_Watched] = []

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.cond = threading.Condition()
        self.queued_total = 0
        _Watched.instances.append(self)

    def queued(self, key: str) -> None:
        with self.cond:
            self.queued_total += 1
            self.cond.notify_all()


def test_requests_over_the_limit_wait_for_a_slot(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    _Watched.instances = []
    monkeypatch.setattr(jmap_settings, "AccountSlots", _Watched)
    srv = start_server(tmp_path, jmap__max_concurrent_requests=2, jmap__max_queued_requests=3,
                       jmap__queue_wait_ms=DEADLINE * 1000)
    gate = threading.Event()
    entered = threading.Semaphore(0)
    inside = [0, 0]  # now, most at once
    lock = threading.Lock()
    store = srv.store
    original_call = store.call

    async def gated_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if fn is not mailbox_type._read:
            return await original_call(fn, *args, **kwargs)
        with lock:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
        entered.release()
        try:
            await asyncio.get_running_loop().run_in_executor(None, gate.wait, DEADLINE)
            return await original_call(fn, *args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    store.call = gated_call
    alice = client_for(srv, "alice@example.test")
    body = {"using": USING, "methodCalls": [["Mailbox/get", {"accountId": alice.account_id, "ids": None}, "0"]]}

    def post() -> httpx.Response:
        with httpx.Client(base_url=srv.config.public_url, timeout=DEADLINE * 2,
                          auth=("alice@example.test", PASSWORDS["alice@example.test"])) as http:
            return http.post("/jmap/api", json=body)

    try:
        (requests,) = [s for s in _Watched.instances if s.limit == 2]
        with ThreadPoolExecutor(5) as pool:
            futures = [pool.submit(post) for _ in range(5)]
            for _ in range(2):  # two requests inside the store, held there
                assert entered.acquire(timeout=DEADLINE)
            with requests.cond:  # the other three wait for a slot instead of being refused
                assert requests.cond.wait_for(lambda: requests.queued_total >= 3, timeout=DEADLINE)
            assert not any(f.done() for f in futures)
            # The queue is full now: one more is refused at once, with the limit named.
            refused = alice.http.post("/jmap/api", json=body)
            assert refused.status_code == 429
            assert refused.json()["limit"] == "maxConcurrentRequests"
            gate.set()
            answers = [f.result(timeout=DEADLINE) for f in futures]
        assert [r.status_code for r in answers] == [200] * 5
        assert all(r.json()["methodResponses"][0][0] == "Mailbox/get" for r in answers)
        assert inside[1] == 2  # never more than the limit inside at once
    finally:
        gate.set()
        srv.stop()


def test_limit_zero_serves_every_request(tmp_path) -> None:  # noqa: ANN001
    srv = start_server(tmp_path, jmap__max_concurrent_requests=0, jmap__max_concurrent_upload=0)
    try:
        alice = client_for(srv, "alice@example.test")
        core = alice.http.get("/.well-known/jmap").json()["capabilities"]["urn:ietf:params:jmap:core"]
        assert core["maxConcurrentRequests"] == 0
        assert alice.call("Mailbox/get", {"ids": None})["list"]
        r = alice.http.post(f"/jmap/upload/{alice.account_id}", content=b"hello", headers={"Content-Type": "text/plain"})
        assert r.status_code == 201, r.text
    finally:
        srv.stop()
