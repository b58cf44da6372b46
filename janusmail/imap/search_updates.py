"""CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267 §4): ``SEARCH`` / ``SORT RETURN (UPDATE)`` results the server keeps
up to date.

A SEARCH with the UPDATE return option leaves a context on the selected mailbox, named by the command's tag.
Whenever the session may speak (the end of every command, IDLE wake-ups) and the mailbox changed, the context's
condition is run again (one store call for all the contexts of the mailbox) and the difference is sent as
``* ESEARCH (TAG "t") [UID] ADDTO (0 set)`` / ``REMOVEFROM (0 set)`` (position 0: SEARCH results have no
order). Messages leaving because they were expunged are reported *before* their EXPUNGE, while their sequence
numbers still mean them (``SelectedMailbox.expunge_lines`` calls :func:`before_expunge`); new messages after
their EXISTS. ``CANCELUPDATE "t"`` ends a context; so does leaving the mailbox. The condition is the one built
when the SEARCH ran (its sequence sets resolved to UIDs then), as RFC 5267 §4.3 describes the result as that
search's, kept current.

A SORT context (``UpdateContext.sort`` set) keeps its result as a list in sort order, and its changes carry
positions (§4.3.3-4.3.4): ``REMOVEFROM (p set)`` removes the run of results starting at 1-based position ``p``,
``ADDTO (p set)`` inserts a run so that its first result lands at ``p``; each set lists its run in sort order, and
the pairs apply left to right (so positions are those of the list as the earlier pairs left it). Removals are
sent first, then additions, which is all a refresh needs (a message's sort keys never change, so the messages
that stay keep their relative order; should that ever not hold the whole result is replaced).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from janusmail.imap.codec import NumberSet
from janusmail.imap.codec.serializer import compress_uids
from janusmail.imap.codec.strings import quoted

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.selected import SelectedMailbox
    from janusmail.store.search import ast as q

__all__ = ["MAX_CONTEXTS", "UpdateContext", "before_expunge", "refresh", "refuse_updates", "sort_changes",
           "update_line"]

#: Contexts one session may keep on its mailbox; past that a SEARCH / SORT gets ``* NO [NOUPDATE "t"]`` (§4.3.1).
MAX_CONTEXTS = 8


def refuse_updates(s: Any, tag: str) -> None:
    """RFC 5267 §4.3.1: an untagged ``NO [NOUPDATE "tag"]`` while the command runs; its other return options
    are still answered and it still completes OK."""
    s.write(b"* NO [NOUPDATE " + quoted(tag) + b"] Too many update contexts\r\n")


@dataclass(slots=True)
class UpdateContext:
    """One live result. ``uids``: its members; for a SORT context (``sort`` set) also ``order``, the members in
    sort order (the client's list, which positions refer to)."""

    tag: str
    uid: bool
    condition: q.Condition
    uids: set[int] = field(default_factory=set)
    sort: tuple[q.SortKey, ...] | None = None
    order: list[int] = field(default_factory=list)


def update_line(ctx: UpdateContext, sel: SelectedMailbox, added: list[int], removed: list[int]) -> bytes:
    """``* ESEARCH (TAG "t") [UID] [REMOVEFROM (0 set)] [ADDTO (0 set)]`` (message numbers unless UID)."""
    parts = [b"* ESEARCH (TAG " + quoted(ctx.tag) + b")"]
    if ctx.uid:
        parts.append(b"UID")

    def numbers(uids: list[int]) -> str:
        nums = uids if ctx.uid else [n for n in map(sel.uid_to_seq, uids) if n is not None]
        return NumberSet.from_numbers(nums).to_string()

    if removed:
        parts.append(b"REMOVEFROM (0 " + numbers(removed).encode("ascii") + b")")
    if added:
        parts.append(b"ADDTO (0 " + numbers(added).encode("ascii") + b")")
    return b" ".join(parts) + b"\r\n"


def before_expunge(s: Any, sel: SelectedMailbox, uids: list[int]) -> None:
    """Messages about to be reported expunged leave every context first (their numbers still valid)."""
    if not sel.update_contexts:
        return
    gone = set(uids)
    for ctx in sel.update_contexts.values():
        if ctx.sort is not None:
            if ctx.uids & gone:
                _send_sort_changes(s, ctx, sel, [u for u in ctx.order if u not in gone])
            continue
        removed = sorted(ctx.uids & gone)
        if removed:
            s.write(update_line(ctx, sel, [], removed))
            ctx.uids.difference_update(removed)


def sort_changes(old: list[int], new: list[int]) -> tuple[list[tuple[int, list[int]]], list[tuple[int, list[int]]]]:
    """The REMOVEFROM and ADDTO pairs ``(position, run)`` that turn the sorted list ``old`` into ``new``, to be
    applied in that order (removals first, each pair on the list the previous ones left)."""
    new_set, old_set = set(new), set(old)
    kept_old = [u for u in old if u in new_set]
    if kept_old != [u for u in new if u in old_set]:  # the survivors moved: replace the whole result
        new_set = set()
        kept_old = []
    removals: list[tuple[int, list[int]]] = []
    kept = 0  # members before the current run that stay
    run: list[int] = []
    for u in old:
        if u in new_set:
            if run:
                removals.append((kept + 1, run))
                run = []
            kept += 1
        else:
            run.append(u)
    if run:
        removals.append((kept + 1, run))
    staying = set(kept_old)
    additions: list[tuple[int, list[int]]] = []
    run_at = 0
    run = []
    for pos, u in enumerate(new, start=1):
        if u in staying:
            if run:
                additions.append((run_at, run))
                run = []
        else:
            if not run:
                run_at = pos
            run.append(u)
    if run:
        additions.append((run_at, run))
    return removals, additions


def sort_update_line(ctx: UpdateContext, sel: SelectedMailbox, removals: list[tuple[int, list[int]]],
                     additions: list[tuple[int, list[int]]]) -> bytes:
    """``* ESEARCH (TAG "t") [UID] [REMOVEFROM (p set ...)] [ADDTO (p set ...)]``, each set in sort order."""
    parts = [b"* ESEARCH (TAG " + quoted(ctx.tag) + b")"]
    if ctx.uid:
        parts.append(b"UID")

    def pairs(items: list[tuple[int, list[int]]]) -> bytes:
        out = []
        for pos, uids in items:
            nums = uids if ctx.uid else [sel.uid_to_seq(u) or 0 for u in uids]
            out.append(b"%d %s" % (pos, compress_uids(nums).encode("ascii")))
        return b"(" + b" ".join(out) + b")"

    if removals:
        parts.append(b"REMOVEFROM " + pairs(removals))
    if additions:
        parts.append(b"ADDTO " + pairs(additions))
    return b" ".join(parts) + b"\r\n"


def _send_sort_changes(s: Any, ctx: UpdateContext, sel: SelectedMailbox, new: list[int]) -> None:
    removals, additions = sort_changes(ctx.order, new)
    if removals or additions:
        s.write(sort_update_line(ctx, sel, removals, additions))
    ctx.order = new
    ctx.uids = set(new)


def _run_all(store: Any, account_id: str, mailbox_id: str, contexts: list[UpdateContext], below_uid: int,
             size_hint: int) -> list[list[int]]:
    """On a store thread: every context's search (ascending UIDs) or sort (UIDs in order), in one hop."""
    search = store.search
    out: list[list[int]] = []
    for c in contexts:
        if c.sort is None:
            rows = search.mailbox_search(account_id, mailbox_id, c.condition, below_uid=below_uid,
                                         size_hint=size_hint)
            out.append([uid for uid, _ in rows])
        else:
            out.append(search.mailbox_sort(account_id, mailbox_id, c.condition, c.sort, below_uid=below_uid,
                                           size_hint=size_hint)[0])
    return out


async def refresh(s: Any, sel: SelectedMailbox) -> None:
    """Run the contexts again and send what changed (messages the session knows only)."""
    contexts = list(sel.update_contexts.values())
    if not contexts:
        return
    results = await s.store.call(_run_all, s.rt.store, s.account_id or "", sel.mailbox_id, contexts, sel.uidnext,
                                 len(sel.uids))
    known = sel.uid_to_seq
    for ctx, found in zip(contexts, results, strict=True):
        if ctx.sort is not None:
            _send_sort_changes(s, ctx, sel, [u for u in found if known(u) is not None])
            continue
        now = {uid for uid in found if known(uid) is not None}
        added, removed = sorted(now - ctx.uids), sorted(ctx.uids - now)
        if added or removed:
            s.write(update_line(ctx, sel, added, removed))
            ctx.uids = now
