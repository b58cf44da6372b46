"""The per-call context the JMAP HTTP front hands to every method handler.

Why a subclass of the engine's CallContext: handlers need the store, the runtime and who is calling, but the
engine must stay ignorant of all three. The front builds one ``JmapContext`` per method call (the engine's
``ctx_factory``); type modules read ``ctx.store`` and ``ctx.account_id`` and never touch HTTP.

Account policy: a principal sees exactly one account, its own, read-write. Every other id is
``accountNotFound`` (RFC 8620 §3.6.2) — we never reveal whether another account exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from janusmail.jmap.engine import CallContext, CallInfo, MethodError

if TYPE_CHECKING:
    from janusmail.auth import AuthResult
    from janusmail.runtime import Runtime  # the doors import the runtime; it imports no door
    from janusmail.store.store import Store

__all__ = ["JmapContext", "OwnAccount", "jmap_state", "parse_state", "run_store"]

T = TypeVar("T")


class OwnAccount:
    """AccountPolicy: only ``account_id`` exists, and it is writable and supports every capability."""

    __slots__ = ("account_id",)

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id

    async def check(self, account_id: str, capability: str, *, write: bool) -> None:
        if type(account_id) is not str or account_id != self.account_id:
            raise MethodError("accountNotFound")


class JmapContext(CallContext):
    """A CallContext carrying ``store``, ``rt``, ``principal`` and the principal's ``account_id``."""

    def __init__(
        self,
        info: CallInfo,
        *,
        store: Store,
        rt: Runtime,
        principal: AuthResult,
        app: Any = None,
    ) -> None:
        super().__init__(info, accounts=OwnAccount(principal.account_id), app=app)
        self.store = store
        self.rt = rt
        self.principal = principal
        self.account_id: str = principal.account_id


async def run_store(ctx: JmapContext, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a synchronous store method off the event loop (the store's worker threads)."""
    return await ctx.store.call(fn, *args, **kwargs)


def jmap_state(modseq: int) -> str:
    """A JMAP state string for a modseq (decimal: the states are modseqs)."""
    return str(int(modseq))


def parse_state(s: str) -> int:
    """The modseq in a state string from ``jmap_state``; ValueError for anything else.

    Only plain non-negative decimals are accepted ("+1", " 1", "1_0" are not states we ever issued).
    """
    if type(s) is not str or not s or not s.isascii() or not s.isdigit() or len(s) > 20:
        raise ValueError(f"not a state: {s!r}")
    return int(s)
