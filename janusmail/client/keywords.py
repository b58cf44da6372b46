"""IMAP flags and JMAP keywords: the mapping RFC 8621 §4.1.1 defines, for clients that see one message through
both doors.

Why a client needs it: IMAP's four system flags have JMAP spellings (``\\Seen`` is ``$seen``), JMAP keywords
are case-insensitive and servers return them in lowercase, and two IMAP flags have no keyword at all:
``\\Recent`` (session state, not exposed) and ``\\Deleted`` (a message marked ``\\Deleted`` in a mailbox is not
visible in that mailbox over JMAP). Comparing a FETCH FLAGS answer with an Email's ``keywords`` therefore means
comparing ``flags_to_keywords(flags)`` with ``normalize_keywords(keywords)``.
"""

from __future__ import annotations

from collections.abc import Iterable

#: IMAP system flag (lowercase) -> JMAP keyword.
SYSTEM_FLAGS: dict[str, str] = {"\\seen": "$seen", "\\answered": "$answered", "\\flagged": "$flagged",
                                "\\draft": "$draft"}
#: JMAP keyword -> IMAP system flag, in the spelling RFC 9051 uses.
KEYWORD_FLAGS: dict[str, str] = {kw: "\\" + flag[1:].capitalize() for flag, kw in SYSTEM_FLAGS.items()}
#: IMAP flags (lowercase) that have no JMAP keyword.
NOT_KEYWORDS = frozenset({"\\recent", "\\deleted"})


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def flags_to_keywords(flags: Iterable[str | bytes]) -> set[str]:
    """The JMAP keywords (lowercase) a message with these IMAP flags has: system flags mapped, ``\\Recent``
    and ``\\Deleted`` left out, other flags lowercased. Unknown backslash flags are kept as they are, so that a
    comparison shows them instead of hiding them."""
    out: set[str] = set()
    for raw in flags:
        low = _text(raw).lower()
        if low in NOT_KEYWORDS:
            continue
        out.add(SYSTEM_FLAGS.get(low, low))
    return out


def normalize_keywords(keywords: Iterable[str] | dict[str, bool] | None) -> set[str]:
    """An Email's ``keywords`` (a ``{keyword: true}`` object or a list) as a set of lowercase keywords."""
    if not keywords:
        return set()
    if isinstance(keywords, dict):
        return {k.lower() for k, v in keywords.items() if v}
    return {k.lower() for k in keywords}


def keywords_to_flags(keywords: Iterable[str] | dict[str, bool]) -> list[str]:
    """The IMAP flags for these JMAP keywords (for STORE FLAGS): system keywords spelled as IMAP flags, the
    others as given."""
    names = [k for k, v in keywords.items() if v] if isinstance(keywords, dict) else list(keywords)
    flags = {KEYWORD_FLAGS.get(k.lower(), k) for k in names}
    return sorted(flags, key=str.lower)


def is_deleted(flags: Iterable[str | bytes]) -> bool:
    """Whether IMAP FLAGS include ``\\Deleted`` (such a message is not visible in that mailbox over JMAP)."""
    return any(_text(f).lower() == "\\deleted" for f in flags)
