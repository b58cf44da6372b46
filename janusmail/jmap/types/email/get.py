"""Email/get's reads: the store's rows of the visible emails asked for (one snapshot, three queries for any
number of ids), then the builder, all on one store worker thread.

Why everything in one synchronous function: the rows carry the parse cache (a few KB each) and the body
values need blob reads; doing both next to the database avoids shipping data between threads and keeps the
event loop free. Emails whose every membership is ``\\Deleted`` are not returned by the store (JMAP treats
them as destroyed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from janusmail.store.model import BlobLocation
from janusmail.store.visible_emails import EmailRow

from .props import EmailBuilder, keywords_of, needs_cache, needs_raw

__all__ = ["get_emails", "meta_of"]


def _reader(store: Any, loc: BlobLocation) -> Any:
    return lambda start, end: store.blobs.read_location(loc, start, end)


def meta_of(row: EmailRow, with_keywords: bool) -> dict[str, Any]:
    """The row-level Email properties the builder takes (``EmailBuilder.build``'s ``meta``)."""
    meta: dict[str, Any] = {
        "id": row.id,
        "blobId": row.blob_id,
        "threadId": row.thread_id,
        "size": row.size,
        "receivedAt": row.received_at,
        "mailboxIds": dict.fromkeys(row.mailbox_ids, True),
        "preview": row.preview,
        "hasAttachment": row.has_attachment,
    }
    if with_keywords:
        meta["keywords"] = keywords_of(row.flags, row.keywords)
    return meta


def get_emails(store: Any, account_id: str, ids: Sequence[str], builder: EmailBuilder) -> list[dict[str, Any]]:
    """Email objects for the visible ones among ``ids`` (unknown ids are simply absent). Runs on a store
    worker (``await store.call(get_emails, ...)``)."""
    props = builder.properties
    with_keywords = "keywords" in props
    with_raw = needs_raw(props, builder.options)
    rows = store.visible_emails.rows(
        account_id, ids, keywords=with_keywords, cache=needs_cache(props), location=with_raw
    )
    out = []
    for row in rows:
        reader = _reader(store, row.location) if with_raw and row.location is not None else None
        out.append(builder.build(meta_of(row, with_keywords), row.cache, reader))
    return out
