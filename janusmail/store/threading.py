"""Thread assignment at ingest: join the thread of any shared message-id, with a subject check.

A message carries ids: its own Message-ID, In-Reply-To and References. Every id ever seen (even ones only
referenced, whose message never arrived) maps to one thread in ``thread_refs``, so two replies to a missing
parent meet through the parent's id and the parent joins them when it comes. A thread id never changes once
given (RFC 8621 §3, RFC 8474 §5.2), so we never merge: a message that matches two threads joins the first
whose base subject (RFC 5256) equals its own. The subject check keeps unrelated mail that cites a common
ancestor (a long-lived list thread, a ticket system) from being pulled together, as Cyrus does.
"""

from __future__ import annotations

import sqlalchemy as sa

from . import ids
from .schema import thread_refs, threads

MAX_REFS = 64


def message_refs(cache: dict) -> list[str]:
    """The ids a message is linked by, own ids first, deduplicated, capped (References can be huge)."""
    seen: dict[str, None] = {}
    for key in ("message_ids", "in_reply_to", "references"):
        for mid in cache.get(key) or ():
            if isinstance(mid, str) and 0 < len(mid) <= 500:
                seen.setdefault(mid, None)
    refs = list(seen)
    return refs[:MAX_REFS] if len(refs) <= MAX_REFS else refs[:4] + refs[-(MAX_REFS - 4):]


def _norm(subject: str) -> str:
    return " ".join(subject.lower().split())


def assign_thread(conn: sa.Connection, account_id: str, refs: list[str], base_subject: str,
                  modseq: int) -> tuple[str, bool]:
    """Return (thread_id, created) for a message with these refs, recording its refs under that thread."""
    found: dict[str, str] = {}
    if refs:
        for row in conn.execute(
            sa.select(thread_refs.c.msgid, thread_refs.c.thread_id).where(
                thread_refs.c.account_id == account_id, thread_refs.c.msgid.in_(refs)
            )
        ):
            found[row.msgid] = row.thread_id
    thread_id: str | None = None
    candidates = list(dict.fromkeys(found[r] for r in refs if r in found))
    if candidates:
        subj = _norm(base_subject)
        rows = {r.id: r.base_subject for r in conn.execute(
            sa.select(threads.c.id, threads.c.base_subject).where(threads.c.id.in_(candidates))
        )}
        for cand in candidates:
            if cand in rows and _norm(rows[cand]) == subj:
                thread_id = cand
                break
    created = thread_id is None
    if thread_id is None:
        thread_id = ids.mint(ids.THREAD)
        conn.execute(sa.insert(threads).values(id=thread_id, account_id=account_id, base_subject=base_subject,
                                               modseq=modseq))
    else:
        conn.execute(sa.update(threads).where(threads.c.id == thread_id).values(modseq=modseq))
    new_refs = [r for r in refs if r not in found]
    if new_refs:
        conn.execute(sa.insert(thread_refs),
                     [{"account_id": account_id, "msgid": r, "thread_id": thread_id} for r in new_refs])
    return thread_id, created
