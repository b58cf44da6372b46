"""APPEND with MULTIAPPEND (RFC 3502), BINARY literals (RFC 3516), UTF8 literals (RFC 6855), APPENDUID
(RFC 4315) and CATENATE (RFC 4469: the messages are built by janusmail.imap.commands.catenate first, then
ingested with the others, all or nothing).

Durability: the tagged OK is written only after the store returned, i.e. after the bytes were synced and the
rows committed. A MULTIAPPEND is all-or-nothing: every message is checked first, then all go in one
``ingest_many`` transaction; they are parsed, and their bytes stored and synced, on the ingest threads before
that transaction joins the writer lane (a single message goes through ``store.deliver``, which does the same
and shares the disk sync with concurrent deliveries). ``\\Deleted`` given at APPEND time is a membership flag,
handed to the ingest with the message (``IngestItem.deleted``) so it is stored in the same transaction: a
failure after the message was stored but before its flag was cannot happen, so ``NO`` always means "nothing
stored" and a client retrying it makes no duplicate. A full disk (or a disk I/O error) answers ``NO
[UNAVAILABLE]`` with a plain reason: nothing was stored and the client may try again later; it is not a server
bug.

Memory: large messages arrive spooled to files (janusmail.imap.literals) and reach the store as read-only maps of
those files, a bounded number at a time (janusmail.spool), never as copies gathered in memory.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from janusmail.imap.codec import AppendArgs, serializer
from janusmail.imap.commands import Result, catenate, handler
from janusmail.imap.commands.mailbox_tree import find_mailbox
from janusmail.imap.flags import FlagError, from_imap
from janusmail.spool import Spool, spooler_for
from janusmail.store.mailbox_structure import MailboxShape
from janusmail.store.model import IngestItem, NotFound, StorageUnavailable, TooLarge

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession


@handler("APPEND", states=("auth", "selected"), capabilities=("MULTIAPPEND", "CATENATE"))
async def append(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, AppendArgs)
    limit = int(s.config.max_append_size)
    items: list[IngestItem] = []
    now = int(time.time())
    for msg in args.messages:
        if msg.utf8 and not s.utf8:
            return Result.bad("UTF8 literals need ENABLE UTF8=ACCEPT")
        size = msg.data.size if isinstance(msg.data, Spool) else len(msg.data)
        if size > limit or size > s.store.max_message_size:
            return Result.no("Message exceeds APPENDLIMIT", "TOOBIG")
        if not size and not msg.catenate:  # a CATENATE message's size is known once it is built
            return Result.no("Empty message")
        try:
            keywords, deleted = from_imap(msg.flags)
        except FlagError as exc:
            return Result.no(exc.text, exc.code)
        received = int(msg.date.timestamp()) if msg.date is not None else now
        items.append(IngestItem(b"", (), tuple(keywords), received, deleted))
    dest = await find_mailbox(s, args.mailbox)
    if dest is None:
        return Result.no("No such mailbox", "TRYCREATE")
    built = catenate.Built()
    try:
        try:
            if any(m.catenate for m in args.messages):  # RFC 4469: parts of the command and of stored messages
                built = await catenate.build(s, args.messages, min(limit, int(s.store.max_message_size)))
            raws = await _message_bytes(s, args, built.raws)
        except catenate.Refused as exc:
            return exc.result
        except StorageUnavailable as exc:  # the spool file could not take the literal
            return _unavailable(exc)
        # IMAP4rev1 APPEND into the selected mailbox: the session claims its \\Recent in the same transaction
        sel = s.selected
        claim = dest.id if sel is not None and sel.mailbox_id == dest.id and sel.claims_recent else None
        items = [IngestItem(raw, (dest.id,), it.keywords, it.received_at, it.deleted, claim)
                 for it, raw in zip(items, raws, strict=True)]
        return await _ingest(s, items, dest)
    finally:
        built.close()  # the built messages' spools (literal spools are the session's)


async def _ingest(s: ImapSession, items: list[IngestItem], dest: MailboxShape) -> Result:
    try:
        if len(items) == 1:
            it = items[0]
            delivered = [await s.store.deliver(s.account_id, it.raw, it.mailbox_ids, it.keywords, it.received_at,
                                               deleted=it.deleted, claim_recent=it.claim_recent)]
        else:  # parse, hash and the bytes' sync on the ingest threads first: the writer lane runs statements only
            prepared = await s.store.prepare_ingest(s.account_id, items)
            delivered = await s.store.call(s.store.emails.ingest_many, s.account_id, items, prepared)
    except NotFound:
        return Result.no("No such mailbox", "TRYCREATE")
    except TooLarge:
        return Result.no("Message too large", "TOOBIG")
    except StorageUnavailable as exc:
        return _unavailable(exc)
    uids = [d.uids[dest.id] for d in delivered]
    sel = s.selected
    if sel is not None and sel.mailbox_id == dest.id:
        for d, uid in zip(delivered, uids, strict=True):
            if d.recent_from is not None:
                sel.note_own_claim(d.recent_from, uid)
    return Result.ok("APPEND completed", serializer.appenduid_code(dest.uidvalidity, uids))


async def _message_bytes(s: ImapSession, args: AppendArgs, built: dict[int, Any]) -> list[Any]:
    """Each message as a bytes-like object for the store. Small literals are bytes already; spooled ones
    (large, see janusmail.imap.literals) are read-only maps of their files, handed out through the spool's
    load gate and unmapped when the session closes the command's spools, right after this command.
    ``built``: the CATENATE messages by index (janusmail.imap.commands.catenate)."""
    spools = [m.data for m in args.messages if isinstance(m.data, Spool) and not m.catenate]
    loaded = iter(await spooler_for(s.rt).load(spools)) if spools else iter(())
    return [built[i] if m.catenate else next(loaded) if isinstance(m.data, Spool) else m.data
            for i, m in enumerate(args.messages)]


def _unavailable(exc: StorageUnavailable) -> Result:
    """A plain, retryable reason (RFC 5530 UNAVAILABLE): the server is fine, its disk is not."""
    reason = "Not enough disk space to store the message" if exc.full else "The mail store cannot write to disk"
    return Result.no(f"{reason}, try again later", "UNAVAILABLE")
