"""The SEARCH key tree (RFC 9051 §6.4.4, RFC 3501, RFC 7162 MODSEQ, RFC 8474 OBJECTID, RFC 5032 WITHIN).

The parser reduces the many spellings to a few node types, so the engine that compiles a search to SQL
has fewer cases: ``SEEN``/``UNSEEN``/``KEYWORD x`` all become :class:`FlagKey`, ``FROM x`` and
``HEADER From x`` both become :class:`HeaderKey`, ``NEW`` becomes ``And(Recent, Not Seen)``, and a
top-level list of keys is one :class:`And`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Literal

from .sequence import SequenceSet

__all__ = [
    "AllKey",
    "And",
    "BodyKey",
    "DateKey",
    "EmailIdKey",
    "FlagKey",
    "HeaderKey",
    "ModSeqKey",
    "Not",
    "Or",
    "SearchKey",
    "SequenceKey",
    "SizeKey",
    "TextKey",
    "ThreadIdKey",
    "WithinKey",
]


@dataclass(frozen=True, slots=True)
class AllKey:
    """``ALL``: every message."""


@dataclass(frozen=True, slots=True)
class FlagKey:
    """A flag test. ``flag`` is a canonical system flag (``\\Seen``, ``\\Recent``, ...) or a keyword as
    the client spelled it; ``present`` is False for the ``UN...`` forms and ``OLD``."""

    flag: str
    present: bool = True


@dataclass(frozen=True, slots=True)
class HeaderKey:
    """Substring match in a header field. ``name`` is lower case (``from``, ``subject``, ``x-foo``);
    FROM/TO/CC/BCC/SUBJECT arrive here too. An empty ``value`` matches any message having the field."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class BodyKey:
    """``BODY x``: substring of the body text."""

    value: str


@dataclass(frozen=True, slots=True)
class TextKey:
    """``TEXT x``: substring of header or body."""

    value: str


@dataclass(frozen=True, slots=True)
class DateKey:
    """``BEFORE/ON/SINCE`` (``field="internal"``), ``SENTBEFORE/SENTON/SENTSINCE`` (``field="sent"``) and
    RFC 8514 ``SAVEDBEFORE/SAVEDON/SAVEDSINCE`` (``field="saved"``). Dates compare by calendar day,
    disregarding time and zone."""

    field: Literal["internal", "sent", "saved"]
    op: Literal["before", "on", "since"]
    date: _dt.date


@dataclass(frozen=True, slots=True)
class SizeKey:
    """``LARGER n`` / ``SMALLER n`` (RFC 5322 size in octets)."""

    op: Literal["larger", "smaller"]
    size: int


@dataclass(frozen=True, slots=True)
class SequenceKey:
    """A bare sequence set (``uid=False``) or ``UID set`` (``uid=True``); may be ``$``."""

    sequence: SequenceSet
    uid: bool = False


@dataclass(frozen=True, slots=True)
class ModSeqKey:
    """``MODSEQ [entry-name entry-type] n`` (RFC 7162): messages with mod-sequence >= ``modseq``.
    ``entry`` is ``("/flags/\\seen", "all")`` when the optional metadata entry was given."""

    modseq: int
    entry: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class EmailIdKey:
    """``EMAILID x`` (RFC 8474); ``email_id`` is case-sensitive and compared exactly."""

    email_id: str


@dataclass(frozen=True, slots=True)
class ThreadIdKey:
    """``THREADID x`` (RFC 8474); case-sensitive."""

    thread_id: str


@dataclass(frozen=True, slots=True)
class WithinKey:
    """``OLDER n`` / ``YOUNGER n`` (RFC 5032): internal date relative to now, in seconds."""

    op: Literal["older", "younger"]
    seconds: int


@dataclass(frozen=True, slots=True)
class Not:
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Or:
    left: SearchKey
    right: SearchKey


@dataclass(frozen=True, slots=True)
class And:
    """All of ``keys`` (a parenthesised group or several top-level keys)."""

    keys: tuple[SearchKey, ...]


SearchKey = (
    AllKey
    | FlagKey
    | HeaderKey
    | BodyKey
    | TextKey
    | DateKey
    | SizeKey
    | SequenceKey
    | ModSeqKey
    | EmailIdKey
    | ThreadIdKey
    | WithinKey
    | Not
    | Or
    | And
)
