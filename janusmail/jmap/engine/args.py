"""Read typed method arguments, turning every bad value into ``invalidArguments`` (RFC 8620 §3.6.2).

Why: each standard method and every type-specific extra argument needs the same "missing / wrong type /
out of range" checks; one set of readers keeps the error texts and the null-versus-absent rules uniform.
``MISSING`` marks "not given", which differs from an explicit JSON null for nullable arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import invalid_arguments
from .types import JmapTypeError, check_int, check_unsigned_int, is_creation_ref, is_id

__all__ = [
    "MISSING",
    "check_known_arguments",
    "read_bool",
    "read_id",
    "read_id_list",
    "read_int",
    "read_object",
    "read_string",
    "read_string_list",
    "read_unsigned_int",
]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def check_known_arguments(args: Mapping[str, Any], known: set[str] | frozenset[str]) -> None:
    """Unknown arguments are refused rather than ignored: a typo must not silently change meaning."""
    unknown = sorted(k for k in args if k not in known)
    if unknown:
        raise invalid_arguments(f"unknown argument(s): {', '.join(unknown)}")


def _get(args: Mapping[str, Any], name: str, default: Any, required: bool) -> Any:
    if name not in args:
        if required:
            raise invalid_arguments(f"'{name}' is required")
        return default
    return args[name]


def read_bool(args: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = _get(args, name, default, False)
    if value is None:
        return default
    if type(value) is not bool:
        raise invalid_arguments(f"'{name}' must be a boolean")
    return value


def read_string(
    args: Mapping[str, Any], name: str, *, required: bool = False, nullable: bool = True, default: Any = None
) -> Any:
    value = _get(args, name, default, required)
    if value is None and nullable:
        return None
    if type(value) is not str:
        raise invalid_arguments(f"'{name}' must be a string")
    return value


def read_id(
    args: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    nullable: bool = True,
    allow_creation_ref: bool = False,
) -> str | None:
    """An Id argument; ``allow_creation_ref`` lets ``#k1`` through for the type layer to resolve."""
    value = _get(args, name, None, required)
    if value is None:
        if nullable:
            return None
        raise invalid_arguments(f"'{name}' must not be null")
    if is_id(value) or (allow_creation_ref and is_creation_ref(value)):
        return value
    raise invalid_arguments(f"'{name}' must be a valid Id")


def read_id_list(
    args: Mapping[str, Any],
    name: str,
    *,
    required: bool = False,
    nullable: bool = True,
    allow_creation_ref: bool = False,
) -> list[str] | None:
    value = _get(args, name, None, required)
    if value is None:
        if nullable:
            return None
        raise invalid_arguments(f"'{name}' must not be null")
    if type(value) is not list:
        raise invalid_arguments(f"'{name}' must be an array of Ids")
    for item in value:
        if not (is_id(item) or (allow_creation_ref and is_creation_ref(item))):
            raise invalid_arguments(f"'{name}' must be an array of valid Ids")
    return value


def read_string_list(args: Mapping[str, Any], name: str, *, nullable: bool = True) -> list[str] | None:
    value = _get(args, name, None, False)
    if value is None:
        if nullable:
            return None
        raise invalid_arguments(f"'{name}' must not be null")
    if type(value) is not list or not all(type(v) is str for v in value):
        raise invalid_arguments(f"'{name}' must be an array of strings")
    return value


def read_int(args: Mapping[str, Any], name: str, default: Any = None, *, nullable: bool = True) -> Any:
    value = _get(args, name, default, False)
    if value is None and nullable:
        return default
    try:
        return check_int(value, f"'{name}'")
    except JmapTypeError as exc:
        raise invalid_arguments(str(exc)) from None


def read_unsigned_int(
    args: Mapping[str, Any], name: str, default: Any = None, *, minimum: int = 0, nullable: bool = True
) -> Any:
    value = _get(args, name, default, False)
    if value is None and nullable:
        return default
    try:
        return check_unsigned_int(value, f"'{name}'", minimum=minimum)
    except JmapTypeError as exc:
        raise invalid_arguments(str(exc)) from None


def read_object(args: Mapping[str, Any], name: str, *, nullable: bool = True) -> dict[str, Any] | None:
    value = _get(args, name, None, False)
    if value is None:
        if nullable:
            return None
        raise invalid_arguments(f"'{name}' must not be null")
    if type(value) is not dict:
        raise invalid_arguments(f"'{name}' must be an object")
    return value
