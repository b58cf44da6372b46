"""SORT and UID SORT (RFC 5256), with DISPLAYFROM/DISPLAYTO (RFC 5957, ``SORT=DISPLAY``), ESORT return options
(RFC 5267 §3: ``* ESEARCH`` whose MIN/MAX/ALL follow the sort order), SAVE (RFC 5182), PARTIAL (RFC 9394) and
the MODSEQ result (RFC 7162).

The search keys go through the same machinery as SEARCH (:mod:`.search`: the store's query AST, resolved
through the session's snapshot); the store matches and orders (``store.search.mailbox_sort_known``); this module
maps the UIDs through the snapshot, keeping the order, and shapes the answer.

``RETURN (PARTIAL a:b)`` is a slice of that order. Unlike SEARCH's (``mailbox_search_page``), a sort window cannot
stop early (the last match can sort first), but a big mailbox's order is kept by the store per membership state,
so paging through it costs a filter and a slice per page, not a sort.

``RETURN (UPDATE)`` (CONTEXT=SORT, RFC 5267 §4) leaves a context like SEARCH's (:mod:`janusmail.imap.search_updates`):
the sorted result is kept, and later changes are sent as positional ADDTO / REMOVEFROM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap import search_updates
from janusmail.imap.codec import NumberSet, SortArgs
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.search import (
    charset_refusal,
    esearch_line,
    ordered_in_snapshot,
    result_modseq,
    save_result,
    search_condition,
)
from janusmail.imap.search_query import has_modseq
from janusmail.store.search.ast import SortKey

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession

#: RFC 5256 / RFC 5957 sort keys -> the store's sort properties
SORT_KEYS = {
    "ARRIVAL": "receivedAt",
    "DATE": "sentAt",
    "SIZE": "size",
    "SUBJECT": "subject",
    "FROM": "fromMailbox",
    "TO": "toMailbox",
    "CC": "ccMailbox",
    "DISPLAYFROM": "from",
    "DISPLAYTO": "to",
}


def sort_keys(args: SortArgs) -> tuple[SortKey, ...] | None:
    """The store's sort criteria, or None if a key is unknown (the parser already refuses those)."""
    out = []
    for c in args.criteria:
        prop = SORT_KEYS.get(c.key.upper())
        if prop is None:
            return None
        out.append(SortKey(prop, ascending=not c.reverse))  # type: ignore[arg-type]
    return tuple(out)


@handler("SORT", "UID SORT", states=("selected",), capabilities=("SORT", "SORT=DISPLAY", "ESORT", "CONTEXT=SORT"))
async def sort(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, SortArgs)
    sel = s.selected
    assert sel is not None
    opts = args.return_opts
    saving = opts is not None and "SAVE" in opts
    keys = sort_keys(args)
    if keys is None:
        return Result.bad("Unknown sort key")
    refusal = charset_refusal(args.charset)
    if refusal is not None:
        if saving:
            sel.saved_uids = NumberSet()
        return refusal
    if opts is not None and "UPDATE" in opts and cmd.tag in sel.update_contexts:
        return Result.bad(f"Tag {cmd.tag} already names a search context (CANCELUPDATE it first)")
    with_modseq = has_modseq(args.key)
    if with_modseq:
        s.enable_condstore()
    try:
        cond = search_condition(s, sel, args.key)
        found, found_seqs, found_modseqs = await s.store.call(
            s.store.search.mailbox_sort_known, s.account_id or "", sel.mailbox_id, cond, keys, sel.uids[:],
            below_uid=sel.uidnext, size_hint=len(sel.uids), with_modseq=with_modseq)
    except Exception:
        if saving:
            sel.saved_uids = NumberSet()  # RFC 5182 §2.1: a failed command with SAVE empties $
        raise
    if found_seqs is not None:  # the session's snapshot is the store's: every match is known, numbered
        uids, seqs, modseqs = found, found_seqs, found_modseqs
    else:
        uids, seqs, modseqs = ordered_in_snapshot(found, found_modseqs, sel.uids, want_seqs=not cmd.uid)
    nums = uids if cmd.uid else seqs
    if opts is None:
        line = b"* SORT"
        if nums:
            line += b" " + b" ".join([b"%d" % n for n in nums])
            if modseqs:
                line += b" (MODSEQ %d)" % max(modseqs)
        s.write(line + b"\r\n")
        return Result.ok("SORT completed")
    modseq = result_modseq(opts if args.partial is None else ("ALL",), modseqs) if modseqs is not None else None
    if saving:
        save_result(sel, opts, uids)
    shown = [o for o in opts if o not in ("SAVE", "UPDATE", "CONTEXT")]
    if "UPDATE" in opts and not shown and args.partial is None:
        shown = ["ALL"]
    if shown or args.partial is not None:
        s.write(esearch_line(cmd.tag, cmd.uid, shown, nums, modseq, args.partial, ordered=True))
    if "UPDATE" in opts:
        if len(sel.update_contexts) >= search_updates.MAX_CONTEXTS:
            search_updates.refuse_updates(s, cmd.tag)
            return Result.ok("SORT completed, no updates will follow")
        sel.update_contexts[cmd.tag] = search_updates.UpdateContext(cmd.tag, cmd.uid, cond, set(uids), sort=keys,
                                                                     order=list(uids))
    return Result.ok("SORT completed")
