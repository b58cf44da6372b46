"""Mailbox commands: CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS.

Names are hierarchical IMAP names over the store's tree (see :mod:`.tree`). Choices, where the RFCs leave room:

* CREATE makes real intermediate mailboxes (JMAP has no ``\\Noselect`` placeholders) and subscribes none of
  them (RFC 9051 §6.3.4 leaves that to the client; only an earlier SUBSCRIBE to the very name carries over);
  the account's default mailboxes are created subscribed, which is what clients expect of INBOX, Sent...;
  a name with ``%`` or ``*``, or one that is not valid modified UTF-7, is ``NO [CANNOT]``;
* a name that cannot be decoded is a name that does not exist: SELECT/STATUS/DELETE... answer
  ``NO [NONEXISTENT]`` (the session does that) and a LIST/LSUB pattern that cannot be decoded matches nothing;
* DELETE of a mailbox with children is ``NO [HASCHILDREN]``; its messages lose that membership and emails
  left in no mailbox are destroyed; a subscription survives as an orphan (RFC 9051 §6.3.9);
* RENAME keeps the mailbox id (and its children's); RENAME INBOX creates a new mailbox, moves INBOX's messages
  into it and leaves INBOX, with its id, empty;
* LIST always gives ``\\HasChildren``/``\\HasNoChildren`` and the special-use attribute of each role.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from janusmail.imap.codec import (
    Command,
    CreateArgs,
    ListArgs,
    LsubArgs,
    MailboxArgs,
    RenameArgs,
    StatusArgs,
    mutf7,
    responses,
    serializer,
)
from janusmail.imap.store_access import one_read
from janusmail.store.mailboxes import check_name
from janusmail.store.model import AlreadyExists, InvalidName, Mailbox, MailboxCounts, RoleTaken

from . import handler
from .base import Result
from .mailbox_tree import (
    ATTR_ROLES,
    ROLE_ATTRS,
    MailboxTree,
    ensure_parents,
    load_tree,
    read_tree,
)

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession

DELIM = "/"
COUNT_ITEMS = frozenset({"MESSAGES", "UNSEEN", "DELETED", "SIZE"})


def _check_components(path: list[str]) -> str | None:
    """Why these components cannot be a new mailbox name, or None."""
    for comp in path:
        if "%" in comp or "*" in comp:
            return "Mailbox names cannot contain % or *"
        try:
            check_name(comp)
        except InvalidName as exc:
            return f"Invalid mailbox name: {exc}"
    return None


def _new_path(s: ImapSession, wire: str) -> list[str] | Result:
    """Path components of a name to create (CREATE, RENAME's target), or the ``NO [CANNOT]`` answer for a
    name that cannot be decoded: the command is well-formed, the server just cannot make that name (RFC
    9051 §7.1: BAD is for protocol errors; RFC 5530 CANNOT is "can never succeed")."""
    from janusmail.imap.session import BadMailboxName

    try:
        return s.parse_mailbox(_strip_trailing_delim(wire))
    except BadMailboxName as exc:
        return Result.no(f"Invalid mailbox name: {exc}", "CANNOT")


def _strip_trailing_delim(name: str) -> str:
    """``CREATE foo/`` means "foo, which will have children" (RFC 9051 §6.3.4)."""
    return name[:-1] if name.endswith(DELIM) and len(name) > 1 else name


# -- CREATE DELETE RENAME -------------------------------------------------------------------------------------


@handler("CREATE", states=("auth", "selected"))
async def create(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, CreateArgs)
    path = _new_path(s, args.mailbox)
    if isinstance(path, Result):
        return path
    name = DELIM.join(path)
    if name == "INBOX":
        return Result.no("INBOX always exists", "ALREADYEXISTS")
    why = _check_components(path)
    if why:
        return Result.no(why, "CANNOT")
    role: str | None = None
    if args.special_use:
        if len(args.special_use) > 1:
            return Result.no("Only one special-use attribute per mailbox", "USEATTR")
        role = ATTR_ROLES.get(args.special_use[0].lower())
        if role is None:
            return Result.no(f"Unsupported special-use attribute {args.special_use[0]}", "USEATTR")
    tree = await load_tree(s)
    if tree.find(name) is not None:
        return Result.no("Mailbox already exists", "ALREADYEXISTS")
    if role is not None and any(b.role == role for b in tree.boxes):
        return Result.no(f"A mailbox with {args.special_use[0]} already exists", "USEATTR")
    # Nothing is subscribed by CREATE, but a name subscribed before it existed keeps its subscription:
    # the orphan row becomes the mailbox's own flag (JMAP isSubscribed).
    orphans = await s.store.call(s.store.subscriptions.names, s.account_id)
    keep = {DELIM.join(path[: i + 1]) for i in range(len(path))} & orphans
    parent_id = await ensure_parents(s, tree, path, keep)
    try:
        box = await s.store.call(s.store.mailboxes.create, s.account_id, path[-1], parent_id, role=role,
                                 subscribed=name in keep)
    except RoleTaken:
        return Result.no(f"A mailbox with {args.special_use[0]} already exists", "USEATTR")
    except AlreadyExists:
        return Result.no("Mailbox already exists", "ALREADYEXISTS")
    for orphan in sorted(keep):
        await s.store.call(s.store.subscriptions.unsubscribe, s.account_id, orphan)
    return Result.ok("CREATE completed", serializer.mailboxid_code(box.id))


@handler("DELETE", states=("auth", "selected"))
async def delete(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, MailboxArgs)
    path = s.parse_mailbox(args.mailbox)
    name = DELIM.join(path)
    tree = await load_tree(s)
    box = tree.find(name)
    if box is None:
        return Result.no("No such mailbox", "NONEXISTENT")
    if box.role == "inbox" and box.parent_id is None:
        return Result.no("INBOX cannot be deleted", "CANNOT")
    if tree.has_children(box):
        return Result.no("Mailbox has children; delete them first", "HASCHILDREN")
    if s.selected is not None and s.selected.mailbox_id == box.id:
        s.deselect()
        s.write(serializer.untagged_status("OK", "CLOSED", "Selected mailbox deleted"))
    await s.store.call(s.store.mailboxes.destroy, s.account_id, box.id, remove_emails=True)
    if box.subscribed:
        await s.store.call(s.store.subscriptions.subscribe, s.account_id, name)
    return Result.ok("DELETE completed")


@handler("RENAME", states=("auth", "selected"))
async def rename(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, RenameArgs)
    old_path = s.parse_mailbox(args.old)
    new_path = _new_path(s, args.new)
    if isinstance(new_path, Result):
        return new_path
    old, new = DELIM.join(old_path), DELIM.join(new_path)
    tree = await load_tree(s)
    box = tree.find(old)
    if box is None:
        return Result.no("No such mailbox", "NONEXISTENT")
    if tree.find(new) is not None or new == "INBOX":
        return Result.no("Target mailbox already exists", "ALREADYEXISTS")
    why = _check_components(new_path)
    if why:
        return Result.no(why, "CANNOT")
    if old == "INBOX":
        parent_id = await ensure_parents(s, tree, new_path)
        target = await s.store.call(s.store.mailboxes.create, s.account_id, new_path[-1], parent_id,
                                    subscribed=False)
        await s.store.call(s.store.memberships.copy, s.account_id, box.id, [(1, 2**62)], target.id, move=True)
        return Result.ok("RENAME completed")
    if new.startswith(old + DELIM):
        return Result.no("Cannot move a mailbox under itself", "CANNOT")
    parent_id = await ensure_parents(s, tree, new_path)
    await s.store.call(s.store.mailboxes.update, s.account_id, box.id, name=new_path[-1], parent_id=parent_id)
    return Result.ok("RENAME completed")


# -- subscriptions --------------------------------------------------------------------------------------------


@handler("SUBSCRIBE", states=("auth", "selected"))
async def subscribe(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, MailboxArgs)
    name = DELIM.join(s.parse_mailbox(args.mailbox))
    tree = await load_tree(s)
    box = tree.find(name)
    if box is not None:
        if not box.subscribed:
            await s.store.call(s.store.mailboxes.update, s.account_id, box.id, subscribed=True)
    else:
        await s.store.call(s.store.subscriptions.subscribe, s.account_id, name)
    return Result.ok("SUBSCRIBE completed")


@handler("UNSUBSCRIBE", states=("auth", "selected"))
async def unsubscribe(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, MailboxArgs)
    name = DELIM.join(s.parse_mailbox(args.mailbox))
    tree = await load_tree(s)
    box = tree.find(name)
    removed = await s.store.call(s.store.subscriptions.unsubscribe, s.account_id, name)
    if box is not None and box.subscribed:
        await s.store.call(s.store.mailboxes.update, s.account_id, box.id, subscribed=False)
        removed = True
    if not removed:
        return Result.no("Not subscribed to that name", "NONEXISTENT")
    return Result.ok("UNSUBSCRIBE completed")


# -- LIST LSUB -----------------------------------------------------------------------------------------------


def _regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "%":
            out.append("[^/]*")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def matcher(pattern: str) -> Callable[[str], bool]:
    """Match IMAP names against a LIST pattern (``*`` anything, ``%`` within one level); a leading INBOX
    component matches case-insensitively."""
    rx = _regex(pattern)
    head, sep, rest = pattern.partition(DELIM)
    inbox_rx = _regex("INBOX" + sep + rest) if head.upper() == "INBOX" and head != "INBOX" else None

    def match(name: str) -> bool:
        if rx.fullmatch(name):
            return True
        return inbox_rx is not None and inbox_rx.fullmatch(name) is not None

    return match


def _decode_pattern(s: ImapSession, text: str) -> str | None:
    """A LIST/LSUB reference or pattern as Unicode, or None when it is not valid modified UTF-7: every
    mailbox name is, so such a pattern matches nothing (OK with no responses), not a protocol error."""
    if s.utf8:
        return text
    try:
        return mutf7.decode(text)
    except ValueError:
        return None


def _ancestors(name: str) -> list[str]:
    parts = name.split(DELIM)
    return [DELIM.join(parts[:i]) for i in range(1, len(parts))]


#: (counters, RECENT counts, DELETED-STORAGE octets), by mailbox id
Counts = tuple[dict[str, MailboxCounts], dict[str, int], dict[str, int]]


def _read_counts(store: Any, account_id: str, boxes: list[Mailbox], items: tuple[str, ...], rev2: bool) -> Counts:
    """Synchronous (on a store thread): the STATUS numbers ``items`` need for mailboxes ``boxes`` (the counters
    of the mailbox rows, read with the tree: no query; RECENT, IMAP4rev1 only, and DELETED-STORAGE are
    counted)."""
    ids = [b.id for b in boxes]
    counts: dict[str, MailboxCounts] = {}
    recent: dict[str, int] = {}
    deleted_storage: dict[str, int] = {}
    if ids and COUNT_ITEMS & set(items):
        counts = {b.id: b.counts for b in boxes if b.counts is not None}
        if len(counts) < len(ids):
            counts = store.mailboxes.counts(account_id, ids)
    if ids and "RECENT" in items and not rev2:
        recent = store.messages.recent_counts(ids)
    if ids and "DELETED-STORAGE" in items:
        deleted_storage = store.mailboxes.deleted_storage(account_id, ids)
    return counts, recent, deleted_storage


def status_items(s: ImapSession, box: Mailbox, items: tuple[str, ...], counts: MailboxCounts | None,
                 recent: int, deleted_storage: int = 0) -> list[tuple[str, int | str]]:
    """The STATUS data items asked for. DELETED-STORAGE (RFC 9208) is in the STORAGE resource's unit, 1024
    octets, rounded up like GETQUOTA's usage (``quota.resources``)."""
    c = counts or MailboxCounts()
    out: list[tuple[str, int | str]] = []
    for item in items:
        if item == "MESSAGES":
            out.append((item, c.messages))
        elif item == "UIDNEXT":
            out.append((item, box.uidnext))
        elif item == "UIDVALIDITY":
            out.append((item, box.uidvalidity))
        elif item == "UNSEEN":
            out.append((item, c.unseen))
        elif item == "DELETED":
            out.append((item, c.deleted))
        elif item == "SIZE":
            out.append((item, c.size))
        elif item == "RECENT":
            out.append((item, 0 if s.rev2 else recent))
        elif item == "MAILBOXID":
            out.append((item, box.id))
        elif item == "HIGHESTMODSEQ":
            out.append((item, box.highest_modseq))
        elif item == "APPENDLIMIT":
            out.append((item, int(s.config.max_append_size)))
        elif item == "DELETED-STORAGE":
            out.append((item, -(-deleted_storage // 1024)))
    return out


@handler("LIST", states=("auth", "selected"))
async def list_(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, ListArgs)
    reference = _decode_pattern(s, args.reference)
    decoded = [_decode_pattern(s, p) for p in args.patterns]
    patterns = [p for p in decoded if p is not None]
    if reference is None or not patterns:
        return Result.ok("LIST completed")  # nothing can match an undecodable name
    if not args.extended and len(patterns) == 1 and patterns[0] == "":
        # the hierarchy delimiter and root of the reference (RFC 9051 §6.3.9)
        root = reference.split(DELIM, 1)[0] + DELIM if DELIM in reference else ""
        s.write(responses.list_response(["\\Noselect"], DELIM, root, s.utf8))
        return Result.ok("LIST completed")
    # RFC 9051 §6.3.9: reference and pattern concatenate, unless the pattern is already absolute
    full = [p if p.startswith(DELIM) else reference + p for p in patterns if p != "" or reference]
    matchers = [matcher(p) for p in full]

    def matches(name: str) -> bool:
        return any(m(name) for m in matchers)

    sel = args.selection
    want_subscribed = "SUBSCRIBED" in sel
    want_special = "SPECIAL-USE" in sel
    recursive = "RECURSIVEMATCH" in sel
    show_subscribed = want_subscribed or args.return_subscribed
    show_special = True  # role attributes are useful to every client; RETURN (SPECIAL-USE) changes nothing

    status = args.return_status

    def read(store: Any, account_id: str) -> tuple[MailboxTree, set[str], Counts]:
        """One thread hop: the tree, the subscriptions without a mailbox (when asked) and, for RETURN (STATUS),
        the numbers of the mailboxes the patterns match (a superset of those listed)."""
        tree = read_tree(store, account_id)
        orphans = store.subscriptions.names(account_id) if (want_subscribed or show_subscribed) else set()
        counts: Counts = ({}, {}, {})
        if status is not None:
            counts = _read_counts(store, account_id, [b for b in tree.boxes if matches(tree.name_of(b))], status,
                                  s.rev2)
        return tree, orphans, counts

    tree, orphans, (counts, recent, deleted_storage) = await s.store.read_inline(read, s.rt.store, s.account_id)
    subscribed_names = {tree.name_of(b) for b in tree.boxes if b.subscribed} | orphans

    def selected_by_criteria(name: str, box: Mailbox | None) -> bool:
        if want_subscribed and name not in subscribed_names:
            return False
        if want_special and (box is None or box.role not in ROLE_ATTRS):
            return False
        return True

    # Candidates: every mailbox, plus (for SUBSCRIBED) subscribed names without a mailbox and, for
    # RECURSIVEMATCH, their non-existent ancestors.
    entries: list[tuple[str, Mailbox | None]] = [(tree.name_of(b), b) for b in tree.ordered()]
    if want_subscribed:
        known = {n for n, _ in entries}
        extra: set[str] = set()
        for name in sorted(orphans):
            if name in known:
                continue
            if recursive:
                extra.update(a for a in _ancestors(name) if a not in known)
            extra.add(name)
        entries.extend((n, None) for n in sorted(extra))

    childinfo: set[str] = set()
    if recursive:
        for name, box in entries:
            if selected_by_criteria(name, box):
                childinfo.update(_ancestors(name))

    out: list[tuple[str, Mailbox | None, list[str], list[tuple[str, object]]]] = []
    for name, box in entries:
        if not matches(name):
            continue
        is_sel = selected_by_criteria(name, box)
        has_info = recursive and name in childinfo
        if not is_sel and not has_info:
            continue
        attrs: list[str] = []
        if box is None:
            attrs.append("\\NonExistent")
        else:
            attrs.append("\\HasChildren" if tree.has_children(box) else "\\HasNoChildren")
            if show_special and box.role in ROLE_ATTRS:
                attrs.append(ROLE_ATTRS[box.role])
        if show_subscribed and name in subscribed_names:
            attrs.append("\\Subscribed")
        extended: list[tuple[str, object]] = []
        if has_info:
            extended.append(("CHILDINFO", ["SUBSCRIBED" if want_subscribed else "SPECIAL-USE"]))
        out.append((name, box, attrs, extended))

    for name, box, attrs, extended in out:
        s.write(responses.list_response(attrs, DELIM, name, s.utf8, extended))
        if status is not None and box is not None:
            items = status_items(s, box, status, counts.get(box.id), recent.get(box.id, 0),
                                 deleted_storage.get(box.id, 0))
            s.write(responses.status_response(name, items, s.utf8))
    return Result.ok("LIST completed")


def _read_subscribed(store: Any, account_id: str) -> tuple[MailboxTree, set[str]]:
    """Synchronous (on a store thread): the tree and the subscribed names without a mailbox, in one hop."""
    return read_tree(store, account_id), store.subscriptions.names(account_id)


@handler("LSUB", states=("auth", "selected"))
async def lsub(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, LsubArgs)
    reference = _decode_pattern(s, args.reference)
    decoded = _decode_pattern(s, args.pattern)
    if reference is None or decoded is None:
        return Result.ok("LSUB completed")  # nothing can match an undecodable name
    pattern = reference + decoded
    if pattern == "":
        s.write(responses.list_response(["\\Noselect"], DELIM, "", s.utf8, command="LSUB"))
        return Result.ok("LSUB completed")
    match = matcher(pattern)
    tree, orphans = await s.store.read_inline(_read_subscribed, s.rt.store, s.account_id)
    subscribed: dict[str, Mailbox | None] = {tree.name_of(b): b for b in tree.ordered() if b.subscribed}
    for name in sorted(orphans):
        subscribed.setdefault(name, tree.find(name))
    placeholders: list[str] = []
    if pattern.endswith("%"):
        # RFC 3501 §6.3.9: a matching parent of a subscribed name is listed \Noselect if not itself subscribed
        for name in subscribed:
            for anc in _ancestors(name):
                if anc not in subscribed and anc not in placeholders and match(anc):
                    placeholders.append(anc)
    for name, box in subscribed.items():
        if match(name):
            attrs = [] if box is not None else ["\\Noselect"]
            if box is not None and box.role in ROLE_ATTRS:
                attrs.append(ROLE_ATTRS[box.role])
            s.write(responses.list_response(attrs, DELIM, name, s.utf8, command="LSUB"))
    for name in placeholders:
        s.write(responses.list_response(["\\Noselect"], DELIM, name, s.utf8, command="LSUB"))
    return Result.ok("LSUB completed")


# -- STATUS ---------------------------------------------------------------------------------------------------


@handler("STATUS", states=("auth", "selected"))
async def status(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, StatusArgs)
    if "HIGHESTMODSEQ" in args.items:
        s.enable_condstore()  # a CONDSTORE enabling command (RFC 7162 §3.1)
    name = DELIM.join(s.parse_mailbox(args.mailbox))
    found = await s.store.read_inline(_read_status, s.rt.store, s.account_id, name, args.items, s.rev2)
    if found is None:
        return Result.no("No such mailbox", "NONEXISTENT")
    shown, box, (counts, recent, deleted_storage) = found
    items = status_items(s, box, args.items, counts.get(box.id), recent.get(box.id, 0),
                         deleted_storage.get(box.id, 0))
    s.write(responses.status_response(shown, items, s.utf8))
    return Result.ok("STATUS completed")


@one_read
def _read_status(store: Any, account_id: str, name: str, items: tuple[str, ...], rev2: bool
                 ) -> tuple[str, Mailbox, Counts] | None:
    """Synchronous (on a store thread): the mailbox called ``name`` and its numbers, in one thread hop (with
    the command's credential check, that is the whole STATUS: issue 10 item 0)."""
    tree = read_tree(store, account_id)
    box = tree.find(name)
    if box is None:
        return None
    return tree.name_of(box), box, _read_counts(store, account_id, [box], items, rev2)
