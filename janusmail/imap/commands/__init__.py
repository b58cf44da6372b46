"""Command registry: every module in this package registers its handlers with :func:`handler`.

Usage (one module per command family)::

    @handler("FETCH", "UID FETCH", states=("selected",))
    async def fetch(s: ImapSession, cmd: Command) -> Result: ...

The session calls :func:`load_all` once at start-up, which imports every module under this package
(pkgutil), so a new module registers itself just by existing. Capabilities come from what is registered
(:func:`registered_capabilities`) plus the session's extension flags.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable

from .base import ALL_STATES, Handler, HandlerFn, Result

__all__ = [
    "ALL_STATES",
    "REGISTRY",
    "Handler",
    "HandlerFn",
    "Result",
    "handler",
    "load_all",
    "lookup",
    "registered_capabilities",
]

#: Upper-case command name ("FETCH", "UID FETCH") -> Handler.
REGISTRY: dict[str, Handler] = {}

_loaded = False


def handler(
    *names: str,
    states: Iterable[str] = ("auth", "selected"),
    capabilities: Iterable[str] = (),
) -> Callable[[HandlerFn], HandlerFn]:
    """Register the decorated coroutine for each of ``names`` (upper-cased). ``states`` are the session
    states the command is valid in; ``capabilities`` are advertised while the handler is registered.
    Registering a name twice replaces the earlier handler (the last import wins, useful in tests)."""
    state_tuple = tuple(states)
    caps = tuple(capabilities)
    for st in state_tuple:
        if st not in ALL_STATES:
            raise ValueError(f"unknown IMAP state {st!r}")

    def register(fn: HandlerFn) -> HandlerFn:
        for name in names:
            key = " ".join(name.upper().split())
            REGISTRY[key] = Handler(key, fn, state_tuple, caps)
        return fn

    return register


def lookup(name: str) -> Handler | None:
    """The handler registered for command ``name`` (as the codec spells it: upper case)."""
    return REGISTRY.get(name)


def load_all() -> None:
    """Import every module of this package once so their ``@handler`` decorators run. A module that
    fails to import is a bug: the error propagates (better than a server silently missing FETCH)."""
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def registered_capabilities() -> list[str]:
    """Capability atoms contributed by registered handlers, deduplicated, in registration order."""
    seen: dict[str, None] = {}
    for h in REGISTRY.values():
        for cap in h.capabilities:
            seen.setdefault(cap, None)
    return list(seen)
