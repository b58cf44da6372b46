"""The blob store interface (janusmail/store/blobstore.py): the same contract from local packs and from the
database, on SQLite and PostgreSQL; messages and uploads through the store on both; and the two settings
living side by side in one store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from janusmail.store.blobstore import CHUNK, DB_PACK, BlobBackend, BlobMissing, DatabaseBlobs
from janusmail.store.model import BlobLocation, StorageUnavailable
from janusmail.store.schema import blob_chunks
from janusmail.store.store import Store
from tests.mailgen import simple


@pytest.fixture(params=["local", "database"])
def blob_store(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def bstore(db_url: str | None, tmp_path: Path, blob_store: str):  # noqa: ANN201
    s = Store.open(tmp_path / "data", db_url, blob_store=blob_store)
    try:
        yield s
    finally:
        s.close()


def _chunk_rows(store: Store) -> int:
    with store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(blob_chunks)).scalar_one()


def _big(n: int) -> bytes:
    return hashlib.sha256(b"seed").digest() * (n // 32) + b"x" * (n % 32)


def _put(store: Store, backend: BlobBackend, items: list[tuple[str, bytes]],
         account_id: str) -> list[BlobLocation]:
    """Put through ``backend`` inside a write transaction that also inserts the rows naming the bytes (as
    ingest and upload do), and return their locations."""
    from janusmail.store.schema import blobs

    with store.write(account_id) as tx:
        refs = backend.put_many(tx.conn, items)
        tx.conn.execute(sa.insert(blobs), [
            {"id": bid, "account_id": account_id, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
             "type": None, "pack": ref.pack, "offset": ref.offset, "created_at": 0}
            for (bid, data), ref in zip(items, refs, strict=True)])
    return [BlobLocation(bid, hashlib.sha256(data).hexdigest(), len(data), ref.pack, ref.offset)
            for (bid, data), ref in zip(items, refs, strict=True)]


@pytest.mark.parametrize("kind", ["packs", "database"])
def test_backends_keep_the_contract(store, account, kind: str) -> None:  # noqa: ANN001
    """put_many returns one location per blob in order; every range reads back exactly, across chunk
    boundaries too (a small chunk size makes a few KB span many chunks); each backend holds only its own."""
    backend: BlobBackend = store.packs if kind == "packs" else DatabaseBlobs(store.engine, chunk=1000)
    assert isinstance(backend, BlobBackend) and backend.transactional == (kind == "database")
    items = [("B-contract-1", b"small"), ("B-contract-2", b""), ("B-contract-3", _big(5500)),
             ("B-contract-4", bytes(range(256)) * 4)]
    locs = _put(store, backend, items, account.id)
    assert len(locs) == len(items)
    for (_, data), loc in zip(items, locs, strict=True):
        assert backend.holds(loc.pack) and (loc.pack == DB_PACK) == (kind == "database")
        assert backend.read_range(loc) == data
        for start, end in [(0, 1), (0, 1000), (999, 1001), (1000, 2000), (1500, 4200), (4999, None), (3, 3),
                           (7000, None), (0, 10**9)]:
            assert backend.read_range(loc, start, end) == data[start:end], (start, end)
        assert store.blob_store.read(loc) == data  # the store's router finds the backend by the location
        assert b"".join(store.blob_store.stream(loc, 10, None, chunk=700)) == data[10:]


def test_database_chunks_are_bounded_and_roll_back_with_the_transaction(store, account) -> None:  # noqa: ANN001
    """Bytes in the database belong to the write transaction: a failed write leaves no chunk behind, and a
    blob bigger than a chunk is stored as several rows no bigger than the chunk size."""
    backend = DatabaseBlobs(store.engine, chunk=1024)
    before = _chunk_rows(store)
    with pytest.raises(RuntimeError), store.write(account.id) as tx:
        backend.put_many(tx.conn, [("B-rolled-back", _big(5000))])
        raise RuntimeError("the rest of the write failed")
    assert _chunk_rows(store) == before
    (loc,) = _put(store, backend, [("B-chunked", _big(5000))], account.id)
    with store.read() as conn:
        sizes = [len(r[0]) for r in conn.execute(sa.select(blob_chunks.c.data)
                                                 .where(blob_chunks.c.blob_id == "B-chunked")
                                                 .order_by(blob_chunks.c.seq))]
    assert sizes == [1024] * 4 + [5000 - 4096]
    assert loc.offset == 1024  # the chunk size the blob was cut with, so a later CHUNK change reads it right
    assert DatabaseBlobs(store.engine, chunk=CHUNK).read_range(loc, 1000, 3000) == _big(5000)[1000:3000]


def test_missing_database_bytes_are_an_error_not_short_data(store, account) -> None:  # noqa: ANN001
    backend = DatabaseBlobs(store.engine, chunk=100)
    (loc,) = _put(store, backend, [("B-damaged", _big(350))], account.id)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(blob_chunks).where(blob_chunks.c.blob_id == "B-damaged", blob_chunks.c.seq == 2))
    assert backend.read_range(loc, 0, 100) == _big(350)[:100]
    with pytest.raises(BlobMissing):
        backend.read_range(loc)
    with pytest.raises(BlobMissing):
        store.blob_store.read(BlobLocation("B-x", "0" * 64, 5, "s3:nowhere", 0))


def test_messages_and_uploads_round_trip_on_each_blob_store(bstore, blob_store: str) -> None:  # noqa: ANN001
    """Through the services: delivery, big messages, uploads (deduplicated), byte ranges, on both settings;
    with "database" no pack file is written at all (another node could not read it)."""
    acct = bstore.accounts.create("alice@example.test", "x")
    inbox = bstore.mailboxes.by_path(acct.id, ["INBOX"])
    big = simple(1) + b"\r\n" + _big(3 * CHUNK + 12345)  # spans four chunks
    delivered = bstore.emails.ingest_many(acct.id, [_item(simple(2), inbox.id), _item(big, inbox.id)])
    for raw, d in zip((simple(2), big), delivered, strict=True):
        assert bstore.emails.raw(acct.id, d.email_id) == raw
        loc = bstore.emails.location(acct.id, d.email_id)
        assert (loc.pack == DB_PACK) == (blob_store == "database")
        assert bstore.blobs.read_location(loc, CHUNK - 10, CHUNK + 10) == raw[CHUNK - 10:CHUNK + 10]
    assert b"".join(bstore.blobs.stream(bstore.emails.location(acct.id, delivered[1].email_id))) == big
    blob_id, size = bstore.blobs.upload(acct.id, b"attachment bytes", "text/plain")
    assert bstore.blobs.read(acct.id, blob_id) == b"attachment bytes" and size == 16
    assert bstore.blobs.upload(acct.id, b"attachment bytes", "text/plain")[0] == blob_id
    packs = [p for p in (bstore.packs.root).rglob("*.pack") if p.stat().st_size]
    assert bool(packs) == (blob_store == "local")
    assert (_chunk_rows(bstore) > 0) == (blob_store == "database")


def test_deleting_an_account_takes_its_database_bytes(db_url, tmp_path) -> None:  # noqa: ANN001
    store = Store.open(tmp_path / "data", db_url, blob_store="database")
    try:
        acct = store.accounts.create("gone@example.test", "x")
        keep = store.accounts.create("kept@example.test", "x")
        for a in (acct, keep):
            store.emails.ingest(a.id, simple(1), (store.mailboxes.by_path(a.id, ["INBOX"]).id,))
        both = _chunk_rows(store)
        store.accounts.delete(acct.id)
        assert 0 < _chunk_rows(store) < both
    finally:
        store.close()


def test_switching_blob_store_keeps_old_mail_readable(db_url, tmp_path) -> None:  # noqa: ANN001
    """Switching is forward-only: new bytes go to the new place, old ones are read where they were written."""
    data = tmp_path / "data"
    first = Store.open(data, db_url)
    acct = first.accounts.create("mover@example.test", "x")
    inbox = first.mailboxes.by_path(acct.id, ["INBOX"])
    old = first.emails.ingest(acct.id, simple(1), (inbox.id,))
    first.close()
    second = Store.open(data, db_url, blob_store="database")
    try:
        new = second.emails.ingest(acct.id, simple(2), (inbox.id,))
        assert second.emails.location(acct.id, new.email_id).pack == DB_PACK
        assert second.emails.location(acct.id, old.email_id).pack != DB_PACK
        assert second.emails.raw(acct.id, old.email_id) == simple(1)
        assert second.emails.raw(acct.id, new.email_id) == simple(2)
    finally:
        second.close()


def test_an_unknown_blob_store_is_refused(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="blob_store"):
        Store.open(tmp_path / "data", blob_store="s3")


def test_a_full_disk_on_the_packs_still_records_nothing_with_local(store, account, monkeypatch) -> None:  # noqa: ANN001
    """The local backend keeps the packs' rule through the interface: a refused sync is StorageUnavailable
    and the transaction that would have named the bytes records nothing."""
    import errno

    before = store.changes.highest_modseq(account.id)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("janusmail.store.packs.os.fdatasync", full)
    with pytest.raises(StorageUnavailable) as err:
        store.blobs.upload(account.id, b"no room for this", None)
    assert err.value.full
    assert store.changes.highest_modseq(account.id) == before


def _item(raw: bytes, mailbox_id: str):  # noqa: ANN202
    from janusmail.store.model import IngestItem

    return IngestItem(raw, (mailbox_id,))


@pytest.mark.parametrize("table", ["blob_chunks", "emails"])
def test_a_full_database_disk_records_nothing_with_database_blobs(db_url, tmp_path, monkeypatch,  # noqa: ANN001
                                                                  table: str) -> None:
    """With the bytes in the database, a refused chunk INSERT (or a refused row after it) is the same
    StorageUnavailable, rolls back the bytes with the rows, and every acknowledged message still reads back."""
    from tests.store.storage_faults import Faults

    store = Store.open(tmp_path / "data", db_url, blob_store="database")
    try:
        acct = store.accounts.create("alice@example.test", "x")
        inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
        acked = [store.emails.ingest(acct.id, simple(i), (inbox.id,)) for i in range(3)]
        before, chunks = store.changes.highest_modseq(acct.id), _chunk_rows(store)
        faults = Faults(monkeypatch)
        faults.insert_disk_full(store.engine, table)
        with pytest.raises(StorageUnavailable) as err:
            store.emails.ingest(acct.id, simple(99), (inbox.id,))
        assert err.value.full and faults.fired == 1
        with pytest.raises(StorageUnavailable):
            faults.insert_disk_full(store.engine, "blob_chunks" if table == "blob_chunks" else "blobs")
            store.blobs.upload(acct.id, b"upload that finds the disk full" * 100, None)
        assert store.changes.highest_modseq(acct.id) == before and _chunk_rows(store) == chunks
        assert [store.emails.raw(acct.id, d.email_id) for d in acked] == [simple(i) for i in range(3)]
        again = store.emails.ingest(acct.id, simple(99), (inbox.id,))  # space is back
        assert store.emails.raw(acct.id, again.email_id) == simple(99)
    finally:
        store.close()
