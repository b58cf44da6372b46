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
:meth:`Store.refresh_statistics` runs it after every bulk load.

A server that grows by deliveries piles segments up too: with the trigram index merged only by crisis, a
level of 16 x 4,096 messages' segments is merged inside one delivery every 65,536 of them (a third of a
200,000-message index, seconds). So a serving process also runs :func:`merge_forever`: one small step
(:data:`BACKGROUND_PAGES`, ``'merge'`` with a positive count: a level that holds at least ``usermerge``
segments, :data:`USERMERGE`) as a write call of its own on the writer lane, then the next at once while the
steps find work, else after :data:`IDLE_SECONDS`. Levels stay below the crisis threshold, and what a crisis
would merge in one write is merged a few pages per group commit. PostgreSQL's GIN indexes have nothing like it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from janusmail.store.model import StorageUnavailable
from janusmail.store.writes import writes

if TYPE_CHECKING:  # pragma: no cover
    import sqlalchemy as sa

    from janusmail.store.store import Store

__all__ = ["BACKGROUND_PAGES", "FTS_TABLES", "IDLE_SECONDS", "STEP_PAGES", "USERMERGE", "merge_everything",
           "merge_forever", "merge_levels", "merge_some", "merge_step", "set_usermerge"]

log = logging.getLogger("janusmail.store.search")

#: the SQLite full-text tables (janusmail.store.search.index)
FTS_TABLES = ("email_fts", "email_trgm")
#: pages of merge work per step (trigram pages: ~0.1 s here; 1,000 took up to 0.5 s)
STEP_PAGES = 200
#: pages per background step: it shares a group commit with mail writes, whose answers wait for it
BACKGROUND_PAGES = 64
#: a level is merged in the background once it holds this many segments (crisis: 16, in the write itself)
USERMERGE = 8
#: pause of the background merger once a step found nothing to merge
IDLE_SECONDS = 2.0
#: pause after a failed step (a full disk, a locked database)
FAILED_PAUSE = 60.0


def merge_step(conn: sa.Connection, table: str, pages: int = STEP_PAGES) -> bool:
    """About ``pages`` pages of merging in ``table``, all levels towards one segment; whether it did any."""
    return _merge(conn, table, -abs(int(pages)))


def merge_levels(conn: sa.Connection, table: str, pages: int = BACKGROUND_PAGES) -> bool:
    """About ``pages`` pages of merging of the fullest level of ``table`` that holds at least ``usermerge``
    segments (or of a merge under way); whether it did any."""
    return _merge(conn, table, abs(int(pages)))


def _merge(conn: sa.Connection, table: str, count: int) -> bool:
    """FTS5's ``'merge'`` command (a negative count: every level; positive: levels of ``usermerge``
    segments); FTS5 changes fewer than two rows when there was nothing to merge."""
    if table not in FTS_TABLES:
        raise ValueError(f"not a full-text table: {table}")
    raw = conn.connection.dbapi_connection
    assert raw is not None
    before = raw.total_changes
    conn.exec_driver_sql(f"INSERT INTO {table}({table}, rank) VALUES ('merge', {count})")  # noqa: S608
    return raw.total_changes - before >= 2


@writes
def set_usermerge(store: Store, segments: int = USERMERGE) -> None:
    """FTS5's ``usermerge`` of both indexes (kept in their ``_config`` tables), where it differs."""
    with store.transaction() as conn:
        for table in FTS_TABLES:
            now = conn.exec_driver_sql(f"SELECT v FROM {table}_config WHERE k = 'usermerge'").scalar()  # noqa: S608
            if now != segments:
                conn.exec_driver_sql(
                    f"INSERT INTO {table}({table}, rank) VALUES ('usermerge', {int(segments)})")  # noqa: S608


@writes
def merge_some(store: Store, pages: int = BACKGROUND_PAGES) -> bool:
    """One background step on the writer lane (a savepoint of its group): both indexes; whether either had
    work."""
    worked = False
    with store.transaction() as conn:
        for table in FTS_TABLES:
            worked = merge_levels(conn, table, pages) or worked
    return worked


async def merge_forever(store: Store, idle_seconds: float = IDLE_SECONDS, pages: int = BACKGROUND_PAGES,
                        idle: asyncio.Event | None = None) -> None:
    """The serving process's background merger (SQLite; see the module docstring). Runs until cancelled; a
    failed step (a full disk) is logged and tried again after the pause. ``idle``: set whenever a step found
    nothing left to merge."""
    if not store.sqlite:
        return
    try:
        await store.call(set_usermerge, store)
    except Exception:  # noqa: BLE001 - then FTS5's default (4): more, smaller merges
        log.warning("could not set the full-text indexes' usermerge", exc_info=True)
    while True:
        try:
            worked = await store.call(merge_some, store, pages)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - maintenance: the mail path reports its own errors
            log.warning("full-text segment merge failed; next try in %.0f s", FAILED_PAUSE, exc_info=True)
            await asyncio.sleep(max(idle_seconds, FAILED_PAUSE))  # (a full disk: no warning every two seconds)
            continue
        if not worked:
            if idle is not None:
                idle.set()
            await asyncio.sleep(idle_seconds)


def merge_everything(store: Store, pages: int = STEP_PAGES, max_steps: int = 1_000_000) -> int:
    """Merge both full-text indexes down, one step per write transaction (``Store.transaction``); returns the
    steps that did work. Blocking: for a CLI command's thread or a store thread, after a bulk load. A full disk
    stops it with a warning, never failing the load it follows (a merge needs room for the merged segment
    before the old ones are freed)."""
    if not store.sqlite:
        return 0
    done = 0
    try:
        for table in FTS_TABLES:
            for _ in range(max_steps):
                with store.transaction() as conn:
                    worked = merge_step(conn, table, pages)
                if not worked:
                    break
                done += 1
    except StorageUnavailable as exc:  # a full disk: the mail is stored; the merging waits for room
        log.warning("full-text segments left unmerged after %d steps: %s", done, exc)
    return done
