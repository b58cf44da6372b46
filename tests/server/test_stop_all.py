"""Shutdown goes on past a part that never finishes closing (``janusmail.server.stop_all``)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from janusmail import server


async def test_a_closer_that_hangs_does_not_keep_the_others_open(monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(server, "CLOSE_TIMEOUT", 0.05)
    closed: list[str] = []
    never = asyncio.Event()

    async def first() -> None:  # closed last (closers run in reverse)
        closed.append("first")

    async def hangs() -> None:
        await never.wait()

    async def fails() -> None:
        raise OSError("already gone")

    async def last() -> None:
        closed.append("last")

    auth = SimpleNamespace(closed=False)
    auth.close = lambda: setattr(auth, "closed", True)
    rt = SimpleNamespace(closers=[first, hangs, fails, last], auth=auth,
                         store=SimpleNamespace(on_group_commit=None), metrics=SimpleNamespace(group_commit=object()))
    with caplog.at_level(logging.WARNING, logger="janusmail"):
        await server.stop_all(rt)  # type: ignore[arg-type]
    assert closed == ["last", "first"] and auth.closed
    assert any("hangs" in r.getMessage() and "did not finish" in r.getMessage() for r in caplog.records)
