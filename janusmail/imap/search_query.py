"""IMAP SEARCH keys (RFC 9051 §6.4.4, RFC 7162 MODSEQ, RFC 8474 EMAILID/THREADID, RFC 5032 OLDER/YOUNGER)
built into the store's query AST (:mod:`janusmail.store.search.ast`), which the store compiles and runs.

What this module decides is IMAP's meaning of each key; how it is evaluated (SQL, full text, or the row
cache) is the store's business:

==================  ================================================================================
flags               ``\\Seen`` etc. are the store's ``$seen`` keywords; ``\\Deleted`` is the membership's;
                    ``\\Recent`` is the session's recent UID ranges (IMAP4rev1), nothing under IMAP4rev2;
                    other system flags are never stored (nothing matches); keywords by lowercase key
FROM TO CC BCC      case-insensitive substring of the field's parsed addresses (decoded display names) or of
                    the field as received (group names: ``To: team:;``); "" = the field is present
SUBJECT             case-insensitive substring of the decoded subject
HEADER name value   FROM/TO/CC/BCC/SUBJECT as above; other fields a substring of the field's value
BODY / TEXT         case-insensitive substring ("contains the specified string": ``sdfghjk`` finds
                    ``asdfghjkl``) of the body text; TEXT also of every header field
dates               BEFORE/ON/SINCE on the internal date (UTC days); SENT* on the Date header's own calendar
                    day; SAVED* (RFC 8514) on the save date in this mailbox (UTC days); OLDER/YOUNGER
                    relative to the session's "now"
sequence sets       resolved to UID ranges through the session's snapshot before building
==================  ================================================================================
"""

from __future__ import annotations

import calendar
import datetime as _dt
from collections.abc import Callable

from janusmail.imap.codec import SequenceSet
from janusmail.imap.codec.searchkeys import (
    AllKey,
    And,
    BodyKey,
    DateKey,
    EmailIdKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SearchKey,
    SequenceKey,
    SizeKey,
    TextKey,
    ThreadIdKey,
    WithinKey,
)
from janusmail.store import keywords as kwmod
from janusmail.store.search import ast as q

__all__ = ["Resolver", "build_condition", "has_modseq"]

Resolver = Callable[[SequenceSet, bool], list[tuple[int, int]]]
_DAY = 86400
_ADDRESS = frozenset(q.ADDRESS_FIELDS)


def _day_start(d: _dt.date) -> int:
    return calendar.timegm((d.year, d.month, d.day, 0, 0, 0))


def _uids(ranges: list[tuple[int, int]]) -> q.Condition:
    return q.UidIn(tuple(ranges)) if ranges else q.Nothing()


def _flag(key: FlagKey, recent: list[tuple[int, int]]) -> q.Condition:
    low = key.flag.lower()
    system = kwmod.IMAP_SYSTEM.get(low)
    cond: q.Condition
    if system is not None:
        cond = q.Keyword(system)
    elif low == "\\deleted":
        cond = q.Deleted()
    elif low == "\\recent":
        cond = _uids(recent)
    elif low.startswith("\\") or low in kwmod.SYSTEM_BITS:  # a system flag we never store, or `KEYWORD $seen`:
        cond = q.Nothing()  # IMAP never stores `$seen` as a keyword, so it must not name the \Seen bit
    else:
        cond = q.Keyword(low)
    return cond if key.present else q.Not(cond)


def _address(name: str, value: str) -> q.Condition:
    """An address field: the parsed list holds decoded names, the field as received holds what parsing
    drops (a group's name, comments); "" asks whether the field is there at all, even as an empty group."""
    return q.Or((q.Address(name, (value,)), q.Header(name, value or None)))  # type: ignore[arg-type]


def _header(key: HeaderKey) -> q.Condition:
    name, value = key.name.lower(), key.value
    if name in _ADDRESS:
        return _address(name, value)
    if name == "subject" and value:
        return q.SubjectContains(value)
    return q.Header(name, value or None)


def _date(key: DateKey) -> q.Condition:
    start = _day_start(key.date)
    make: Callable[[q.Compare, int], q.Condition]
    if key.field == "saved":  # RFC 8514: the membership's save date, a condition of its own
        make = q.SavedDate
    else:
        fld = "received" if key.field == "internal" else "sent"
        make = lambda op, epoch: q.Date(fld, op, epoch)  # noqa: E731
    if key.op == "before":
        return make("lt", start)
    if key.op == "since":
        return make("ge", start)
    return q.And((make("ge", start), make("lt", start + _DAY)))


def build_condition(key: SearchKey, resolve: Resolver, *, recent: list[tuple[int, int]] | None = None,
                    now: int = 0) -> q.Condition:
    """The AST of a SEARCH key tree: ``resolve`` maps a sequence set (or ``UID set``) to UID ranges through
    the session's snapshot, ``recent`` are the \\Recent UID ranges, ``now`` the epoch for OLDER/YOUNGER."""
    recent = recent or []

    def build(k: SearchKey) -> q.Condition:  # noqa: PLR0911 - one case per key
        match k:
            case AllKey():
                return q.All()
            case And(keys=keys):
                return q.And(tuple(build(x) for x in keys)) if keys else q.All()
            case Or(left=left, right=right):
                return q.Or((build(left), build(right)))
            case Not(key=inner):
                return q.Not(build(inner))
            case FlagKey():
                return _flag(k, recent)
            case HeaderKey():
                return _header(k)
            case BodyKey(value=value):
                return q.Contains("body", value)
            case TextKey(value=value):
                return q.Contains("text", value)
            case DateKey():
                return _date(k)
            case SizeKey(op=op, size=size):
                return q.Size("gt" if op == "larger" else "lt", size)
            case SequenceKey(sequence=seq, uid=uid):
                return _uids(resolve(seq, uid))
            case ModSeqKey(modseq=modseq):
                return q.ModSeqAtLeast(modseq)
            case EmailIdKey(email_id=email_id):
                return q.EmailIs(email_id)
            case ThreadIdKey(thread_id=thread_id):
                return q.ThreadIs(thread_id)
            case WithinKey(op=op, seconds=seconds):
                return q.Date("received", "le" if op == "older" else "ge", now - seconds)
        raise ValueError(f"unsupported search key {k!r}")

    return build(key)


def has_modseq(key: SearchKey) -> bool:
    """RFC 7162 §3.1.5: a search with MODSEQ answers with the highest MODSEQ of the matches."""
    match key:
        case ModSeqKey():
            return True
        case And(keys=keys):
            return any(has_modseq(k) for k in keys)
        case Or(left=left, right=right):
            return has_modseq(left) or has_modseq(right)
        case Not(key=inner):
            return has_modseq(inner)
    return False
