"""FETCH and UID FETCH (RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 CHANGEDSINCE/VANISHED, RFC 8474 ids).

The rows come from the store (``store.messages.fetch_rows``: one query for the rows, one for keywords, or the
store's row cache); :mod:`janusmail.imap.fetchdata` renders them in batches on the store's worker threads. This handler adds the protocol rules around it: sequence numbers from the
session's snapshot, the implicit ``\\Seen`` of non-PEEK body fetches (one store write for all of them,
reported in the same FETCH lines), VANISHED (EARLIER) before the FETCH data, and back-pressure between batches.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import TYPE_CHECKING

from janusmail.imap.codec import FetchArgs, responses
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.search import partial_results
from janusmail.imap.fetchbody import UnknownCte
from janusmail.imap.fetchdata import (
    EMAIL_ID,
    FLAGS,
    MODSEQ,
    SIZE,
    UID,
    FetchPlan,
    FetchRows,
    RenderContext,
    Row,
    fill_and_render,
    fill_structs,
    render_batch,
    uid_ranges,
)
from janusmail.store.flagbits import FLAG_SEEN
from janusmail.store.message_views import SQL_ROWS
from janusmail.store.numbering import number_rows

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession

#: Rows per rendered chunk for metadata-only FETCHes, and the byte budget per chunk when bodies are sent.
LIGHT_BATCH = 4000
BODY_BATCH_BYTES = 4 * 1024 * 1024
#: Below this many rows the rendering runs inline (a worker-thread hop costs more than it saves).
INLINE_ROWS = 64


def _batches(rows: list[Row], blob: bool) -> list[tuple[int, int]]:
    if not blob:
        return [(i, min(i + LIGHT_BATCH, len(rows))) for i in range(0, len(rows), LIGHT_BATCH)]
    out: list[tuple[int, int]] = []
    start, acc = 0, 0
    for i, r in enumerate(rows):
        acc += r[SIZE]
        if acc >= BODY_BATCH_BYTES or i - start >= 255:
            out.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(rows):
        out.append((start, len(rows)))
    return out


async def _mark_seen(s: ImapSession, rows: list[Row]) -> tuple[list[Row], set[int]]:
    """Set \\Seen on the unseen messages among ``rows`` (one store call); returns the rows with their new
    flags and MODSEQ, and the UIDs whose FETCH lines must now report FLAGS."""
    sel = s.selected
    assert sel is not None
    unseen = [r[UID] for r in rows if not r[FLAGS] & FLAG_SEEN]
    if not unseen:
        return rows, set()
    res = await s.store.call(s.store.memberships.store_flags, s.account_id, sel.mailbox_id, uid_ranges(unseen), "add",
                             ["$seen"], None)
    if not res.updated:
        return rows, set()
    updated = set(res.updated)
    emails_changed = {r[EMAIL_ID] for r in rows if r[UID] in updated}
    out: list[Row] = []
    changed: set[int] = set()
    for r in rows:
        if r[EMAIL_ID] in emails_changed:  # flags are per email: every copy in this mailbox changed
            r = (*r[:MODSEQ], res.modseq, r[EMAIL_ID], r[FLAGS] | FLAG_SEEN, *r[FLAGS + 1 :])
            changed.add(r[UID])
        out.append(r)
    # flags above are the ones read before the write: only where nothing else changed the message in between
    # are they the whole truth; elsewhere the next sync still sends the flags as they are
    read = {r[UID]: r[MODSEQ] for r in rows}
    sel.note_own_flags([u for u in changed if res.previous.get(u) == read[u]], res.modseq)
    return out, changed


def _covered(uids: Sequence[int], ranges: list[tuple[int, int]]) -> int:
    """How many of the session's messages ``ranges`` cover."""
    return sum(bisect_right(uids, hi) - bisect_left(uids, lo) for lo, hi in ranges)


def partial_window(uids: Sequence[int], ranges: list[tuple[int, int]],
                   partial: tuple[int, int]) -> list[tuple[int, int]]:
    """RFC 9394 §3.2 ``(PARTIAL first:last)``: of the session's messages in ``ranges``, only those at these
    positions (negative: from the last one), as UID ranges. From the snapshot: no store read."""
    covered: list[int] = []
    for lo, hi in ranges:
        covered.extend(uids[bisect_left(uids, lo) : bisect_right(uids, hi)])
    if len(ranges) > 1:
        covered = sorted(set(covered))
    _, picked = partial_results(covered, *partial)
    return uid_ranges(picked)


@handler("FETCH", "UID FETCH", states=("selected",), capabilities=("BINARY", "PREVIEW"))
async def fetch(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, FetchArgs)
    sel = s.selected
    assert sel is not None
    if args.vanished and not (cmd.uid and s.qresync):
        return Result.bad("VANISHED needs UID FETCH and ENABLE QRESYNC")
    if args.vanished and args.changedsince is None:
        return Result.bad("VANISHED needs CHANGEDSINCE")
    if args.changedsince is not None or any(getattr(it, "name", None) == "MODSEQ" for it in args.items):
        s.enable_condstore()  # an enabling command (RFC 7162 §3.1): the first also sends [HIGHESTMODSEQ]
    ranges = sel.resolve(args.sequence, cmd.uid)
    if args.partial is not None and args.changedsince is None:
        ranges = partial_window(sel.uids, ranges, args.partial)
    if args.vanished and args.changedsince is not None:
        top = max(sel.uidnext - 1, 1)
        wide = (sel.saved_uids.ranges if args.sequence.is_saved and sel.saved_uids
                else args.sequence.resolve(top).ranges)
        gone = await s.store.call(s.store.messages.vanished_uids, sel.mailbox_id, list(wide), args.changedsince)
        if gone:
            s.write(responses.vanished_response(gone, earlier=True))
    if not ranges:
        return Result.ok("FETCH completed")
    plan = FetchPlan.build(args.items, uid=cmd.uid, modseq=args.changedsince is not None)
    # metadata-only FETCHes of many messages may come from the store's row cache: it decides, given how many
    # of the session's messages the ranges cover and how big the mailbox is
    # (SAVEDATE, RFC 8514: the save dates come with the rows, in the same read)
    # (a few messages' metadata is a few reads by key, never the row cache: on the loop's thread where that is
    # cheaper, Store.read_inline)
    covered = _covered(sel.uids, ranges)
    read = s.store.read_inline if covered <= SQL_ROWS and not plan.blob else s.store.call
    # many rows are numbered by the store (free when the session's snapshot is the row cache's mailbox); it gets
    # a copy of the snapshot, which this session may change while the read runs on a store thread
    data: FetchRows = await read(s.store.messages.fetch_rows, sel.mailbox_id, ranges, **plan.wants(),
                                 changedsince=args.changedsince, below_uid=sel.uidnext, covered=covered,
                                 size_hint=len(sel.uids), known=sel.uids[:] if covered > SQL_ROWS else None)
    rows, seqs = (data.rows, data.seqs) if data.seqs is not None else number_rows(data.rows, sel.uids)
    if args.partial is not None and args.changedsince is not None:  # the window applies to the changed ones
        _, keep = partial_results(list(range(len(rows))), *args.partial)
        rows, seqs = (rows[keep[0] : keep[-1] + 1], seqs[keep[0] : keep[-1] + 1]) if keep else ([], [])
    changed: set[int] = set()
    if plan.sets_seen and not sel.readonly and rows:
        rows, changed = await _mark_seen(s, rows)
    if plan.flags or changed:  # announce keywords new to this session before FETCH shows them (RFC 9051 §7.3.5)
        sel.note_row_keywords(s, rows, data.keywords, EMAIL_ID)
    ctx = RenderContext(
        plan, s.utf8, data.keywords, data.locations,
        is_recent=None if s.rev2 or sel.recent_from is None else sel.recent_test(),
        changed=changed, condstore=s.condstore, store=s.store, saved=data.saved,
    )
    # rendered structures (ENVELOPE, BODYSTRUCTURE) are pinned per batch before it renders (fill_structs)
    render = fill_and_render if plan.structs else render_batch
    try:
        if len(rows) <= INLINE_ROWS and not plan.blob:
            if rows:
                if plan.structs:
                    await s.store.call(fill_structs, s.store, rows, plan, s.utf8, ctx.pinned)
                s.write(render_batch(ctx, rows, seqs))
            return Result.ok("FETCH completed")
        for a, b in _batches(rows, plan.blob):
            s.write(await s.store.call(render, ctx, rows[a:b], seqs[a:b]))
            await s.flush()
    except UnknownCte as exc:
        return Result.no(f"Unknown Content-Transfer-Encoding {exc}", "UNKNOWN-CTE")
    return Result.ok("FETCH completed")
