"""Merging the SQLite full-text indexes' segments in small steps, so that no write pays for a big merge.

Why: FTS5 keeps each index as levels of segments. Every flush (each write that indexed mail) adds a small
segment, and when a level holds ``crisismerge`` (16) segments the NEXT write merges the whole level at once,
inside its own transaction. The trigram index (``email_trgm``) merges only that way (``automerge`` 0,
migration 0004: a third less CPU per indexed message), and a bulk load (an import, ``janusmail migrate``,
the store-size benchmark's fill) leaves its upper levels nearly full. Measured on a store of 200,000 messages
right after such a fill (issue 10): one delivery took 2.1-3.0 s (the crisis merge of a level holding most of
the index), during which every other write of the server waited for the one writer; the word index
(``email_fts``, automerge on) added 30 ms at p99 paying the fill's incremental merge work. Over 1,000
single-message deliveries the mean was 5.5 ms; with the segments merged first, 2.8 ms, p99 7.5 ms, max 25 ms.

How: :func:`merge_step` asks FTS5 for a bounded amount of merge work (``'merge'`` with ``-pages``: every
level, like ``'optimize'``, but stopping after about that many pages), in a transaction of its own.
:func:`merge_everything` repeats it until FTS5 reports no work left, one short write lock at a time: a server
sharing the database keeps delivering between the steps (``'optimize'`` in one statement held the write lock
4.3 s for the same 200,000 messages; a step of :data:`STEP_PAGES` takes ~0.1 s).
:meth:`Store.refresh_statistics` runs it after every bulk load. PostgreSQL's GIN indexes have nothing like it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

    from janusmail.store.store import Store

__all__ = ["FTS_TABLES", "STEP_PAGES", "merge_everything", "merge_step"]

#: the SQLite full-text tables (janusmail.store.search.index)
FTS_TABLES = ("email_fts", "email_trgm")
#: pages of merge work per step (trigram pages: ~0.1 s here; 1,000 took up to 0.5 s)
STEP_PAGES = 200


def merge_step(conn: sa.Connection, table: str, pages: int = STEP_PAGES) -> bool:
    """About ``pages`` pages of merging in ``table``, all levels towards one segment; whether it did any (FTS5
    changes fewer than two rows when there was nothing left to merge)."""
    if table not in FTS_TABLES:
        raise ValueError(f"not a full-text table: {table}")
    raw = conn.connection.dbapi_connection
    assert raw is not None
    before = raw.total_changes
    conn.exec_driver_sql(f"INSERT INTO {table}({table}, rank) VALUES ('merge', {-abs(int(pages))})")  # noqa: S608
    return raw.total_changes - before >= 2


def merge_everything(store: Store, pages: int = STEP_PAGES, max_steps: int = 1_000_000) -> int:
    """Merge both full-text indexes down, one step per write transaction (``Store.transaction``); returns the
    steps that did work. Blocking: for a CLI command's thread or a store thread, after a bulk load."""
    if not store.sqlite:
        return 0
    done = 0
    for table in FTS_TABLES:
        for _ in range(max_steps):
            with store.transaction() as conn:
                worked = merge_step(conn, table, pages)
            if not worked:
                break
            done += 1
    return done
