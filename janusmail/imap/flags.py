"""IMAP flags <-> the store's keywords (one set per email) and \\Deleted (per membership).

Shared by every IMAP command that reads or writes flags (FETCH, STORE, APPEND, the selected-mailbox updates),
so the mapping of ../shared/spec/rfc-digest.md §3.3 lives in exactly one place.
"""

from __future__ import annotations

from collections.abc import Iterable

from janusmail.store import keywords as kwmod
from janusmail.store.model import InvalidKeyword

SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
#: The system flags alone (a mailbox's FLAGS adds its keywords: :func:`mailbox_flags`, :func:`permanent_flags_code`).
FLAGS_LINE = "(" + " ".join(SYSTEM_FLAGS) + ")"
PERMANENT_FLAGS = "(" + " ".join(SYSTEM_FLAGS) + " \\*)"


def mailbox_flags(keywords: Iterable[str]) -> list[str]:
    """The ``* FLAGS`` list of a mailbox: the system flags, then the keywords defined in it (RFC 9051 §7.3.5:
    a client may only expect the flags listed here in FETCH FLAGS, so every keyword in use must appear)."""
    return [*SYSTEM_FLAGS, *keywords]


def permanent_flags_code(keywords: Iterable[str], readonly: bool) -> str:
    """The ``PERMANENTFLAGS`` response code: nothing is permanent in a read-only mailbox; otherwise the system
    flags, the keywords in use, and ``\\*`` (clients may create keywords; RFC 9051 §6.3.2)."""
    if readonly:
        return "PERMANENTFLAGS ()"
    return "PERMANENTFLAGS (" + " ".join([*SYSTEM_FLAGS, *keywords, "\\*"]) + ")"


_BIT_FLAGS = (
    (kwmod.SYSTEM_BITS["$answered"], "\\Answered"),
    (kwmod.SYSTEM_BITS["$flagged"], "\\Flagged"),
    (kwmod.SYSTEM_BITS["$seen"], "\\Seen"),
    (kwmod.SYSTEM_BITS["$draft"], "\\Draft"),
)
#: Keywords the IANA registry marks JMAP-only: an IMAP client may not set them (NO [CANNOT]).
JMAP_ONLY = frozenset({"$seen", "$answered", "$flagged", "$draft"})


class FlagError(ValueError):
    """A flag IMAP must refuse; ``code`` is the response code (CANNOT, LIMIT, CLIENTBUG)."""

    def __init__(self, flag: str, code: str, text: str) -> None:
        super().__init__(text)
        self.flag, self.code, self.text = flag, code, text


def imap_flags(bits: int, keywords: Iterable[str], deleted: bool, recent: bool = False) -> list[str]:
    """The FETCH FLAGS list for one message: system flags from bits, keyword display spellings, \\Deleted."""
    out = [name for bit, name in _BIT_FLAGS if bits & bit]
    if deleted:
        out.append("\\Deleted")
    if recent:
        out.append("\\Recent")
    out.extend(keywords)
    return out


def from_imap(flags: Iterable[str]) -> tuple[list[str], bool]:
    """Split client flags into (store keywords in JMAP form, \\Deleted present); raise FlagError if refused.

    ``\\Recent`` cannot be stored (RFC 9051 §2.3.2); ``$recent`` is reserved; the JMAP-only spellings
    ``$seen``... are refused so that one flag never has two names over IMAP.
    """
    keywords: list[str] = []
    deleted = False
    for flag in flags:
        low = flag.lower()
        if low == "\\deleted":
            deleted = True
        elif low in kwmod.IMAP_SYSTEM:
            keywords.append(kwmod.IMAP_SYSTEM[low])
        elif low == "\\recent":
            raise FlagError(flag, "CANNOT", "\\Recent cannot be set")
        elif low.startswith("\\"):
            raise FlagError(flag, "CANNOT", f"{flag} is not a flag this server stores")
        elif low in JMAP_ONLY or low in kwmod.RESERVED:
            raise FlagError(flag, "CANNOT", f"{flag} is reserved; use the IMAP system flag")
        else:
            try:
                kwmod.validate(flag)
            except InvalidKeyword:
                raise FlagError(flag, "CLIENTBUG", f"invalid keyword {flag!r}") from None
            keywords.append(flag)
    if len(keywords) > kwmod.MAX_KEYWORDS:
        raise FlagError("", "LIMIT", "too many keywords")
    return keywords, deleted
