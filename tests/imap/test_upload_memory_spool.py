"""janusmail.spool on its own: the in-flight budget, the load gate, spools in memory and on disk, start-up cleaning."""

from __future__ import annotations

import asyncio
import mmap
import os
import time

import pytest

from janusmail.spool import InFlight, LoadGate, Spooler
from janusmail.store.model import StorageUnavailable


def test_in_flight_budget() -> None:
    b = InFlight(100)
    assert b.try_reserve(60) and not b.try_reserve(41) and b.try_reserve(40)
    assert b.used == 100 and not b.try_reserve(1)
    b.release(60)
    assert b.try_reserve(50) and b.used == 90
    assert not b.try_reserve(-1)


async def test_load_gate_is_fair_and_never_blocks_a_lone_big_body() -> None:
    gate = LoadGate(100)
    await gate.acquire(500)  # bigger than the gate, nothing else loaded: let through
    gate.release(500)
    order: list[str] = []
    await gate.acquire(50)

    async def take(name: str, n: int) -> None:
        await gate.acquire(n)
        order.append(name)

    big = asyncio.create_task(take("big", 90))  # does not fit next to the 50 held
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 5))  # would fit, but must not jump the queue
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == []
    gate.release(50)
    await asyncio.wait_for(asyncio.gather(big, small), 30)
    assert order == ["big", "small"] and gate.used == 95


async def test_small_body_stays_in_memory_big_body_goes_to_a_file(tmp_path) -> None:  # noqa: ANN001
    sp = Spooler(tmp_path / "tmp", threshold=1000, max_in_flight=10_000, max_loaded=5000)
    small = sp.open(None)
    assert small is not None
    small.write(b"a" * 600)
    await small.drain()
    assert not small.on_disk and small.buffered == 600
    big = sp.open(None)  # unknown length: memory until it passes the threshold
    assert big is not None
    for _ in range(5):
        big.write(b"b" * 300)
        await big.drain(force=True)
    assert big.on_disk and big.buffered == 0
    loaded = await sp.load([small, big])
    assert loaded[0] == b"a" * 600
    assert isinstance(loaded[1], mmap.mmap) and loaded[1][:] == b"b" * 1500
    assert sp.gate.used == 1500
    view = loaded[1]
    big.close()
    small.close()
    assert view.closed and sp.gate.used == 0
    assert os.listdir(tmp_path / "tmp") == []


async def test_announced_size_is_reserved_up_front_and_given_back_once(tmp_path) -> None:  # noqa: ANN001
    sp = Spooler(tmp_path / "tmp", threshold=10, max_in_flight=100)
    a = sp.open(70)
    assert a is not None and a.on_disk and sp.budget.used == 70
    assert sp.open(31) is None  # would not fit
    assert a.reserve_more(30) and sp.budget.used == 100
    a.close()
    a.close()
    assert sp.budget.used == 0


async def test_write_error_is_storage_unavailable(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import errno

    from janusmail import spool as spoolmod

    sp = Spooler(tmp_path / "tmp", threshold=10)
    s = sp.open(100)
    assert s is not None

    def full(fd: int, data) -> int:  # noqa: ANN001
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spoolmod.os, "write", full)
    s.write(b"x" * 100)
    with pytest.raises(StorageUnavailable) as info:
        await s.finish()
    assert info.value.full
    s.close()
    assert sp.budget.used == 0


def test_clean_removes_only_stale_spool_files(tmp_path) -> None:  # noqa: ANN001
    d = tmp_path / "tmp"
    d.mkdir()
    old = time.time() - 3600
    for name in ("spool-old", "other-old"):
        (d / name).write_bytes(b"x")
        os.utime(d / name, (old, old))
    (d / "spool-fresh").write_bytes(b"x")  # another process's file being created right now
    Spooler(d)
    assert sorted(os.listdir(d)) == ["other-old", "spool-fresh"]
