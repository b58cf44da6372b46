"""One page of a mailbox search (IMAP ``SEARCH RETURN (PARTIAL first:last)``, RFC 9394): only the matches at
the asked positions, without listing every match first when the search can stop early.

Positions count matches in ascending UID order from 1; a negative window (``-1:-100``) counts from the last
match. Two ways, as :meth:`SearchService.mailbox_search` chooses:

* SQL (the general case): the one compiler's statement with ``ORDER BY uid`` (``DESC`` for a window from the
  end) and ``LIMIT``/``OFFSET``: the database stops after the window, and the index on (mailbox, uid) gives the
  order. The total, when the command also asks for COUNT, is one ``count(*)`` of the same statement, which
  never turns rows into Python objects.
* The row cache (metadata-only keys on a big mailbox): the compiled predicate runs over slices of the cached
  rows, from the front or from the back, until the window is filled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from janusmail.store.mailbox_rows import MIN_CACHED
from janusmail.store.rawrows import raw_rows
from janusmail.store.schema import messages

from . import ast as q
from .compile import mailbox_select, metadata_only
from .memory import compile_predicate

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.store import Store

__all__ = ["Page", "search_page"]

Page = tuple[list[tuple[int, int]], int | None]
#: Rows the predicate is run over at a time when filling a window from the row cache.
_SLICE = 4096


def bounds(first: int, last: int) -> tuple[int, int, bool]:
    """``(lo, hi, from_end)``: 1-based inclusive positions, counted from the end when ``from_end``."""
    lo, hi = sorted((abs(first), abs(last)))
    return lo, hi, first < 0


def _from_rows(fn: Callable[[list[tuple]], list[tuple[int, int]]], rows: Sequence[tuple], lo: int, hi: int,
               from_end: bool, count: bool) -> Page:
    if count:  # every match is needed for the total anyway
        hits = fn(list(rows))
        return _cut(hits, lo, hi, from_end), len(hits)
    found: list[tuple[int, int]] = []
    step = max(_SLICE, 2 * hi)
    if not from_end:
        for start in range(0, len(rows), step):
            found.extend(fn(list(rows[start : start + step])))
            if len(found) >= hi:
                break
        return found[lo - 1 : hi], None
    end = len(rows)
    while end > 0 and len(found) < hi:
        start = max(0, end - step)
        found = fn(list(rows[start:end])) + found
        end = start
    return _cut(found, lo, hi, True), None


def _cut(hits: list[tuple[int, int]], lo: int, hi: int, from_end: bool) -> list[tuple[int, int]]:
    if not from_end:
        return hits[lo - 1 : hi]
    n = len(hits)
    return hits[max(n - hi, 0) : max(n - lo + 1, 0)]


def search_page(store: Store, account_id: str, mailbox_id: str, condition: q.Condition, first: int, last: int, *,
                below_uid: int | None = None, size_hint: int = 0, count: bool = False) -> Page:
    """``((uid, modseq) of the window's matches, ascending UID; the number of all matches if ``count`` else
    None)``. Same matches as :meth:`SearchService.mailbox_search` with the same arguments."""
    lo, hi, from_end = bounds(first, last)
    rows_cache = store.mailbox_rows
    if metadata_only(condition) and (rows_cache.cached(mailbox_id) or size_hint >= MIN_CACHED):
        box = rows_cache.get(mailbox_id, size_hint)
        if box is not None:
            fn = compile_predicate(condition, box.keywords)
            if fn is not None:
                rows = box.rows
                if below_uid is not None and rows and rows[-1][0] >= below_uid:
                    rows = box.select([(1, below_uid - 1)])
                return _from_rows(fn, rows, lo, hi, from_end, count)
    stmt = mailbox_select(condition, account_id=account_id, mailbox_id=mailbox_id, sqlite=store.sqlite,
                          below_uid=below_uid)
    page = stmt.order_by(None).order_by(messages.c.uid.desc() if from_end else messages.c.uid)
    page = page.limit(hi - lo + 1).offset(lo - 1)
    with store.engine.connect() as conn, conn.begin():
        found = raw_rows(conn, page)
        total = conn.execute(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())).scalar_one() \
            if count else None
    if from_end:
        found.reverse()
    return found, total
