"""JMAP data types. Each module defines ``register(engine)`` which registers its methods with the engine.

The HTTP front (janusmail.jmap.http) calls ``register_all`` once at start-up; a type is added by writing its
module and naming it here.
"""

from __future__ import annotations

import importlib

TYPE_MODULES = ("mailbox", "thread", "email", "snippet")


def register_all(engine) -> list[str]:  # noqa: ANN001
    """Register every available type module; returns the names registered (missing modules are skipped)."""
    done = []
    for name in TYPE_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        module.register(engine)
        done.append(name)
    return done
