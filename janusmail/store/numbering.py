"""Rows and matches numbered through an IMAP session's snapshot: which the session knows, at which sequence number.

A session's snapshot is its ascending UID list (``array('q')``): a message's sequence number is its place there
+ 1. Matches the session does not know (newer than what it was told, or expunged and already reported gone) are
left out; messages expunged by another session but not yet reported stay in the snapshot and keep their numbers.

:func:`in_snapshot` (SEARCH's ``(uid, modseq)`` matches) and :func:`number_rows` (FETCH's rows) walk them against
the snapshot. Reads from the row cache do better when the snapshot is exactly the cached mailbox below the
session's UIDNEXT (the common case: the session is up to date): then a row's place among the cached rows is its
sequence number, and one ``array`` comparison (a ``memcmp``, ``MailboxRows.is_snapshot``) proves the case
(``SearchService.mailbox_search_known``, ``MessageViews.fetch_rows(..., known=)``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["in_snapshot", "number_rows"]


def in_snapshot(rows: list[tuple[int, int]], known: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(UIDs, sequence numbers, MODSEQs) of the ``(uid, modseq)`` rows (ascending UID) that ``known`` holds."""
    kept, seqs = number_rows(rows, known)
    return [uid for uid, _ in kept], seqs, [modseq for _, modseq in kept]


def number_rows(rows: list[tuple], known: Sequence[int]) -> tuple[list[tuple], list[int]]:
    """The rows (ascending UID in their first column) that ``known`` holds, and their sequence numbers."""
    out_rows: list[tuple] = []
    seqs: list[int] = []
    i, n = 0, len(known)
    for r in rows:
        if i >= n:
            break
        uid = r[0]
        u = known[i]
        if u < uid:
            # UIDs strictly ascend, so ``uid`` sits at most ``uid - u`` places further on: a short bisection
            i = bisect_left(known, uid, i + 1, min(n, i + 1 + uid - u))
            if i >= n or known[i] != uid:
                continue
        elif u > uid:
            continue
        out_rows.append(r)
        i += 1
        seqs.append(i)
    return out_rows, seqs
