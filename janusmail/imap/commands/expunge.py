"""EXPUNGE and UID EXPUNGE (RFC 9051 §6.4.3, §6.4.9; RFC 4315).

The store removes the ``\\Deleted`` memberships (an email whose last membership goes is destroyed, which JMAP
sees as Email destroyed) and records the UIDs in ``vanished``. The session's snapshot then announces them:
``* n EXPUNGE`` in descending sequence order, so no number shifts under the client while it reads them, or
one ``* VANISHED uid-set`` under QRESYNC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap.codec import ExpungeArgs
from janusmail.imap.commands import Result, handler

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession


@handler("EXPUNGE", "UID EXPUNGE", states=("selected",))
async def expunge(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    sel = s.selected
    assert sel is not None
    if sel.readonly:
        return Result.no("Mailbox is read-only (EXAMINE)")
    ranges = None
    if isinstance(args, ExpungeArgs) and args.sequence is not None:
        ranges = sel.resolve(args.sequence, True)
        if not ranges:
            return Result.ok("EXPUNGE completed")
    memberships = s.store.memberships
    if await s.store.read_inline(memberships.anything_deleted, s.account_id, sel.mailbox_id):
        sel.expunge_lines(s, await s.store.call(memberships.expunge, s.account_id, sel.mailbox_id, ranges))
    return Result.ok("EXPUNGE completed")
