"""Email/query compiled to SQL over emails / messages / email_keywords and the full-text index.

Every filter tree becomes one WHERE expression over an ``emails`` alias; membership and keyword tests are
correlated EXISTS probes (``messages.email_id`` and ``email_keywords``' primary key are indexed), thread
keyword conditions look at the other emails of the thread through ``emails.thread_id``, and text conditions
are an ``IN`` over the full-text index (SQLite FTS5 ``email_fts``; PostgreSQL ``email_search`` with the GIN
index on ``to_tsvector('simple', subject || ' ' || addresses || ' ' || body)``).

Plans we rely on (measured on 100k messages; see bench/jmap.py):

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
"""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa

from janusmail.jmap.engine import FilterOperator
from janusmail.store.keywords import SYSTEM_BITS
from janusmail.store.schema import email_keywords, email_search, emails, messages

from .email_filter import Condition, Leaf, SortKey

__all__ = ["EmailSql"]

_FTS = sa.table(
    "email_fts",
    sa.column("email_id"),
    sa.column("account_id"),
    sa.column("subject"),
    sa.column("addresses"),
    sa.column("body"),
)
_ADDRESS_COLUMNS = {"from": "addr_from", "to": "addr_to", "cc": "addr_cc", "bcc": "addr_bcc"}
_TEXT_KINDS = frozenset({"text", "subject", "body", "from", "to", "cc", "bcc"})
_SORT_COLUMNS = {"receivedAt": "received_at", "size": "size", "from": "from_sort", "to": "to_sort"}


def _fts_string(term: str, prefix: bool = False) -> str:
    return '"' + term.replace('"', '""') + '"' + ("*" if prefix else "")


class EmailSql:
    """SQL for one account on one backend."""

    def __init__(self, sqlite: bool, account_id: str) -> None:
        self.sqlite = sqlite
        self.account_id = account_id
        self._n = itertools.count()

    # -- small pieces ---------------------------------------------------------------------------------

    def alias(self, prefix: str = "e") -> Any:
        return emails.alias(f"{prefix}{next(self._n)}")

    def _nx(self, col: Any) -> Any:
        """SQLite: the same value, but not usable for index selection (see module docstring)."""
        return col.op("||")(sa.literal_column("''")) if self.sqlite else col

    def tiebreak(self, e: Any) -> Any:
        return sa.literal_column(f"{e.name}.rowid") if self.sqlite else e.c.id

    def visible(self, e: Any) -> Any:
        m = messages.alias(f"m{next(self._n)}")
        return sa.exists().where(m.c.email_id == e.c.id, m.c.deleted.is_(False))

    def in_mailbox(self, e: Any, mailbox_id: str) -> Any:
        m = messages.alias(f"m{next(self._n)}")
        return sa.exists().where(
            m.c.email_id == e.c.id, self._nx(m.c.mailbox_id) == mailbox_id, m.c.deleted.is_(False)
        )

    def has_keyword(self, e: Any, keyword: str | None) -> Any:
        if keyword is None:
            return sa.false()
        bit = SYSTEM_BITS.get(keyword)
        if bit:
            return e.c.flags.op("&")(bit) != 0
        k = email_keywords.alias(f"k{next(self._n)}")
        return sa.exists().where(k.c.email_id == e.c.id, k.c.keyword == keyword)

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

    # -- text search ------------------------------------------------------------------------------------

    def _text_sqlite(self, e: Any, kind: str, terms: tuple[str, ...]) -> Any:
        if kind == "text":
            query = " AND ".join(_fts_string(t) for t in terms)
        elif kind in ("subject", "body"):
            query = " AND ".join(f"{kind} : {_fts_string(t)}" for t in terms)
        else:  # an address field: words of the index narrow it down, the column decides
            query = " AND ".join(f"addresses : {_fts_string(t, prefix=True)}" for t in terms)
        candidates = sa.select(_FTS.c.email_id).where(
            sa.literal_column("email_fts").op("MATCH")(query), _FTS.c.account_id == self.account_id
        )
        return e.c.id.in_(candidates)

    def _text_pg(self, e: Any, kind: str, terms: tuple[str, ...]) -> Any:
        s = email_search.alias(f"s{next(self._n)}")
        tsq = None
        for t in terms:
            q = sa.func.phraseto_tsquery(sa.literal_column("'simple'"), t)
            tsq = q if tsq is None else tsq.op("&&")(q)
        everything = s.c.subject.op("||")(" ").op("||")(s.c.addresses).op("||")(" ").op("||")(s.c.body)
        where = [
            s.c.account_id == self.account_id,
            sa.func.to_tsvector(sa.literal_column("'simple'"), everything).op("@@")(tsq),
        ]
        if kind in ("subject", "body"):
            where.append(sa.func.to_tsvector(sa.literal_column("'simple'"), s.c[kind]).op("@@")(tsq))
        return e.c.id.in_(sa.select(s.c.email_id).where(*where))

    def text(self, e: Any, kind: str, terms: tuple[str, ...]) -> Any:
        if kind in _ADDRESS_COLUMNS:
            # Substring semantics on the stored lowercase "name <address>" list of that one header.
            column = e.c[_ADDRESS_COLUMNS[kind]]
            likes = [column.contains(t.lower(), autoescape=True) for t in terms]
            if not likes:
                return sa.true()
            if self.sqlite:
                return sa.and_(self._text_sqlite(e, kind, terms), *likes)
            return sa.and_(*likes)
        if not terms:
            return sa.true()
        return self._text_sqlite(e, kind, terms) if self.sqlite else self._text_pg(e, kind, terms)

    def header(self, e: Any, name: str, needle: str | None) -> Any:
        """A header field of that name exists (and contains ``needle``, case-insensitively): a scan of the
        cached header list, as no index covers arbitrary header fields."""
        n = next(self._n)
        params = [sa.bindparam(f"hn{n}", name)]
        if self.sqlite:
            sql = (
                f"EXISTS (SELECT 1 FROM json_each(CAST({e.name}.cache AS TEXT), '$.headers') AS h{n} "
                f"WHERE lower(json_extract(h{n}.value, '$[0]')) = :hn{n}"
            )
            if needle is not None:
                sql += f" AND instr(lower(json_extract(h{n}.value, '$[1]')), :hv{n}) > 0"
        else:
            sql = (
                f"EXISTS (SELECT 1 FROM json_array_elements(convert_from({e.name}.cache, 'UTF8')::json "
                f"-> 'headers') AS h{n} WHERE lower(h{n} ->> 0) = :hn{n}"
            )
            if needle is not None:
                sql += f" AND strpos(lower(h{n} ->> 1), :hv{n}) > 0"
        if needle is not None:
            params.append(sa.bindparam(f"hv{n}", needle.lower()))
        return sa.text(sql + ")").bindparams(*params)

    # -- the filter tree --------------------------------------------------------------------------------

    def leaf(self, e: Any, leaf: Leaf) -> Any:
        k, v = leaf.kind, leaf.value
        if k == "inMailbox":
            return self.in_mailbox(e, v)
        if k == "inMailboxOtherThan":
            m = messages.alias(f"m{next(self._n)}")
            cond = [m.c.email_id == e.c.id, m.c.deleted.is_(False)]
            if v:
                cond.append(self._nx(m.c.mailbox_id).not_in(list(v)))
            return sa.exists().where(*cond)
        if k == "before":
            return e.c.received_at < v
        if k == "after":
            return e.c.received_at >= v
        if k == "minSize":
            return e.c.size >= v
        if k == "maxSize":
            return e.c.size < v
        if k == "hasKeyword":
            return self.has_keyword(e, v)
        if k == "notKeyword":
            return sa.not_(self.has_keyword(e, v))
        if k == "someInThreadHaveKeyword":
            return self.thread_some(e, v)
        if k == "noneInThreadHaveKeyword":
            return sa.not_(self.thread_some(e, v))
        if k == "allInThreadHaveKeyword":
            return sa.not_(self.thread_some(e, v, negate=True))
        if k == "hasAttachment":
            return e.c.has_attachment.is_(v)
        if k == "header":
            return self.header(e, v[0], v[1])
        return self.text(e, k, v)

    def where(self, e: Any, flt: Any) -> Any:
        if flt is None:
            return sa.true()
        if isinstance(flt, FilterOperator):
            parts = [self.where(e, c) for c in flt.conditions]
            if flt.operator == "AND":
                return sa.and_(sa.true(), *parts)
            if flt.operator == "OR":
                return sa.or_(sa.false(), *parts)
            return sa.not_(sa.or_(sa.false(), *parts))
        assert isinstance(flt, Condition)
        return sa.and_(sa.true(), *(self.leaf(e, leaf) for leaf in flt.leaves))

    @staticmethod
    def implies_visible(flt: Any) -> bool:
        """True when every match is already known to have a visible membership (an ANDed inMailbox)."""
        if isinstance(flt, Condition):
            return any(leaf.kind in ("inMailbox", "inMailboxOtherThan") for leaf in flt.leaves)
        if isinstance(flt, FilterOperator) and flt.operator == "AND":
            return any(EmailSql.implies_visible(c) for c in flt.conditions)
        return False

    @staticmethod
    def selective(flt: Any) -> bool:
        """True when an ANDed text condition narrows the search to an index's candidate list."""
        if isinstance(flt, Condition):
            return any(leaf.kind in _TEXT_KINDS and leaf.value for leaf in flt.leaves)
        if isinstance(flt, FilterOperator) and flt.operator == "AND":
            return any(EmailSql.selective(c) for c in flt.conditions)
        return False

    def matching(self, e: Any, flt: Any) -> Any:
        """Account + filter + visibility (an email with only \\Deleted memberships does not exist).

        With a text condition the candidates come from the full-text index, so SQLite must look them up by
        id rather than walk the account's received_at index and probe the candidate list 100k times."""
        account = self._nx(e.c.account_id) if self.selective(flt) else e.c.account_id
        parts = [account == self.account_id, self.where(e, flt)]
        if not self.implies_visible(flt):
            parts.append(self.visible(e))
        return sa.and_(*parts)

    # -- sorting ------------------------------------------------------------------------------------------

    def sort_expr(self, e: Any, key: SortKey) -> Any:
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
    def effective_sort(sort: list[SortKey]) -> list[SortKey]:
        """No sort given: newest first (a stable order is all RFC 8620 asks for)."""
        return sort or [SortKey("receivedAt", False)]

    def order_by(self, e: Any, sort: list[SortKey]) -> list[Any]:
        sort = self.effective_sort(sort)
        out = [self.sort_expr(e, k).asc() if k.ascending else self.sort_expr(e, k).desc() for k in sort]
        tb = self.tiebreak(e)
        out.append(tb.asc() if sort[0].ascending else tb.desc())
        return out

    @staticmethod
    def streams(sort: list[SortKey]) -> bool:
        """Whether the sort follows an index (receivedAt only), so LIMIT stops the scan early."""
        sort = EmailSql.effective_sort(sort)
        return len(sort) == 1 and sort[0].prop == "receivedAt"

    def _sorts_before(self, a: Any, b: Any, ascending: bool) -> Any:
        """Row ``a`` comes before row ``b`` in receivedAt order (with the tie-break)."""
        ta, tb = self.tiebreak(a), self.tiebreak(b)
        if ascending:
            return sa.or_(
                a.c.received_at < b.c.received_at, sa.and_(a.c.received_at == b.c.received_at, ta < tb)
            )
        return sa.or_(a.c.received_at > b.c.received_at, sa.and_(a.c.received_at == b.c.received_at, ta > tb))

    # -- whole statements --------------------------------------------------------------------------------

    def full_list(self, flt: Any, sort: list[SortKey], collapse: bool) -> Any:
        """The id of every result in order: the whole list, for deep pages, anchors and /queryChanges.
        Collapsing uses ROW_NUMBER() here: it costs the same as the NOT EXISTS form when every row is needed."""
        return self.window(flt, sort, collapse, 0, None, stream=False)

    def window(
        self, flt: Any, sort: list[SortKey], collapse: bool, offset: int, limit: int | None, stream: bool = True
    ) -> Any:
        """The ids at [offset, offset + limit) of the (collapsed) results, windowed by the database.

        With a receivedAt sort and ``stream``, collapsing is "no matching email of the thread sorts before this
        one" (NOT EXISTS), which the database evaluates only for the rows it walks to fill the window: the
        first screen of a 100k mailbox reads ~100 rows instead of ranking all of them."""
        e = self.alias()
        if not collapse:
            q = sa.select(e.c.id).where(self.matching(e, flt)).order_by(*self.order_by(e, sort))
            return q.limit(limit).offset(offset)
        if stream and self.streams(sort):
            ascending = self.effective_sort(sort)[0].ascending
            e2 = self.alias("c")
            earlier = sa.exists().where(
                e2.c.thread_id == e.c.thread_id,
                self._sorts_before(e2, e, ascending),
                self.matching(e2, flt),
            )
            q = sa.select(e.c.id).where(self.matching(e, flt), sa.not_(earlier)).order_by(*self.order_by(e, sort))
            return q.limit(limit).offset(offset)
        order = self.order_by(e, sort)
        keys = [self.sort_expr(e, k).label(f"s{i}") for i, k in enumerate(self.effective_sort(sort))]
        inner = (
            sa.select(
                e.c.id.label("id"),
                self.tiebreak(e).label("tb"),
                *keys,
                sa.func.row_number().over(partition_by=e.c.thread_id, order_by=order).label("rn"),
            )
            .where(self.matching(e, flt))
            .subquery("w")
        )
        outer_order = []
        for i, k in enumerate(self.effective_sort(sort)):
            col = inner.c[f"s{i}"]
            outer_order.append(col.asc() if k.ascending else col.desc())
        first = self.effective_sort(sort)[0]
        outer_order.append(inner.c.tb.asc() if first.ascending else inner.c.tb.desc())
        return sa.select(inner.c.id).where(inner.c.rn == 1).order_by(*outer_order).limit(limit).offset(offset)

    def count(self, flt: Any, collapse: bool) -> Any:
        e = self.alias()
        what = sa.func.count(sa.distinct(e.c.thread_id)) if collapse else sa.func.count()
        return sa.select(what).select_from(e).where(self.matching(e, flt))
