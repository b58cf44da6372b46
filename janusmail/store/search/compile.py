"""The one search compiler: a query AST (:mod:`.ast`) to SQLAlchemy + full text, for SQLite and PostgreSQL.

Two targets, one set of rules for every condition:

* a **mailbox search** (IMAP SEARCH): ``SELECT uid, modseq`` of one mailbox's memberships, ascending UID,
  joined to ``emails`` only when the condition reads an ``emails`` column (TEXT/EMAILID/flag-on-membership
  searches never touch the wide emails rows); :func:`mailbox_select`.
* an **email query** (JMAP Email/query): email ids of an account, filtered, sorted, optionally one per
  thread, windowed by the database (:class:`EmailSql`).

The compiler also decides what an index can answer and how:

==================  ================================================================================
keywords            ``$seen $answered $flagged $draft`` are bits on ``emails.flags``; others an EXISTS on
                    ``email_keywords`` (lower-case key)
Address             substring (LIKE) of the lower-cased ``emails.addr_*`` lists. ``words=True`` on SQLite:
                    the FTS5 ``addresses`` column narrows first (prefix words)
SubjectContains     substring of the decoded subject (scan)
Header              the MIME cache's header list through the database's JSON functions (SQLite
                    ``json_each``, PostgreSQL ``json_array_elements``); a value of 3+ characters first narrows
                    the candidates through the trigram index of the header text
Text                the word index (JMAP): SQLite FTS5 ``email_fts``, PostgreSQL ``email_search`` and the GIN
                    index on ``to_tsvector('simple', subject || ' ' || addresses || ' ' || body)``
Contains            the trigram index (IMAP TEXT/BODY): SQLite FTS5 ``email_trgm`` over ``email_text``,
                    PostgreSQL ``pg_trgm`` GIN on ``email_search (headers, body)`` with ILIKE. Strings shorter
                    than 3 characters (PostgreSQL: without 3 word characters in a row, which is all pg_trgm
                    can look up) cannot use it: a scan of the searched rows' text, correlated to each row, so a
                    mailbox search reads only that mailbox's
dates, sizes, ids   plain comparisons; UID sets ``BETWEEN``/``IN`` ranges; SavedDate the membership's
                    ``saved_at`` (mailbox searches only; not in the row cache, so always SQL)
==================  ================================================================================

Plans we rely on for Email/query (measured on 100k messages; see bench/jmap.py):

* ``ORDER BY received_at`` walks ``ix_emails_account_received`` and stops after the window, so the first
  screen reads ~50 rows. The tie-break must follow the index for that: SQLite's index entries end with the
  rowid, so SQLite breaks ties by rowid, PostgreSQL by id (incremental sort).
* collapseThreads in a LIMIT window with that sort is a NOT EXISTS ("no matching email of this thread sorts
  before this one"), which streams the same way. Other sorts, and the complete list (deep pages, anchors,
  /queryChanges), use ROW_NUMBER() OVER (PARTITION BY thread_id ORDER BY <sort>) = 1.
* SQLite often has no statistics for our tables and, left alone, probes ``messages`` through the mailbox index
  (a scan per row); ``_nx`` hides a column from the planner so the probe goes through ``email_id``. With a
  text condition the account column is hidden too, so candidates from the full-text index are looked up by
  id instead of the account's received_at index being walked and each row probed against them.

:func:`metadata_only` says whether a condition needs nothing but what the row cache holds, so a mailbox search
can run in memory (:mod:`.memory`) instead.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from janusmail.store.keywords import SYSTEM_BITS
from janusmail.store.schema import email_keywords, email_search, emails, messages
from janusmail.store.uidranges import uid_condition

from . import ast as q
from .index import EMAIL_TEXT, EMAIL_TRGM, UNINDEXED_FIELDS

__all__ = ["EmailSql", "fts_string", "fts_words", "like_pattern", "mailbox_select", "metadata_only"]

FTS = sa.table("email_fts", sa.column("email_id"), sa.column("account_id"), sa.column("subject"),
               sa.column("addresses"), sa.column("body"))
_ADDRESS_COLUMNS = {"from": "addr_from", "to": "addr_to", "cc": "addr_cc", "bcc": "addr_bcc"}
_SORT_COLUMNS = {"receivedAt": "received_at", "size": "size", "from": "from_sort", "to": "to_sort"}
_WORD = re.compile(r"\w+")
_PG_TRIGRAM = re.compile(r"\w{3}")
_OPS = {"lt": "__lt__", "le": "__le__", "ge": "__ge__", "gt": "__gt__"}


def like_pattern(value: str) -> str:
    """``%value%`` for LIKE with ``\\`` as the escape character."""
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fts_words(value: str) -> list[str]:
    """The words of a search string, as the full-text index tokenises them."""
    return _WORD.findall(value)


def fts_string(term: str, prefix: bool = False) -> str:
    """An FTS5 phrase string (quotes doubled), optionally a prefix query."""
    return '"' + term.replace('"', '""') + '"' + ("*" if prefix else "")


def _predicate(sql: str, *params: sa.BindParameter) -> Any:
    """A boolean SQL fragment as an expression that AND, OR and NOT can take (a bare ``text()`` fails in
    ``not_()``: IMAP ``NOT HEADER SUBJECT ""`` was a server error)."""
    return sa.type_coerce(sa.text(f"({sql})").bindparams(*params), sa.Boolean)


def _cmp(expr: Any, op: str, value: int) -> Any:
    return getattr(expr, _OPS[op])(value)


_METADATA = (q.All, q.Nothing, q.Keyword, q.Deleted, q.UidIn, q.ModSeqAtLeast, q.EmailIs, q.ThreadIs, q.Size,
             q.Not, q.And, q.Or)


def metadata_only(cond: q.Condition) -> bool:
    """True when the condition reads only what the mailbox row cache holds (flags, keywords, \\Deleted, UID,
    MODSEQ, ids, size, internal date): such a search of a big mailbox runs in memory, not in SQL."""
    for node in q.walk(cond):
        if isinstance(node, q.Date):
            if node.field != "received":
                return False
        elif not isinstance(node, _METADATA):
            return False
    return True


def reads_text_index(cond: q.Condition) -> bool:
    """True when the SQLite statement for ``cond`` reads the full-text tables (``email_fts``, ``email_trgm``,
    ``email_text``): the cases of :meth:`_Compiler.text`, ``contains``, ``address`` and ``header`` that use
    them. Such a search first indexes the mail still queued for them (search/queue.py); no other search needs
    to wait for that."""
    for node in q.walk(cond):
        match node:
            case q.Text(phrases=phrases) if phrases:
                return True
            case q.Contains(value=value) if value and "\x00" not in value:
                return True
            case q.Address(texts=texts) if node.words and any(fts_words(t) for t in texts):
                return True
            case q.Header(name=name, value=value) if (value and "\x00" not in value and len(value) >= q.TRIGRAM
                                                       and name.lower() not in UNINDEXED_FIELDS):
                return True
    return False


class _Compiler:
    """Conditions over an ``emails`` row ``e`` and, in a mailbox search, the membership ``messages``."""

    def __init__(self, sqlite: bool, account_id: str, *, membership: bool) -> None:
        self.sqlite = sqlite
        self.account_id = account_id
        self.membership = membership
        #: set while compiling a mailbox search when the condition reads ``emails`` columns
        self.uses_emails = False
        self._n = itertools.count()

    # -- small pieces ---------------------------------------------------------------------------------

    def n(self) -> int:
        return next(self._n)

    def alias(self, prefix: str = "e") -> Any:
        return emails.alias(f"{prefix}{self.n()}")

    def _nx(self, col: Any) -> Any:
        """SQLite: the same value, but not usable for index selection (see module docstring)."""
        return col.op("||")(sa.literal_column("''")) if self.sqlite else col

    def _e(self, e: Any) -> Any:
        if self.membership:
            self.uses_emails = True
        return e

    def _id(self, e: Any) -> Any:
        """The email id column: the membership's own in a mailbox search (no emails join needed)."""
        return messages.c.email_id if self.membership else e.c.id

    def _m(self, what: str) -> Any:
        if not self.membership:
            raise ValueError(f"{what} needs a mailbox search")
        return messages.c

    def visible(self, e: Any) -> Any:
        m = messages.alias(f"m{self.n()}")
        return sa.exists().where(m.c.email_id == e.c.id, m.c.deleted.is_(False))

    def has_keyword(self, e: Any, keyword: str | None, id_col: Any = None) -> Any:
        if keyword is None:
            return sa.false()
        bit = SYSTEM_BITS.get(keyword)
        if bit:
            return e.c.flags.op("&")(bit) != 0
        k = email_keywords.alias(f"k{self.n()}")
        return sa.exists().where(k.c.email_id == (e.c.id if id_col is None else id_col), k.c.keyword == keyword)

    def thread_some(self, e: Any, keyword: str | None, negate: bool = False) -> Any:
        """Some visible email of e's thread has (``negate``: lacks) the keyword."""
        e2 = self.alias("t")
        test = self.has_keyword(e2, keyword)
        return sa.exists().where(
            e2.c.thread_id == e.c.thread_id,
            e2.c.account_id == self.account_id,
            sa.not_(test) if negate else test,
            self.visible(e2),
        )

    # -- text -------------------------------------------------------------------------------------------

    def _fts_sqlite(self, query: str) -> Any:
        return sa.select(FTS.c.email_id).where(
            sa.literal_column("email_fts").op("MATCH")(query), FTS.c.account_id == self.account_id)

    def _phrases(self, e: Any, scope: str, phrases: tuple[str, ...]) -> Any:
        """JMAP: every term a phrase of whole words, all in one index lookup."""
        if self.sqlite:
            col = "" if scope == "all" else f"{scope} : "
            return self._id(e).in_(self._fts_sqlite(" AND ".join(col + fts_string(t) for t in phrases)))
        s = email_search.alias(f"s{self.n()}")
        tsq = None
        for t in phrases:
            one = sa.func.phraseto_tsquery(sa.literal_column("'simple'"), t)
            tsq = one if tsq is None else tsq.op("&&")(one)
        everything = s.c.subject.op("||")(" ").op("||")(s.c.addresses).op("||")(" ").op("||")(s.c.body)
        where = [s.c.account_id == self.account_id,
                 sa.func.to_tsvector(sa.literal_column("'simple'"), everything).op("@@")(tsq)]
        if scope != "all":
            where.append(sa.func.to_tsvector(sa.literal_column("'simple'"), s.c[scope]).op("@@")(tsq))
        return self._id(e).in_(sa.select(s.c.email_id).where(*where))

    def text(self, e: Any, node: q.Text) -> Any:
        if not node.phrases:
            return sa.true()
        return self._phrases(e, node.scope, node.phrases)

    # -- substrings (IMAP) ---------------------------------------------------------------------------------

    def trigram_usable(self, value: str) -> bool:
        """Whether the trigram index can find ``value``: SQLite's FTS5 trigrams cover every character;
        pg_trgm only runs of word characters (shorter strings would read the whole index)."""
        return len(value) >= q.TRIGRAM if self.sqlite else bool(_PG_TRIGRAM.search(value))

    def _trigram_ids(self, columns: tuple[str, ...], value: str) -> Any:
        """The ids of the emails (of any account on SQLite) whose text in ``columns`` contains ``value``."""
        if self.sqlite:
            col = "{" + " ".join(columns) + "}" if len(columns) > 1 else columns[0]
            hits = sa.select(EMAIL_TRGM.c.rowid).where(
                sa.literal_column("email_trgm").op("MATCH")(f"{col} : {fts_string(value)}"))
            t = EMAIL_TEXT.alias(f"x{self.n()}")
            return sa.select(t.c.email_id).where(t.c.id.in_(hits))
        s = email_search.alias(f"s{self.n()}")
        pattern = like_pattern(value)
        return sa.select(s.c.email_id).where(
            s.c.account_id == self.account_id, sa.or_(*(s.c[c].ilike(pattern, escape="\\") for c in columns)))

    def _text_scan(self, e: Any, columns: tuple[str, ...], value: str) -> Any:
        """``value`` in the text of this row's email, looked up by its id: what a string too short for the
        trigram index costs is a read of the searched rows only (a mailbox's, in a mailbox search)."""
        if self.sqlite:  # LIKE: ASCII case-insensitive, as SQLite's own lower() is
            m, t = EMAIL_TEXT.alias(f"x{self.n()}"), EMAIL_TRGM.alias(f"t{self.n()}")
            pattern = like_pattern(value)
            return sa.exists().where(m.c.email_id == self._id(e), t.c.rowid == m.c.id,
                                     sa.or_(*(t.c[c].like(pattern, escape="\\") for c in columns)))
        s = email_search.alias(f"s{self.n()}")
        needle = sa.func.lower(sa.literal(value, sa.Text))
        return sa.exists().where(s.c.email_id == self._id(e),
                                 sa.or_(*(sa.func.strpos(sa.func.lower(s.c[c]), needle) > 0 for c in columns)))

    def contains(self, e: Any, node: q.Contains) -> Any:
        if not node.value:
            return sa.true()
        if "\x00" in node.value:  # no indexed text holds NUL (and PostgreSQL refuses it as a parameter)
            return sa.false()
        columns = ("headers", "body") if node.scope == "text" else ("body",)
        if self.trigram_usable(node.value):
            return self._id(e).in_(self._trigram_ids(columns, node.value))
        return self._text_scan(e, columns, node.value)

    def address(self, e: Any, node: q.Address) -> Any:
        column = self._e(e).c[_ADDRESS_COLUMNS[node.field]]
        if not node.texts:
            return sa.true()
        likes = [column != "" if t == "" else column.like(like_pattern(t.lower()), escape="\\") for t in node.texts]
        words = [t for t in node.texts if fts_words(t)]
        if node.words and words and self.sqlite:
            # the address words of the index narrow the candidates, the column decides
            query = " AND ".join(f"addresses : {fts_string(t, prefix=True)}" for t in words)
            return sa.and_(self._id(e).in_(self._fts_sqlite(query)), *likes)
        return sa.and_(*likes) if len(likes) > 1 else likes[0]

    def header(self, e: Any, name: str, value: str | None) -> Any:
        """A header field of that name exists (and contains ``value``, case-insensitively): a scan of the
        cached header list, of only the candidates the trigram index of the header text gives when it can."""
        if value and "\x00" in value:  # stored header values never hold NUL
            return sa.false()
        e = self._e(e)
        # e.id, not the membership's email_id: PostgreSQL pushes the OR of an IMAP FROM down to the emails scan,
        # where only e's columns let the narrowing come before the scan of each row's header list
        narrow = e.c.id.in_(self._trigram_ids(("headers",), value)) if (
            value and self.trigram_usable(value) and name.lower() not in UNINDEXED_FIELDS) else None
        n = self.n()
        params = [sa.bindparam(f"hn{n}", name.lower())]
        if self.sqlite:
            sql = (f"EXISTS (SELECT 1 FROM json_each(CAST({e.name}.cache AS TEXT), '$.headers') AS h{n} "
                   f"WHERE lower(json_extract(h{n}.value, '$[0]')) = :hn{n}")
            if value:
                sql += f" AND lower(json_extract(h{n}.value, '$[1]')) LIKE :hv{n} ESCAPE '\\'"
        else:
            # json (not jsonb) and NUL escapes removed: a \u0000 in one message must not fail the whole search
            sql = (f"EXISTS (SELECT 1 FROM json_array_elements(replace(convert_from({e.name}.cache, 'UTF8'), "
                   f"'\\u0000', '')::json -> 'headers') AS h{n}(v) WHERE lower(h{n}.v ->> 0) = :hn{n}")
            if value:
                sql += f" AND lower(h{n}.v ->> 1) LIKE :hv{n} ESCAPE '\\'"
        if value:
            params.append(sa.bindparam(f"hv{n}", like_pattern(value.lower())))
        scan = _predicate(sql + ")", *params)
        return scan if narrow is None else sa.and_(narrow, scan)

    # -- the tree ---------------------------------------------------------------------------------------

    def condition(self, e: Any, node: q.Condition) -> Any:  # noqa: C901, PLR0911, PLR0912 - one case per node
        match node:
            case q.All():
                return sa.true()
            case q.Nothing():
                return sa.false()
            case q.And(items=items):
                return sa.and_(sa.true(), *(self.condition(e, i) for i in items))
            case q.Or(items=items):
                return sa.or_(sa.false(), *(self.condition(e, i) for i in items))
            case q.Not(item=q.Deleted()):
                return self._m("\\Deleted").deleted.is_(False)
            case q.Not(item=item):
                return sa.not_(self.condition(e, item))
            case q.Keyword(keyword=kw):
                if kw in SYSTEM_BITS:
                    return self.has_keyword(self._e(e), kw)
                return self.has_keyword(e, kw, self._id(e))
            case q.ThreadKeyword(keyword=kw, quantifier=quant):
                e = self._e(e)
                if quant == "some":
                    return self.thread_some(e, kw)
                if quant == "none":
                    return sa.not_(self.thread_some(e, kw))
                return sa.not_(self.thread_some(e, kw, negate=True))
            case q.Deleted():
                return self._m("\\Deleted").deleted.is_(True)
            case q.UidIn(ranges=ranges):
                return uid_condition(self._m("UID").uid, list(ranges)) if ranges else sa.false()
            case q.ModSeqAtLeast(modseq=modseq):
                return self._m("MODSEQ").modseq >= modseq
            case q.InMailbox(mailbox_id=mailbox_id):
                m = messages.alias(f"m{self.n()}")
                return sa.exists().where(m.c.email_id == self._id(e), self._nx(m.c.mailbox_id) == mailbox_id,
                                         m.c.deleted.is_(False))
            case q.InMailboxOtherThan(mailbox_ids=ids):
                m = messages.alias(f"m{self.n()}")
                cond = [m.c.email_id == self._id(e), m.c.deleted.is_(False)]
                if ids:
                    cond.append(self._nx(m.c.mailbox_id).not_in(list(ids)))
                return sa.exists().where(*cond)
            case q.EmailIs(email_id=email_id):
                return self._id(e) == email_id
            case q.ThreadIs(thread_id=thread_id):
                return self._e(e).c.thread_id == thread_id
            case q.Address():
                return self.address(e, node)
            case q.SubjectContains(text=text):
                return sa.func.lower(self._e(e).c.subject).like(like_pattern(text.lower()), escape="\\")
            case q.Header(name=name, value=value):
                return self.header(e, name, value)
            case q.Text():
                return self.text(e, node)
            case q.Contains():
                return self.contains(e, node)
            case q.Date(field=fld, op=op, epoch=epoch):
                c = self._e(e).c
                expr = (c.received_at if fld == "received"
                        else sa.func.coalesce(c.sent_at + sa.func.coalesce(c.sent_offset, 0) * 60, c.received_at))
                return _cmp(expr, op, epoch)
            case q.SavedDate(op=op, epoch=epoch):
                return _cmp(self._m("SAVEDATE").saved_at, op, epoch)
            case q.Size(op=op, size=size):
                return _cmp(self._e(e).c.size, op, size)
            case q.HasAttachment(value=value):
                return self._e(e).c.has_attachment.is_(value)
        raise ValueError(f"unsupported search condition {node!r}")


# -- mailbox searches (IMAP) ---------------------------------------------------------------------------------


def mailbox_select(cond: q.Condition, *, account_id: str, mailbox_id: str, sqlite: bool,
                   below_uid: int | None = None) -> sa.Select:
    """``SELECT uid, modseq`` of the matching memberships, ascending UID: the whole search as one query."""
    comp = _Compiler(sqlite, account_id, membership=True)
    m, e = messages, emails
    where = [m.c.mailbox_id == mailbox_id, comp.condition(e, cond)]
    if below_uid is not None:
        where.insert(1, m.c.uid < below_uid)
    source = m.join(e, e.c.id == m.c.email_id) if comp.uses_emails else m
    return sa.select(m.c.uid, m.c.modseq).select_from(source).where(*where).order_by(m.c.uid)


# -- email queries (JMAP) ------------------------------------------------------------------------------------


class EmailSql(_Compiler):
    """Email/query statements for one account on one backend."""

    def __init__(self, sqlite: bool, account_id: str) -> None:
        super().__init__(sqlite, account_id, membership=False)

    def tiebreak(self, e: Any) -> Any:
        return sa.literal_column(f"{e.name}.rowid") if self.sqlite else e.c.id

    @staticmethod
    def implies_visible(cond: q.Condition) -> bool:
        """True when every match is already known to have a visible membership (an ANDed inMailbox)."""
        return any(isinstance(c, q.InMailbox | q.InMailboxOtherThan) for c in q.conjuncts(cond))

    @staticmethod
    def selective(cond: q.Condition) -> bool:
        """True when an ANDed text condition narrows the search to an index's candidate list."""
        return any((isinstance(c, q.Text) and c.phrases) or (isinstance(c, q.Address) and c.texts)
                   or (isinstance(c, q.Contains) and len(c.value) >= q.TRIGRAM) for c in q.conjuncts(cond))

    def matching(self, e: Any, cond: q.Condition) -> Any:
        """Account + condition + visibility (an email with only \\Deleted memberships does not exist).

        With a text condition the candidates come from the full-text index, so SQLite must look them up by
        id rather than walk the account's received_at index and probe the candidate list 100k times."""
        account = self._nx(e.c.account_id) if self.selective(cond) else e.c.account_id
        parts = [account == self.account_id, self.condition(e, cond)]
        if not self.implies_visible(cond):
            parts.append(self.visible(e))
        return sa.and_(*parts)

    # -- sorting ----------------------------------------------------------------------------------------

    def sort_expr(self, e: Any, key: q.SortKey) -> Any:
        p = key.prop
        if p in _SORT_COLUMNS:
            return e.c[_SORT_COLUMNS[p]]
        if p == "sentAt":
            return sa.func.coalesce(e.c.sent_at, e.c.received_at)
        if p == "subject":
            return sa.func.lower(e.c.base_subject)
        if p == "hasKeyword":
            test = self.has_keyword(e, key.keyword)
        elif p == "someInThreadHaveKeyword":
            test = self.thread_some(e, key.keyword)
        else:  # allInThreadHaveKeyword
            test = sa.not_(self.thread_some(e, key.keyword, negate=True))
        return sa.case((test, 1), else_=0)

    @staticmethod
    def effective_sort(sort: tuple[q.SortKey, ...] | list[q.SortKey]) -> list[q.SortKey]:
        """No sort given: newest first (a stable order is all RFC 8620 asks for)."""
        return list(sort) or [q.SortKey("receivedAt", False)]

    def order_by(self, e: Any, sort: Any) -> list[Any]:
        sort = self.effective_sort(sort)
        out = [self.sort_expr(e, k).asc() if k.ascending else self.sort_expr(e, k).desc() for k in sort]
        tb = self.tiebreak(e)
        out.append(tb.asc() if sort[0].ascending else tb.desc())
        return out

    @staticmethod
    def streams(sort: Any) -> bool:
        """Whether the sort follows an index (receivedAt only), so LIMIT stops the scan early."""
        sort = EmailSql.effective_sort(sort)
        return len(sort) == 1 and sort[0].prop == "receivedAt"

    def _sorts_before(self, a: Any, b: Any, ascending: bool) -> Any:
        """Row ``a`` comes before row ``b`` in receivedAt order (with the tie-break)."""
        ta, tb = self.tiebreak(a), self.tiebreak(b)
        if ascending:
            return sa.or_(a.c.received_at < b.c.received_at, sa.and_(a.c.received_at == b.c.received_at, ta < tb))
        return sa.or_(a.c.received_at > b.c.received_at, sa.and_(a.c.received_at == b.c.received_at, ta > tb))

    # -- whole statements ---------------------------------------------------------------------------------

    def keyed_list(self, query: q.EmailQuery, only: Sequence[str] | None = None) -> Any:
        """``(id, s0 .. sk, tb)`` of every result in order (the whole list, for deep pages, anchors and
        /queryChanges), each result's sort values and tie-break beside its id so that a cached list can later be
        patched in Python (:mod:`.result_patch`). Collapsing ranks each thread's matches with ROW_NUMBER().

        ``only``: the results among these emails alone. When collapsing, give whole threads: the email
        standing for a thread is chosen among the given ones."""
        effective = self.effective_sort(query.sort)
        e = self.alias()
        keys = [self.sort_expr(e, k).label(f"s{i}") for i, k in enumerate(effective)]
        where = [self.matching(e, query.condition)]
        if only is not None:
            where.append(e.c.id.in_(list(only)))
        if not query.collapse:
            return sa.select(e.c.id, *keys, self.tiebreak(e).label("tb")).where(*where).order_by(
                *self.order_by(e, query.sort))
        inner = sa.select(
            e.c.id.label("id"), *keys, self.tiebreak(e).label("tb"),
            sa.func.row_number().over(partition_by=e.c.thread_id, order_by=self.order_by(e, query.sort)).label("rn"),
        ).where(*where).subquery("w")
        outer_order = [inner.c[f"s{i}"].asc() if k.ascending else inner.c[f"s{i}"].desc()
                       for i, k in enumerate(effective)]
        outer_order.append(inner.c.tb.asc() if effective[0].ascending else inner.c.tb.desc())
        columns = [inner.c.id, *(inner.c[f"s{i}"] for i in range(len(effective))), inner.c.tb]
        return sa.select(*columns).where(inner.c.rn == 1).order_by(*outer_order)

    def window(self, query: q.EmailQuery, offset: int, limit: int | None, stream: bool = True) -> Any:
        """The ids at [offset, offset + limit) of the (collapsed) results, windowed by the database.

        With a receivedAt sort and ``stream``, collapsing is "no matching email of the thread sorts before this
        one" (NOT EXISTS), which the database evaluates only for the rows it walks to fill the window: the
        first screen of a 100k mailbox reads ~100 rows instead of ranking all of them. Otherwise it is
        :meth:`keyed_list`'s ROW_NUMBER() form, which costs the same when every row is needed."""
        if query.collapse and stream and self.streams(query.sort):
            cond, e, e2 = query.condition, self.alias(), self.alias("c")
            ascending = self.effective_sort(query.sort)[0].ascending
            earlier = sa.exists().where(
                e2.c.thread_id == e.c.thread_id, self._sorts_before(e2, e, ascending), self.matching(e2, cond))
            stmt = sa.select(e.c.id).where(self.matching(e, cond), sa.not_(earlier)).order_by(
                *self.order_by(e, query.sort))
        else:
            keyed = self.keyed_list(query)
            stmt = keyed.with_only_columns(keyed.selected_columns[0])
        return stmt.limit(limit).offset(offset)

    def count(self, query: q.EmailQuery) -> Any:
        e = self.alias()
        what = sa.func.count(sa.distinct(e.c.thread_id)) if query.collapse else sa.func.count()
        return sa.select(what).select_from(e).where(self.matching(e, query.condition))
