"""IMAP SORT (RFC 5256, RFC 5957 DISPLAYFROM/DISPLAYTO) and THREAD for one mailbox: the matches come from
the one search compiler (or the row cache), the order from per-email sort keys.

Why the ordering is done here, in Python, and not by an SQL ``ORDER BY``:

* **Speed.** On SQLite, joining 100k memberships to their ``emails`` rows costs ~200 ms whatever the ORDER
  BY (measured; the join is the cost, see :mod:`janusmail.store.mailbox_rows`). A big mailbox's
  memberships are already in the row cache, kept exact by MODSEQ; with the sort keys in memory too, a
  SORT of 100k messages is a few stable list sorts (~20 ms per criterion).
* **One collation on both backends.** RFC 5256 compares strings with i;unicode-casemap (RFC 5051).
  SQLite's ``lower()`` folds ASCII only and PostgreSQL orders text by the database's locale, so an SQL
  ORDER BY would sort differently on the two backends. The keys are folded here (:func:`casemap`) and
  compared by code point, which is the UTF-8 octet order the RFC asks for.
* **Keys never go stale.** Every key is a function of an email's immutable content (sent date, subjects,
  addresses, size, internal date), so :class:`SortKeys` is a plain per-store map from email id to key that
  no write has to invalidate. It is filled with one query per request for what is missing (the whole
  mailbox in one statement when most is missing), bounded per field.

What each IMAP key reads (all stored at ingest; the address keys from the parsed-message cache's JSON,
extracted by the database, as the compiler's HEADER search does):

=============  ==============================================================================
ARRIVAL        ``received_at`` (internal date)
DATE           ``sent_at``, or the internal date when the Date header is missing or unparsable (§2.2)
SIZE           ``size``
SUBJECT        ``base_subject`` (RFC 5256 §2.1, computed at ingest), case-mapped
FROM TO CC     the local part (IMAP addr-mailbox) of the field's first address, case-mapped
DISPLAYFROM    ``from_sort``/``to_sort``: the first address's display name, else its address (RFC 5957;
DISPLAYTO      also JMAP's ``from``/``to`` sort), case-mapped
=============  ==============================================================================

Ties are broken by UID (= sequence order), never reversed by REVERSE (RFC 5256 BASE.6.4.SORT).
"""

from __future__ import annotations

import threading
import unicodedata
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

import orjson
import sqlalchemy as sa

from janusmail.mime.subject import subject_parts
from janusmail.store.mailbox_rows import EMAIL_ID, MIN_CACHED, MODSEQ, RECEIVED, SIZE, UID, MailboxRows
from janusmail.store.rawrows import raw_rows
from janusmail.store.schema import emails, messages
from janusmail.store.thread_tree import ThreadItem, ThreadNode, normalize_msgid, ordered_subject, references

from . import ast as q
from .compile import mailbox_select, metadata_only
from .memory import match_mask, match_places

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = ["MailboxOrdering", "SortKeys", "ThreadMaterial", "casemap", "local_part"]

Algorithm = Literal["references", "orderedsubject"]
_CHUNK = 500
#: Load keys for the whole mailbox in one statement when at least this many are missing.
_WHOLE_MAILBOX = 2000


# -- key functions ---------------------------------------------------------------------------------------------


def _title1(c: str) -> str:
    t = c.title()
    return t if len(t) == 1 else c  # approximates the *simple* titlecase mapping RFC 5051 asks for


def casemap(s: str | None) -> str:
    """The i;unicode-casemap (RFC 5051) form of a string: titlecase each character, then NFKD. Two strings
    compare by code point of this form (= UTF-8 octet order)."""
    if not s:
        return ""
    if s.isascii():
        return s.upper()
    s = unicodedata.normalize("NFKD", "".join(map(_title1, s)))
    # compatibility decomposition can produce cased letters again ("ª" -> "a"): map those too, so that
    # the key of a key is itself
    return s.upper() if s.isascii() else "".join(map(_title1, s))


def local_part(email: str | None) -> str:
    """IMAP's addr-mailbox of an address as the store keeps it (``local@domain``, quoted when needed)."""
    if not email:
        return ""
    local = email.rsplit("@", 1)[0] if "@" in email else email
    if len(local) >= 2 and local[0] == '"' and local[-1] == '"':
        local = local[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return local


@dataclass(frozen=True, slots=True)
class ThreadMaterial:
    """What THREAD=REFERENCES needs of one email: normalized Message-ID, references (References, else the
    first In-Reply-To), case-mapped base subject, and whether the subject marked a reply or forward."""

    msgid: str | None
    refs: tuple[str, ...]
    subject: str
    reply: bool


def _ids(value: Any) -> list[str]:
    """A JSON list of ids from the cache (JSON text), tolerating anything else."""
    if isinstance(value, bytes | str):
        value = _json(value)
    return [v for v in value if isinstance(v, str) and v] if isinstance(value, list) else []


def _thread_material(message_id: str | None, subject: str | None, refs: Any, in_reply_to: Any) -> ThreadMaterial:
    base, reply = subject_parts(subject or "")
    chain = _ids(refs) or _ids(in_reply_to)[:1]
    return ThreadMaterial(normalize_msgid(message_id) if message_id else None,
                          tuple(normalize_msgid(r) for r in chain), casemap(base), reply)


#: PostgreSQL: the cache parsed once per row, joined LATERAL as ``cj.j`` (each ``->`` on a json value would parse
#: the whole document again). ``json``, not ``jsonb``: no normalizing work, and ``\u0000`` is accepted.
_PG_CACHE = sa.select(sa.literal_column("convert_from(emails.cache, 'UTF8')::json").label("j")).lateral("cj")


def _json_field(sqlite: bool, path: Sequence[str | int]) -> Any:
    """An element of the parsed-message cache (``emails.cache``, orjson) as JSON text (``null`` when absent),
    extracted by the database: the address and id lists are nowhere else in the row. Nothing is unescaped
    in SQL (a ``\\u0000`` in one message cannot fail the statement); :func:`_json` decodes in Python."""
    if sqlite:
        jpath = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)
        return sa.literal_column(f"json_quote(json_extract(CAST(emails.cache AS TEXT), '{jpath}'))")
    expr = "cj.j"
    for p in path:
        expr = f"({expr} -> {p if isinstance(p, int) else repr(p)})"
    return sa.literal_column(f"({expr})::text")


def _json(value: Any) -> Any:
    if value is None:
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


@dataclass(frozen=True)
class _Field:
    """A cached key: the columns it is computed from and how (``compute(*values)``); ``default`` when an
    email has vanished between the two reads."""

    columns: Callable[[bool], list[Any]]
    compute: Callable[..., Any]
    default: Any
    json: bool = False  # reads the cache document (PostgreSQL: through the lateral parse)


def _address_key(value: Any) -> str:
    email = _json(value)
    return casemap(local_part(email if isinstance(email, str) else None))


def _address_field(name: str) -> _Field:
    return _Field(lambda sqlite: [_json_field(sqlite, [name, 0, "email"])], _address_key, "", json=True)


def _identity(v: Any) -> Any:
    return v


FIELDS: dict[str, _Field] = {
    "receivedAt": _Field(lambda sqlite: [emails.c.received_at], _identity, 0),
    "size": _Field(lambda sqlite: [emails.c.size], _identity, 0),
    "sentAt": _Field(lambda sqlite: [sa.func.coalesce(emails.c.sent_at, emails.c.received_at)], _identity, 0),
    "subject": _Field(lambda sqlite: [emails.c.base_subject], casemap, ""),
    "from": _Field(lambda sqlite: [emails.c.from_sort], casemap, ""),
    "to": _Field(lambda sqlite: [emails.c.to_sort], casemap, ""),
    "fromMailbox": _address_field("from"),
    "toMailbox": _address_field("to"),
    "ccMailbox": _address_field("cc"),
    "thread": _Field(lambda sqlite: [emails.c.message_id, emails.c.subject,
                                     _json_field(sqlite, ["references"]), _json_field(sqlite, ["in_reply_to"])],
                     _thread_material, ThreadMaterial(None, (), "", False), json=True),
}
#: Sort properties (:class:`.ast.SortKey`) a mailbox sort understands.
SORTABLE = frozenset(FIELDS) - {"thread"}


# -- the per-store key cache -----------------------------------------------------------------------------------


class SortKeys:
    """Email id -> key, per field. Content is immutable per email id, so entries are never stale; a field
    that outgrows ``max_entries`` starts over (destroyed emails' entries go with it)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self.max_entries = max_entries
        self._fields: dict[str, dict[str, Any]] = {name: {} for name in FIELDS}
        self._lock = threading.Lock()

    def field(self, name: str) -> dict[str, Any]:
        return self._fields[name]

    def missing(self, names: Iterable[str], email_ids: Iterable[str]) -> list[str]:
        wanted = set(email_ids)
        out: set[str] = set()
        for n in names:
            out.update(wanted.difference(self._fields[n]))  # C-level dict lookups
        return sorted(out)

    def put(self, name: str, values: dict[str, Any]) -> None:
        with self._lock:
            target = self._fields[name]
            if len(target) + len(values) > self.max_entries:
                target = self._fields[name] = {}
            target.update(values)

    def clear(self) -> None:
        with self._lock:
            for name in self._fields:
                self._fields[name] = {}


# -- the service part ------------------------------------------------------------------------------------------


#: A matching membership, ascending UID, laid out as the row cache's rows (UID, DELETED, MODSEQ, EMAIL_ID, then
#: from the row cache also FLAGS, RECEIVED, SIZE, ...): a big mailbox's rows are used as they are.
Member = tuple
#: Keys a row-cache member carries itself: name -> index in the member tuple
_IN_ROWS = {"receivedAt": RECEIVED, "size": SIZE}


class _Memo:
    """A small LRU map (per-store, thread-safe) for the per-mailbox-state results below."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class MailboxOrdering:
    """SORT and THREAD over one mailbox's memberships; held by :class:`.service.SearchService`.

    A big mailbox (the row cache's: :data:`janusmail.store.mailbox_rows.MIN_CACHED` messages and more) is
    ordered as a whole, once per *membership state*, and each SORT filters that order by its matches: the
    state is ``(mailbox, UIDNEXT, message count)``, which names one set of memberships (UIDs only grow,
    and at a given UIDNEXT the count only falls), so flag changes keep the order while an APPEND or an
    EXPUNGE makes a new one. The keys of every member are aligned with the cached rows (``columns``), and
    the answer of ``THREAD ... ALL`` is kept per state too. Smaller mailboxes are read and ordered per
    request.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.keys = SortKeys()
        self.columns = _Memo(32)  # (state, field) -> keys aligned with the state's rows
        self.orders = _Memo(32)  # (state, sort keys) -> (positions, UIDs) in sort order
        self.threads = _Memo(8)  # (state, algorithm) -> the THREAD ALL trees

    # -- reading -----------------------------------------------------------------------------------------

    def _box(self, mailbox_id: str, size_hint: int) -> MailboxRows | None:
        rows_cache = self._store.mailbox_rows
        if rows_cache.cached(mailbox_id) or size_hint >= MIN_CACHED:
            return rows_cache.get(mailbox_id, size_hint)
        return None

    def _positions(self, conn: sa.Connection, account_id: str, box: MailboxRows, condition: q.Condition,
                   limit: int) -> bytes | list[int] | None:
        """The matches among the first ``limit`` rows of ``box.rows``: a flag search's byte mask (1 at each
        matching row: SORT filters its cached order with it as it is), else their positions; None: all rows."""
        if isinstance(condition, q.All):
            return None
        uids = box.uids
        below = uids[limit] if limit < len(uids) else None
        if metadata_only(condition):  # (the rows below ``below`` are the first ``limit``)
            mask = match_mask(box, condition, below)
            if mask is not None:
                return mask
            places = match_places(box, condition, below)
            if places is not None:
                return places
        stmt = mailbox_select(condition, account_id=account_id, mailbox_id=box.mailbox_id,
                              sqlite=self._store.sqlite, below_uid=below if below is not None else box.uidnext)
        hits = raw_rows(conn, stmt)
        out: list[int] = []
        i, n = 0, min(limit, len(uids))
        for uid, _ in hits:  # both ascend by UID: one merge walk (a UID the snapshot lacks is skipped)
            while i < n and uids[i] < uid:
                i += 1
            if i < n and uids[i] == uid:
                out.append(i)
        return out

    def _members(self, conn: sa.Connection, account_id: str, mailbox_id: str, condition: q.Condition,
                 below_uid: int | None) -> list[Member]:
        """A small mailbox's matching memberships: one SQL query."""
        stmt = mailbox_select(condition, account_id=account_id, mailbox_id=mailbox_id, sqlite=self._store.sqlite,
                              below_uid=below_uid).add_columns(messages.c.email_id)
        return [(uid, False, modseq, email_id) for uid, modseq, email_id in raw_rows(conn, stmt)]

    def _ensure(self, conn: sa.Connection, names: Sequence[str], members: Sequence[Member], mailbox_id: str,
                whole: bool) -> None:
        """Make sure the key cache has ``names`` for every member's email: one statement over the whole mailbox
        when ``whole`` and much is missing, else lookups by id."""
        names = [n for n in dict.fromkeys(names) if not (members and len(members[0]) > EMAIL_ID + 1
                                                          and n in _IN_ROWS)]
        if not names or not members:
            return
        missing = self.keys.missing(names, map(itemgetter(EMAIL_ID), members))
        if not missing:
            return
        sqlite = self._store.sqlite
        cols: list[Any] = [emails.c.id]
        spans: list[tuple[str, int, int]] = []
        for name in names:
            extra = FIELDS[name].columns(sqlite)
            spans.append((name, len(cols), len(cols) + len(extra)))
            cols.extend(extra)
        source: Any = emails
        if not sqlite and any(FIELDS[name].json for name in names):
            source = source.join(_PG_CACHE, sa.true())
        if whole and len(missing) >= _WHOLE_MAILBOX:
            stmts = [sa.select(*cols).select_from(messages.join(source, emails.c.id == messages.c.email_id))
                     .where(messages.c.mailbox_id == mailbox_id)]
        else:
            stmts = [sa.select(*cols).select_from(source).where(emails.c.id.in_(missing[i : i + _CHUNK]))
                     for i in range(0, len(missing), _CHUNK)]
        found: dict[str, dict[str, Any]] = {name: {} for name in names}
        for stmt in stmts:
            for row in raw_rows(conn, stmt):
                for name, a, b in spans:
                    found[name][row[0]] = FIELDS[name].compute(*row[a:b])
        for name, values in found.items():
            self.keys.put(name, values)

    def _column(self, name: str, members: Sequence[Member]) -> list[Any]:
        """The key of every member, in member order (the key cache must hold them: :meth:`_ensure`)."""
        if members and len(members[0]) > EMAIL_ID + 1 and name in _IN_ROWS:  # straight from the row cache
            return list(map(itemgetter(_IN_ROWS[name]), members))
        values, default = self.keys.field(name), FIELDS[name].default
        return list(map(values.get, map(itemgetter(EMAIL_ID), members), repeat(default)))

    @staticmethod
    def _state(box: MailboxRows) -> tuple[str, int, int]:
        return (box.mailbox_id, box.uidnext, len(box.rows))

    def _box_columns(self, conn: sa.Connection, box: MailboxRows, names: Sequence[str]) -> dict[str, list[Any]]:
        """Keys aligned with ``box.rows`` for each of ``names``, per membership state."""
        state = self._state(box)
        out = {name: self.columns.get((state, name)) for name in dict.fromkeys(names)}
        todo = [name for name, col in out.items() if col is None]
        if todo:
            self._ensure(conn, todo, box.rows, box.mailbox_id, whole=True)
            for name in todo:
                out[name] = col = self._column(name, box.rows)
                self.columns.put((state, name), col)
        return out  # type: ignore[return-value]

    @staticmethod
    def _order(columns: Sequence[list[Any]], keys: Sequence[q.SortKey], n: int) -> list[int]:
        """Positions 0..n-1 in sort order: stable sorts, last criterion first, from ascending UID order (so
        ties keep UID order whatever the direction)."""
        order = list(range(n))
        for column, k in zip(reversed(columns), reversed(keys), strict=True):
            order.sort(key=column.__getitem__, reverse=not k.ascending)
        return order

    # -- SORT --------------------------------------------------------------------------------------------

    def sort(self, account_id: str, mailbox_id: str, condition: q.Condition, keys: Sequence[q.SortKey], *,
             below_uid: int | None = None, size_hint: int = 0,
             with_modseq: bool = False) -> tuple[list[int], list[int] | None]:
        """UIDs of the matching memberships (below ``below_uid``) in SORT order, ties by UID whatever the
        direction, and their MODSEQs when ``with_modseq``. Raises ValueError for a sort property mailbox
        sorts do not know. The UID list may be shared with the cache: treat it as read-only."""
        uids, modseqs, _ = self.sort_numbered(account_id, mailbox_id, condition, keys, below_uid=below_uid,
                                              size_hint=size_hint, with_modseq=with_modseq)
        return uids, modseqs

    def sort_numbered(self, account_id: str, mailbox_id: str, condition: q.Condition, keys: Sequence[q.SortKey],
                      *, below_uid: int | None = None, size_hint: int = 0, with_modseq: bool = False,
                      known: Sequence[int] | None = None) -> tuple[list[int], list[int] | None, list[int] | None]:
        """:meth:`sort`, and the sequence numbers of the UIDs for an IMAP session whose snapshot ``known`` is
        exactly the cached mailbox below ``below_uid`` (``MailboxRows.is_snapshot``: then a row's place is its
        number); None otherwise (the caller numbers them itself)."""
        for k in keys:
            if k.prop not in SORTABLE:
                raise ValueError(f"unsupported mailbox sort {k.prop!r}")
        keys = tuple(keys)
        names = [k.prop for k in keys]
        box = self._box(mailbox_id, size_hint)
        with self._store.engine.connect() as conn, conn.begin():
            if box is None:
                members = self._members(conn, account_id, mailbox_id, condition, below_uid)
                self._ensure(conn, names, members, mailbox_id, whole=False)
                order = self._order([self._column(n, members) for n in names], keys, len(members))
                picked = list(map(members.__getitem__, order))
                return (list(map(itemgetter(UID), picked)),
                        list(map(itemgetter(MODSEQ), picked)) if with_modseq else None, None)
            rows = box.rows
            limit = bisect_left(box.uids, below_uid) if below_uid is not None else len(rows)
            positions = self._positions(conn, account_id, box, condition, limit)
            state = (self._state(box), keys)
            cached = self.orders.get(state)
            if cached is None:
                columns = self._box_columns(conn, box, names)
                order = self._order([columns[n] for n in names], keys, len(rows))
                # the UIDs in that order too: answering from them reads no row tuples (random memory access)
                cached = (order, list(map(box.uids.__getitem__, order)))
                self.orders.put(state, cached)
        order, uids = cached
        if positions is not None:
            if isinstance(positions, bytes):  # a flag search's mask of the first ``limit`` rows
                mask: bytes | bytearray = positions + bytes(len(rows) - len(positions))
            else:
                mask = bytearray(len(rows))
                for i in positions:
                    mask[i] = 1
            keep = list(map(mask.__getitem__, order))
            order, uids = list(compress(order, keep)), list(compress(uids, keep))
        elif limit < len(rows):
            keep = [i < limit for i in order]
            order, uids = list(compress(order, keep)), list(compress(uids, keep))
        modseqs = list(map(box.modseq_array.__getitem__, order)) if with_modseq else None
        seqs = [i + 1 for i in order] if known is not None and box.is_snapshot(known, below_uid) else None
        return uids, modseqs, seqs

    # -- THREAD ------------------------------------------------------------------------------------------

    def thread(self, account_id: str, mailbox_id: str, condition: q.Condition, algorithm: Algorithm, *,
               below_uid: int | None = None, size_hint: int = 0) -> list[ThreadNode]:
        """The THREAD answer as trees of UIDs (``uid`` 0: a dummy holding threads together at the top). The
        trees of a big mailbox's ``THREAD ... ALL`` are kept per membership state: treat them as read-only."""
        if algorithm not in ("references", "orderedsubject"):
            raise ValueError(f"unknown threading algorithm {algorithm!r}")
        names = ["sentAt", "subject"] if algorithm == "orderedsubject" else ["sentAt", "thread"]
        box = self._box(mailbox_id, size_hint)
        with self._store.engine.connect() as conn, conn.begin():
            if box is None:
                members = self._members(conn, account_id, mailbox_id, condition, below_uid)
                self._ensure(conn, names, members, mailbox_id, whole=False)
                return self._threads(algorithm, members, [self._column(n, members) for n in names])
            rows = box.rows
            limit = bisect_left(box.uids, below_uid) if below_uid is not None else len(rows)
            matched = self._positions(conn, account_id, box, condition, limit)
            positions = list(compress(range(len(matched)), matched)) if isinstance(matched, bytes) else matched
            whole = positions is None and limit == len(rows)
            if whole:
                trees = self.threads.get((self._state(box), algorithm))
                if trees is not None:
                    return trees
            columns = self._box_columns(conn, box, names)
        picked = positions if positions is not None else range(limit)
        cols = [[columns[n][i] for i in picked] for n in names]
        trees = self._threads(algorithm, [rows[i] for i in picked], cols)
        if whole:
            self.threads.put((self._state(box), algorithm), trees)
        return trees

    @staticmethod
    def _threads(algorithm: Algorithm, members: Sequence[Member], columns: Sequence[list[Any]]) -> list[ThreadNode]:
        dates, other = columns
        if algorithm == "orderedsubject":
            return ordered_subject([ThreadItem(m[UID], d, s) for m, d, s in zip(members, dates, other, strict=True)])
        return references([ThreadItem(m[UID], d, t.subject, t.reply, t.msgid, t.refs)
                           for m, d, t in zip(members, dates, other, strict=True)])
