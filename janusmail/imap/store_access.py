"""The Store as one IMAP session's handlers see it: the credential check rides on the command's first store call.

Every command after login must first ask whether the session's credential is still good
(:func:`janusmail.auth.revocation.check`, one primary-key read). Asked on its own, that is a thread hop of its
own before every command: with the command's own read it made a STATUS three hops where one does (issue 10
item 0, ``bench/command_cost.py``). So the session marks the check *due* when a command starts and
:class:`SessionStore` runs it on the worker thread, in the same hop, just before the first store method the
command calls. The order is the one the rule needs (check, then read or write), without a hop of its own; a
dead credential raises :class:`CredentialExpired` instead of running the method, and the session says
``* BYE [EXPIRED]``. A command that calls the store not at all (NOOP, ENABLE...) is checked by the session
before its tagged answer. On SQLite no check is due at all while the store's credential signal shows that no
credential changed anywhere since the session's last good check (janusmail.store.credential_signal).

Everything else (``s.store.messages``, ``s.store.mailboxes``...) is the real Store's attribute: handlers keep
writing ``await s.store.call(s.store.messages.fetch_rows, ...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from janusmail.auth import revocation
from janusmail.store.writes import is_write, writes

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession
    from janusmail.store.store import Store

__all__ = ["CredentialExpired", "SessionStore", "one_read"]

log = logging.getLogger("janusmail.imap")
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class CredentialExpired(Exception):
    """The session's credential was revoked, replaced or expired: end the session with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionStore:
    """A per-session view of the Store (``s.store``): ``call`` and ``deliver`` run the session's due credential
    check first (see the module docstring); every other attribute is the Store's own."""

    __slots__ = ("_session", "_store")

    def __init__(self, store: Store, session: ImapSession) -> None:
        self._store = store
        self._session = session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``Store.call``, with the session's due credential check run first on the same worker thread."""
        return await self._run(False, fn, args, kwargs)

    async def read_inline(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``Store.read_inline`` (a small read, on the loop's thread on SQLite), with the due credential check
        (one primary-key read) run first in the same place."""
        return await self._run(True, fn, args, kwargs)

    async def _run(self, inline: bool, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        s = self._session
        run = self._store.read_inline if inline else self._store.call
        due = s.take_due_check()
        if due is None:
            return await run(fn, *args, **kwargs)
        runner = _checked_write if is_write(fn) else _checked_read
        verdict, result = await run(runner, due[:5], fn, args, kwargs)
        s.credential_checked(verdict, due[5])
        if verdict is not None and verdict.reason is not None:
            raise CredentialExpired(verdict.reason)
        return result

    async def deliver(self, *args: Any, **kwargs: Any) -> Any:
        """``Store.deliver`` (group-committed APPEND): the due check runs on its own first."""
        s = self._session
        if s.check_is_due():
            reason = await s.credential_problem()
            if reason is not None:
                raise CredentialExpired(reason)
        return await self._store.deliver(*args, **kwargs)


def _checked(due: tuple[Any, ...], fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """On a store thread: the credential check, then (if the credential is good) the method. A store that
    cannot answer the check is not taken as a revocation (the method will meet the same trouble and say so)."""
    store, result, epoch, now, grace = due
    try:
        verdict = revocation.check(store, result, epoch, now=now, grace=grace)
    except Exception:  # noqa: BLE001
        log.warning("credential check failed", exc_info=True)
        verdict = None
    if verdict is not None and verdict.reason is not None:
        return verdict, None
    return verdict, fn(*args, **kwargs)


def one_read(fn: F) -> F:
    """Mark a store-thread function whose reads go through ``store.read()`` (the mailbox tree, STATUS, SELECT's
    snapshot on SQLite): the command's credential check then shares its read transaction (``Store.shared_read``:
    one connection checkout, BEGIN and ROLLBACK for the whole command). Only marked functions: one that opened
    connections of its own meanwhile would hold two per store thread, and the pool is sized for one."""
    fn._one_read = True  # type: ignore[attr-defined]
    return fn


def _checked_read(due: tuple[Any, ...], fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[Any, Any]:
    if getattr(fn, "_one_read", False):
        with due[0].shared_read():
            return _checked(due, fn, args, kwargs)
    return _checked(due, fn, args, kwargs)


@writes
def _checked_write(due: tuple[Any, ...], fn: Callable[..., Any], args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """The same for a method marked ``@writes``: it must still run on the store's writer threads."""
    return _checked(due, fn, args, kwargs)
