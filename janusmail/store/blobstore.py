"""Where message and upload bytes live: a small typed interface, and the stores behind it.

Why an interface: with one server node the bytes sit best in local append-only pack files (``packs.py``), but
several ``serve`` nodes on one PostgreSQL database must all read every message, whichever node received it.
So the place is pluggable, chosen by ``[store] blob_store`` in ``DIR/janusmail.toml`` (or ``serve
--blob-store``):

``local`` (default)
    Pack files under ``DIR/blobs`` (:class:`janusmail.store.packs.PackStore`): appended and ``fdatasync``-ed
    before the transaction that names them commits. Fastest; one node only (other nodes cannot read them).
``database``
    The bytes in the database itself, table ``blob_chunks`` (:class:`DatabaseBlobs`), written by the SAME
    transaction that inserts the email rows: acknowledged = committed = durable, on every node at once. Big
    blobs are cut into :data:`CHUNK`-sized rows (1 MiB), so a 50 MB message never needs one giant ``bytea``
    in memory or on the wire, and a byte range (``BODY[1.2]``, a download chunk) reads only the chunks it
    covers, already cut to size by the database. Allowed on SQLite too (the whole mailstore in one file,
    handy for backups), though only PostgreSQL gives several nodes.

The contract (:class:`BlobBackend`) is deliberately small:

* ``put_many(conn, [(blob_id, bytes), ...]) -> [BlobRef]``: store new blobs, in order, durably no later than
  ``conn``'s transaction commits (a backend that is not the database, like packs, makes them durable BEFORE
  returning; the database one writes through ``conn`` and so commits or rolls back with the rows). The bytes
  may be any bytes-like object, often a read-only ``mmap`` of a spool file: never copied whole.
* ``read_range(loc, start, end) -> bytes``: bytes ``[start, end)`` of a blob, by the location its row recorded.
* ``holds(pack)``: whether a recorded location is this backend's (the ``blobs.pack`` column says where).
* ``transactional``: True when ``put_many`` writes through ``conn`` (durable at its commit); False when the
  bytes are durable on return and ``conn`` is unused (it may be ``None``): a caller may then store them
  before opening its transaction, so syncing a big upload does not hold the database's write lock.
* ``close()``.

A location is the ``(pack, offset)`` pair of the ``blobs`` row (see :class:`janusmail.store.model.
BlobLocation`, which also carries the blob id and size). Local pack names are 24 hex digits; every other
backend writes a ``scheme:`` prefix, so one store can hold blobs of several backends and reads dispatch on the
location, not on the configuration: switching ``blob_store`` is forward-only (new mail goes to the new place,
old mail is read where it was written, which for ``local`` means on the node that wrote it). Database
locations are ``("db:", chunk size)``: the rows are keyed by the blob id, and the chunk size they were cut with
is kept so a future change of :data:`CHUNK` never misreads old blobs.

An S3-compatible backend fits the same contract: ``put_many`` uploads each batch as one object (or one object
per blob, keyed by blob id) and returns ``("s3:<object key>", byte offset)`` only after the PUT succeeded (S3
PUTs are durable when acknowledged, so this is the packs' "durable before the row commits" rule);
``read_range`` is a ranged GET (``Range: bytes=start-end``), and ``holds`` tests the ``s3:`` prefix. Nothing above
this module would change; only ``open_blob_store`` learns the new name.

Deleting: packs are append-only and nothing deletes blob rows except account deletion, so the interface has
no delete hook yet. Database chunks reference their ``blobs`` row with ``ON DELETE CASCADE`` and go with the
account; pack bytes of deleted accounts stay until a compactor exists (as today).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

import sqlalchemy as sa

from .schema import blob_chunks

if TYPE_CHECKING:  # pragma: no cover
    from .model import BlobLocation
    from .packs import PackStore

__all__ = ["BLOB_STORES", "CHUNK", "DB_PACK", "BlobBackend", "BlobMissing", "BlobRef", "BlobStore", "DatabaseBlobs",
           "open_blob_store"]

#: The names ``[store] blob_store`` accepts.
BLOB_STORES = ("local", "database")
#: Bytes per ``blob_chunks`` row.
CHUNK = 1024 * 1024
#: The ``blobs.pack`` value of blobs kept in the database.
DB_PACK = "db:"
#: Chunk rows sent in one statement, at most (rows, bytes): bounds the copies of a big message held at once.
_INSERT_ROWS = 500
_INSERT_BYTES = 8 * 1024 * 1024


class BlobRef(NamedTuple):
    """Where ``put_many`` put one blob: the ``blobs`` row's ``pack`` and ``offset`` columns."""

    pack: str
    offset: int


class BlobMissing(LookupError):
    """A blob row names bytes its backend does not have (damage, or a local pack of another node)."""


@runtime_checkable
class BlobBackend(Protocol):
    """One place blob bytes can live (see the module docstring for the contract)."""

    transactional: bool

    def put_many(self, conn: sa.Connection | None, items: Sequence[tuple[str, bytes]]) -> list[BlobRef]: ...

    def read_range(self, loc: BlobLocation, start: int = 0, end: int | None = None) -> bytes: ...

    def holds(self, pack: str) -> bool: ...

    def close(self) -> None: ...


class DatabaseBlobs:
    """Blob bytes in ``blob_chunks`` rows, written by the caller's transaction."""

    transactional = True

    def __init__(self, engine: sa.Engine, chunk: int = CHUNK) -> None:
        self._engine = engine
        self.chunk = chunk

    def holds(self, pack: str) -> bool:
        return pack == DB_PACK

    def put_many(self, conn: sa.Connection | None, items: Sequence[tuple[str, bytes]]) -> list[BlobRef]:
        """Insert the chunks through ``conn``: they commit (or roll back) with the rows that name them. A
        disk-full or I/O error of the database surfaces like any other statement's (``Store.write`` maps it)."""
        if conn is None:
            raise TypeError("the database blob store writes through the caller's transaction")
        rows: list[dict[str, object]] = []
        size = 0
        for blob_id, data in items:
            total = len(data)
            for seq, at in enumerate(range(0, total, self.chunk)):
                piece = data[at:at + self.chunk]  # one chunk's copy (an mmap slice is bytes), never the whole
                rows.append({"blob_id": blob_id, "seq": seq, "data": piece})
                size += len(piece)
                if len(rows) >= _INSERT_ROWS or size >= _INSERT_BYTES:
                    conn.execute(sa.insert(blob_chunks), rows)
                    rows, size = [], 0
        if rows:
            conn.execute(sa.insert(blob_chunks), rows)
        return [BlobRef(DB_PACK, self.chunk) for _ in items]

    def read_range(self, loc: BlobLocation, start: int = 0, end: int | None = None) -> bytes:
        end = loc.size if end is None else min(end, loc.size)
        start = max(0, min(start, end))
        if start == end:
            return b""
        chunk = loc.offset or self.chunk  # the chunk size the blob was cut with
        first, last = start // chunk, (end - 1) // chunk
        params = {"blob_id": loc.blob_id, "first": first, "last": last, "lo": start - first * chunk,
                  "hi": end - last * chunk, "chunk": chunk}
        with self._engine.connect() as conn:
            parts = [bytes(r[0]) for r in conn.execute(_RANGE, params)]
        out = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(parts) != last - first + 1 or len(out) != end - start:
            raise BlobMissing(f"blob {loc.blob_id}: chunks {first}..{last} are not all in the database")
        return out

    def close(self) -> None:
        """Nothing to release: reads borrow pooled connections of the store's engine."""


def _range_query() -> sa.Select:
    """Chunks ``first..last`` of a blob, the first cut from ``lo`` and the last to ``hi``: only those two are
    partial, and the database cuts them, so a header read of a big message moves a few KB, not a chunk. Built
    once: constructing the expression costs more than running it."""
    seq = blob_chunks.c.seq
    first, last = sa.bindparam("first", type_=sa.Integer), sa.bindparam("last", type_=sa.Integer)
    lo = sa.case((seq == first, sa.bindparam("lo", type_=sa.Integer)), else_=0)
    hi = sa.case((seq == last, sa.bindparam("hi", type_=sa.Integer)), else_=sa.bindparam("chunk", type_=sa.Integer))
    return (sa.select(sa.func.substr(blob_chunks.c.data, lo + 1, hi - lo))
            .where(blob_chunks.c.blob_id == sa.bindparam("blob_id"), seq >= first, seq <= last).order_by(seq))


_RANGE = _range_query()


class BlobStore:
    """The store's blob bytes: new blobs go to the configured backend; a read goes to the backend that holds
    the location (so blobs written under an earlier ``blob_store`` setting stay readable)."""

    def __init__(self, writer: BlobBackend, readers: Sequence[BlobBackend]) -> None:
        self.writer = writer
        self._readers = list(readers)

    @property
    def transactional(self) -> bool:
        """Whether new bytes must be written by the transaction that names them (see ``BlobBackend``)."""
        return self.writer.transactional

    def put_many(self, conn: sa.Connection | None, items: Sequence[tuple[str, bytes]]) -> list[BlobRef]:
        """Store new blobs ``(blob_id, bytes)`` through ``conn``, the write transaction that inserts their rows
        (``None``: before it, only when the writer is not ``transactional``). Raises ``StorageUnavailable`` when a disk refuses (nothing returned may be recorded then)."""
        return self.writer.put_many(conn, items) if items else []

    def backend_of(self, pack: str) -> BlobBackend:
        for b in self._readers:
            if b.holds(pack):
                return b
        raise BlobMissing(f"no blob store holds location {pack!r}")

    def read(self, loc: BlobLocation, start: int = 0, end: int | None = None) -> bytes:
        """Bytes ``[start, end)`` of a stored blob (clamped to its size)."""
        return self.backend_of(loc.pack).read_range(loc, start, end)

    def stream(self, loc: BlobLocation, start: int = 0, end: int | None = None,
               chunk: int = CHUNK) -> Iterator[bytes]:
        """The bytes ``[start, end)`` in pieces of at most ``chunk``: a big blob is never held whole (and never
        mapped: ranged reads work the same on every backend)."""
        backend = self.backend_of(loc.pack)
        end = loc.size if end is None else min(end, loc.size)
        at = max(0, start)
        while at < end:
            piece = backend.read_range(loc, at, min(end, at + chunk))
            if not piece:
                raise BlobMissing(f"blob {loc.blob_id} ends before byte {at}")
            yield piece
            at += len(piece)

    def close(self) -> None:
        for b in self._readers:
            b.close()


def open_blob_store(kind: str, engine: sa.Engine, packs: PackStore) -> BlobStore:
    """The blob store named by ``[store] blob_store``; both backends always read (see :class:`BlobStore`)."""
    database = DatabaseBlobs(engine)
    if kind == "local":
        return BlobStore(packs, [packs, database])
    if kind == "database":
        return BlobStore(database, [database, packs])
    raise ValueError(f"blob_store must be one of {', '.join(BLOB_STORES)}, not {kind!r}")
