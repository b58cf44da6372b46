"""Result references (RFC 8620 §3.7): ``"#ids": {"resultOf": "c0", "name": "Email/query", "path": "/ids"}``.

Why deep-copied: the resolved value is a piece of an earlier *response*; if the next handler edited the
list it was given, the earlier response would change under the client's feet.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from .errors import MethodError
from .pointer import PointerError, evaluate

__all__ = ["resolve_references"]


def _invalid(description: str) -> MethodError:
    return MethodError("invalidResultReference", description=description)


def _resolve_one(ref: Any, responses: Sequence[Sequence[Any]]) -> Any:
    if (
        type(ref) is not dict
        or type(ref.get("resultOf")) is not str
        or type(ref.get("name")) is not str
        or type(ref.get("path")) is not str
    ):
        raise _invalid("a ResultReference needs string 'resultOf', 'name' and 'path'")
    for name, arguments, call_id in responses:
        if call_id == ref["resultOf"]:
            # Only the first response with that call id counts, even if a later one has the right name.
            if name != ref["name"]:
                raise _invalid(f"response to {ref['resultOf']!r} is {name!r}, not {ref['name']!r}")
            try:
                return copy.deepcopy(evaluate(arguments, ref["path"]))
            except PointerError as exc:
                raise _invalid(f"path {ref['path']!r}: {exc}") from None
    raise _invalid(f"no earlier response has the method call id {ref['resultOf']!r}")


def resolve_references(args: dict[str, Any], responses: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Return ``args`` with every ``#name`` argument replaced by ``name`` and its resolved value.

    ``responses`` are the ``[name, arguments, callId]`` triples produced so far in this request.
    Raises MethodError: invalidArguments when ``foo`` and ``#foo`` both appear, invalidResultReference when a
    reference cannot be resolved.
    """
    if not any(key.startswith("#") for key in args):
        return args
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key.startswith("#"):
            plain = key[1:]
            if plain in args:
                raise MethodError("invalidArguments", description=f"both '{plain}' and '#{plain}' were given")
            out[plain] = _resolve_one(value, responses)
        else:
            out[key] = value
    return out
