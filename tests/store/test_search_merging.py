"""Full-text segments merged in short steps after a bulk load (janusmail/store/search/merging.py, issue 10).

Left as a bulk load leaves them, FTS5's segments made a later delivery pay for a whole level's merge inside its
own write (2-3 s with 200,000 messages, every other write waiting). ``refresh_statistics`` (run after imports and
migrations) now merges them first, one bounded step per transaction; the mail must read the same afterwards.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest
import sqlalchemy as sa

from janusmail.store.model import IngestItem
from janusmail.store.search import ast as q
from janusmail.store.search.merging import FTS_TABLES, merge_everything, merge_step
from janusmail.store.search.queue import drain
from tests.mailgen import simple


def _load_in_pieces(store: Any, n: int = 40, filler: int = 0) -> tuple[str, str, list[int]]:
    """``n`` messages in ``n`` separate writes: one FTS5 segment each (fewer than a level's crisis merge);
    ``filler`` distinct words more per message make each segment several pages."""
    rnd = random.Random(7)
    acct = store.accounts.create("bulk@example.test", "hash")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    uids = []
    for i in range(n):
        body = f"common words here, marker{i:03d}xyz and quarterly{i % 4} " + " ".join(
            f"f{rnd.getrandbits(40):010x}" for _ in range(filler))
        d = store.emails.ingest_many(acct.id, [IngestItem(simple(i, body=body), (inbox.id,))])[0]
        drain(store)  # (indexed by a write of its own: a segment each, as separate batches of the queue make)
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
        for table in FTS_TABLES:  # FTS5 raises (SQLITE_CORRUPT_VTAB) when an index disagrees with itself
            conn.execute(sa.text(f"INSERT INTO {table}({table}) VALUES ('integrity-check')"))
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
    with store.transaction() as conn, pytest.raises(ValueError, match="not a full-text table"):
        merge_step(conn, "emails")


async def test_the_background_merger_merges_full_levels_a_step_at_a_time(store: Any) -> None:
    """``merge_forever`` (run by every serving process on SQLite): with twelve one-message segments on the
    first level (a crisis merge would wait for sixteen), small steps on the writer lane merge that level, then
    it rests; the mail reads the same, and the level's segments are gone."""
    import asyncio

    from janusmail.store.search import merging

    account_id, box_id, _ = _load_in_pieces(store, 12, filler=600)
    before = _searches(store, account_id, box_id)
    if not store.sqlite:
        await merging.merge_forever(store)  # returns at once: nothing to do on PostgreSQL
        return
    with store.engine.connect() as conn:
        pages_before = conn.execute(sa.text("SELECT count(*) FROM email_trgm_data")).scalar()
    steps: list[bool] = []
    real = merging.merge_some

    def counted(s: Any, pages: int = merging.BACKGROUND_PAGES) -> bool:
        steps.append(real(s, pages))
        return steps[-1]

    counted.__janus_writes__ = True  # type: ignore[attr-defined]  # still a write: the lane runs it
    idle = asyncio.Event()
    merging.merge_some, restore = counted, merging.merge_some
    task = asyncio.create_task(merging.merge_forever(store, idle_seconds=3600, pages=2, idle=idle))
    try:
        await asyncio.wait_for(idle.wait(), 60)
    finally:
        merging.merge_some = restore
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert steps.count(True) > 2 and steps[-1] is False  # several bounded steps, then a rest
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT v FROM email_trgm_config WHERE k = 'usermerge'").scalar() \
            == merging.USERMERGE
        assert conn.execute(sa.text("SELECT count(*) FROM email_trgm_data")).scalar() < pages_before
    with store.transaction() as conn:  # no level holds usermerge segments any more
        assert not any(merging.merge_levels(conn, table) for table in FTS_TABLES)
    assert _searches(store, account_id, box_id) == before


def test_a_full_disk_stops_the_merging_not_the_load_it_follows(store: Any, monkeypatch: Any) -> None:
    """An import whose mail fit but whose merge does not (the merged segment needs room before the old ones are
    freed) still succeeds: the merge stops with a warning (tests/cli/test_disk_full_import.py on a real tmpfs)."""
    if not store.sqlite:
        return
    from janusmail.store.model import StorageUnavailable
    from janusmail.store.search import merging

    _load_in_pieces(store, 20, filler=200)
    real, calls = merging.merge_step, []

    def filling(conn: Any, table: str, pages: int = merging.STEP_PAGES) -> bool:
        calls.append(table)
        if len(calls) > 1:
            raise StorageUnavailable("No space left on device", full=True)
        return real(conn, table, pages)

    monkeypatch.setattr(merging, "merge_step", filling)
    assert merge_everything(store, pages=2) == 1
    store.refresh_statistics()  # the load's last step: no exception either
