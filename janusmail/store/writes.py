"""Marking store methods that write, so the store can run them on its writer threads.

SQLite has one writer at a time. If writes shared the worker pool with reads, writers waiting for the write
lock would occupy the threads that reads need, and a burst of STOREs would stall every FETCH. ``Store.call``
sends methods marked ``@writes`` to the store's writer queue (``groupcommit.WriteQueue``: one lane on SQLite,
several on PostgreSQL, where writes to different accounts proceed in parallel) and everything else to the
reader pool. The writer runs the calls queued together in one transaction with one commit, each call's
``Store.write`` a savepoint of it, and answers them after that commit (group commit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


def writes(fn: F) -> F:
    fn.__janus_writes__ = True  # type: ignore[attr-defined]
    return fn


def is_write(fn: object) -> bool:
    return bool(getattr(fn, "__janus_writes__", False))
