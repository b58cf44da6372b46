"""COPY, MOVE, UID COPY, UID MOVE (RFC 9051 §6.4.7-8, RFC 6851 MOVE, RFC 4315 COPYUID, RFC 8474 EMAILID).

A copy is the same email gaining a membership in the destination (same EMAILID, THREADID and keyword set);
MOVE also removes the source memberships, in the same store transaction. MOVE answers with an untagged
``OK [COPYUID ...]`` first, then EXPUNGE (or VANISHED under QRESYNC) for the moved messages, then the tagged OK;
COPY puts COPYUID in the tagged OK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap.codec import CopyArgs, serializer
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.mailbox_tree import find_mailbox

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession


@handler("COPY", "UID COPY", states=("selected",))
async def copy(s: ImapSession, cmd: Command) -> Result:
    return await _copy(s, cmd, move=False)


@handler("MOVE", "UID MOVE", states=("selected",))
async def move(s: ImapSession, cmd: Command) -> Result:
    return await _copy(s, cmd, move=True)


async def _copy(s: ImapSession, cmd: Command, *, move: bool) -> Result:
    args = cmd.args
    assert isinstance(args, CopyArgs)
    sel = s.selected
    assert sel is not None
    if move and sel.readonly:
        return Result.no("Mailbox is read-only (EXAMINE)")
    ranges = sel.resolve(args.sequence, cmd.uid)
    dest = await find_mailbox(s, args.mailbox)
    if dest is None:
        return Result.no("No such mailbox", "TRYCREATE")
    if not ranges:
        return Result.ok("Nothing to copy" if not move else "Nothing to move")
    pairs = await s.store.call(s.store.memberships.copy, s.account_id, sel.mailbox_id, ranges, dest.id, move=move)
    # Only messages this session knows are reported (a concurrent arrival in the range stays where it was
    # for the client's view; the store only copied what exists).
    pairs = [(a, b) for a, b in pairs if sel.uid_to_seq(a) is not None] if move else pairs
    if not pairs:
        return Result.ok("No messages matched")
    code = serializer.copyuid_code(dest.uidvalidity, [a for a, _ in pairs], [b for _, b in pairs])
    if not move:
        return Result.ok("COPY completed", code)
    s.write(serializer.untagged_status("OK", code, "Moved"))
    sel.expunge_lines(s, [a for a, _ in pairs])
    return Result.ok("MOVE completed")
