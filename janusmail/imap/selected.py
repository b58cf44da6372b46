"""The session's view of its selected mailbox: the UID list that defines sequence numbers, and catching up.

IMAP sequence numbers are per session: message *n* is the n-th UID this session has been told about, and it
may only change when the session sends EXPUNGE (or VANISHED). So the snapshot is an ``array('q')`` of UIDs,
read at SELECT (``store.messages.mailbox_snapshot``: the store's cached array, shared by the sessions that
selected the same content until one changes its view, copy on write), and :meth:`SelectedMailbox.sync`
reconciles it with the store at command boundaries (and immediately during IDLE) with one store read bounded
by what changed (``store.messages.mailbox_delta``, batched and shared between sessions by ``store.mailbox_deltas``):

* UIDNEXT and HIGHESTMODSEQ equal to what we know -> nothing to do;
* UIDs at or above the known UIDNEXT -> new messages (EXISTS, and \\Recent for IMAP4rev1);
* vanished since the known HIGHESTMODSEQ -> expunged elsewhere (EXPUNGE / VANISHED, only where the RFC allows
  it; otherwise kept pending so sequence numbers stay stable during FETCH/STORE/SEARCH);
* memberships changed since -> flag changes (unsolicited FETCH FLAGS, UID and MODSEQ).

FLAGS: the keywords in use are read once at SELECT (with the snapshot); afterwards a keyword this
session has not been told about is spotted in the FETCH data about to be sent (no extra query) and announced by
a new ``* FLAGS`` / ``PERMANENTFLAGS`` first (RFC 9051 §7.3.5: see :meth:`SelectedMailbox.note_keywords`).

The store's notifier tells the session when a sync is worth the queries (:attr:`dirty`); NOOP, CHECK and
IDLE force one anyway so writers outside this process are seen too.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from janusmail.imap import search_updates
from janusmail.imap.codec import NumberSet, SequenceSet, responses, serializer
from janusmail.imap.flags import imap_flags, mailbox_flags, permanent_flags_code
from janusmail.store.message_views import FlagChange, MailboxDelta, MailboxSnapshot

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession
    from janusmail.store.model import Mailbox

__all__ = ["BadSequence", "MailboxGone", "SelectedMailbox", "flag_rows"]

_NONE: frozenset = frozenset()


class BadSequence(ValueError):
    """A message sequence number beyond the mailbox size: the command gets BAD (RFC 9051 §9)."""


class MailboxGone(Exception):
    """The selected mailbox was deleted (or renamed away) by someone else."""


#: removals of at most this many UIDs delete in place (each a move of the array's tail, in C); more rebuild it
_DELETE_IN_PLACE = 32
#: removing more than one UID in this many of the mailbox: one pass over it (cheaper than a bisection per UID)
_ONE_PASS_SHARE = 64


def _remove(uids: array, gone: AbstractSet[int]) -> None:
    """Remove ``gone`` from ``uids`` (ascending, this session's own array) in place: a bisection per removed
    UID and moves of memory in C, not a Python step per message of the mailbox (an EXPUNGE of one message of a
    100,000-message mailbox, issue 10)."""
    if len(gone) * _ONE_PASS_SHARE > len(uids):  # a good part of the mailbox: one pass
        uids[:] = array("q", [u for u in uids if u not in gone])
        return
    at = sorted(i for u in gone if (i := bisect_left(uids, u)) < len(uids) and uids[i] == u)
    if len(at) <= _DELETE_IN_PLACE:
        for i in reversed(at):
            del uids[i]
        return
    kept = array("q")  # few runs, long ones: copy the runs between the removed UIDs
    start = 0
    for i in at:
        kept += uids[start:i]
        start = i + 1
    kept += uids[start:]
    uids[:] = kept


def flag_rows(changes: Iterable[FlagChange]) -> list[tuple[int, int, list[str]]]:
    """(uid, modseq, FLAGS list without \\Recent) for the store's flag changes."""
    return [(c.uid, c.modseq, imap_flags(c.flags, c.keywords, c.deleted)) for c in changes]


class SelectedMailbox:
    """Snapshot of the selected mailbox for one session. Sequence number of ``uids[i]`` is ``i + 1``.

    Slots, and the sets that are usually empty start as the shared empty frozenset (replaced on first use):
    every idle selected session holds one of these."""

    __slots__ = (
        "mailbox_id", "uidvalidity", "uids", "readonly", "uidnext", "known_modseq", "name", "recent_from",
        "_recent", "claimed_below", "dirty", "pending_expunge", "saved_uids", "update_contexts", "_own",
        "_last_recent_count", "keywords", "_keyword_keys", "_uids_shared",
    )

    def __init__(
        self,
        mailbox_id: str,
        uidvalidity: int,
        uids: array,
        *,
        readonly: bool,
        uidnext: int,
        known_modseq: int,
        recent_from: int | None = None,
        name: str = "",
        keywords: Iterable[str] = (),
    ) -> None:
        self.mailbox_id = mailbox_id
        self.uidvalidity = uidvalidity
        self.uids = uids
        #: ``uids`` is the store's snapshot array, shared with the other sessions that selected the same content
        #: (never changed in place: the first change works on a copy, see :meth:`_own_uids`)
        self._uids_shared = True
        self.readonly = readonly
        self.uidnext = uidnext  # UIDs below this have been announced (or were gone before we saw them)
        self.known_modseq = known_modseq
        self.name = name
        #: first UID shown as \Recent to this session (IMAP4rev1); None when nothing is recent to us.
        self.recent_from = recent_from
        self._recent: list[tuple[int, int]] = []
        if recent_from is not None and recent_from < uidnext:
            self._recent.append((recent_from, uidnext - 1))
        #: UIDs below this were claimed as \\Recent by this session's own APPENDs (``note_own_claim``): a sync
        #: that finds only those new claims nothing (a write spared)
        self.claimed_below = 0
        #: set by the session when the notifier reports a change that may concern this mailbox.
        self.dirty = False
        #: UIDs expunged elsewhere but not yet announced (no EXPUNGE allowed at that point); only ever replaced
        #: (``|=``, ``-=``), never changed in place, so it can start as the shared empty frozenset.
        self.pending_expunge: AbstractSet[int] = _NONE
        #: RFC 5182 SEARCHRES: the saved result as UIDs (B's SEARCH ... RETURN (SAVE) sets it).
        self.saved_uids: NumberSet | None = None
        #: SEARCH RETURN (UPDATE) contexts by tag (RFC 5267; janusmail/imap/search_updates.py).
        self.update_contexts: dict[str, search_updates.UpdateContext] = {}
        self._own: dict[int, int] = {}
        self._last_recent_count = self.recent_count()
        #: keywords announced to this session by FLAGS (IMAP spelling, in announcement order) and their keys.
        self.keywords: list[str] = []
        self._keyword_keys: AbstractSet[str] = _NONE  # a set once a keyword is announced
        self._add_keywords(keywords)

    # -- loading -----------------------------------------------------------------------------------------

    @classmethod
    def load(cls, store: Any, mailbox: Mailbox, *, readonly: bool, claim_recent: bool, name: str = ""
             ) -> SelectedMailbox:
        """Synchronous: read the snapshot (one store read) and build the view. The session's SELECT calls the
        store view itself and :meth:`from_snapshot` on the loop; this is for synchronous callers.

        ``claim_recent`` (IMAP4rev1 SELECT) takes the \\Recent messages for this session; EXAMINE only looks.
        """
        snap = store.messages.mailbox_snapshot(mailbox.account_id, mailbox.id, claim_recent=claim_recent)
        return cls.from_snapshot(snap, mailbox.id, readonly=readonly, name=name)

    @classmethod
    def from_snapshot(cls, snap: MailboxSnapshot | None, mailbox_id: str, *, readonly: bool, name: str = ""
                      ) -> SelectedMailbox:
        """The view of a store snapshot (:class:`MailboxGone` when the store found no mailbox)."""
        if snap is None:
            raise MailboxGone(mailbox_id)
        return cls(
            snap.mailbox_id, snap.uidvalidity, snap.uids, readonly=readonly, uidnext=snap.uidnext,
            known_modseq=snap.highest_modseq, recent_from=snap.recent_from, name=name, keywords=snap.keywords,
        )

    # -- FLAGS: the keywords this session knows -----------------------------------------------------------

    def flags_response(self) -> bytes:
        """``* FLAGS (system flags + announced keywords)``."""
        return responses.flags_response(mailbox_flags(self.keywords))

    def permanentflags_response(self) -> bytes:
        """``* OK [PERMANENTFLAGS (...)]`` (empty for EXAMINE)."""
        return serializer.untagged_status("OK", permanent_flags_code(self.keywords, self.readonly),
                                          "Limited" if self.readonly else "Flags permitted")

    def _add_keywords(self, keywords: Iterable[str]) -> bool:
        added = False
        for kw in keywords:
            key = kw.lower()
            if key not in self._keyword_keys:
                if not isinstance(self._keyword_keys, set):
                    self._keyword_keys = set()
                self._keyword_keys.add(key)
                self.keywords.append(kw)
                added = True
        return added

    def note_keywords(self, s: ImapSession, keywords: Iterable[str]) -> None:
        """Call BEFORE writing a FETCH whose FLAGS carry ``keywords`` (flags starting with ``\\`` are
        skipped): if any is new to this session, send the grown ``* FLAGS`` and ``PERMANENTFLAGS`` first, as
        RFC 9051 §7.3.5 requires. Costs a set lookup per keyword when nothing is new; no store query."""
        new = [k for k in keywords if not k.startswith("\\") and k.lower() not in self._keyword_keys]
        if new and self._add_keywords(new):
            s.write(self.flags_response())
            if not self.readonly:
                s.write(self.permanentflags_response())

    def note_row_keywords(self, s: ImapSession, rows: Iterable[Sequence], keywords: Mapping[str, Iterable[str]],
                          email_id: int) -> None:
        """:meth:`note_keywords` for FETCH/STORE rows about to be rendered: ``keywords`` maps email id to its
        keywords (the FETCH data's own map), ``email_id`` is the row index of the email id. Only the rows'
        emails are looked at, each distinct keyword tuple once."""
        if not keywords:
            return
        seen: set[tuple[str, ...]] = set()
        pending: list[str] = []
        for r in rows:
            kws = keywords.get(r[email_id])
            if kws:
                t = tuple(kws)
                if t not in seen:
                    seen.add(t)
                    pending.extend(k for k in t if k.lower() not in self._keyword_keys)
        if pending:
            self.note_keywords(s, pending)

    # -- numbers -------------------------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def uid_to_seq(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i + 1
        return None

    def seq_to_uid(self, seq: int) -> int:
        if seq < 1 or seq > len(self.uids):
            raise BadSequence(f"no message {seq}")
        return self.uids[seq - 1]

    @property
    def recent_ranges(self) -> list[tuple[int, int]]:
        """UID ranges that are \\Recent for this session (IMAP4rev1), for SEARCH RECENT/NEW in SQL."""
        return list(self._recent)

    def is_recent(self, uid: int) -> bool:
        """\\Recent for this session (IMAP4rev1 only; the session never asks under IMAP4rev2)."""
        for lo, hi in self._recent:  # (a loop, not any() over a generator: FETCH 1:* asks once per message)
            if lo <= uid <= hi:
                return True
        return False

    def recent_test(self) -> Callable[[int], bool] | None:
        """:meth:`is_recent` for a FETCH's rendering, or None when no message is \\Recent for this session
        (the renderer then skips the test for every row)."""
        return self.is_recent if self._recent else None

    def peek_recent(self, recent_uid: int) -> None:
        """Show the mailbox's unclaimed \\Recent messages (UID >= ``recent_uid``) without claiming them.

        RFC 3501 §6.3.2: EXAMINE changes no state, so it "MUST NOT cause messages to lose the \\Recent flag",
        but it still reports them (RECENT count, FETCH FLAGS, SEARCH RECENT) exactly as STATUS does."""
        self.recent_from = recent_uid
        self._recent = [(recent_uid, self.uidnext - 1)] if recent_uid < self.uidnext else []
        self._last_recent_count = self.recent_count()

    @property
    def claims_recent(self) -> bool:
        """Does this session claim \\Recent for new messages (IMAP4rev1 SELECT; not EXAMINE, not IMAP4rev2)?"""
        return self.recent_from is not None and not self.readonly

    def note_own_claim(self, first: int, uid: int) -> None:
        """This session's APPEND of ``uid`` claimed \\Recent for UIDs ``first``..``uid`` in the same transaction
        (``IngestItem.claim_recent``): they are \\Recent to it once the next sync announces them."""
        if first <= uid:
            if self._recent and self._recent[-1][1] + 1 >= first:
                self._recent[-1] = (self._recent[-1][0], max(uid, self._recent[-1][1]))
            else:
                self._recent.append((first, uid))
        self.claimed_below = max(self.claimed_below, uid + 1)

    def recent_count(self) -> int:
        n = 0
        for lo, hi in self._recent:
            n += bisect_right(self.uids, hi) - bisect_left(self.uids, lo)
        return n

    def resolve(self, seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        """UID ranges for a store call. Sequence numbers map through the snapshot (numbers beyond it raise
        :class:`BadSequence`); UID sets are clipped to the snapshot's UIDs (``*`` = the last one). ``$`` is the
        saved search result. Ranges may cover UIDs that no longer exist; store queries filter by existence."""
        uids = self.uids
        if not uids:
            if not uid and not seqset.is_saved:
                raise BadSequence("the mailbox is empty")
            return []
        if seqset.is_saved:
            if not self.saved_uids:
                return []
            return self._clip(self.saved_uids.ranges)
        if uid:
            return self._clip(seqset.resolve(uids[-1]).ranges)
        top = seqset.max_number()
        if top is not None and top > len(uids):
            raise BadSequence(f"message sequence number {top} is beyond the last message ({len(uids)})")
        out: list[tuple[int, int]] = []
        for lo, hi in seqset.resolve(len(uids)).ranges:
            out.append((uids[lo - 1], uids[hi - 1]))
        return out

    def _clip(self, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        last = self.uids[-1]
        first = self.uids[0]
        out = []
        for lo, hi in ranges:
            lo, hi = max(lo, first), min(hi, last)
            if lo <= hi:
                out.append((lo, hi))
        return out

    def uids_in(self, ranges: Iterable[tuple[int, int]]) -> list[int]:
        """The snapshot UIDs inside ``ranges`` (ascending, no duplicates)."""
        out: list[int] = []
        for lo, hi in sorted(ranges):
            a = bisect_left(self.uids, lo)
            b = bisect_right(self.uids, hi)
            if out:
                a = max(a, bisect_right(self.uids, out[-1]))
            out.extend(self.uids[a:b])
        return out

    # -- own changes -----------------------------------------------------------------------------------------

    def note_own_flags(self, uids: Iterable[int], modseq: int) -> None:
        """This session's STORE already sent FETCH for these UIDs at ``modseq``; sync must not repeat them."""
        for u in uids:
            self._own[u] = modseq

    def _own_uids(self) -> array:
        """The UID array, made this session's own before its first change (copy on write)."""
        if self._uids_shared:
            self.uids = array("q", self.uids)
            self._uids_shared = False
        return self.uids

    def remove_uids(self, uids: Iterable[int]) -> None:
        """This session expunged ``uids`` (and has told the client): drop them, shifting sequence numbers."""
        gone = set(uids)
        if not gone:
            return
        _remove(self._own_uids(), gone)
        self.pending_expunge -= gone
        for u in gone:
            self._own.pop(u, None)
        self._last_recent_count = self.recent_count()

    def expunge_lines(self, s: ImapSession, uids: Iterable[int]) -> None:
        """Announce and drop ``uids`` the session's own command expunged: ``* n EXPUNGE`` in descending order
        (so numbers do not shift under the client), or one ``* VANISHED`` under QRESYNC."""
        present = sorted({u for u in uids if self.uid_to_seq(u) is not None})
        if not present:
            return
        search_updates.before_expunge(s, self, present)  # REMOVEFROM while their numbers still mean them
        if s.qresync:
            s.write(responses.vanished_response(present))
        else:
            for u in reversed(present):
                seq = self.uid_to_seq(u)
                assert seq is not None
                s.write(responses.expunge_response(seq))
        self.remove_uids(present)

    # -- catching up -------------------------------------------------------------------------------------

    async def sync(self, s: ImapSession, *, expunges: bool, force: bool = False) -> None:
        """Tell the client what changed elsewhere since the last sync (see the module docstring)."""
        if not (force or self.dirty or (expunges and self.pending_expunge)):
            return
        self.dirty = False
        args = {"uidvalidity": self.uidvalidity, "uidnext": self.uidnext, "modseq": self.known_modseq,
                "claim_recent": self.claims_recent, "claimed_below": self.claimed_below}
        delta: MailboxDelta | None
        if s.check_is_due():  # the command's credential check rides on its first store call (store_access.py)
            delta = await s.store.read_inline(s.store.messages.mailbox_delta, self.mailbox_id, **args)
        else:  # read together with the other sessions asking now (store/mailbox_deltas.py): shared, read-only
            delta = await s.store.mailbox_deltas.delta(self.mailbox_id, **args)
        if delta is None:
            raise MailboxGone(self.mailbox_id)
        new_uids, gone, uidnext, modseq, recent_lo = (delta.new_uids, delta.vanished, delta.uidnext,
                                                      delta.highest_modseq, delta.recent_from)
        changed = flag_rows(delta.changed)
        # 1. expunges (now, or remembered for later)
        gone_here = {u for u in gone if self.uid_to_seq(u) is not None}
        if gone_here:
            self.pending_expunge |= gone_here
        if expunges and self.pending_expunge:
            self.expunge_lines(s, self.pending_expunge)
        # 2. new messages
        if new_uids:
            self._own_uids().extend(new_uids)
            if recent_lo is not None and recent_lo < uidnext:
                if self._recent and self._recent[-1][1] + 1 >= recent_lo:  # keep the list short
                    self._recent[-1] = (self._recent[-1][0], uidnext - 1)
                else:
                    self._recent.append((recent_lo, uidnext - 1))
            s.write(responses.exists_response(len(self.uids)))
        if uidnext > self.uidnext:
            self.uidnext = uidnext
        if not s.rev2:
            rc = self.recent_count()
            if new_uids or rc != self._last_recent_count:
                s.write(responses.recent_response(rc))
            self._last_recent_count = rc
        # 3. flag changes
        own = self._own
        self._own = {}
        for uid, mseq, flags in changed:
            if own.get(uid) == mseq or uid in self.pending_expunge:
                continue
            seq = self.uid_to_seq(uid)
            if seq is None:
                continue
            s.write(self.flags_line(s, seq, uid, flags, mseq))
        if modseq > self.known_modseq:
            self.known_modseq = modseq

    def flags_line(self, s: ImapSession, seq: int, uid: int, flags: list[str], modseq: int) -> bytes:
        """An unsolicited ``* n FETCH (UID u FLAGS (...) [MODSEQ (m)])``. A keyword in ``flags`` this session
        has not been told about is announced first (``* FLAGS`` is written now, before the returned line)."""
        self.note_keywords(s, flags)
        if not s.rev2 and self.is_recent(uid):
            n = sum(1 for f in flags if f.startswith("\\"))  # system flags first, then keywords
            flags = [*flags[:n], "\\Recent", *flags[n:]]
        items: list[tuple[str, object]] = [("UID", uid), ("FLAGS", tuple(flags))]
        if s.condstore:
            items.append(("MODSEQ", modseq))
        return serializer.fetch_response(seq, items, s.utf8)
