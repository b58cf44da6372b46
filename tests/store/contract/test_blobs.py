"""Contract of ``store.blobs``: an account's bytes by blob id (messages and uploads), byte ranges, uploads
deduplicated per account, never another account's blob; on both backends."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from janusmail.store.model import NotFound
from janusmail.store.writes import is_write
from tests.mailgen import simple

from .util import box, states


def test_upload_is_a_write_and_reads_are_not(store) -> None:  # noqa: ANN001
    bl = store.blobs
    assert is_write(bl.upload)
    assert not any(is_write(m) for m in (bl.location, bl.read, bl.read_location))


def test_upload_and_read_back_with_ranges(store, account) -> None:  # noqa: ANN001
    data = bytes(range(256)) * 4
    blob_id, size = store.blobs.upload(account.id, data, "application/octet-stream")
    assert size == len(data)
    loc = store.blobs.location(account.id, blob_id)
    assert (loc.blob_id, loc.size, loc.sha256, loc.type) == (
        blob_id, len(data), hashlib.sha256(data).hexdigest(), "application/octet-stream")
    assert store.blobs.read(account.id, blob_id) == data
    assert store.blobs.read(account.id, blob_id, 10, 20) == data[10:20]
    assert store.blobs.read(account.id, blob_id, 1000) == data[1000:]
    assert store.blobs.read_location(loc, 0, 3) == data[:3]
    assert store.blobs.read(account.id, blob_id, 1024) == b""


def test_an_empty_upload_is_a_blob_too(store, account) -> None:  # noqa: ANN001
    blob_id, size = store.blobs.upload(account.id, b"", None)
    assert size == 0 and store.blobs.read(account.id, blob_id) == b""
    assert store.blobs.location(account.id, blob_id).type is None


def test_the_same_bytes_uploaded_twice_share_one_blob_and_one_write(store, account) -> None:  # noqa: ANN001
    first, _ = store.blobs.upload(account.id, b"same bytes", "text/plain")
    after_first = store.changes.highest_modseq(account.id)
    again, size = store.blobs.upload(account.id, b"same bytes", "application/x-other")
    assert again == first and size == len(b"same bytes")
    assert store.changes.highest_modseq(account.id) == after_first  # nothing written the second time
    assert store.blobs.location(account.id, first).type == "text/plain"
    other, _ = store.blobs.upload(account.id, b"other bytes", "text/plain")
    assert other != first


def test_an_upload_of_a_stored_messages_bytes_is_that_blob(store, account) -> None:  # noqa: ANN001
    raw = simple(1)
    d = store.emails.ingest(account.id, raw, (box(store, account.id).id,))
    assert store.blobs.upload(account.id, raw, "message/rfc822") == (d.blob_id, len(raw))
    loc = store.emails.location(account.id, d.email_id)
    assert store.blobs.read_location(loc) == raw == store.blobs.read(account.id, d.blob_id)


def test_uploads_are_invisible_to_jmap_states(store, account) -> None:  # noqa: ANN001
    before = states(store, account.id)
    store.blobs.upload(account.id, b"draft attachment", "text/plain")
    assert states(store, account.id) == before


def test_another_accounts_blob_ids_answer_nothing(store, account) -> None:  # noqa: ANN001
    bob = store.accounts.create("bob@example.test", "x")
    mine, _ = store.blobs.upload(account.id, b"private", "text/plain")
    d = store.emails.ingest(account.id, simple(1), (box(store, account.id).id,))
    for blob_id in (mine, d.blob_id, "G-no-such"):
        assert store.blobs.location(bob.id, blob_id) is None
        with pytest.raises(NotFound):
            store.blobs.read(bob.id, blob_id)
    theirs, _ = store.blobs.upload(bob.id, b"private", "text/plain")  # the same bytes: bob's own blob id
    assert theirs != mine and store.blobs.read(bob.id, theirs) == b"private"
    assert store.blobs.location(account.id, theirs) is None


def test_upload_to_an_unknown_account_is_not_found(store) -> None:  # noqa: ANN001
    with pytest.raises(NotFound):
        store.blobs.upload("A-no-such", b"orphan bytes", None)


async def test_concurrent_uploads_of_the_same_bytes_get_one_blob(store, account) -> None:  # noqa: ANN001
    data = b"raced bytes" * 100
    got = await asyncio.gather(*(store.call(store.blobs.upload, account.id, data, "text/plain") for _ in range(6)))
    assert {blob_id for blob_id, _ in got} == {got[0][0]} and {size for _, size in got} == {len(data)}
    assert store.blobs.read(account.id, got[0][0]) == data
