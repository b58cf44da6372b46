"""Full-text segments merged in short steps after a bulk load (janusmail/store/search/merging.py, issue 10).

Left as a bulk load leaves them, FTS5's segments made a later delivery pay for a whole level's merge inside its
own write (2-3 s with 200,000 messages, every other write waiting). ``refresh_statistics`` (run after imports and
migrations) now merges them first, one bounded step per transaction; the mail must read the same afterwards.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from janusmail.store.model import IngestItem
from janusmail.store.search import ast as q
from janusmail.store.search.merging import FTS_TABLES, merge_everything, merge_step
from tests.mailgen import simple


def _load_in_pieces(store: Any, n: int = 40) -> tuple[str, str, list[int]]:
    """``n`` messages in ``n`` separate writes: one FTS5 segment each (fewer than a level's crisis merge)."""
    acct = store.accounts.create("bulk@example.test", "hash")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    uids = []
    for i in range(n):
        body = f"common words here, marker{i:03d}xyz and quarterly{i % 4}"
        d = store.emails.ingest_many(acct.id, [IngestItem(simple(i, body=body), (inbox.id,))])[0]
        uids.append(d.uids[inbox.id])
    return acct.id, inbox.id, uids


def _searches(store: Any, account_id: str, box_id: str) -> tuple[list[int], ...]:
    def run(cond: Any) -> list[int]:
        return sorted(uid for uid, _ in store.search.mailbox_search(account_id, box_id, cond, below_uid=10**9))

    return (run(q.Contains("body", "marker007x")), run(q.Contains("text", "ker01")), run(q.Text("body", ("quarterly2",))),
            run(q.Text("all", ("common", "words"))))


def _nothing_to_merge(store: Any) -> bool:
    with store.transaction() as conn:
        return not any(merge_step(conn, table) for table in FTS_TABLES)


def test_a_bulk_load_is_merged_in_steps_and_searches_find_the_same(store: Any) -> None:
    account_id, box_id, uids = _load_in_pieces(store)
    before = _searches(store, account_id, box_id)
    if not store.sqlite:  # PostgreSQL's GIN indexes: nothing of the kind
        assert merge_everything(store) == 0
        return
    assert before[0] == [uids[7]] and before[1] == uids[10:20] and before[2] == uids[2::4]
    assert len(before[3]) == len(uids)
    with store.engine.connect() as conn:
        pages_before = conn.execute(sa.text("SELECT count(*) FROM email_trgm_data")).scalar()
    steps = merge_everything(store, pages=2)  # small steps: many transactions, each bounded
    assert steps > 2
    assert _nothing_to_merge(store)
    with store.engine.connect() as conn:
        pages_after = conn.execute(sa.text("SELECT count(*) FROM email_trgm_data")).scalar()
        assert conn.execute(sa.text("INSERT INTO email_trgm(email_trgm) VALUES ('integrity-check')")).rowcount \
            is not None
    assert pages_after < pages_before  # forty segments became one
    assert _searches(store, account_id, box_id) == before


def test_refresh_statistics_leaves_no_merge_for_the_next_write(store: Any) -> None:
    account_id, box_id, _ = _load_in_pieces(store, 20)
    before = _searches(store, account_id, box_id)
    store.refresh_statistics()
    if store.sqlite:
        assert _nothing_to_merge(store)
    assert _searches(store, account_id, box_id) == before


def test_only_the_full_text_tables_are_merged(store: Any) -> None:
    if not store.sqlite:
        return
    with store.transaction() as conn:
        try:
            merge_step(conn, "emails")
        except ValueError:
            pass
        else:  # pragma: no cover
            raise AssertionError("merge_step took a table that is not a full-text index")
