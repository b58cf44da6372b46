"""``store.search.mailbox_search_page`` (IMAP SEARCH RETURN (PARTIAL ...), RFC 9394) answers exactly the slice of
``mailbox_search`` it names, with the total when asked, on both backends and through both of its ways (SQL with
LIMIT/OFFSET, and the row cache filled slice by slice); windows from the front, from the end, reversed, and past
the last match."""

from __future__ import annotations

import pytest

from janusmail.store import mailbox_rows
from janusmail.store.search import ast as q
from janusmail.store.search import paging
from janusmail.store.store import Store
from tests.mailgen import simple

N = 60
WINDOWS = [(1, 1), (1, 10), (10, 1), (5, 25), (55, 70), (61, 80), (200, 300),
           (-1, -1), (-1, -10), (-10, -1), (-5, -25), (-55, -70), (-61, -80), (-200, -300)]


def conditions(keyword: str) -> list[q.Condition]:
    return [q.All(), q.Keyword(keyword), q.Not(q.Keyword(keyword)), q.UidIn(((3, 17), (40, 58)))]


def expected(full: list[tuple[int, int]], first: int, last: int) -> list[tuple[int, int]]:
    lo, hi = sorted((abs(first), abs(last)))
    if first > 0:
        return full[lo - 1 : hi]
    n = len(full)
    return full[max(n - hi, 0) : max(n - lo + 1, 0)]


@pytest.mark.parametrize("cached", [False, True], ids=["sql", "row-cache"])
def test_page_is_the_slice_of_the_full_search(store: Store, monkeypatch: pytest.MonkeyPatch, cached: bool):
    if cached:  # a small mailbox through the row cache, in slices of a few rows
        monkeypatch.setattr(mailbox_rows, "MIN_CACHED", 10)
        monkeypatch.setattr(paging, "MIN_CACHED", 10)
        monkeypatch.setattr(paging, "_SLICE", 7)
    acct = store.accounts.create("pager@example.test", "x", None)
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    for i in range(N):
        store.emails.ingest(acct.id, simple(i), [inbox.id], ["$seen"] if i % 3 == 0 else [])
    search = store.search
    for cond in conditions("$seen"):
        full = search.mailbox_search(acct.id, inbox.id, cond, below_uid=N - 2, size_hint=N if cached else 0)
        assert full, cond
        for first, last in WINDOWS:
            for count in (False, True):
                page, total = search.mailbox_search_page(acct.id, inbox.id, cond, first, last, below_uid=N - 2,
                                                         size_hint=N if cached else 0, count=count)
                assert page == expected(full, first, last), (cond, first, last)
                assert total == (len(full) if count else None)
