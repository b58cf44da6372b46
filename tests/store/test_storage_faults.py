"""Issue 8, item 1 at the store: a failed write or sync never leaves a row pointing at bytes that are not there.

Every fault of the write path (short write then ENOSPC, EIO/EDQUOT on write, a write that claims success but
keeps nothing, EIO on fdatasync, no room for a new pack, the database's disk full at an INSERT or at COMMIT)
must surface as ``StorageUnavailable`` with nothing recorded, and once the disk has room again every stored
message must read back byte-exact, before and after the store is reopened. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import sqlite3
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from janusmail.store import faults
from janusmail.store import packs as blobmod
from janusmail.store.model import StorageUnavailable
from janusmail.store.packs import PackStore
from janusmail.store.schema import blobs
from janusmail.store.store import Store
from tests.mailgen import simple
from tests.store.storage_faults import Faults, every_stored_email


def _msg(i: int) -> bytes:
    return simple(i, body=f"message {i} " + "z" * (3000 + i))


# name -> (arm the faults, the ``full`` flag each failing attempt must report)
CASES = {
    "short write then ENOSPC": (lambda f, s: f.short_write_then_enospc(), [True]),
    "ENOSPC at once": (lambda f, s: f.write_error(errno.ENOSPC), [True]),
    "EDQUOT": (lambda f, s: f.write_error(errno.EDQUOT), [True]),
    "EIO on write": (lambda f, s: f.write_error(errno.EIO), [False]),
    "write keeps nothing": (lambda f, s: f.lying_write(), [False]),
    "EIO on fdatasync": (lambda f, s: f.sync_error(errno.EIO), [False]),
    "ENOSPC on fdatasync, then no room for a new pack": (
        lambda f, s: (f.sync_error(errno.ENOSPC), f.new_pack_error(errno.ENOSPC)), [True, True]),
    "database disk full at INSERT": (lambda f, s: f.insert_disk_full(s.engine, "emails"), [True]),
    "database disk full at COMMIT": (lambda f, s: f.commit_disk_full(s.engine), [True]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_fault_records_nothing_and_every_message_reads_back(store, db_url, tmp_path, monkeypatch, case):
    arm, fulls = CASES[case]
    acct = store.accounts.create("alice@example.test", "x")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    acked = [store.emails.ingest(acct.id, _msg(i), (inbox.id,)) and _msg(i) for i in range(3)]
    f = Faults(monkeypatch)
    arm(f, store)
    for n, full in enumerate(fulls):
        with pytest.raises(StorageUnavailable) as info:
            store.emails.ingest(acct.id, _msg(100 + n), (inbox.id,))
        assert info.value.full is full
    assert f.fired == len(fulls)  # each armed fault really hit the write path
    assert store.mailboxes.counts(acct.id, [inbox.id])[inbox.id].messages == 3  # nothing half-stored is visible
    acked += [store.emails.ingest(acct.id, _msg(i), (inbox.id,)) and _msg(i) for i in range(3, 6)]
    assert sorted(every_stored_email(store)) == sorted(acked)
    store.close()
    again = Store.open(tmp_path / "data", db_url)
    try:
        assert sorted(every_stored_email(again)) == sorted(acked)
        # The restarted store keeps storing correctly too.
        again.emails.ingest(acct.id, _msg(7), (inbox.id,))
        assert sorted(every_stored_email(again)) == sorted([*acked, _msg(7)])
    finally:
        again.close()


def test_torn_tail_is_cut_and_a_new_pack_is_started(store, monkeypatch):
    acct = store.accounts.create("alice@example.test", "x")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    first = store.emails.ingest(acct.id, _msg(1), (inbox.id,))
    loc = store.blobs.location(acct.id, first.blob_id)
    pack_file = store.packs._path(loc.pack)
    good = pack_file.stat().st_size
    f = Faults(monkeypatch)
    f.short_write_then_enospc()
    with pytest.raises(StorageUnavailable):
        store.emails.ingest(acct.id, _msg(2), (inbox.id,))
    assert pack_file.stat().st_size == good  # the half-written bytes are gone (space given back)
    later = store.blobs.location(acct.id, store.emails.ingest(acct.id, _msg(3), (inbox.id,)).blob_id)
    assert later.pack != loc.pack and later.offset == 0  # never written to again after a failure
    f.sync_error()
    with pytest.raises(StorageUnavailable):
        store.emails.ingest(acct.id, _msg(4), (inbox.id,))
    last = store.blobs.location(acct.id, store.emails.ingest(acct.id, _msg(5), (inbox.id,)).blob_id)
    assert last.pack not in (loc.pack, later.pack)
    assert store.blobs.read(acct.id, first.blob_id) == _msg(1)


def test_empty_abandoned_packs_are_not_left_behind(tmp_path, monkeypatch):
    """While the disk stays full, each refused delivery must not leave an empty pack file behind."""
    bs = PackStore(tmp_path / "blobs")
    f = Faults(monkeypatch)
    f.write_error(errno.ENOSPC, times=20)
    for _ in range(20):
        with pytest.raises(StorageUnavailable):
            bs.append(b"x" * 100)
    assert list((tmp_path / "blobs").rglob("*.pack")) == []
    pack, offset = bs.append(b"fits now")
    assert bs.read(pack, offset, 8) == b"fits now"
    bs.close()


def test_group_commit_retries_a_failed_batch_one_by_one(store, db_url, tmp_path, monkeypatch):
    """Concurrent deliveries share one write; when that write fails they are retried alone, and every caller
    that is acknowledged has its bytes on disk."""
    acct = store.accounts.create("alice@example.test", "x")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    f = Faults(monkeypatch)
    f.short_write_then_enospc(times=2)
    msgs = [_msg(i) for i in range(8)]

    async def deliver_all() -> list[object]:
        return await asyncio.gather(*(store.deliver(acct.id, m, (inbox.id,)) for m in msgs),
                                    return_exceptions=True)

    results = asyncio.run(deliver_all())
    assert f.fired == 2
    acked = [m for m, r in zip(msgs, results, strict=True) if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, StorageUnavailable) for r in refused), refused
    assert len(acked) >= len(msgs) - 2
    assert sorted(every_stored_email(store)) == sorted(acked)
    store.close()
    again = Store.open(tmp_path / "data", db_url)
    try:
        assert sorted(every_stored_email(again)) == sorted(acked)
    finally:
        again.close()


def test_upload_blob_fault_records_nothing(store, monkeypatch):
    acct = store.accounts.create("alice@example.test", "x")
    f = Faults(monkeypatch)
    f.short_write_then_enospc()
    with pytest.raises(StorageUnavailable):
        store.blobs.upload(acct.id, b"u" * 5000, "application/octet-stream")
    f.commit_disk_full(store.engine)  # the bytes are written, the row's COMMIT fails
    with pytest.raises(StorageUnavailable):
        store.blobs.upload(acct.id, b"v" * 5000, "application/octet-stream")
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(blobs)).scalar() == 0
    assert f.fired == 2
    blob_id, _ = store.blobs.upload(acct.id, b"w" * 5000, "application/octet-stream")
    assert store.blobs.read(acct.id, blob_id) == b"w" * 5000


# -- the reader descriptor cache ---------------------------------------------------------------------------


def test_reader_descriptor_in_use_is_never_closed(tmp_path, monkeypatch):
    """A read in progress keeps its descriptor even when other reads push the cache past its limit: closing it
    would let the number be reused by another pack, and the read would return that pack's bytes (or EBADF)."""
    root = tmp_path / "blobs"
    limit = getattr(blobmod, "MAX_READERS", 256)
    locs = []
    for i in range(limit + 40):  # each store instance writes its own pack
        w = PackStore(root, fsync=False)
        locs.append((w.append(f"pack {i} ".encode() * 10), f"pack {i} ".encode() * 10))
        w.close()
    reader = PackStore(root, fsync=False)
    fds_before = len(os.listdir("/proc/self/fd"))
    real_pread = os.pread
    busy = [False]

    def pread_while_others_read(fd: int, n: int, offset: int) -> bytes:
        if not busy[0]:
            busy[0] = True  # while this read is "in the kernel", everyone else reads every other pack
            for (pack, off), data in locs[1:]:
                assert reader.read(pack, off, len(data)) == data
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread_while_others_read)
    (pack0, off0), data0 = locs[0]
    assert reader.read(pack0, off0, len(data0)) == data0
    monkeypatch.setattr(os, "pread", real_pread)
    # The cache stays bounded: idle descriptors beyond the limit were closed.
    assert len(os.listdir("/proc/self/fd")) <= fds_before + limit + 2
    for (pack, off), data in locs:  # and every pack still reads right afterwards
        assert reader.read(pack, off, len(data)) == data
    reader.close()


def test_concurrent_reads_over_many_packs_return_the_right_bytes(tmp_path):
    """Many threads reading from more packs than the cache keeps: every read returns its own pack's bytes."""
    root = tmp_path / "blobs"
    limit = getattr(blobmod, "MAX_READERS", 256)
    locs = []
    for i in range(limit + 60):
        w = PackStore(root, fsync=False)
        data = f"<{i}>".encode() * 50
        locs.append((w.append(data), data))
        w.close()
    reader = PackStore(root, fsync=False)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(3000):
                (pack, off), data = rnd.choice(locs)
                got = reader.read(pack, off, len(data))
                assert got == data, (got[:12], data[:12])
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    reader.close()


def test_close_waits_for_reads_in_progress(tmp_path, monkeypatch):
    bs = PackStore(tmp_path / "blobs", fsync=False)
    pack, off = bs.append(b"still here")
    real_pread = os.pread

    def close_meanwhile(fd: int, n: int, offset: int) -> bytes:
        monkeypatch.setattr(os, "pread", real_pread)
        bs.close()  # shutdown races a read: the read's descriptor must survive until it is done
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", close_meanwhile)
    assert bs.read(pack, off, 10) == b"still here"


# -- classifying errors -------------------------------------------------------------------------------------


def _sqlite_error(msg: str, code: int) -> sqlite3.Error:
    exc = sqlite3.OperationalError(msg)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(("orig", "full"), [
    (_sqlite_error("database or disk is full", 13), True),
    (_sqlite_error("disk I/O error", 10 | (3 << 8)), False),  # SQLITE_IOERR_WRITE
    (sqlite3.OperationalError("database or disk is full"), True),  # no code attribute: the text decides
])
def test_sqlite_storage_errors_are_recognised(orig, full):
    su = faults.from_db_error(sa.exc.OperationalError("COMMIT", None, orig))
    assert isinstance(su, StorageUnavailable) and su.full is full


def test_postgres_disk_full_is_recognised():
    import psycopg.errors

    su = faults.from_db_error(sa.exc.OperationalError("INSERT", None, psycopg.errors.DiskFull("no space")))
    assert isinstance(su, StorageUnavailable) and su.full
    assert faults.from_db_error(sa.exc.OperationalError("x", None, psycopg.errors.QueryCanceled("x"))) is None


def test_other_database_errors_stay_what_they_are():
    orig = _sqlite_error("UNIQUE constraint failed", 19)
    assert faults.from_db_error(sa.exc.IntegrityError("INSERT", None, orig)) is None
    with pytest.raises(sa.exc.IntegrityError), faults.mapped():
        raise sa.exc.IntegrityError("INSERT", None, orig)


def test_missing_pack_is_not_storage_unavailable(tmp_path):
    """Reads are not writes: a missing pack is a plain error (a bug or lost data), never "try again later"."""
    bs = PackStore(Path(tmp_path) / "blobs")
    with pytest.raises(FileNotFoundError):
        bs.read("00" * 12, 0, 1)
    bs.close()
