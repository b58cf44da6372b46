"""Email/get's reads: three queries for any number of ids (rows, keywords, visible memberships), then the
builder, all on one store worker thread.

Why everything in one synchronous function: the rows carry the parse cache (a few KB each) and the body
values need blob reads; doing both next to the database avoids shipping data between threads and keeps the
event loop free. Rows whose every membership is ``\\Deleted`` are skipped (JMAP treats them as destroyed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa

from janusmail.store.model import BlobLocation
from janusmail.store.schema import blobs, email_keywords, emails, messages

from .email_props import EmailBuilder, keywords_of, needs_cache, needs_raw

__all__ = ["CHUNK", "get_emails", "visible_ids"]

CHUNK = 500


def visible_ids(conn: sa.Connection, account_id: str, ids: Sequence[str]) -> set[str]:
    """Which of these ids are emails of the account with at least one visible membership."""
    out: set[str] = set()
    ids = list(ids)
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i : i + CHUNK]
        # The account is checked in Python: given to SQLite, it would walk the account's index instead.
        q = (
            sa.select(messages.c.email_id, emails.c.account_id)
            .select_from(messages.join(emails, emails.c.id == messages.c.email_id))
            .where(messages.c.email_id.in_(chunk), messages.c.deleted.is_(False))
        )
        out.update(email_id for email_id, acct in conn.execute(q) if acct == account_id)
    return out


def _reader(store: Any, loc: BlobLocation) -> Any:
    return lambda start, end: store.read_location(loc, start, end)


def get_emails(store: Any, account_id: str, ids: Sequence[str], builder: EmailBuilder) -> list[dict[str, Any]]:
    """Email objects for the visible ones among ``ids`` (unknown ids are simply absent)."""
    props = builder.properties
    with_cache = needs_cache(props)
    with_raw = needs_raw(props, builder.options)
    cols = [
        emails.c.id,
        emails.c.account_id,
        emails.c.blob_id,
        emails.c.thread_id,
        emails.c.size,
        emails.c.received_at,
        emails.c.flags,
        emails.c.preview,
        emails.c.has_attachment,
    ]
    if with_cache:
        cols.append(emails.c.cache)
    src: Any = emails
    if with_raw:
        cols += [blobs.c.sha256, blobs.c.size.label("blob_size"), blobs.c.pack, blobs.c.offset, blobs.c.type]
        src = emails.join(blobs, blobs.c.id == emails.c.blob_id)
    rows: dict[str, Any] = {}
    boxes: dict[str, dict[str, bool]] = {}
    others: dict[str, list[str]] = {}
    ids = list(dict.fromkeys(ids))
    with store.engine.connect() as conn, conn.begin():
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            # By id only (the account is checked below): SQLite would otherwise scan the account's index.
            for r in conn.execute(sa.select(*cols).select_from(src).where(emails.c.id.in_(chunk))):
                if r.account_id == account_id:
                    rows[r.id] = r
            for email_id, mailbox_id in conn.execute(
                sa.select(messages.c.email_id, messages.c.mailbox_id).where(
                    messages.c.email_id.in_(chunk), messages.c.deleted.is_(False)
                )
            ):
                boxes.setdefault(email_id, {})[mailbox_id] = True
            if "keywords" in props:
                for email_id, keyword in conn.execute(
                    sa.select(email_keywords.c.email_id, email_keywords.c.keyword).where(
                        email_keywords.c.email_id.in_(chunk)
                    )
                ):
                    others.setdefault(email_id, []).append(keyword)
    out = []
    for email_id in ids:
        r = rows.get(email_id)
        if r is None or email_id not in boxes:
            continue
        meta: dict[str, Any] = {
            "id": r.id,
            "blobId": r.blob_id,
            "threadId": r.thread_id,
            "size": r.size,
            "receivedAt": r.received_at,
            "mailboxIds": boxes[email_id],
            "preview": r.preview,
            "hasAttachment": bool(r.has_attachment),
        }
        if "keywords" in props:
            meta["keywords"] = keywords_of(r.flags, sorted(others.get(email_id, ())))
        cache = None
        if with_cache:
            try:
                cache = orjson.loads(r.cache)
            except orjson.JSONDecodeError:
                cache = {}
        reader = None
        if with_raw:
            reader = _reader(store, BlobLocation(r.blob_id, r.sha256, r.blob_size, r.pack, r.offset, r.type))
        out.append(builder.build(meta, cache, reader))
    return out
