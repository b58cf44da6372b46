"""Closing a spool never blocks the event loop, even while a worker thread is writing to its file.

``Spool.close`` runs on the event loop (a command ends, a connection drops). A worker thread may at that moment
be writing a flush (up to 256 KiB) to a slow disk; waiting for it would stall every connection of the server.
The write is held here at will (no timing involved); the closing must return while it is held, give the
budget back at once, and the file must be closed by the writer when its write ends (no descriptor leaked, none
closed under a write).
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from janusmail.spool import Spooler

BODY = 5000
DEADLINE = 60.0


async def test_close_does_not_wait_for_a_write_under_way(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sp = Spooler(tmp_path / "tmp", threshold=1000, max_in_flight=10**6, max_loaded=10**6)
    spool = sp.open(BODY)  # announced bigger than the threshold: a file from the start
    assert spool is not None and spool.on_disk
    writing, disk_may_answer = threading.Event(), threading.Event()
    real_write = os.write

    def slow_disk(fd: int, data: Any) -> int:
        if len(data) == BODY:  # our spool's flush, not the event loop's own wake-up writes
            writing.set()
            disk_may_answer.wait(DEADLINE)
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", slow_disk)
    spool.write(b"x" * BODY)
    flush = asyncio.ensure_future(spool.drain())  # complete body: handed to a worker thread now
    assert await asyncio.to_thread(writing.wait, DEADLINE)
    file = spool._file
    assert file is not None and not file.closed

    # Had close() waited for the write, this watchdog would be what let it return (and the test fails).
    watchdog = threading.Timer(DEADLINE, disk_may_answer.set)
    watchdog.start()
    try:
        spool.close()  # on the event loop, as the session and the JMAP upload do
        returned_while_writing = not disk_may_answer.is_set()
    finally:
        watchdog.cancel()
    assert returned_while_writing, "Spool.close() blocked the event loop behind a write"
    assert sp.budget.used == 0  # the budget is given back at once
    assert not file.closed  # never closed under the write ...

    disk_may_answer.set()
    await asyncio.wait_for(flush, DEADLINE)
    assert file.closed and spool._file is None  # ... and closed by the writer when its write was done


async def test_close_without_a_write_under_way_closes_at_once(tmp_path: Path) -> None:
    sp = Spooler(tmp_path / "tmp", threshold=1000, max_in_flight=10**6, max_loaded=10**6)
    spool = sp.open(BODY)
    assert spool is not None
    spool.write(b"y" * BODY)
    await spool.drain()
    file = spool._file
    assert file is not None and not file.closed
    spool.close()
    assert file.closed and spool._file is None and sp.budget.used == 0
    spool.close()  # idempotent
