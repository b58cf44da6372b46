"""Thread assignment at ingest: join the thread of any shared message-id, with a subject check.

A message carries ids: its own Message-ID, In-Reply-To and References. Every id ever seen (even ones only
referenced, whose message never arrived) maps to one thread in ``thread_refs``, so two replies to a missing
parent meet through the parent's id and the parent joins them when it comes. A thread id never changes once
given (RFC 8621 §3, RFC 8474 §5.2), so we never merge: a message that matches two threads joins the first
whose base subject (RFC 5256) equals its own. The subject check keeps unrelated mail that cites a common
ancestor (a long-lived list thread, a ticket system) from being pulled together, as Cyrus does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from . import ids
from .schema import thread_refs, threads

if TYPE_CHECKING:  # pragma: no cover
    from .sqltext import SqlText

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


def assign_threads(conn: sa.Connection, account_id: str, messages: list[tuple[list[str], str]],
                   modseq: int, sql: SqlText) -> list[tuple[str, bool]]:
    """Assign threads to a batch of messages given as (refs, base_subject); returns (thread_id, created) each.

    Two queries for the whole batch (known refs, their threads' subjects), then in-memory assignment in
    order, so a later message in the batch joins the thread of an earlier one; new threads and refs are
    inserted in bulk. ``sql``: the store's statements (``Store.sql``), run on the driver's cursor.
    """
    all_refs = list({r for refs, _ in messages for r in refs})
    ref_thread: dict[str, str] = {}
    for i in range(0, len(all_refs), 500):
        ref_thread.update(sql.run(conn, _KNOWN_REFS, {"account_id": account_id, "refs": all_refs[i : i + 500]}))
    known = list(set(ref_thread.values()))
    subjects: dict[str, str] = {}
    for i in range(0, len(known), 500):
        for thread_id, base_subject in sql.run(conn, _SUBJECTS, {"ids": known[i : i + 500]}):
            subjects[thread_id] = _norm(base_subject)
    new_threads: list[dict] = []
    new_refs: list[dict] = []
    touched: set[str] = set()
    out: list[tuple[str, bool]] = []
    for refs, base_subject in messages:
        subj = _norm(base_subject)
        thread_id = next((t for t in dict.fromkeys(ref_thread[r] for r in refs if r in ref_thread)
                          if subjects.get(t) == subj), None)
        created = thread_id is None
        if thread_id is None:
            thread_id = ids.mint(ids.THREAD)
            subjects[thread_id] = subj
            new_threads.append({"id": thread_id, "account_id": account_id, "base_subject": base_subject,
                                "modseq": modseq})
        else:
            touched.add(thread_id)
        for r in refs:
            if r not in ref_thread:
                ref_thread[r] = thread_id
                new_refs.append({"account_id": account_id, "msgid": r, "thread_id": thread_id})
        out.append((thread_id, created))
    sql.many(conn, _INSERT_THREAD, new_threads)
    sql.many(conn, _INSERT_REF, new_refs)
    old = [t for t in touched if t in subjects and t not in {n["id"] for n in new_threads}]
    for i in range(0, len(old), 500):
        sql.count(conn, _TOUCH_THREADS, {"ids": old[i : i + 500], "modseq": modseq})
    return out


# -- statements built once (``Store.sql``) -------------------------------------------------------------------------

_P = sa.bindparam
_KNOWN_REFS = sa.select(thread_refs.c.msgid, thread_refs.c.thread_id).where(
    thread_refs.c.account_id == _P("account_id"), thread_refs.c.msgid.in_(_P("refs", expanding=True)))
_SUBJECTS = sa.select(threads.c.id, threads.c.base_subject).where(threads.c.id.in_(_P("ids", expanding=True)))
_INSERT_THREAD = sa.insert(threads).values({n: _P(n) for n in ("id", "account_id", "base_subject", "modseq")})
_INSERT_REF = sa.insert(thread_refs).values({n: _P(n) for n in ("account_id", "msgid", "thread_id")})
_TOUCH_THREADS = sa.update(threads).where(threads.c.id.in_(_P("ids", expanding=True))).values(modseq=_P("modseq"))
