"""Which threads parse messages and store their bytes: the writer lane must not (it runs under SQLite's one
write lock), the store's ingest threads should (``Store.prepare_ingest``). Shared by the IMAP and JMAP tests."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from janusmail.store import ingest, writer_calls


def record_ingest_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that run ``ingest.prepare`` (one per message) and ``ingest.place`` (one per
    batch) from now on, in order."""
    where: list[str] = []
    real_prepare, real_place = ingest.prepare, ingest.place

    def prepare(*args: Any, **kwargs: Any) -> Any:
        where.append(threading.current_thread().name)
        return real_prepare(*args, **kwargs)

    def place(*args: Any, **kwargs: Any) -> Any:
        where.append(threading.current_thread().name)
        return real_place(*args, **kwargs)

    monkeypatch.setattr(ingest, "prepare", prepare)
    monkeypatch.setattr(ingest, "place", place)
    return where


def on_writer_lane(name: str) -> bool:
    return name.startswith(writer_calls.WRITER_PREFIX)
