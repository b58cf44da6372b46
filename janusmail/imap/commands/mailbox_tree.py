"""The account's mailbox tree as IMAP sees it: hierarchical names from single-component store names.

The store keeps JMAP's model (one name component + parent id); IMAP names are the components joined with
``/``, with the top-level mailbox of role ``inbox`` always spelled ``INBOX``. Loaded once per command with one
query (``store.mailboxes.list``), which also gives LIST its attributes; STATUS, SELECT and LIST read it in the
same thread hop as the rest of their reads (:func:`read_tree`). Commands that only resolve a name (SELECT,
EXAMINE, APPEND, COPY, MOVE, REPLACE) use the tree of counter-less shapes the store caches per account
(:func:`find_shape`: no statement while no mailbox was created, renamed or deleted). Subscriptions to names without a mailbox
(allowed by IMAP, invisible to JMAP) are the store's (``store.subscriptions``, janusmail/store/subscriptions.py).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from janusmail.imap.store_access import one_read
from janusmail.store import mailboxes as store_mailboxes
from janusmail.store.mailbox_structure import MailboxShape
from janusmail.store.model import AlreadyExists, Mailbox

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession

__all__ = [
    "ATTR_ROLES",
    "ROLE_ATTRS",
    "MailboxTree",
    "ensure_parents",
    "find_mailbox",
    "find_shape",
    "load_tree",
    "read_tree",
]

#: JMAP role -> RFC 6154 SPECIAL-USE attribute (``inbox`` has none: IMAP spells it INBOX).
ROLE_ATTRS: dict[str, str] = {
    "all": "\\All",
    "archive": "\\Archive",
    "drafts": "\\Drafts",
    "flagged": "\\Flagged",
    "junk": "\\Junk",
    "sent": "\\Sent",
    "trash": "\\Trash",
    "important": "\\Important",
}
ATTR_ROLES: dict[str, str] = {attr.lower(): role for role, attr in ROLE_ATTRS.items()}


#: A whole mailbox row (:class:`Mailbox`, with counters) or its cached shape (:class:`MailboxShape`).
B = TypeVar("B", Mailbox, MailboxShape)


class MailboxTree(Generic[B]):
    """Mailboxes by IMAP name, children, and the tree order LIST uses (INBOX first, then sort order, name)."""

    def __init__(self, boxes: Sequence[B]) -> None:
        self.boxes = boxes
        self.by_id: dict[str, B] = {b.id: b for b in boxes}
        paths = store_mailboxes.paths(boxes)
        self.names: dict[str, str] = {}
        self.by_name: dict[str, B] = {}
        self.children: dict[str | None, list[B]] = {}
        for b in boxes:
            path = list(paths[b.id])
            if self._under_inbox(b):  # INBOX and its children, whatever JMAP named it
                path[0] = "INBOX"
            name = "/".join(path)
            self.names[b.id] = name
            self.by_name[name] = b
            self.children.setdefault(b.parent_id if b.parent_id in self.by_id else None, []).append(b)
        for kids in self.children.values():
            kids.sort(key=lambda b: (0 if b.role == "inbox" and b.parent_id is None else 1, b.sort_order, b.name))

    def _under_inbox(self, b: B) -> bool:
        cur: B | None = b
        for _ in range(256):
            if cur is None or cur.parent_id is None:
                break
            cur = self.by_id.get(cur.parent_id)
        return cur is not None and cur.parent_id is None and cur.role == "inbox"

    def find(self, name: str) -> B | None:
        """By Unicode IMAP name (INBOX already canonical)."""
        return self.by_name.get(unicodedata.normalize("NFC", name))

    def name_of(self, box: B) -> str:
        return self.names[box.id]

    def has_children(self, box: B) -> bool:
        return bool(self.children.get(box.id))

    def descendants(self, box: B) -> list[B]:
        out: list[B] = []
        stack = list(self.children.get(box.id, ()))
        while stack:
            b = stack.pop()
            out.append(b)
            stack.extend(self.children.get(b.id, ()))
        return out

    def ordered(self) -> list[B]:
        """Depth-first, parents before children."""
        out: list[B] = []

        def walk(parent: str | None, depth: int) -> None:
            if depth > 256:
                return
            for b in self.children.get(parent, ()):
                out.append(b)
                walk(b.id, depth + 1)

        walk(None, 0)
        return out


@one_read
def read_tree(store: Any, account_id: str) -> MailboxTree[Mailbox]:
    """Synchronous (on a store thread): the account's tree. Handlers that need the tree and then a read of
    one of its mailboxes call a function of their own that does both, so the command costs one thread hop."""
    return MailboxTree(store.mailboxes.list(account_id))


async def load_tree(s: ImapSession) -> MailboxTree[Mailbox]:
    return await s.store.read_inline(read_tree, s.rt.store, s.account_id)


@one_read
def find_shape(store: Any, account_id: str, name: str) -> tuple[MailboxTree[MailboxShape], MailboxShape | None]:
    """Synchronous (on a store thread): the tree of the account's cached mailbox shapes and the mailbox called
    ``name`` (Unicode IMAP name) in it. A name the cached tree lacks is looked up again in a fresh read: a
    mailbox another process just created is found, whatever the cache held."""
    tree = MailboxTree(store.mailboxes.shapes(account_id))
    box = tree.find(name)
    if box is None:
        tree = MailboxTree(store.mailboxes.shapes(account_id, fresh=True))
        box = tree.find(name)
    return tree, box


async def find_mailbox(s: ImapSession, wire_name: str) -> MailboxShape | None:
    """The mailbox a client named (wire form: modified UTF-7 or UTF-8 as the session speaks), or None: its
    shape (id, name, UIDVALIDITY; no counters). Raises ``BadMailboxName`` for names that cannot be decoded."""
    path = s.parse_mailbox(wire_name)
    _tree, box = await s.store.read_inline(find_shape, s.rt.store, s.account_id, "/".join(path))
    return box


async def ensure_parents(s: ImapSession, tree: MailboxTree, path: list[str],
                         subscribed: Container[str] = ()) -> str | None:
    """Create the missing ancestors of ``path`` (all but its last component) as real mailboxes; returns the
    parent id for the last component (None at top level). IMAP ``CREATE a/b/c`` makes ``a`` and ``a/b``.

    They are created unsubscribed (RFC 9051 §6.3.4 leaves subscribing to the client), except a name in
    ``subscribed`` (an orphan subscription waiting for its mailbox), which the caller then drops."""
    parent: Mailbox | None = None
    for i in range(len(path) - 1):
        name = "/".join(path[: i + 1])
        found = tree.find(name)
        if found is None:
            try:
                found = await s.store.call(
                    s.store.mailboxes.create, s.account_id, path[i], parent.id if parent else None,
                    subscribed=name in subscribed,
                )
            except AlreadyExists:  # a concurrent CREATE made it: use theirs
                tree = await load_tree(s)
                found = tree.find(name)
                if found is None:
                    raise
            tree.by_name[name] = found
            tree.by_id[found.id] = found
            tree.names[found.id] = name
        parent = found
    return parent.id if parent else None
