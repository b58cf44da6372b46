"""Running ``@writes`` store methods on the writer executor from synchronous threads.

``Store.call`` puts writes on the writer executor for code on the event loop. The authenticator is synchronous
and runs on login threads of its own (argon2 must not hold the loop's executor), and the CLI is a synchronous
tool; their writes (app passwords, a password re-hash, last-used stamps) must take the same path, or they would
compete with the writer thread for SQLite's one write lock instead of queueing behind it. These two helpers are
that path for synchronous callers: :func:`run` waits for the result, :func:`submit` does not (a best-effort
stamp that the caller's answer does not depend on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from .writes import is_write

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

T = TypeVar("T")

#: Thread-name prefix of the store's writer executor (``Store.__init__``).
WRITER_PREFIX = "store-write"


def on_writer_thread() -> bool:
    return threading.current_thread().name.startswith(WRITER_PREFIX)


def submit(store: Store, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
    """Queue ``fn`` (a ``@writes`` method) on the writer executor; already on a writer thread, run it inline
    (queueing behind oneself on SQLite's single writer would deadlock a caller that waits)."""
    if not is_write(fn):
        raise TypeError(f"{getattr(fn, '__qualname__', fn)!r} is not marked @writes")
    if on_writer_thread():
        fut: Future[T] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            fut.set_exception(exc)
        return fut
    return store._writer.submit(fn, *args, **kwargs)


def run(store: Store, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` (a ``@writes`` method) on the writer executor and return its result (or raise its error)."""
    return submit(store, fn, *args, **kwargs).result()
