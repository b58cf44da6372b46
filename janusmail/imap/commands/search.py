"""SEARCH and UID SEARCH, with ESEARCH results (RFC 4731 / RFC 9051), SEARCHRES ``$`` (RFC 5182), PARTIAL
(RFC 9394) and the MODSEQ result (RFC 7162).

The key tree is built into the store's query AST (:mod:`janusmail.imap.search_query`) and run by the store
(``store.search.mailbox_search``: SQL, or the row cache for metadata-only keys); this module maps the matching UIDs
through the session's snapshot (messages the session has not been told about yet are left out, as are those
another session expunged) and shapes the answer: ``* SEARCH`` for IMAP4rev1 clients, ``* ESEARCH`` when the
client asked for RETURN options or enabled IMAP4rev2.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import TYPE_CHECKING

from janusmail.imap.codec import NumberSet, SearchArgs, SequenceSet, serializer
from janusmail.imap.codec.strings import quoted
from janusmail.imap.commands import Result, handler
from janusmail.imap.search_query import Resolver, build_condition, has_modseq

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.selected import SelectedMailbox
    from janusmail.imap.session import ImapSession

CHARSETS = ("UTF-8", "US-ASCII")


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


def _in_snapshot(rows: list[tuple[int, int]], uids: Sequence[int]) -> tuple[list[int], list[int], list[int]]:
    """(UIDs, sequence numbers, MODSEQs) of the rows the session knows, in UID order."""
    out_uids: list[int] = []
    seqs: list[int] = []
    modseqs: list[int] = []
    i, n = 0, len(uids)
    for uid, modseq in rows:
        if i < n and uids[i] < uid:
            i = bisect_left(uids, uid, i)
        if i < n and uids[i] == uid:
            out_uids.append(uid)
            i += 1
            seqs.append(i)
            modseqs.append(modseq)
    return out_uids, seqs, modseqs


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


def _partial(nums: list[int], first: int, last: int) -> tuple[str, list[int]]:
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
                 partial: tuple[int, int] | None = None) -> bytes:
    """``* ESEARCH (TAG "t") [UID] MIN a MAX b ALL set COUNT n [PARTIAL (r set)] [MODSEQ m]``."""
    parts = [b"* ESEARCH (TAG " + quoted(tag) + b")"]
    if uid:
        parts.append(b"UID")
    if nums:
        if "MIN" in opts:
            parts.append(b"MIN %d" % nums[0])
        if "MAX" in opts:
            parts.append(b"MAX %d" % nums[-1])
        if "ALL" in opts:
            parts.append(b"ALL " + NumberSet.from_numbers(nums).to_string().encode("ascii"))
    if "COUNT" in opts:
        parts.append(b"COUNT %d" % len(nums))
    if partial is not None:
        label, picked = _partial(nums, *partial)
        value = serializer.compress_uids(picked) if picked else "NIL"
        parts.append(f"PARTIAL ({label} {value})".encode("ascii"))
    if modseq is not None and nums:
        parts.append(b"MODSEQ %d" % modseq)
    return b" ".join(parts) + b"\r\n"


def _save(sel: SelectedMailbox, opts: Sequence[str], uids: list[int]) -> None:
    """RFC 5182 §2.4: with only MIN/MAX (no ALL/COUNT) the saved result is just those messages."""
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
    if args.charset is not None and args.charset.upper() not in CHARSETS:
        if saving:
            sel.saved_uids = NumberSet()
        return Result.no("Unsupported charset", serializer.badcharset_code(CHARSETS))
    with_modseq = has_modseq(args.key)
    if with_modseq:
        s.enable_condstore()  # SEARCH MODSEQ is a CONDSTORE enabling command (RFC 7162 §3.1)
    try:
        cond = build_condition(args.key, _resolver(sel), recent=[] if s.rev2 else list(getattr(sel, "_recent", [])),
                               now=int(time.time()))
        rows = await s.store.call(s.store.search.mailbox_search, s.account_id or "", sel.mailbox_id, cond,
                                  below_uid=sel.uidnext, size_hint=len(sel.uids))
    except Exception:
        if saving:
            sel.saved_uids = NumberSet()  # RFC 5182 §2.1: a failed SEARCH ... SAVE empties $
        raise
    uids, seqs, modseqs = _in_snapshot(rows, sel.uids)
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
        _save(sel, opts, uids)
    shown = [o for o in opts if o != "SAVE"]
    if shown or args.partial is not None:
        s.write(esearch_line(cmd.tag, cmd.uid, shown, nums, modseq, args.partial))
    return Result.ok("SEARCH completed")
