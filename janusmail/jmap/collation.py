"""RFC 4790 collations for JMAP /query sorts and substring filters (the Session's ``collationAlgorithms``).

Why keys rather than comparators: Python sorts by key, and a key per value lets a query sort a few thousand
names with one ``sorted`` call. Approximations, stated honestly: ``i;unicode-casemap`` (RFC 5051) titlecases
and decomposes each character; we casefold and apply NFKD, which agrees on everything but a handful of
characters whose titlecase and casefold differ (e.g. some ligature forms).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from janusmail.jmap.settings import COLLATIONS

__all__ = ["DEFAULT", "contains", "key_function", "supported"]

DEFAULT = "i;unicode-casemap"


def _unicode_casemap(s: str) -> str:
    return unicodedata.normalize("NFKD", s.casefold())


def _ascii_casemap(s: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)


def _ascii_numeric(s: str) -> tuple[int, int]:
    """RFC 4790 §9.1: the leading decimal digits as a number; no leading digit sorts after every number."""
    n = 0
    digits = 0
    for c in s:
        if "0" <= c <= "9":
            n = n * 10 + (ord(c) - 48)
            digits += 1
        else:
            break
    return (0, n) if digits else (1, 0)


_KEYS: dict[str, Callable[[str], Any]] = {
    "i;unicode-casemap": _unicode_casemap,
    "i;ascii-casemap": _ascii_casemap,
    "i;ascii-numeric": _ascii_numeric,
    "i;octet": lambda s: s.encode("utf-8"),
}


def supported(name: str | None) -> bool:
    return name is None or name in COLLATIONS or name == "i;octet"


def key_function(name: str | None) -> Callable[[str], Any]:
    """Sort key for the collation (None = the default); KeyError for an unknown one."""
    return _KEYS[name or DEFAULT]


def contains(haystack: str, needle: str, collation: str | None = None) -> bool:
    """Substring match under a casemap collation (ascii-numeric has no substring operation: exact)."""
    name = collation or DEFAULT
    if name == "i;ascii-numeric":
        return haystack == needle
    fold = _KEYS[name]
    if name == "i;octet":
        return needle in haystack
    return fold(needle) in fold(haystack)
