"""Storing a large message costs bounded memory: the store parses, hashes and writes a spooled message from
its file map without copying it, and keeps no reference to it once it is stored.

Bound: the parse's (tests/mime/test_mime_large.py, < 32 MiB) plus the database round trip of one row, whose
cache and search text are capped (~1 MiB). Measured with 60 MiB messages (tracemalloc peak of the whole
ingest): base64 attachment 3 MiB, 7bit text 7.6 MiB (before: 222 MiB and 71 MiB).
"""

from __future__ import annotations

import gc
import hashlib
import weakref
from pathlib import Path

import pytest

from tests.mime.large_messages import WRITERS, MiB, blocks_for, mapped, traced_peak

INGEST_BUDGET = 32 * MiB


def _inbox(store, account):  # noqa: ANN001, ANN202
    return store.mailboxes.by_path(account.id, ["INBOX"])


@pytest.mark.parametrize("kind", ["base64", "7bit"])
def test_ingest_of_a_mapped_60mib_message_keeps_allocation_bounded(kind: str, store, account, tmp_path: Path):
    box = _inbox(store, account)
    store.emails.ingest(account.id, b"Subject: warm up\r\n\r\nhi\r\n", (box.id,))  # first-use costs are not the message's
    path = tmp_path / "big.eml"
    facts = WRITERS[kind](path, blocks_for(kind, 60 * MiB))
    with mapped(path) as mm:
        digest = hashlib.sha256(mm).hexdigest()
        with traced_peak() as probe:
            got = store.emails.ingest(account.id, mm, (box.id,))
        mm.close()  # nothing the store kept may pin the map
    assert probe["peak"] < INGEST_BUDGET, f"ingest allocated {probe['peak'] / MiB:.1f} MiB at peak"
    assert got.size == facts.length
    assert hashlib.sha256(store.blobs.read(account.id, got.blob_id)).hexdigest() == digest


class _Message(bytearray):
    """Message bytes that can be watched with a weak reference (bytes cannot)."""


async def test_group_commit_keeps_no_message_after_its_batch(store, account):
    """An idle drainer must not hold the last batch: with LMTP or APPEND that is up to max_loaded of
    message bytes kept alive until the next delivery arrives."""
    box = _inbox(store, account)
    raw = _Message(b"Subject: kept?\r\n\r\n" + b"x" * 100_000 + b"\r\n")
    watch = weakref.ref(raw)
    got = await store.deliver(account.id, raw, (box.id,))
    assert got.size == len(raw)
    del raw
    gc.collect()
    drainer = store._group._task
    assert drainer is not None and not drainer.done()  # idle, waiting for the next delivery
    assert watch() is None, gc.get_referrers(watch()) if watch() is not None else None
