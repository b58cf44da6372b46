"""IMAP SEARCH keys compiled to one SQL condition over ``messages`` joined to ``emails``.

Every key of RFC 9051 §6.4.4 (plus MODSEQ, EMAILID/THREADID, OLDER/YOUNGER) becomes SQL, so a search is one
query whatever its shape (NOT/OR nest freely), on SQLite and PostgreSQL alike:

==================  ================================================================================
flags               bits on ``emails.flags`` (one set per email); ``\\Deleted`` is ``messages.deleted``;
                    keywords are an EXISTS on ``email_keywords`` (lower-case key); ``\\Recent`` is the
                    session's recent UID ranges (IMAP4rev1), nothing under IMAP4rev2
FROM TO CC BCC      case-insensitive substring of ``emails.addr_*`` (lower-cased "name <addr>" lists)
SUBJECT             case-insensitive substring of the decoded subject
HEADER name value   other fields: substring of the field's value in the MIME cache's header list, through
                    the database's JSON functions (SQLite ``json_each``, PostgreSQL ``json_array_elements``).
                    Exact but unindexed: a scan of the mailbox's cache column (seconds on 100k messages)
BODY / TEXT         the full-text index: SQLite FTS5 ``email_fts``, PostgreSQL ``email_search`` tsvector.
                    Word semantics, not raw substrings: the string's words must appear in order, the last
                    one as a prefix ("brown fo" finds "brown fox"), case- and (SQLite) accent-insensitive.
                    TEXT searches subject, addresses and body; BODY the body only. A string without any
                    word character falls back to a substring scan of the indexed text.
dates               BEFORE/ON/SINCE on the internal date (UTC days); SENT* on the Date header's own
                    calendar day (its offset applied), falling back to the internal date when absent
sizes, UID, seqs    plain comparisons / ``BETWEEN`` ranges; sequence numbers map to UIDs through the
                    session's snapshot before compiling
MODSEQ              ``messages.modseq >= n`` (per-flag entry names are accepted and ignored: one modseq
                    per message)
EMAILID, THREADID   exact, case-sensitive id comparison
==================  ================================================================================
"""

from __future__ import annotations

import calendar
import datetime as _dt
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

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
from janusmail.store.membership import uid_condition
from janusmail.store.schema import (
    FLAG_ANSWERED,
    FLAG_DRAFT,
    FLAG_FLAGGED,
    FLAG_SEEN,
    email_keywords,
    emails,
    messages,
)

__all__ = ["SearchContext", "compile_key", "fts_words", "has_modseq", "like_pattern", "search_query"]

_BITS = {"\\seen": FLAG_SEEN, "\\answered": FLAG_ANSWERED, "\\flagged": FLAG_FLAGGED, "\\draft": FLAG_DRAFT}
_ADDR_COLUMNS = {"from": emails.c.addr_from, "to": emails.c.addr_to, "cc": emails.c.addr_cc,
                 "bcc": emails.c.addr_bcc}
_WORD = re.compile(r"\w+")
_DAY = 86400

Resolver = Callable[[SequenceSet, bool], list[tuple[int, int]]]


@dataclass
class SearchContext:
    """What compiling needs from the session: the mailbox, the backend, the sequence-set resolver (through the
    session's snapshot), the \\Recent ranges (IMAP4rev1; empty otherwise) and "now" for OLDER/YOUNGER."""

    mailbox_id: str
    account_id: str
    sqlite: bool
    resolve: Resolver
    recent: list[tuple[int, int]] = field(default_factory=list)
    now: int = 0
    #: set while compiling when the condition reads ``emails`` columns (else the query skips the join)
    uses_emails: bool = False
    _names: itertools.count = field(default_factory=itertools.count)

    def bind(self, prefix: str) -> str:
        """A fresh bind-parameter name for raw SQL fragments (several HEADER keys in one query)."""
        return f"{prefix}_{next(self._names)}"


def like_pattern(value: str) -> str:
    """``%value%`` for LIKE with ``\\`` as the escape character."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _contains(col: Any, value: str) -> sa.ColumnElement[bool]:
    """Case-insensitive substring (``lower()`` on both sides: SQLite folds ASCII only, PostgreSQL all)."""
    return sa.func.lower(col).like(like_pattern(value.lower()), escape="\\")


def _day_start(d: _dt.date) -> int:
    return calendar.timegm((d.year, d.month, d.day, 0, 0, 0))


def _date_cond(expr: Any, op: str, d: _dt.date) -> sa.ColumnElement[bool]:
    start = _day_start(d)
    if op == "before":
        return expr < start
    if op == "since":
        return expr >= start
    return sa.and_(expr >= start, expr < start + _DAY)


def _sent_local() -> Any:
    """The Date header as local wall-clock seconds (so SENTON compares the sender's calendar day)."""
    e = emails.c
    return sa.func.coalesce(e.sent_at + sa.func.coalesce(e.sent_offset, 0) * 60, e.received_at)


def fts_words(value: str) -> list[str]:
    """The words of a search string, as the full-text index tokenises them."""
    return _WORD.findall(value)


def _fts(ctx: SearchContext, value: str, body_only: bool) -> sa.ColumnElement[bool]:
    words = fts_words(value)
    if not words:
        return _text_scan(ctx, value, body_only)
    if ctx.sqlite:
        phrase = '"' + " ".join(words) + '"*'
        query = f"body : {phrase}" if body_only else phrase
        name = ctx.bind("fts")
        sub = sa.text(f"SELECT email_id FROM email_fts WHERE email_fts MATCH :{name}").bindparams(
            sa.bindparam(name, query)).columns(sa.column("email_id"))
        return messages.c.email_id.in_(sub.subquery().select())
    # PostgreSQL: the GIN index is on this exact expression; words in order, the last as a prefix, or the
    # whole string as the parser reads it (so "bob@example.com", one token there, matches too).
    doc = "to_tsvector('simple', subject || ' ' || addresses || ' ' || body)"
    tsq = " <-> ".join(f"'{w.lower()}'" for w in words) + ":*"
    q1, q2, acct = ctx.bind("tsq"), ctx.bind("tsp"), ctx.bind("acct")
    cond = f"({doc} @@ to_tsquery('simple', :{q1}) OR {doc} @@ plainto_tsquery('simple', :{q2}))"
    if body_only:
        cond += (f" AND (to_tsvector('simple', body) @@ to_tsquery('simple', :{q1})"
                 f" OR to_tsvector('simple', body) @@ plainto_tsquery('simple', :{q2}))")
    sub = sa.text(f"SELECT email_id FROM email_search WHERE account_id = :{acct} AND {cond}").bindparams(
        sa.bindparam(q1, tsq), sa.bindparam(q2, value), sa.bindparam(acct, ctx.account_id),
    ).columns(sa.column("email_id"))
    return messages.c.email_id.in_(sub.subquery().select())


def _text_scan(ctx: SearchContext, value: str, body_only: bool) -> sa.ColumnElement[bool]:
    """No word characters (``TEXT "@"``): a substring scan of the indexed text; slow but rare."""
    pat, acct = ctx.bind("pat"), ctx.bind("acct")
    table = "email_fts" if ctx.sqlite else "email_search"
    cols = ["body"] if body_only else ["subject", "addresses", "body"]
    where = " OR ".join(f"lower({c}) LIKE :{pat} ESCAPE '\\'" for c in cols)
    sub = sa.text(f"SELECT email_id FROM {table} WHERE account_id = :{acct} AND ({where})").bindparams(
        sa.bindparam(pat, like_pattern(value.lower())), sa.bindparam(acct, ctx.account_id),
    ).columns(sa.column("email_id"))
    return messages.c.email_id.in_(sub.subquery().select())


def _generic_header(ctx: SearchContext, name: str, value: str) -> sa.ColumnElement[bool]:
    ctx.uses_emails = True
    hn, hv = ctx.bind("hname"), ctx.bind("hval")
    if ctx.sqlite:
        sql = (f"EXISTS (SELECT 1 FROM json_each(CAST(emails.cache AS TEXT), '$.headers') AS hdr "
               f"WHERE lower(json_extract(hdr.value, '$[0]')) = :{hn} "
               f"AND lower(json_extract(hdr.value, '$[1]')) LIKE :{hv} ESCAPE '\\')")
    else:
        # json (not jsonb) and NUL escapes removed: a \u0000 in one message must not fail the whole search
        sql = (f"EXISTS (SELECT 1 FROM json_array_elements(replace(convert_from(emails.cache, 'UTF8'), "
               f"'\\u0000', '')::json -> 'headers') AS hdr(v) "
               f"WHERE lower(hdr.v ->> 0) = :{hn} AND lower(hdr.v ->> 1) LIKE :{hv} ESCAPE '\\')")
    return sa.text(sql).bindparams(sa.bindparam(hn, name.lower()), sa.bindparam(hv, like_pattern(value.lower())))


def _header(ctx: SearchContext, key: HeaderKey) -> sa.ColumnElement[bool]:
    ctx.uses_emails = True
    name, value = key.name.lower(), key.value
    col = _ADDR_COLUMNS.get(name)
    if col is not None:
        return col != "" if value == "" else _contains(col, value)
    if name == "subject":
        return _contains(emails.c.subject, value) if value else _generic_header(ctx, name, "")
    return _generic_header(ctx, name, value)


def _flag(ctx: SearchContext, key: FlagKey) -> sa.ColumnElement[bool]:
    low = key.flag.lower()
    bit = _BITS.get(low)
    if bit is not None:
        ctx.uses_emails = True
        test = emails.c.flags.op("&")(bit)
        return test != 0 if key.present else test == 0
    if low == "\\deleted":
        return messages.c.deleted.is_(True) if key.present else messages.c.deleted.is_(False)
    if low == "\\recent":
        cond = uid_condition(messages.c.uid, ctx.recent) if ctx.recent else sa.false()
        return cond if key.present else sa.not_(cond)
    if low.startswith("\\"):  # a system flag we never store
        return sa.false() if key.present else sa.true()
    k = email_keywords.c
    exists = sa.exists().where(k.email_id == messages.c.email_id, k.keyword == low)
    return exists if key.present else sa.not_(exists)


def compile_key(ctx: SearchContext, key: SearchKey) -> sa.ColumnElement[bool]:
    """The SQL condition for one key tree (columns of ``messages`` and ``emails``)."""
    m, e = messages.c, emails.c
    match key:
        case AllKey():
            return sa.true()
        case And(keys=keys):
            return sa.and_(*(compile_key(ctx, k) for k in keys)) if keys else sa.true()
        case Or(left=left, right=right):
            return sa.or_(compile_key(ctx, left), compile_key(ctx, right))
        case Not(key=inner):
            return sa.not_(compile_key(ctx, inner))
        case FlagKey():
            return _flag(ctx, key)
        case HeaderKey():
            return _header(ctx, key)
        case BodyKey(value=value):
            return _fts(ctx, value, body_only=True)
        case TextKey(value=value):
            return _fts(ctx, value, body_only=False)
        case DateKey(field=fld, op=op, date=d):
            ctx.uses_emails = True
            return _date_cond(e.received_at if fld == "internal" else _sent_local(), op, d)
        case SizeKey(op=op, size=size):
            ctx.uses_emails = True
            return e.size > size if op == "larger" else e.size < size
        case SequenceKey(sequence=seq, uid=uid):
            ranges = ctx.resolve(seq, uid)
            return uid_condition(m.uid, ranges) if ranges else sa.false()
        case ModSeqKey(modseq=modseq):
            return m.modseq >= modseq
        case EmailIdKey(email_id=email_id):
            return m.email_id == email_id
        case ThreadIdKey(thread_id=thread_id):
            ctx.uses_emails = True
            return e.thread_id == thread_id
        case WithinKey(op=op, seconds=seconds):
            ctx.uses_emails = True
            edge = ctx.now - seconds
            return e.received_at <= edge if op == "older" else e.received_at >= edge
    raise ValueError(f"unsupported search key {key!r}")


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


def search_query(ctx: SearchContext, key: SearchKey, *, below_uid: int | None = None) -> sa.Select:
    """``SELECT uid, modseq`` of the matching memberships, ascending UID: the whole search as one query."""
    m, e = messages, emails
    where = [m.c.mailbox_id == ctx.mailbox_id, compile_key(ctx, key)]
    if below_uid is not None:
        where.insert(1, m.c.uid < below_uid)
    # Without emails columns in the condition the join is skipped: TEXT/EMAILID/flags-on-membership searches
    # then never touch the wide emails rows.
    source = m.join(e, e.c.id == m.c.email_id) if ctx.uses_emails else m
    return sa.select(m.c.uid, m.c.modseq).select_from(source).where(*where).order_by(m.c.uid)
