"""GETMETADATA and SETMETADATA (RFC 5464: METADATA and METADATA-SERVER).

Entries live in the store (``store.metadata``: one table for mailboxes, one for the server view, deleted and
renamed with their mailbox). One user per account, so ``/private`` and ``/shared`` are both the account's.
Two entries are computed here, read-only, and never stored:

* ``/private/specialuse`` of a mailbox (RFC 6154 §4): its special-use attribute, from the mailbox's role
  (change it with CREATE ... USE or JMAP ``role``);
* ``/shared/admin`` of the server (RFC 5464 §3.2.1.1): ``[imap] metadata_admin``, by default
  ``mailto:postmaster@HOSTNAME``.

Each command is one store hop: the mailbox tree and the entries are read (or the entries written) by one
synchronous function on a store thread. Limits are the store's and are checked inside the write:
``NO [METADATA MAXSIZE n]`` for a value over ``store.metadata.max_value_size`` octets and ``NO [METADATA
TOOMANY]`` past ``store.metadata.max_entries`` entries per account; GETMETADATA's ``MAXSIZE`` leaves out
longer values and answers ``OK [METADATA LONGENTRIES n]`` with the longest left out. ``[METADATA
NOPRIVATE]`` never applies: private entries are always kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from janusmail.imap.codec import GetMetadataArgs, SetMetadataArgs, serializer
from janusmail.imap.codec.strings import astring, literal, nstring
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.mailbox_tree import ROLE_ATTRS, read_tree
from janusmail.store.metadata import MetadataTooLarge, MetadataTooMany, entries_below
from janusmail.store.model import Mailbox
from janusmail.store.writes import writes

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession

SPECIALUSE = "/private/specialuse"
ADMIN = "/shared/admin"
#: entries clients cannot set: computed from other state
READ_ONLY_MAILBOX = frozenset({SPECIALUSE})
READ_ONLY_SERVER = frozenset({ADMIN})


class _NoMailbox(Exception):
    """The named mailbox does not exist (raised on the store thread, answered NO [NONEXISTENT])."""


def _find(store: Any, account_id: str, name: str | None) -> tuple[Mailbox | None, str]:
    """The mailbox called ``name`` (None: the server) and its IMAP name."""
    if name is None:
        return None, ""
    tree = read_tree(store, account_id)
    box = tree.find(name)
    if box is None:
        raise _NoMailbox(name)
    return box, tree.name_of(box)


def _read(store: Any, account_id: str, name: str | None, entries: tuple[str, ...], depth: int | None
          ) -> tuple[Mailbox | None, str, list[tuple[str, bytes]]]:
    """On a store thread: the mailbox (or server) and its stored entries asked for, in one hop."""
    box, imap_name = _find(store, account_id, name)
    return box, imap_name, store.metadata.get(account_id, box.id if box else None, entries, depth)


@writes
def _write(store: Any, account_id: str, name: str | None, entries: tuple[tuple[str, bytes | None], ...]) -> None:
    """On the writer thread: find the mailbox and set its entries (the store checks it is still there)."""
    box, _ = _find(store, account_id, name)
    store.metadata.set(account_id, box.id if box else None, entries)


def _computed(s: ImapSession, box: Mailbox | None) -> list[tuple[str, bytes]]:
    if box is None:
        admin = s.config.metadata_admin
        if admin is None:
            admin = f"mailto:postmaster@{s.rt.config.hostname}"
        return [(ADMIN, admin.encode("utf-8"))] if admin else []
    attr = ROLE_ATTRS.get(box.role or "")
    return [(SPECIALUSE, attr.encode("ascii"))] if attr else []


def _value(value: bytes | None, utf8: bool) -> bytes:
    if value is not None and b"\x00" in value:
        return literal(value, binary=True)  # only literal8 may carry NUL (RFC 5464 §5: value = nstring / literal8)
    return nstring(value, utf8)


def _target(s: ImapSession, mailbox: str) -> str | None:
    """None for the server (``""``), else the Unicode name (``BadMailboxName`` for an undecodable one)."""
    return None if mailbox == "" else "/".join(s.parse_mailbox(mailbox))


@handler("GETMETADATA", states=("auth", "selected"), capabilities=("METADATA", "METADATA-SERVER"))
async def getmetadata(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, GetMetadataArgs)
    target = _target(s, args.mailbox)
    try:
        box, imap_name, stored = await s.store.call(_read, s.rt.store, s.account_id, target, args.entries,
                                                    args.depth)
    except _NoMailbox:
        return Result.no("No such mailbox", "NONEXISTENT")
    found = dict(stored)
    found.update(entries_below(_computed(s, box), args.entries, args.depth))
    longest = 0
    items: list[bytes] = []
    for name in sorted(found):
        value = found[name]
        if args.maxsize is not None and len(value) > args.maxsize:
            longest = max(longest, len(value))
            continue
        items.append(astring(name) + b" " + _value(value, s.utf8))
    for name in args.entries:  # asked for by name, and nothing there or below it: NIL (roots never hold one)
        if "/" in name[1:] and not any(f == name or f.startswith(name + "/") for f in found):
            items.append(astring(name) + b" NIL")
    if items:
        s.write(b"* METADATA " + serializer.mailbox_name(imap_name, s.utf8) + b" (" + b" ".join(items) + b")\r\n")
    if longest:
        return Result.ok("GETMETADATA completed", f"METADATA LONGENTRIES {longest}")
    return Result.ok("GETMETADATA completed")


@handler("SETMETADATA", states=("auth", "selected"), capabilities=("METADATA", "METADATA-SERVER"))
async def setmetadata(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, SetMetadataArgs)
    target = _target(s, args.mailbox)
    read_only = READ_ONLY_SERVER if target is None else READ_ONLY_MAILBOX
    fixed = [name for name, _ in args.entries if name in read_only]
    if fixed:
        return Result.no(f"{fixed[0]} is read-only", "NOPERM")
    try:
        await s.store.call(_write, s.rt.store, s.account_id, target, args.entries)
    except _NoMailbox:
        return Result.no("No such mailbox", "NONEXISTENT")
    except MetadataTooLarge as exc:
        return Result.no("Value too large", f"METADATA MAXSIZE {exc.limit}")
    except MetadataTooMany:
        return Result.no("Too many metadata entries", "METADATA TOOMANY")
    return Result.ok("SETMETADATA completed")
