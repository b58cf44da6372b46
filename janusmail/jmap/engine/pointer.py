"""JSON Pointer (RFC 6901) as JMAP uses it: result-reference paths with the ``*`` extension (RFC 8620 §3.7)
and PatchObject keys (§5.3, a pointer without its leading ``/``).

Why a module of its own: both mechanisms must split and unescape tokens identically (``~1`` is ``/``,
``~0`` is ``~``), and a bug in one copy would make ``#ids`` paths and patches disagree.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["PointerError", "evaluate", "parse_pointer", "split_tokens"]

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_BAD_ESCAPE = re.compile(r"~(?![01])")


class PointerError(ValueError):
    """The pointer is malformed or does not resolve against the value."""


def split_tokens(text: str) -> list[str]:
    """Split ``a/b~1c`` into ``["a", "b/c"]``; text has no leading ``/``. Bad ``~`` escapes are errors."""
    if _BAD_ESCAPE.search(text):
        raise PointerError(f"invalid '~' escape in {text!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in text.split("/")]


def parse_pointer(pointer: str) -> list[str]:
    """Tokens of a full pointer: ``""`` is the whole value, otherwise it must start with ``/``."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PointerError("a JSON Pointer must be empty or start with '/'")
    return split_tokens(pointer[1:])


def evaluate(value: Any, pointer: str) -> Any:
    """Resolve ``pointer`` against ``value`` with the RFC 8620 §3.7 ``*`` rule.

    ``*`` on an array applies the rest of the pointer to every item, in order; where that yields an array
    its items are spliced in (so ``/list/*/emailIds`` is one flat list of ids, not a list of lists).
    """
    return _walk(value, parse_pointer(pointer))


def _walk(value: Any, tokens: list[str]) -> Any:
    for i, token in enumerate(tokens):
        if type(value) is dict:
            if token not in value:
                raise PointerError(f"no member {token!r}")
            value = value[token]
        elif type(value) is list:
            if token == "*":
                rest = tokens[i + 1 :]
                out: list[Any] = []
                for item in value:
                    result = _walk(item, rest)
                    if type(result) is list:
                        out.extend(result)
                    else:
                        out.append(result)
                return out
            if not _ARRAY_INDEX.fullmatch(token):
                raise PointerError(f"{token!r} is not an array index")
            index = int(token)
            if index >= len(value):
                raise PointerError(f"index {index} is past the end of the array")
            value = value[index]
        else:
            raise PointerError(f"cannot descend into a {type(value).__name__} with {token!r}")
    return value
