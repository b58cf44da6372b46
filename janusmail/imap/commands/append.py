"""APPEND with MULTIAPPEND (RFC 3502), BINARY literals (RFC 3516), UTF8 literals (RFC 6855) and APPENDUID
(RFC 4315).

Durability: the tagged OK is written only after the store returned, i.e. after the bytes were synced and the
rows committed. A MULTIAPPEND is all-or-nothing: every message is checked first, then all go in one
``ingest_many`` transaction (a single message goes through ``store.deliver``, which shares the disk sync with
concurrent deliveries). ``\\Deleted`` given at APPEND time is a membership flag the ingest path does not take,
so it is set right after, in a second transaction.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from janusmail.imap.codec import AppendArgs, serializer
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.tree import find_mailbox
from janusmail.imap.flags import FlagError, from_imap
from janusmail.store.model import IngestItem, NotFound, TooLarge

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession


@handler("APPEND", states=("auth", "selected"), capabilities=("MULTIAPPEND",))
async def append(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, AppendArgs)
    limit = int(s.config.max_append_size)
    items: list[IngestItem] = []
    deleted_at: list[int] = []
    now = int(time.time())
    for i, msg in enumerate(args.messages):
        if msg.utf8 and not s.utf8:
            return Result.bad("UTF8 literals need ENABLE UTF8=ACCEPT")
        if len(msg.data) > limit or len(msg.data) > s.store.max_message_size:
            return Result.no("Message exceeds APPENDLIMIT", "TOOBIG")
        if not msg.data:
            return Result.no("Empty message")
        try:
            keywords, deleted = from_imap(msg.flags)
        except FlagError as exc:
            return Result.no(exc.text, exc.code)
        if deleted:
            deleted_at.append(i)
        received = int(msg.date.timestamp()) if msg.date is not None else now
        items.append(IngestItem(bytes(msg.data), (), tuple(keywords), received))
    dest = await find_mailbox(s, args.mailbox)
    if dest is None:
        return Result.no("No such mailbox", "TRYCREATE")
    items = [IngestItem(it.raw, (dest.id,), it.keywords, it.received_at) for it in items]
    try:
        if len(items) == 1:
            it = items[0]
            delivered = [await s.store.deliver(s.account_id, it.raw, it.mailbox_ids, it.keywords, it.received_at)]
        else:
            delivered = await s.store.call(s.store.ingest_many, s.account_id, items)
    except NotFound:
        return Result.no("No such mailbox", "TRYCREATE")
    except TooLarge:
        return Result.no("Message too large", "TOOBIG")
    uids = [d.uids[dest.id] for d in delivered]
    if deleted_at:
        marked = [(uids[i], uids[i]) for i in deleted_at]
        await s.store.call(s.store.store_flags, s.account_id, dest.id, marked, "add", [], True)
    return Result.ok("APPEND completed", serializer.appenduid_code(dest.uidvalidity, uids))
