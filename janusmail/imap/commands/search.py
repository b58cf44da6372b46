"""SEARCH and UID SEARCH, with ESEARCH results (RFC 4731 / RFC 9051), SEARCHRES ``$`` (RFC 5182), PARTIAL
(RFC 9394) and the MODSEQ result (RFC 7162).

The key tree is built into the store's query AST (:mod:`janusmail.imap.search_query`) and run by the store
(``store.search.mailbox_search_known``: SQL, or the row cache for metadata-only keys), which also maps the
matching UIDs through the session's snapshot (messages the session has not been told about yet are left out, as
are those another session expunged); this module shapes the answer: ``* SEARCH`` for IMAP4rev1 clients,
``* ESEARCH`` when the client asked for RETURN options or enabled IMAP4rev2.

SORT and THREAD (:mod:`.sort`, :mod:`.thread`) match with the same machinery: :func:`search_condition`,
:func:`charset_refusal`, the snapshot mapping, :func:`esearch_line` (ESORT) and :func:`save_result`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import compress
from typing import TYPE_CHECKING

from janusmail.imap import search_updates
from janusmail.imap.codec import NumberSet, SearchArgs, SequenceSet, serializer
from janusmail.imap.codec.args import CancelUpdateArgs
from janusmail.imap.codec.strings import quoted
from janusmail.imap.commands import Result, handler
from janusmail.imap.search_query import Resolver, build_condition, has_modseq
from janusmail.store.numbering import in_snapshot

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.codec.searchkeys import SearchKey
    from janusmail.imap.selected import SelectedMailbox
    from janusmail.imap.session import ImapSession
    from janusmail.store.search import ast as q

CHARSETS = ("UTF-8", "US-ASCII")


def charset_refusal(charset: str | None) -> Result | None:
    """``NO [BADCHARSET (...)]`` for a charset other than UTF-8/US-ASCII (SEARCH, SORT, THREAD)."""
    if charset is not None and charset.upper() not in CHARSETS:
        return Result.no("Unsupported charset", serializer.badcharset_code(CHARSETS))
    return None


def search_condition(s: ImapSession, sel: SelectedMailbox, key: SearchKey) -> q.Condition:
    """The store query of a search key tree, resolved through the session's snapshot (sequence sets, ``$``,
    \\Recent, OLDER/YOUNGER): what SEARCH, SORT and THREAD all match with."""
    return build_condition(key, _resolver(sel), recent=[] if s.rev2 else list(getattr(sel, "_recent", [])),
                           now=int(time.time()))


def _resolver(sel: SelectedMailbox) -> Resolver:
    """Sequence sets inside search keys: UID sets and ``$`` through the snapshot; message numbers beyond the
    mailbox are clipped rather than refused (a search for ``1:100`` in a 3-message mailbox just matches 3)."""

    def resolve(seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        if uid or seqset.is_saved:
            return sel.resolve(seqset, uid)
        uids = sel.uids
        if not uids:
            return []
        return [(uids[lo - 1], uids[hi - 1]) for lo, hi in seqset.resolve(len(uids)).ranges]

    return resolve


def snapshot_numbers(uids: Sequence[int]) -> dict[int, int]:
    """UID -> sequence number for every message of the session's snapshot (C-speed to build: ~10 ms for 100k)."""
    return dict(zip(uids, range(1, len(uids) + 1), strict=True))


def ordered_in_snapshot(uids: list[int], modseqs: list[int] | None, snapshot: Sequence[int], *,
                        want_seqs: bool = True) -> tuple[list[int], list[int], list[int] | None]:
    """(UIDs, sequence numbers, MODSEQs) of the given messages the session knows, in the given order (SORT).
    Sequence numbers are only computed when ``want_seqs`` (else the list is empty)."""
    if not want_seqs and len(uids) == len(snapshot) and sorted(uids) == list(snapshot):
        return uids, [], modseqs  # the whole snapshot: nothing to drop (C-speed check, no lookups)
    seqs = list(map(snapshot_numbers(snapshot).get, uids))
    if None in seqs:  # messages the session does not know (none below its UIDNEXT, but stay exact)
        keep = [seq is not None for seq in seqs]
        uids, seqs = list(compress(uids, keep)), list(compress(seqs, keep))
        modseqs = list(compress(modseqs, keep)) if modseqs is not None else None
    return uids, seqs, modseqs  # type: ignore[return-value]


def result_modseq(opts: Sequence[str] | None, modseqs: list[int]) -> int:
    """The MODSEQ a SEARCH ... MODSEQ answer carries (RFC 7162 §3.1.5, RFC 4731 §3.2): the highest
    mod-sequence of the messages *returned*. With only MIN and/or MAX that is those one or two messages, not
    every match; ALL, COUNT, PARTIAL or a plain SEARCH return (or count) them all."""
    if not modseqs:
        return 0
    shown = set(opts or ()) - {"SAVE"}
    if shown and shown <= {"MIN", "MAX"}:
        picked = ([modseqs[0]] if "MIN" in shown else []) + ([modseqs[-1]] if "MAX" in shown else [])
        return max(picked)
    return max(modseqs)


def _numbers(nums: Sequence[int]) -> bytes:
    return b" ".join([b"%d" % n for n in nums])


def partial_results(nums: list[int], first: int, last: int) -> tuple[str, list[int]]:
    """RFC 9394: the echoed range and the selected results (negative positions count from the end)."""
    a, b = sorted((abs(first), abs(last)))
    if first < 0:
        label = f"-{a}:-{b}"
        n = len(nums)
        picked = nums[max(n - b, 0) : max(n - a + 1, 0)]
    else:
        label = f"{a}:{b}"
        picked = nums[a - 1 : b]
    return label, picked


def esearch_line(tag: str, uid: bool, opts: Sequence[str], nums: list[int], modseq: int | None,
                 partial: tuple[int, int] | None = None, *, ordered: bool = False,
                 page: tuple[list[int], int | None] | None = None) -> bytes:
    """``* ESEARCH (TAG "t") [UID] MIN a MAX b ALL set COUNT n [PARTIAL (r set)] [MODSEQ m]``.

    ``ordered`` (ESORT, RFC 5267 §3.1-3.2): ``nums`` are in sort order; MIN/MAX are the first and last of
    it, and ALL keeps the order (only ascending runs become ranges). ``page``: the PARTIAL window the store
    already cut (and the COUNT of all matches, if asked), instead of cutting it from ``nums``."""
    if page is not None:
        picked, total = page
        parts = [b"* ESEARCH (TAG " + quoted(tag) + b")"] + ([b"UID"] if uid else [])
        if "COUNT" in opts and total is not None:
            parts.append(b"COUNT %d" % total)
        if partial is not None:
            label, _ = partial_results([], *partial)
            value = serializer.compress_uids(picked) if picked else "NIL"
            parts.append(f"PARTIAL ({label} {value})".encode("ascii"))
        return b" ".join(parts) + b"\r\n"
    parts = [b"* ESEARCH (TAG " + quoted(tag) + b")"]
    if uid:
        parts.append(b"UID")
    if nums:
        if "MIN" in opts:
            parts.append(b"MIN %d" % nums[0])
        if "MAX" in opts:
            parts.append(b"MAX %d" % nums[-1])
        if "ALL" in opts:
            text = serializer.compress_uids(nums) if ordered else NumberSet.from_numbers(nums).to_string()
            parts.append(b"ALL " + text.encode("ascii"))
    if "COUNT" in opts:
        parts.append(b"COUNT %d" % len(nums))
    if partial is not None:
        label, picked = partial_results(nums, *partial)
        value = serializer.compress_uids(picked) if picked else "NIL"
        parts.append(f"PARTIAL ({label} {value})".encode("ascii"))
    if modseq is not None and nums:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + b"\r\n"


def save_result(sel: SelectedMailbox, opts: Sequence[str], uids: list[int]) -> None:
    """RFC 5182 §2.4: with only MIN/MAX (no ALL/COUNT) the saved result is just those messages (the first
    and last of ``uids``: ascending for SEARCH, in sort order for SORT)."""
    if uids and ("MIN" in opts or "MAX" in opts) and "ALL" not in opts and "COUNT" not in opts:
        keep = set()
        if "MIN" in opts:
            keep.add(uids[0])
        if "MAX" in opts:
            keep.add(uids[-1])
        sel.saved_uids = NumberSet.from_numbers(keep)
    else:
        sel.saved_uids = NumberSet.from_numbers(uids)


@handler("SEARCH", "UID SEARCH", states=("selected",), capabilities=("PARTIAL",))
async def search(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, SearchArgs)
    sel = s.selected
    assert sel is not None
    opts = args.return_opts
    saving = opts is not None and "SAVE" in opts
    refusal = charset_refusal(args.charset)
    if refusal is not None:
        if saving:
            sel.saved_uids = NumberSet()
        return refusal
    with_modseq = has_modseq(args.key)
    if with_modseq:
        s.enable_condstore()  # SEARCH MODSEQ is a CONDSTORE enabling command (RFC 7162 §3.1)
    if opts is not None and "UPDATE" in opts and cmd.tag in sel.update_contexts:
        return Result.bad(f"Tag {cmd.tag} already names a search context (CANCELUPDATE it first)")
    if args.partial is not None and opts is not None and set(opts) <= PAGED_OPTS and not with_modseq:
        return await _search_page(s, cmd, args)
    try:
        cond = search_condition(s, sel, args.key)
        uids, seqs, modseqs = await s.store.call(
            s.store.search.mailbox_search_known, s.account_id or "", sel.mailbox_id, cond, sel.uids[:],
            below_uid=sel.uidnext, size_hint=len(sel.uids))
    except Exception:
        if saving:
            sel.saved_uids = NumberSet()  # RFC 5182 §2.1: a failed SEARCH ... SAVE empties $
        raise
    nums = uids if cmd.uid else seqs
    modseq = result_modseq(opts if args.partial is None else ("ALL",), modseqs) if with_modseq else None
    if opts is None and not s.rev2:
        line = b"* SEARCH"
        if nums:
            line += b" " + _numbers(nums)
            if modseq is not None:
                line += b" (MODSEQ %d)" % modseq
        s.write(line + b"\r\n")
        return Result.ok("SEARCH completed")
    if opts is None:
        opts = ("ALL",)
    if saving:
        save_result(sel, opts, uids)
    shown = [o for o in opts if o not in ("SAVE", "UPDATE", "CONTEXT")]
    if "UPDATE" in opts and not shown and args.partial is None:
        shown = ["ALL"]  # RFC 5267 §4.2: an updating search answers with its whole result first
    if shown or args.partial is not None:
        s.write(esearch_line(cmd.tag, cmd.uid, shown, nums, modseq, args.partial))
    if "UPDATE" in opts:
        return _keep_updating(s, cmd, cond, uids)
    return Result.ok("SEARCH completed")


def _keep_updating(s: ImapSession, cmd: Command, cond: q.Condition, uids: list[int]) -> Result:
    """RFC 5267 §4.2: remember the search under its tag so later changes are sent as ADDTO / REMOVEFROM."""
    sel = s.selected
    assert sel is not None
    if len(sel.update_contexts) >= search_updates.MAX_CONTEXTS:
        search_updates.refuse_updates(s, cmd.tag)
        return Result.ok("SEARCH completed, no updates will follow")
    sel.update_contexts[cmd.tag] = search_updates.UpdateContext(cmd.tag, cmd.uid, cond, set(uids))
    return Result.ok("SEARCH completed")


@handler("CANCELUPDATE", states=("selected",), capabilities=("CONTEXT=SEARCH",))
async def cancel_update(s: ImapSession, cmd: Command) -> Result:
    """RFC 5267 §4.2: stop updating these contexts (all named tags must be live ones)."""
    args = cmd.args
    assert isinstance(args, CancelUpdateArgs)
    sel = s.selected
    assert sel is not None
    unknown = [t for t in args.tags if t not in sel.update_contexts]
    if unknown:
        return Result.bad("No search context with tag " + ", ".join(unknown))
    for tag in args.tags:
        sel.update_contexts.pop(tag, None)
    return Result.ok("CANCELUPDATE completed")


#: Return options a PARTIAL search can answer from one page of matches (and a count), without listing them all.
PAGED_OPTS = frozenset({"PARTIAL", "COUNT"})


async def _search_page(s: ImapSession, cmd: Command, args: SearchArgs) -> Result:
    """``SEARCH RETURN (PARTIAL a:b [COUNT])``: the store returns only the window (RFC 9394 §3.1; positions
    among the matches in ascending order, negative ones from the last match)."""
    sel = s.selected
    assert sel is not None and args.partial is not None and args.return_opts is not None
    cond = search_condition(s, sel, args.key)
    rows, total = await s.store.call(
        s.store.search.mailbox_search_page, s.account_id or "", sel.mailbox_id, cond, *args.partial,
        below_uid=sel.uidnext, size_hint=len(sel.uids), count="COUNT" in args.return_opts)
    uids, seqs, _ = in_snapshot(rows, sel.uids)
    s.write(esearch_line(cmd.tag, cmd.uid, args.return_opts, [], None, args.partial,
                         page=(uids if cmd.uid else seqs, total)))
    return Result.ok("SEARCH completed")
