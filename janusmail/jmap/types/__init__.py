"""JMAP data types. Each module defines ``register(engine)`` which registers its methods with the engine.

The HTTP front (janusmail.jmap.http) calls ``register_all`` once at start-up; a type is added by writing its
module and naming it here. Every module is imported unconditionally: a broken or missing type module must stop
the server at start-up, not leave it running without, say, Email/query.
"""

from __future__ import annotations

import importlib
from typing import Any

TYPE_MODULES = ("mailbox", "thread", "email", "snippet", "identity", "quota", "push_subscription", "email_submission",
                "vacation_response")


def register_all(engine: Any) -> list[str]:
    """Register every type module with ``engine``; returns the names registered (all of TYPE_MODULES)."""
    for name in TYPE_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(engine)
    return list(TYPE_MODULES)
