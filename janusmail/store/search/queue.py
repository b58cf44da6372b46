"""SQLite: the full-text indexes are kept up to date in batches, shortly after each write, not by the write.

Why (issue 10): FTS5 pays for every transaction that changes an index: it writes a new segment of each
index at COMMIT, and a delete writes its own. With one message per group commit that fixed part was almost
the whole cost, measured on the stress profile's messages (ms of CPU per message, synchronous off):

=====================  ==========================  ==========================
                       one message per transaction  64 (50) per transaction
=====================  ==========================  ==========================
word index, insert     0.061                        0.009
trigram index, insert  0.163                        0.026
word index, delete     0.062                        0.007
trigram index, delete  0.140                        0.033
=====================  ==========================  ==========================

So every APPEND and every EXPUNGE of a last copy held SQLite's one write lock for about 0.2 ms of indexing
(17% of the writer lane's CPU under the IMAP stress profile: 2.15 -> 1.78 ms per group without it). Dovecot
indexes after delivery in its indexer process, Cyrus in ``squatter``; Janus now does it in batches:

* the ingest writes the texts it computed into ``search_queue`` (one plain row, migration 0020);
* a destroyed email's ``email_text`` row (gone with the email by its cascade) leaves its two index rowids in
  ``search_trash`` (its delete trigger), instead of deleting its index rows;
* :func:`index_forever` (each serving process, beside the segment merger) moves queued texts into both indexes
  and deletes trashed rows from them, :data:`BATCH_ROWS` of each (at most :data:`BATCH_BYTES` of text) per write
  call on the writer lane, at once while batches come back full, else every :data:`IDLE_SECONDS`;
* every search that may read the indexes first indexes what waits (:func:`ensure_indexed`), so a search never
  misses mail stored before it began; a bulk load indexes at its end (``Store.refresh_statistics``).
  JMAP reports a state with its results, so Email/query and /queryChanges also check, inside their snapshot,
  that none of the account's mail waits (else they index and look again). Trashed rows need no such care:
  every search reaches an email through its ``emails`` or ``email_text`` row, both gone with the email, and
  no new email is given an index rowid that trashed rows still hold (``index._LAST_ROWID``);
* mail expunged while still queued leaves the queue with its ``emails`` row (``ON DELETE CASCADE``): its text
  is never tokenized at all.

PostgreSQL indexes in the write, as before: GIN updates have no per-transaction segment, and several nodes
write in parallel there.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa

from janusmail.store.model import StorageUnavailable
from janusmail.store.writes import writes

from .index import index_rows

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.store.sqltext import SqlText
    from janusmail.store.store import Store

__all__ = ["BATCH_BYTES", "BATCH_ROWS", "drain", "ensure_indexed", "has_work", "index_forever", "index_queued",
           "index_queued_upto", "waiting"]

log = logging.getLogger("janusmail.store.search")

#: queued emails indexed, and trashed emails unindexed, by one write call, at most
BATCH_ROWS = 128
#: ... and at most about this much queued text (a batch holds the write lock while FTS5 tokenizes it)
BATCH_BYTES = 1024 * 1024
#: the same for :func:`drain` (a bulk load's end: fewer, bigger transactions; bounded all the same, since a
#: running server's writes may wait behind each)
BULK_ROWS = 1000
BULK_BYTES = 4 * 1024 * 1024
#: pause of the background indexer after a batch that was not full
IDLE_SECONDS = 0.5
#: pause after a failed batch (a full disk)
FAILED_PAUSE = 60.0

_TAKE = sa.text("SELECT seq, email_id, account_id, subject, addresses, headers, body FROM search_queue "
                "WHERE seq <= :upto ORDER BY seq LIMIT :n")
_LAST = sa.text("SELECT max(seq) FROM search_queue")
_WAITING = sa.text("SELECT 1 FROM search_queue WHERE account_id = :account_id LIMIT 1")
_ANY_TRASH = sa.text("SELECT 1 FROM search_trash LIMIT 1")
_DONE = sa.text("DELETE FROM search_queue WHERE seq IN :seqs").bindparams(sa.bindparam("seqs", expanding=True))
_ANY = sa.text("SELECT 1 FROM search_queue LIMIT 1")
_TRASH = sa.text("SELECT trgm_rowid, fts_rowid FROM search_trash ORDER BY trgm_rowid LIMIT :n")
_UNINDEX_WORDS = sa.text("DELETE FROM email_fts WHERE rowid IN :ids").bindparams(
    sa.bindparam("ids", expanding=True))
_UNINDEX_TRIGRAMS = sa.text("DELETE FROM email_trgm WHERE rowid IN :ids").bindparams(
    sa.bindparam("ids", expanding=True))
_EMPTIED = sa.text("DELETE FROM search_trash WHERE trgm_rowid IN :ids").bindparams(
    sa.bindparam("ids", expanding=True))


#: the columns of ``_TAKE``, by which ``index_rows`` takes them
_TAKEN = ("seq", "email_id", "account_id", "subject", "addresses", "headers", "body")


def _index_batch(conn: sa.Connection, sql: SqlText, max_rows: int = BATCH_ROWS, max_bytes: int = BATCH_BYTES,
                 upto: int | None = None) -> tuple[int, bool]:
    """Index the oldest queued emails (one batch; those queued as ``seq`` ``upto`` at the latest) and take them
    off the queue: how many, and whether the batch was cut by either limit (more may wait).

    ``sql``: the store's statements (``Store.sql``), run on the driver's cursor. The batch runs on the writer
    lane with the write lock held, after every APPEND and delivery; through SQLAlchemy's execution (parameters
    built per row, rows turned into dicts) a batch of 128 simple messages took 9.6-10.2 ms, now 6.4-7.6 ms
    (issue 10: the indexer was 11% of the GIL's time in the IMAP process under the APPEND profile)."""
    rows = sql.run(conn, _TAKE, {"n": max_rows, "upto": upto if upto is not None else 2**62})
    batch: list[dict] = []
    size = 0
    for r in rows:
        grows = len(r[6]) + len(r[5])  # body, headers
        if batch and size + grows > max_bytes:
            break
        batch.append(dict(zip(_TAKEN, r, strict=True)))
        size += grows
    if not batch:
        return 0, False
    index_rows(conn, batch, sql)
    sql.count(conn, _DONE, {"seqs": [row["seq"] for row in batch]})
    return len(batch), len(rows) == max_rows or len(batch) < len(rows)


def _unindex_batch(conn: sa.Connection, sql: SqlText, max_rows: int = BATCH_ROWS) -> int:
    """Delete the index rows of destroyed emails (one batch) and empty their trash rows; how many."""
    rows = sql.run(conn, _TRASH, {"n": max_rows})
    if not rows:
        return 0
    trigrams = [r[0] for r in rows]
    words = [r[1] for r in rows if r[1] is not None]
    if words:
        sql.count(conn, _UNINDEX_WORDS, {"ids": words})
    sql.count(conn, _UNINDEX_TRIGRAMS, {"ids": trigrams})
    sql.count(conn, _EMPTIED, {"ids": trigrams})
    return len(rows)


@writes
def index_queued(store: Store) -> bool:
    """One batch of each kind, on the writer lane (a savepoint of its group). Whether either was cut by its
    limits (more may wait)."""
    with store.transaction() as conn:
        _, more = _index_batch(conn, store.sql)
        unindexed = _unindex_batch(conn, store.sql)
    return more or unindexed >= BATCH_ROWS


@writes
def index_queued_upto(store: Store, upto: int) -> bool:
    """One batch of the emails queued as ``seq`` ``upto`` at the latest (a search's :func:`ensure_indexed`):
    whether more of them may wait."""
    with store.transaction() as conn:
        return _index_batch(conn, store.sql, upto=upto)[1]


def has_work(store: Store) -> bool:
    """Whether anything waits to be indexed or unindexed (two row reads, no write: an idle server's
    background indexer takes no write lock and makes no sync)."""
    with store.engine.connect() as conn:
        return conn.execute(_ANY).first() is not None or conn.execute(_ANY_TRASH).first() is not None


def waiting(conn: sa.Connection, account_id: str) -> bool:
    """Inside a read snapshot: whether any of the account's mail waits to be indexed in it (the queue is
    short: it is emptied in the background twice a second)."""
    return conn.execute(_WAITING, {"account_id": account_id}).first() is not None


def ensure_indexed(store: Store) -> None:
    """Before a search that may read the full-text indexes, in a server: index everything queued when it
    begins, batch by batch, up to the queue's highest ``seq`` then (what keeps arriving meanwhile, an import
    beside the server for one, is left to the background, except rows whose reused ``seq`` is lower), on the
    writer lane (``Store.write_call``, from a reader thread or inside a write call). It must run before the
    search's own read transaction begins, or that snapshot would not see the batches. A disk too full for the
    batches fails the search (``StorageUnavailable``) rather than let it miss mail."""
    if not store.sqlite:
        return
    with store.engine.connect() as conn:
        upto = conn.execute(_LAST).scalar()
    while upto is not None and store.write_call(index_queued_upto, store, upto):
        pass


def drain(store: Store) -> int:
    """Index everything queued and unindex everything trashed, one batch per transaction of its own
    (``Store.transaction``): for a bulk load's end and CLI tools, not for a server's threads (they go through
    the writer lane). How many emails it indexed."""
    if not store.sqlite:
        return 0
    done = 0
    try:
        while True:
            with store.transaction() as conn:
                n, _ = _index_batch(conn, store.sql, BULK_ROWS, BULK_BYTES)
                gone = _unindex_batch(conn, store.sql, BULK_ROWS)
            if not n and not gone:
                return done
            done += n
    except StorageUnavailable as exc:  # a full disk: the mail is stored; a server indexes it when there is room
        log.warning("%d queued emails indexed, the rest left for later: %s", done, exc)
        return done


async def index_forever(store: Store, idle_seconds: float = IDLE_SECONDS, idle: asyncio.Event | None = None) -> None:
    """The serving process's background indexer (SQLite; see the module docstring): the next batch at once
    while batches come back full, else after ``idle_seconds`` (so that batches gather many emails). Runs until
    cancelled; a failed batch (a full disk) is logged and tried again after a pause. ``idle``: set whenever a
    batch was not full."""
    if not store.sqlite:
        return
    while True:
        try:
            more = await store.call(has_work, store) and await store.call(index_queued, store)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - maintenance: searches index what waits themselves
            log.warning("indexing queued mail failed; next try in %.0f s", FAILED_PAUSE, exc_info=True)
            await asyncio.sleep(max(idle_seconds, FAILED_PAUSE))
            continue
        if not more:
            if idle is not None:
                idle.set()
            await asyncio.sleep(idle_seconds)
