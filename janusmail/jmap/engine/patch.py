"""PatchObject (RFC 8620 §5.3): ``{"keywords/$seen": true, "name": null}`` applied to a record.

Why reusable and pure: every type's ``/set update`` takes the same patch language, and the rules that make
a patch invalid (pointing into an array, a missing parent, one path being a prefix of another) are easy
to get subtly wrong. ``apply_patch`` never mutates its input, so a rejected patch leaves the record as it
was: each record update is atomic on its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .errors import SetError
from .pointer import PointerError, split_tokens

__all__ = ["apply_patch", "escape_token", "patched_properties", "server_set_mismatches", "validate_patch"]


def _invalid(description: str) -> SetError:
    return SetError("invalidPatch", description)


def validate_patch(patch: Any) -> list[tuple[tuple[str, ...], Any]]:
    """Syntax checks that need no record: returns ``[(tokens, value), ...]`` or raises invalidPatch.

    Checks: the patch is an object; each key is a pointer with valid ``~`` escapes; no key's path is a
    prefix of another's (``alerts`` with ``alerts/1/offset``).
    """
    if type(patch) is not dict:
        raise _invalid("a PatchObject must be a JSON object")
    entries: list[tuple[tuple[str, ...], Any]] = []
    for key, value in patch.items():
        try:
            tokens = tuple(split_tokens(key))
        except PointerError as exc:
            raise _invalid(f"bad path {key!r}: {exc}") from None
        entries.append((tokens, value))
    # After sorting, a path and any path it is a prefix of are neighbours (see module tests).
    ordered = sorted(entries, key=lambda e: e[0])
    for (a, _), (b, _) in zip(ordered, ordered[1:], strict=False):
        if b[: len(a)] == a:
            raise _invalid(f"path {'/'.join(a)!r} is a prefix of {'/'.join(b)!r}")
    return entries


def patched_properties(patch: Any) -> set[str]:
    """The top-level property names a (syntactically valid) patch touches."""
    return {tokens[0] for tokens, _ in validate_patch(patch)}


def apply_patch(
    obj: Mapping[str, Any], patch: Any, defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return a new record: ``obj`` with ``patch`` applied. Raises ``SetError("invalidPatch")``.

    ``null`` resets a top-level property to ``defaults[prop]`` when one is given, otherwise removes the
    member (a no-op if absent). Every parent on the path must already exist in ``obj`` and be an object:
    a pointer into an array is refused, arrays are replaced whole.
    """
    entries = validate_patch(patch)
    result = copy.deepcopy(dict(obj))
    for tokens, value in entries:
        parent: Any = result
        for depth, token in enumerate(tokens[:-1]):
            if type(parent) is not dict:
                raise _invalid(f"path {'/'.join(tokens)!r} goes through a non-object")
            if token not in parent:
                raise _invalid(f"path {'/'.join(tokens)!r}: {'/'.join(tokens[: depth + 1])!r} does not exist")
            parent = parent[token]
        if type(parent) is not dict:
            kind = "an array" if type(parent) is list else "a non-object"
            raise _invalid(f"path {'/'.join(tokens)!r} points inside {kind}")
        last = tokens[-1]
        if value is None:
            if len(tokens) == 1 and defaults is not None and last in defaults:
                parent[last] = copy.deepcopy(defaults[last])
            else:
                parent.pop(last, None)
        else:
            parent[last] = copy.deepcopy(value)
    return result


def escape_token(token: str) -> str:
    """One pointer token as it is written in a path (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return token.replace("~", "~0").replace("/", "~1")


def server_set_mismatches(path: str, given: Any, current: Any) -> list[str]:
    """The paths under ``path`` where ``given`` differs from ``current``.

    Why: a client may send a server-set property back unchanged (RFC 8620 §5.3, e.g. a whole Mailbox it
    read), but not change it; objects are compared member by member so the SetError names the member that
    differs (``myRights/mayDelete``), not the whole property. A member missing on either side differs.
    Types are compared strictly: ``1`` is not ``true``.
    """
    if type(given) is dict and type(current) is dict:
        out: list[str] = []
        for key in sorted(set(given) | set(current)):
            sub = f"{path}/{escape_token(key)}"
            if key not in given or key not in current:
                out.append(sub)
            else:
                out.extend(server_set_mismatches(sub, given[key], current[key]))
        return out
    if type(given) is type(current) and given == current:
        return []
    return [path]
