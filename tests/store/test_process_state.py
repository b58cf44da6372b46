"""``store.process_state`` on SQLite and PostgreSQL: each process's published connections and failed logins,
read by the others while fresh; a withdrawn or silent process no longer counts, and a long-silent one is
deleted. And the publisher (janusmail.connections.publish_forever) following a live registry and throttle."""

from __future__ import annotations

import asyncio
import time

from janusmail.auth.throttle import LoginThrottle
from janusmail.connections import Connections, publish_forever
from janusmail.store.process_state import FORGET_AFTER, STALE_AFTER, ConnectionInfo, FailedLogins


def info(ticket: int, address: str | None) -> ConnectionInfo:
    return ConnectionInfo(ticket, "imap", "127.0.0.1:5000", 1_000.5, False, "A1" if address else None, address,
                          "password" if address else None, None)


def test_published_withdrawn_stale_and_forgotten(store) -> None:  # noqa: ANN001
    state = store.process_state
    now = 10_000
    failed = FailedLogins("192.0.2.7", "a@example.test", 3, 9_990.5, 10_020.0)
    store.write_call(state.publish, "p1", "host pid 1", [info(1, "a@example.test"), info(2, None)], [failed], now)
    store.write_call(state.publish, "p2", "host pid 2", [info(1, "b@example.test")], [], now)
    seen = state.others("p2", now)
    assert [p.process for p in seen] == ["p1"] and seen[0].label == "host pid 1"
    assert [c.address for c in seen[0].connections] == ["a@example.test", None]
    assert seen[0].connections[0] == ConnectionInfo(1, "imap", "127.0.0.1:5000", 1_000.5, False, "A1",
                                                    "a@example.test", "password", None, "host pid 1")
    assert seen[0].failed_logins == (FailedLogins("192.0.2.7", "a@example.test", 3, 9_990.5, 10_020.0,
                                                  "host pid 1"),)
    # a new publish replaces the process's row
    store.write_call(state.publish, "p1", "host pid 1", [], [], now + 1)
    assert state.others("p2", now + 1)[0].connections == () and state.others("p2", now + 1)[0].failed_logins == ()
    # silent for too long: not shown; much longer: deleted by anyone's publish
    assert [p.process for p in state.others("p3", now + 1 + STALE_AFTER + 1)] == []
    store.write_call(state.publish, "p3", "host pid 3", [], [], now + FORGET_AFTER + 2)
    assert [p.process for p in state.others("p3", now + 1)] == []
    store.write_call(state.withdraw, "p3")
    assert state.others("nobody", now + FORGET_AFTER + 2) == []


def test_the_publisher_follows_its_registry_and_throttle_and_withdraws(store) -> None:  # noqa: ANN001
    registry = Connections()
    throttle = LoginThrottle()

    def others() -> list:
        return store.process_state.others("reader", int(time.time()))

    async def until(cond) -> None:  # noqa: ANN001
        for _ in range(3_000):  # a safety net of about 30 s
            if cond():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the published row never showed it: {others()}")

    async def scenario() -> None:
        task = asyncio.create_task(publish_forever(store, registry, throttle, check_every=0.01))
        ticket = registry.opened("imap", "127.0.0.1:6000", principal=lambda: None)
        await until(lambda: [c.peer for p in others() for c in p.connections] == ["127.0.0.1:6000"])
        throttle.failed("192.0.2.9", "x@example.test")
        await until(lambda: [(f.client, f.account, f.failures) for p in others() for f in p.failed_logins]
                    == [("192.0.2.9", "x@example.test", 1)])
        registry.closed(ticket)
        await until(lambda: others() and not others()[0].connections)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert others() == []

    asyncio.run(scenario())


def test_a_row_from_a_newer_version_still_reads(store) -> None:  # noqa: ANN001
    """Nodes on one PostgreSQL may run two versions during an upgrade: fields this version does not know (added
    by a newer one) are left out, not a crash of the admin view."""
    import orjson
    import sqlalchemy as sa

    from janusmail.store.process_state import _t

    state = store.process_state
    store.write_call(state.publish, "p1", "host pid 1", [info(1, "a@example.test")], [], 10_000)
    with store.engine.begin() as conn:
        raw = conn.execute(sa.select(_t.c.connections).where(_t.c.process == "p1")).scalar_one()
        items = [{**item, "added_later": 1} for item in orjson.loads(raw)]
        conn.execute(sa.update(_t).where(_t.c.process == "p1").values(connections=orjson.dumps(items).decode()))
    seen = state.others("p2", 10_000)
    assert [c.address for c in seen[0].connections] == ["a@example.test"]
