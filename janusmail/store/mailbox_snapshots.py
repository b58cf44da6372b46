"""What SELECT shows of a mailbox, remembered per Store and named by the mailbox row's counters.

Why: a SELECT of a 100k-message mailbox spent ~40 ms reading the same answer again: the UID list (a count that
walks the mailbox's index, then an ``array`` built from a ``range`` of 100k ints) and the keywords in use (a
join of every membership with ``email_keywords``). Clients re-SELECT the same mailbox all the time and most
SELECTs find it unchanged, so :class:`SnapshotCache` keeps, per mailbox, the UID list as one ``array('q')``
(a SELECT hands out a copy: one ``memcpy``), the keywords in use and the first unseen UID.

Why this is exact: every write that changes a mailbox's memberships or their flags raises the mailbox row's
HIGHESTMODSEQ in the same transaction (``WriteTx.touch_mailbox``), a new message raises its UIDNEXT, and
UIDVALIDITY names the mailbox's UID space. So ``(UIDVALIDITY, HIGHESTMODSEQ, UIDNEXT)``, read in the
snapshot's own read transaction, names one committed content of the mailbox: an entry with the same triple is
that content. The key is read from the database, not invalidated by this process's writes, so writes made by
another worker or node are seen too.

After a change an entry is brought forward, not rebuilt (:func:`advance`), with reads bounded by what changed
(the ones IMAP's catch-up makes, ``MessageViews.mailbox_delta``): UIDs at or above the old UIDNEXT are new,
``vanished`` rows above the old HIGHESTMODSEQ are gone (every removed membership leaves one; they are only
deleted with their mailbox). Keywords in use only grow when nothing but new messages arrived (no membership
below the old UIDNEXT changed, nothing vanished): then the new messages' keywords are added. Otherwise a
keyword may have gone out of use and the caller reads them again (``message_views``: from the row cache when it
holds this very content, else the grouped query).

Memory is bounded by a total UID budget (8 bytes a UID), least recently used mailboxes dropped first.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Shown", "SnapshotCache", "advance", "keyword_displays", "merge_keywords"]


@dataclass(frozen=True, slots=True)
class Shown:
    """One mailbox content as SELECT shows it. ``uids`` ascend and are never changed once stored (hand out
    copies); ``keywords`` maps each keyword in use (lowercase key) to its IMAP spelling; ``first_unseen`` is
    meaningful only when ``first_unseen_known``."""

    uidvalidity: int
    highest_modseq: int
    uidnext: int
    uids: array
    keywords: dict[str, str]
    first_unseen: int | None = None
    first_unseen_known: bool = False

    def names(self, uidvalidity: int, highest_modseq: int, uidnext: int) -> bool:
        """Is this the content the mailbox row's counters name?"""
        return (self.uidvalidity, self.highest_modseq, self.uidnext) == (uidvalidity, highest_modseq, uidnext)


def merge_keywords(into: dict[str, str], rows: Iterable[tuple[str, str]]) -> bool:
    """Add (key, spelling) rows to a key -> spelling map; False when a key met a second spelling. Which one
    SELECT shows is then the grouped query's ``min(display)``, whose order is the database's collation (not
    Python's on PostgreSQL), so the caller asks the database instead of choosing."""
    ok = True
    for key, display in rows:
        old = into.setdefault(key, display)
        if old != display:
            ok = False
    return ok


def keyword_displays(keywords: dict[str, str]) -> list[str]:
    """The spellings, sorted by key (the order ``* FLAGS`` lists them in)."""
    return [keywords[k] for k in sorted(keywords)]


class SnapshotCache:
    """Mailbox id -> :class:`Shown`, least recently used first; thread-safe (store worker threads share it)."""

    def __init__(self, max_uids: int = 1_000_000) -> None:
        self.max_uids = max_uids
        self._boxes: OrderedDict[str, Shown] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()
        #: how often an entry was used as it was, brought forward, or (re)built: tests and benchmarks read these
        self.hits = 0
        self.advances = 0
        self.builds = 0

    def get(self, mailbox_id: str) -> Shown | None:
        with self._lock:
            shown = self._boxes.get(mailbox_id)
            if shown is not None:
                self._boxes.move_to_end(mailbox_id)
            return shown

    def put(self, mailbox_id: str, shown: Shown) -> None:
        if len(shown.uids) > self.max_uids:
            self.drop(mailbox_id)
            return
        with self._lock:
            old = self._boxes.pop(mailbox_id, None)
            if old is not None:
                self._total -= len(old.uids)
            self._boxes[mailbox_id] = shown
            self._total += len(shown.uids)
            while self._total > self.max_uids and len(self._boxes) > 1:
                _, dropped = self._boxes.popitem(last=False)
                self._total -= len(dropped.uids)

    def drop(self, mailbox_id: str) -> None:
        with self._lock:
            old = self._boxes.pop(mailbox_id, None)
            if old is not None:
                self._total -= len(old.uids)

    def clear(self) -> None:
        with self._lock:
            self._boxes.clear()
            self._total = 0


def advance(old: Shown, new_uids: Iterable[int], gone: Iterable[int]) -> array:
    """``old``'s UIDs without ``gone`` and with ``new_uids`` (all above them, ascending) appended."""
    gone_set = set(gone)
    if gone_set:
        uids = array("q", [u for u in old.uids if u not in gone_set])
    else:
        uids = array("q", old.uids)
    uids.extend(new_uids)
    return uids
