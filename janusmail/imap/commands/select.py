"""SELECT / EXAMINE (with CONDSTORE and QRESYNC parameters), CLOSE, UNSELECT.

SELECT loads the session's snapshot (:class:`~janusmail.imap.selected.SelectedMailbox`) with one store read
(``store.messages.mailbox_snapshot``: the UID list, the counters from the mailbox row, the keywords in use), so
a 100k-message mailbox opens in milliseconds; the name lookup, the snapshot and the credential check share one
thread hop. IMAP4rev1
sessions also get RECENT and ``[UNSEEN n]``; IMAP4rev2 sessions get the ``* LIST`` response RFC 9051 asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from janusmail.imap.codec import Command, NumberSet, SelectArgs, responses, serializer
from janusmail.imap.selected import SelectedMailbox, flag_rows
from janusmail.imap.store_access import one_read

from . import handler
from .base import Result
from .mailbox_tree import ROLE_ATTRS, MailboxTree, find_shape

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession
    from janusmail.store.mailbox_structure import MailboxShape
    from janusmail.store.message_views import MailboxSnapshot


@handler("SELECT", "EXAMINE", states=("auth", "selected"))
async def select(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, SelectArgs)
    if args.qresync is not None and not s.qresync:
        return Result.bad("QRESYNC parameter without ENABLE QRESYNC")
    if s.selected is not None:
        s.deselect()
        s.write(serializer.untagged_status("OK", "CLOSED", "Previous mailbox closed"))
    if args.condstore or args.qresync is not None:
        s.condstore = True
    path = s.parse_mailbox(args.mailbox)
    readonly = cmd.name == "EXAMINE"
    tree, box, snap = await s.store.read_inline(_read_selection, s.rt.store, s.account_id, "/".join(path),
                                                claim_recent=not s.rev2 and not readonly, first_unseen=not s.rev2)
    if box is None or snap is None:  # (a snapshot of None: deleted since the tree was read)
        return Result.no("No such mailbox", "NONEXISTENT")
    first = snap.first_unseen
    sel = SelectedMailbox.from_snapshot(snap, box.id, readonly=readonly, name=tree.name_of(box))
    if not s.rev2 and readonly:
        sel.peek_recent(snap.recent_uid)
    s.write(sel.flags_response())  # system flags + the keywords in use (RFC 9051 §6.3.2)
    s.write(responses.exists_response(sel.exists))
    if not s.rev2:
        s.write(responses.recent_response(sel.recent_count()))
        if first is not None:
            seq = sel.uid_to_seq(first)
            if seq is not None:
                s.write(serializer.untagged_status("OK", f"UNSEEN {seq}", "First unseen"))
    s.write(serializer.untagged_status("OK", serializer.uidvalidity_code(sel.uidvalidity), "UIDs valid"))
    s.write(serializer.untagged_status("OK", serializer.uidnext_code(sel.uidnext), "Predicted next UID"))
    s.write(sel.permanentflags_response())
    s.write(serializer.untagged_status("OK", serializer.highestmodseq_code(sel.known_modseq), "Highest"))
    s.write(serializer.untagged_status("OK", serializer.mailboxid_code(box.id), "Ok"))
    if s.rev2:
        attrs = ["\\HasChildren" if tree.has_children(box) else "\\HasNoChildren"]
        if box.role in ROLE_ATTRS:
            attrs.append(ROLE_ATTRS[box.role])
        s.write(responses.list_response(attrs, "/", sel.name, s.utf8))
    q = args.qresync
    if q is not None and q.uidvalidity == sel.uidvalidity and q.modseq < sel.known_modseq:
        since = await s.store.call(s.store.messages.flag_changes, box.id, q.modseq, sel.known_modseq, sel.uidnext)
        gone, changed = since.vanished, flag_rows(since.changed)
        if q.known_uids is not None:
            known = q.known_uids.resolve(max(sel.uidnext - 1, 1))
            gone = [u for u in gone if u in known]
        gone = [u for u in gone if sel.uid_to_seq(u) is None]
        if gone:
            s.write(responses.vanished_response(NumberSet.from_numbers(gone), earlier=True))
        for uid, mseq, flags in changed:
            seq = sel.uid_to_seq(uid)
            if seq is not None:
                s.write(sel.flags_line(s, seq, uid, flags, mseq))
    s.selected = sel
    s.state = "selected"
    return Result.ok(f"{cmd.name} completed", "READ-ONLY" if readonly else "READ-WRITE")


@one_read
def _read_selection(store: Any, account_id: str, name: str, *, claim_recent: bool, first_unseen: bool
                    ) -> tuple[MailboxTree[MailboxShape], MailboxShape | None, MailboxSnapshot | None]:
    """Synchronous (on a store thread): the tree of cached shapes, the mailbox called ``name`` and its snapshot
    (with IMAP4rev1's first unseen UID), in one thread hop: with the command's credential check, that is the
    whole SELECT. A mailbox deleted since the cached tree was read has no snapshot (None: NONEXISTENT)."""
    tree, box = find_shape(store, account_id, name)
    if box is None:
        return tree, None, None
    snap = store.messages.mailbox_snapshot(account_id, box.id, claim_recent=claim_recent, first_unseen=first_unseen)
    return tree, box, snap


@handler("CLOSE", states=("selected",))
async def close(s: ImapSession, cmd: Command) -> Result:
    sel = s.selected
    s.deselect()
    if sel is not None and not sel.readonly:
        from janusmail.store.model import NotFound

        memberships = s.store.memberships
        try:  # RFC 9051 §6.4.1: expunge silently, no EXPUNGE responses
            if await s.store.read_inline(memberships.anything_deleted, s.account_id, sel.mailbox_id):
                await s.store.call(memberships.expunge, s.account_id, sel.mailbox_id)
        except NotFound:
            pass
    return Result.ok("CLOSE completed")


@handler("UNSELECT", states=("selected",))
async def unselect(s: ImapSession, cmd: Command) -> Result:
    s.deselect()
    return Result.ok("UNSELECT completed")
