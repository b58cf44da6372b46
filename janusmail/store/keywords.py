"""Keywords: one set per email, shared by IMAP (flags) and JMAP (keywords); validation rules and the
keywords service (``store.keywords``).

RFC 8621 §4.1.1: JMAP keywords are returned in lowercase and ``$seen`` etc. stand for IMAP's ``\\Seen`` etc.
The store keys keywords by their lowercase form and keeps the first spelling IMAP used for FETCH FLAGS. The
four system flags are bits on the email row (fast UNSEEN / unread counts); ``\\Deleted`` is not a keyword at
all but a property of a mailbox membership, since IMAP expunges per mailbox.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .model import InvalidKeyword
from .schema import FLAG_ANSWERED, FLAG_DRAFT, FLAG_FLAGGED, FLAG_SEEN, email_keywords, mailboxes, messages

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

SYSTEM_BITS: dict[str, int] = {
    "$seen": FLAG_SEEN,
    "$answered": FLAG_ANSWERED,
    "$flagged": FLAG_FLAGGED,
    "$draft": FLAG_DRAFT,
}
IMAP_SYSTEM: dict[str, str] = {"\\seen": "$seen", "\\answered": "$answered", "\\flagged": "$flagged", "\\draft": "$draft"}
KEYWORD_TO_IMAP: dict[str, str] = {v: "\\" + k[2:].capitalize() for k, v in IMAP_SYSTEM.items()}
#: Keywords no client may set: $recent is reserved (RFC 8621 §4.1.1).
RESERVED = frozenset({"$recent"})
MAX_KEYWORDS = 200
_FORBIDDEN = set('()]{%*"\\ ')


def validate(keyword: str) -> str:
    """Return the lowercase key of a JMAP keyword / IMAP flag atom, or raise InvalidKeyword."""
    if not keyword or len(keyword) > 255:
        raise InvalidKeyword(keyword)
    for ch in keyword:
        if not ("\x21" <= ch <= "\x7e") or ch in _FORBIDDEN:
            raise InvalidKeyword(keyword)
    key = keyword.lower()
    if key in RESERVED:
        raise InvalidKeyword(keyword)
    return key


def split(keywords: dict[str, str]) -> tuple[int, dict[str, str]]:
    """Split {key: display} into (system flag bits, other keywords)."""
    bits = 0
    other: dict[str, str] = {}
    for key, display in keywords.items():
        bit = SYSTEM_BITS.get(key)
        if bit:
            bits |= bit
        else:
            other[key] = display
    return bits, other


def bits_to_keywords(bits: int) -> list[str]:
    return [k for k, b in SYSTEM_BITS.items() if bits & b]


def normalize(keywords: object) -> dict[str, str]:
    """Validate an iterable of keyword spellings into {lowercase key: display spelling}."""
    out: dict[str, str] = {}
    for kw in keywords:  # type: ignore[attr-defined]
        key = validate(kw)
        out.setdefault(key, kw)
    if len(out) > MAX_KEYWORDS:
        from .model import TooManyKeywords

        raise TooManyKeywords(str(len(out)))
    return out


class Keywords:
    """Which keywords a mailbox uses: IMAP's ``* FLAGS`` / ``PERMANENTFLAGS`` at SELECT (RFC 9051 §6.3.2).

    Keywords are stored per email (``email_keywords``), not per mailbox, so "the keywords defined in a mailbox"
    are the distinct keywords of the emails it holds: one grouped query over the mailbox's memberships, run once
    per SELECT; later additions are noticed by the session from the FETCH data it already reads.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def in_mailbox(self, account_id: str, mailbox_id: str) -> list[str]:
        """The distinct non-system keywords of the messages in a mailbox, in their IMAP spelling (``display``),
        one per case-insensitive key, sorted by key; empty for a mailbox that is not the account's."""
        k, m = email_keywords, messages
        q = (
            sa.select(k.c.keyword, sa.func.min(k.c.display))
            .select_from(m.join(k, k.c.email_id == m.c.email_id))
            .where(m.c.mailbox_id == mailbox_id,
                   sa.exists().where(mailboxes.c.id == mailbox_id, mailboxes.c.account_id == account_id))
            .group_by(k.c.keyword)
            .order_by(k.c.keyword)
        )
        with self._store.engine.connect() as conn:
            return [display for _key, display in conn.execute(q)]
