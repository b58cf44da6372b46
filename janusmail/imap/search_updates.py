"""CONTEXT=SEARCH (RFC 5267 §4): ``SEARCH RETURN (UPDATE)`` results the server keeps up to date.

A SEARCH with the UPDATE return option leaves a context on the selected mailbox, named by the command's tag.
Whenever the session may speak (the end of every command, IDLE wake-ups) and the mailbox changed, the context's
condition is run again (one store call for all the contexts of the mailbox) and the difference is sent as
``* ESEARCH (TAG "t") [UID] ADDTO (0 set)`` / ``REMOVEFROM (0 set)`` (position 0: SEARCH results have no
order). Messages leaving because they were expunged are reported *before* their EXPUNGE, while their sequence
numbers still mean them (``SelectedMailbox.expunge_lines`` calls :func:`before_expunge`); new messages after
their EXISTS. ``CANCELUPDATE "t"`` ends a context; so does leaving the mailbox. The condition is the one built
when the SEARCH ran (its sequence sets resolved to UIDs then), as RFC 5267 §4.3 describes the result as that
search's, kept current.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from janusmail.imap.codec import NumberSet
from janusmail.imap.codec.strings import quoted

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.selected import SelectedMailbox
    from janusmail.store.search import ast as q

__all__ = ["MAX_CONTEXTS", "UpdateContext", "before_expunge", "refresh", "update_line"]

#: Contexts one session may keep on its mailbox; past that a SEARCH gets ``OK [NOUPDATE "t"]`` (§4.2).
MAX_CONTEXTS = 8


@dataclass(slots=True)
class UpdateContext:
    tag: str
    uid: bool
    condition: q.Condition
    uids: set[int] = field(default_factory=set)


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
        removed = sorted(ctx.uids & gone)
        if removed:
            s.write(update_line(ctx, sel, [], removed))
            ctx.uids.difference_update(removed)


def _run_all(store: Any, account_id: str, mailbox_id: str, conditions: list[q.Condition], below_uid: int,
             size_hint: int) -> list[list[tuple[int, int]]]:
    """On a store thread: every context's search, in one hop."""
    return [store.search.mailbox_search(account_id, mailbox_id, c, below_uid=below_uid, size_hint=size_hint)
            for c in conditions]


async def refresh(s: Any, sel: SelectedMailbox) -> None:
    """Run the contexts again and send what changed (messages the session knows only)."""
    contexts = list(sel.update_contexts.values())
    if not contexts:
        return
    results = await s.store.call(_run_all, s.rt.store, s.account_id or "", sel.mailbox_id,
                                 [c.condition for c in contexts], sel.uidnext, len(sel.uids))
    known = sel.uid_to_seq
    for ctx, rows in zip(contexts, results, strict=True):
        now = {uid for uid, _ in rows if known(uid) is not None}
        added, removed = sorted(now - ctx.uids), sorted(ctx.uids - now)
        if added or removed:
            s.write(update_line(ctx, sel, added, removed))
            ctx.uids = now
