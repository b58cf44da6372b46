"""Storing new messages: LMTP delivery, IMAP APPEND, JMAP Email/import and create, and bulk import.

The order is what makes an acknowledgement safe: parse (once; the result is cached in the row), store the
bytes (``store.blob_store``: appended to a pack and synced, or chunk rows of this same transaction), then
commit the transaction that inserts every row. Nothing is visible until that transaction commits, and the
caller acknowledges only after ``ingest_many`` returns. When the disk refuses (the pack write or sync, or the
database's INSERT or COMMIT), ``StorageUnavailable`` leaves here and the transaction rolls back: no row ever
names bytes that are not on disk, and the caller answers "try again later" (see ``blobs`` and ``faults``).
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa

from janusmail.mime.parse import parse_message

from . import ids, quotas
from . import keywords as kwmod
from .membership import claim_recent_in
from .model import Delivered, IngestItem, NotFound, TooLarge
from .report_links import link_report
from .schema import blobs, email_keywords, emails, mailboxes, messages
from .search.index import write_text
from .thread_assign import assign_threads, message_refs

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Callable

    from .blobstore import BlobRef
    from .store import Store
    from .transaction import WriteTx

#: Cache keys that only feed row columns, the search index or this write; not stored in the cache blob.
_ROW_ONLY = ("search_text", "report")


def _addr_text(addrs: list[dict] | None) -> str:
    if not addrs:
        return ""
    parts = []
    for a in addrs:
        name = a.get("name") or ""
        email = a.get("email") or ""
        parts.append(f"{name} <{email}>" if name else email)
    return ", ".join(parts).lower()


def _sort_key(addrs: list[dict] | None) -> str:
    if not addrs:
        return ""
    a = addrs[0]
    return (a.get("name") or a.get("email") or "").lower()


class Prepared:
    """An item ready for ``store_batch``. ``mailbox_ids`` are the item's without repeats: a mailbox named
    twice holds the message once (one membership, one UID), as ``Delivered.uids`` reports it."""

    __slots__ = ("item", "cache", "digest", "kw", "mailbox_ids", "placed")

    def __init__(self, item: IngestItem, cache: dict, digest: str, kw: dict[str, str]) -> None:
        self.item, self.cache, self.digest, self.kw = item, cache, digest, kw
        self.mailbox_ids: tuple[str, ...] = tuple(dict.fromkeys(item.mailbox_ids))
        #: where :func:`place` already stored (and synced) the bytes, before any transaction; None: not yet
        self.placed: BlobRef | None = None


def prepare(item: IngestItem, max_message_size: int) -> Prepared:
    """CPU part of ingest (parse, hash, validate keywords): may run outside any transaction.

    ``item.raw`` may be any bytes-like object, such as a spool file's read-only map: it is parsed, hashed
    and later written to the pack in place, never copied, so a 60 MiB message costs the parse's bounded
    working memory, not its size (tests/store/test_ingest_memory.py)."""
    if len(item.raw) > max_message_size:
        raise TooLarge(str(len(item.raw)))
    cache = parse_message(item.raw)
    return Prepared(item, cache, hashlib.sha256(item.raw).hexdigest(), kwmod.normalize(item.keywords))

def place(store: Store, account_id: str, prep: list[Prepared]) -> None:
    """Store the bytes of prepared messages BEFORE their transaction, when the blob store allows it (local
    packs, not ``transactional``): one append and one sync for the batch, off the writer lane.

    Why: on the lane, the pack's sync was a serial step of every delivery's write call (issue 10, the IMAP
    stress profile: ~9% of the lane's time, with the parse another 5%), and the lane is where every write of
    the store waits its turn. Done here (``Store.prepare_ingest``, a thread of its own), the sync overlaps
    other calls' statements and commits. The rule still holds: the bytes are durable before the rows naming
    them commit. Bytes placed for a write that then fails (a mailbox gone, a digest the account already had)
    stay unreferenced in the pack, as after a crash; so that no client can grow the disk past its quota that
    way, a message the account's quota would refuse now is not placed (the write refuses it as before)."""
    bstore = store.blob_store
    if bstore.transactional or not prep:
        return
    digests = list({p.digest for p in prep})
    with store.engine.connect() as conn:  # reads outside any transaction: the write's own checks decide
        row = store.sql.first(conn, quotas.USAGE, {"account_id": account_id})
        # bytes the account holds already are not stored again (the write links the existing blob): a message
        # delivered twice must not leave a second, unreferenced copy in the pack
        known = set() if row is None or len(digests) > 500 else dict(
            store.sql.run(conn, _KNOWN_BLOBS, {"account_id": account_id, "digests": digests}))
    if row is None:
        return
    used, count, quota_storage, quota_messages = row
    storage = sum(len(p.item.raw) * len(p.mailbox_ids) for p in prep)
    if ((quota_storage is not None and int(used) + storage > quota_storage)
            or (quota_messages is not None and int(count) + sum(len(p.mailbox_ids) for p in prep) > quota_messages)):
        return
    first: dict[str, Prepared] = {}
    for p in prep:
        if p.digest not in known:
            first.setdefault(p.digest, p)
    if not first:
        return
    refs = bstore.put_many(None, [("", p.item.raw) for p in first.values()])  # synced when this returns
    by_digest = {d: ref for d, ref in zip(first, refs, strict=True)}
    for p in prep:  # (one whose bytes the account holds already stays unplaced: the write links that blob)
        p.placed = by_digest.get(p.digest)


def store_batch(store: Store, account_id: str, prep: list[Prepared],
                then: Callable[[WriteTx, list[Delivered]], None] | None = None) -> list[Delivered]:
    """Write prepared messages in one ``store.write`` transaction (the emails service's ingest). ``then`` is a
    further write step of the same transaction, run after the rows are in (IMAP REPLACE expunges the message
    it replaces there: janusmail.store.replace); if it raises, nothing of the batch is kept."""
    now = int(time.time())
    sql = store.sql
    with store.write(account_id) as tx:
        conn = tx.conn
        m = tx.modseq
        if any(not p.mailbox_ids for p in prep):
            raise NotFound("mailbox")
        # UIDs: one UPDATE per mailbox for the whole batch, which also finds that the mailbox is the account's
        # (no read of its own first; a refusal below rolls the taken UIDs back with the rest)
        per_box: dict[str, int] = defaultdict(int)
        for p in prep:
            for mid in p.mailbox_ids:
                per_box[mid] += 1
        next_uid: dict[str, int] = {}
        #: (first unclaimed \Recent UID, UIDNEXT) of each mailbox as this transaction leaves it, for the claims
        heads: dict[str, tuple[int, int]] = {}
        for mid, n in per_box.items():
            row = sql.first(conn, _TAKE_UIDS, {"mailbox_id": mid, "account_id": account_id, "n": n})
            if row is None:
                raise NotFound("mailbox")
            next_uid[mid] = row[0] - n
            heads[mid] = (row[1], row[0])
        # Quota: checked under this transaction's account lock, before any byte is written (quotas.py).
        quotas.admit(tx, storage=sum(len(p.item.raw) * len(p.mailbox_ids) for p in prep),
                     messages=sum(len(p.mailbox_ids) for p in prep))
        # Blob rows (deduplicated per account).
        digests = list({p.digest for p in prep})
        blob_ids: dict[str, str] = {}
        for i in range(0, len(digests), 500):
            blob_ids.update(sql.run(conn, _KNOWN_BLOBS, {"account_id": account_id, "digests": digests[i:i + 500]}))
        new_blobs = []
        fresh: dict[str, bytes] = {}
        for p in prep:
            if p.digest not in blob_ids and p.digest not in fresh:
                fresh[p.digest] = p.item.raw
        # Bytes are durable before (packs) or with (database blob store) the rows that reference them.
        for digest in fresh:
            blob_ids[digest] = ids.mint(ids.BLOB)
        before = {p.digest: p.placed for p in prep if p.placed is not None}  # stored already (``place``)
        written = iter(store.blob_store.put_many(conn, [(blob_ids[d], raw) for d, raw in fresh.items()
                                                       if d not in before]))
        placed = [before[d] if d in before else next(written) for d in fresh]
        for (digest, raw), (pack, offset) in zip(fresh.items(), placed, strict=True):
            new_blobs.append({"id": blob_ids[digest], "account_id": account_id, "sha256": digest,
                              "size": len(raw), "type": "message/rfc822", "pack": pack, "offset": offset,
                              "created_at": now})
        sql.many(conn, _INSERT_BLOB, new_blobs)
        email_rows, kw_rows, msg_rows, search_rows = [], [], [], []
        out: list[Delivered] = []
        assigned = assign_threads(conn, account_id,
                                  [(message_refs(p.cache), p.cache.get("base_subject") or "") for p in prep], m, sql)
        # the mailbox counters move by what the threads gain (one made just now has nothing yet: no read)
        tx.affect_threads([t for t, created in assigned if created], created=True)
        tx.affect_threads(t for t, created in assigned if not created)
        for p, (thread_id, created) in zip(prep, assigned, strict=True):
            c = p.cache
            tx.log("Thread", thread_id, "c" if created else "u")
            email_id = ids.mint(ids.EMAIL)
            bits, other = kwmod.split(p.kw)
            received = p.item.received_at if p.item.received_at is not None else now
            cache_blob = orjson.dumps({k: v for k, v in c.items() if k not in _ROW_ONLY})
            mids = c.get("message_ids") or []
            email_rows.append({
                "id": email_id, "account_id": account_id, "blob_id": blob_ids[p.digest],
                "thread_id": thread_id, "size": len(p.item.raw), "received_at": received,
                "sent_at": c.get("sent_at"), "sent_offset": c.get("sent_offset"), "flags": bits,
                "message_id": mids[0] if mids else None, "subject": c.get("subject") or "",
                "base_subject": c.get("base_subject") or "", "from_sort": _sort_key(c.get("from")),
                "to_sort": _sort_key(c.get("to")), "addr_from": _addr_text(c.get("from")),
                "addr_to": _addr_text(c.get("to")), "addr_cc": _addr_text(c.get("cc")),
                "addr_bcc": _addr_text(c.get("bcc")), "has_attachment": bool(c.get("hasAttachment")),
                "preview": c.get("preview") or "", "cache": cache_blob, "created_modseq": m, "modseq": m,
            })
            kw_rows.extend({"email_id": email_id, "keyword": k, "display": d} for k, d in other.items())
            uids: dict[str, int] = {}
            for mid in p.mailbox_ids:
                uid = next_uid[mid]
                next_uid[mid] = uid + 1
                uids[mid] = uid
                msg_rows.append({"mailbox_id": mid, "uid": uid, "email_id": email_id,
                                 "deleted": p.item.deleted, "modseq": m, "saved_at": now})  # SAVEDATE
            search_rows.append({
                "email_id": email_id, "account_id": account_id, "subject": c.get("subject") or "",
                "addresses": " ".join(_addr_text(c.get(f)) for f in ("from", "to", "cc", "bcc")),
                "body": c.get("search_text") or "", "headers": c.get("headers"),
            })
            tx.log("Email", email_id, "c")
            recent_from = None
            claim = p.item.claim_recent
            if claim is not None and claim in uids:  # IMAP APPEND into the session's selected mailbox (IngestItem)
                first = claim_recent_in(sql, conn, claim, upto=uids[claim] + 1, head=heads[claim])
                heads[claim] = (max(first, uids[claim] + 1), heads[claim][1])  # (claimed up to here now)
                recent_from = first if first <= uids[claim] else None
            out.append(Delivered(email_id, thread_id, blob_ids[p.digest], len(p.item.raw), received, uids, m,
                                 recent_from))
        sql.many(conn, _INSERT_EMAIL, email_rows)
        sql.many(conn, _INSERT_KEYWORD, kw_rows)
        sql.many(conn, _INSERT_MESSAGE, msg_rows)
        write_text(conn, store.sqlite, search_rows, sql)
        for p, d in zip(prep, out, strict=True):
            report = p.cache.get("report")  # (only delivery reports have one: mime/reports.py)
            if report is not None and p.item.inbound:
                link_report(tx, report, d.blob_id)  # dsnBlobIds / mdnBlobIds of what it answers, if anything
        tx.touch_mailbox(*per_box)
        tx.delivery()
        if then is not None:
            then(tx, out)
    return out


# -- statements built once, run on the driver's cursor (``Store.sql``): every delivery and APPEND runs them -------

_P = sa.bindparam


def _insert(table: sa.Table, *names: str) -> sa.Insert:
    return sa.insert(table).values({n: _P(n) for n in names})


_KNOWN_BLOBS = sa.select(blobs.c.sha256, blobs.c.id).where(blobs.c.account_id == _P("account_id"),
                                                           blobs.c.sha256.in_(_P("digests", expanding=True)))
_INSERT_BLOB = _insert(blobs, "id", "account_id", "sha256", "size", "type", "pack", "offset", "created_at")
_TAKE_UIDS = (sa.update(mailboxes)
              .where(mailboxes.c.id == _P("mailbox_id"), mailboxes.c.account_id == _P("account_id"))
              .values(uidnext=mailboxes.c.uidnext + _P("n")).returning(mailboxes.c.uidnext, mailboxes.c.recent_uid))
_INSERT_EMAIL = _insert(emails, "id", "account_id", "blob_id", "thread_id", "size", "received_at", "sent_at",
                        "sent_offset", "flags", "message_id", "subject", "base_subject", "from_sort", "to_sort",
                        "addr_from", "addr_to", "addr_cc", "addr_bcc", "has_attachment", "preview", "cache",
                        "created_modseq", "modseq")
_INSERT_KEYWORD = _insert(email_keywords, "email_id", "keyword", "display")
_INSERT_MESSAGE = _insert(messages, "mailbox_id", "uid", "email_id", "deleted", "modseq", "saved_at")
