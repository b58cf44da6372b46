"""STORE and UID STORE (RFC 9051 §6.4.6, RFC 7162 UNCHANGEDSINCE).

Flags are one set per email (a flag set through one mailbox shows on every copy) and ``\\Deleted`` is per
membership; :meth:`Store.memberships.store_flags` does both in one transaction. The answer is one ``FETCH (FLAGS ...)``
per changed message read back after the write (so ``+FLAGS`` reports the full resulting set), unless
``.SILENT``; the selected view is told (``note_own_flags``) so the next sync does not repeat them (for
``.SILENT`` only where no other session's change came in between: ``StoreResult.previous``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap.codec import FetchAttr, StoreArgs, serializer
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.fetch import number_rows
from janusmail.imap.fetchdata import EMAIL_ID, FetchPlan, RenderContext, render_batch, uid_ranges
from janusmail.imap.flags import FlagError, from_imap
from janusmail.store.message_views import SQL_ROWS

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession

_MODES = {"add": "add", "remove": "remove", "set": "replace"}


@handler("STORE", "UID STORE", states=("selected",))
async def store(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, StoreArgs)
    sel = s.selected
    assert sel is not None
    if sel.readonly:
        return Result.no("Mailbox is read-only (EXAMINE)")
    try:
        keywords, deleted = from_imap(args.flags)
    except FlagError as exc:
        return Result.no(exc.text, exc.code)
    if args.unchangedsince is not None:
        s.enable_condstore()  # a CONDSTORE enabling command (RFC 7162 §3.1): HIGHESTMODSEQ on first use
    ranges = sel.resolve(args.sequence, cmd.uid)
    if not ranges:
        return Result.ok("STORE completed")
    mode = _MODES[args.action]
    if mode == "add":
        deleted_arg: bool | None = True if deleted else None
    elif mode == "remove":
        deleted_arg = False if deleted else None
    else:
        deleted_arg = deleted
    res = await s.store.call(s.store.memberships.store_flags, s.account_id, sel.mailbox_id, ranges, mode, keywords,
                             deleted_arg, args.unchangedsince)
    known = [u for u in res.updated if sel.uid_to_seq(u) is not None]
    # .SILENT reports no flags, so the client applies its change to the flags it knew: right only when this
    # write was the message's first change since the session's last report. A change by another session in
    # between (racing this one) must still come as an unsolicited FETCH, so only the others are marked ours.
    told = [u for u in known if res.previous.get(u, 0) <= sel.known_modseq]
    report_modseq = s.condstore
    if known and (not args.silent or report_modseq):
        items: list = [FetchAttr("MODSEQ")] if args.silent else [FetchAttr("FLAGS")]
        if report_modseq and not args.silent:
            items.append(FetchAttr("MODSEQ"))
        plan = FetchPlan.build(items, uid=cmd.uid)
        read = s.store.read_inline if len(known) <= SQL_ROWS else s.store.call  # a few rows: on the loop
        data = await read(s.store.messages.fetch_rows, sel.mailbox_id, uid_ranges(known), **plan.wants(),
                          below_uid=sel.uidnext)
        rows, seqs = number_rows(data.rows, sel.uids)
        ctx = RenderContext(plan, s.utf8, data.keywords, {},
                            is_recent=None if s.rev2 or sel.recent_from is None else sel.recent_test(), store=s.store)
        if rows:
            if not args.silent:  # a keyword new to this session is announced before FETCH shows it
                sel.note_row_keywords(s, rows, data.keywords, EMAIL_ID)
            s.write(render_batch(ctx, rows, seqs))
        if not args.silent:  # what we just reported must not come back as an unsolicited FETCH from the next sync
            for r in rows:
                sel.note_own_flags([r[0]], r[2])
        else:  # MODSEQ only: the flags are still owed unless the client knew all but its own change
            sel.note_own_flags(told, res.modseq)
    elif told:
        sel.note_own_flags(told, res.modseq)
    if res.modified:
        mod = res.modified if cmd.uid else [n for n in (sel.uid_to_seq(u) for u in res.modified) if n]
        return Result.ok("Conditional STORE failed for some messages", serializer.modified_code(sorted(mod)))
    return Result.ok("STORE completed")
