"""REPLACE and UID REPLACE (RFC 8508): append a new version of a message and expunge the old one, atomically.

The pair is one store write (``store.replacements.replace``: the ingest and the expunge in one transaction), so
no client ever sees both versions or neither. The answer follows RFC 8508 §3.3: ``* OK [APPENDUID v u]`` for the
new message, then ``EXPUNGE`` (``VANISHED`` under QRESYNC) of the old one to this session, then ``EXISTS`` when
the new message went into the selected mailbox (the session's catch-up), then the tagged OK. The message is
checked as APPEND checks it (size, flags, UTF8 literal), and a big one arrives spooled like APPEND's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from janusmail.imap.codec import AppendMessage, ReplaceArgs, serializer
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.append import _unavailable
from janusmail.imap.commands.mailbox_tree import find_mailbox
from janusmail.imap.flags import FlagError, from_imap
from janusmail.spool import Spool, spooler_for
from janusmail.store.model import IngestItem, NotFound, StorageUnavailable, TooLarge

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession


@handler("REPLACE", "UID REPLACE", states=("selected",), capabilities=("REPLACE",))
async def replace(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, ReplaceArgs)
    sel = s.selected
    assert sel is not None
    msg = args.message
    if not isinstance(msg, AppendMessage) or getattr(msg, "catenate", ()):  # CATENATE is not offered here
        return Result.bad("REPLACE takes a message literal")
    if sel.readonly:
        return Result.no("Mailbox is read-only (EXAMINE)")
    if cmd.uid:
        old = args.number if args.number is not None else (sel.uids[-1] if sel.uids else 0)
        if sel.uid_to_seq(old) is None:
            return Result.no("No such message")
    else:
        old = sel.seq_to_uid(args.number if args.number is not None else len(sel.uids))  # BAD when out of range
    if msg.utf8 and not s.utf8:
        return Result.bad("UTF8 literals need ENABLE UTF8=ACCEPT")
    size = msg.data.size if isinstance(msg.data, Spool) else len(msg.data)
    if size > int(s.config.max_append_size) or size > s.store.max_message_size:
        return Result.no("Message exceeds APPENDLIMIT", "TOOBIG")
    if not size:
        return Result.no("Empty message")
    try:
        keywords, deleted = from_imap(msg.flags)
    except FlagError as exc:
        return Result.no(exc.text, exc.code)
    dest = await find_mailbox(s, args.mailbox)
    if dest is None:
        return Result.no("No such mailbox", "TRYCREATE")
    try:
        # a big literal arrived spooled (janusmail.imap.literals): a read-only map of its file, as APPEND's
        raw = (await spooler_for(s.rt).load([msg.data]))[0] if isinstance(msg.data, Spool) else msg.data
    except StorageUnavailable as exc:
        return _unavailable(exc)
    received = int(msg.date.timestamp()) if msg.date is not None else int(time.time())
    item = IngestItem(raw, (dest.id,), tuple(keywords), received, deleted)
    try:
        # parsed, and its bytes stored and synced, on the ingest threads: the writer lane runs statements only
        prepared = (await s.store.prepare_ingest(s.account_id, [item]))[0]
        delivered = await s.store.call(s.store.replacements.replace, s.account_id, sel.mailbox_id, old, item,
                                       prepared)
    except NotFound:
        # the mailbox went away, or the old message was expunged meanwhile: nothing was stored
        if await find_mailbox(s, args.mailbox) is None:
            return Result.no("No such mailbox", "TRYCREATE")
        return Result.no("The message to replace no longer exists")
    except TooLarge:
        return Result.no("Message too large", "TOOBIG")
    except StorageUnavailable as exc:
        return _unavailable(exc)
    s.write(serializer.untagged_status(
        "OK", serializer.appenduid_code(dest.uidvalidity, [delivered.uids[dest.id]]), "Replacement message added"))
    sel.expunge_lines(s, [old])
    return Result.ok("REPLACE completed")
