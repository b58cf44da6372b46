"""The two threading algorithms of IMAP THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES, as pure
functions over plain per-message data (no SQL here: :mod:`janusmail.store.search.sort` reads the data in one
query and caches it per email).

Why not the store's own threads (``emails.thread_id``, :mod:`.threading`)? They are built for JMAP: a thread
id never changes, so threads are never merged, and a message joins a thread only when its base subject
matches. RFC 5256 REFERENCES links by References/In-Reply-To whatever the subject, re-parents when a later
message knows better (step 1.B), and then merges root threads by subject (step 5). The two groupings
differ on real mail (a reply whose subject was edited; a message that bridges two threads), so the
IMAP answer is computed here, exactly as the RFC describes, from the same stored headers.

Everything is iterative: a reply chain can be 100k messages deep, far beyond Python's recursion limit.
Ties are broken by the order of the input (ascending UID = sequence order), as RFC 5256 §2.2 says.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["MAX_REFS", "ThreadItem", "ThreadNode", "normalize_msgid", "ordered_subject", "references"]

#: References kept per message (the last ones: the nearest ancestors). A References field grows with every
#: reply; without a cap a long chain makes step 1 quadratic. The earlier links come from the ancestors' own
#: References.
MAX_REFS = 128


@dataclass(slots=True)
class ThreadItem:  # not frozen: 100k of them are built per THREAD, and frozen init is slow
    """One message as the algorithms see it. ``date`` is the sent date (the internal date when the Date
    header is missing or broken, RFC 5256 §2.2); ``subject`` the base subject in its comparison form
    (i;unicode-casemap); ``reply``: its subject had a Re:/Fwd: marker (step 5); ``msgid`` and ``refs`` are
    normalized Message-IDs (``refs``: References, or the first In-Reply-To id when there are none)."""

    uid: int
    date: int
    subject: str = ""
    reply: bool = False
    msgid: str | None = None
    refs: tuple[str, ...] = ()


class ThreadNode:
    """A node of a thread tree: ``uid`` 0 is a dummy (a parent that is not in the result set, kept only at
    the top level to hold two or more threads together); ``children`` in display order."""

    __slots__ = ("children", "parent", "uid")

    def __init__(self, uid: int = 0) -> None:
        self.uid = uid
        self.children: list[ThreadNode] = []
        self.parent: ThreadNode | None = None

    def __repr__(self) -> str:  # shallow: trees can be deep
        return f"ThreadNode({self.uid}, {len(self.children)} children)"


def normalize_msgid(msgid: str) -> str:
    """RFC 5256 §3 (REFERENCES): ``<"01KF8"@x.y>`` and ``<01KF8@x.y>`` are the same Message ID. The store
    keeps ids without angle brackets; quoting is removed here."""
    if '"' not in msgid and "\\" not in msgid:
        return msgid
    out = []
    i = 0
    while i < len(msgid):
        c = msgid[i]
        if c == "\\" and i + 1 < len(msgid):
            out.append(msgid[i + 1])
            i += 2
            continue
        if c != '"':
            out.append(c)
        i += 1
    return "".join(out)


# -- ORDEREDSUBJECT ----------------------------------------------------------------------------------------------


def ordered_subject(items: Sequence[ThreadItem]) -> list[ThreadNode]:
    """RFC 5256 ORDEREDSUBJECT: sort by (base subject, sent date), one thread per base subject whose first
    message is the parent of all the others; threads in order of their first message's sent date."""
    order = sorted(range(len(items)), key=lambda i: (items[i].subject, items[i].date, i))
    roots: list[tuple[int, int, ThreadNode]] = []
    current: ThreadNode | None = None
    subject: str | None = None
    for i in order:
        it = items[i]
        if current is not None and it.subject == subject:
            child = ThreadNode(it.uid)
            child.parent = current
            current.children.append(child)
            continue
        current = ThreadNode(it.uid)
        subject = it.subject
        roots.append((it.date, i, current))
    roots.sort(key=lambda r: (r[0], r[1]))
    return [node for _, _, node in roots]


# -- REFERENCES --------------------------------------------------------------------------------------------------


def _unlink(node: ThreadNode) -> None:
    parent = node.parent
    if parent is not None:
        parent.children.remove(node)
        node.parent = None


def _would_loop(parent: ThreadNode, child: ThreadNode) -> bool:
    """Making ``parent`` the parent of ``child`` closes a loop when ``parent`` is ``child`` or below it."""
    if parent is child:
        return True
    if not child.children:
        return False  # nothing is below child
    x: ThreadNode | None = parent
    while x is not None:
        if x is child:
            return True
        x = x.parent
    return False


def _link(parent: ThreadNode, child: ThreadNode) -> None:
    child.parent = parent
    parent.children.append(child)


def _post_order(roots: Iterable[ThreadNode]) -> list[ThreadNode]:
    """Every node below the given ones (included), children before their parents."""
    out: list[ThreadNode] = []
    stack = list(roots)
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    out.reverse()
    return out


def references(items: Sequence[ThreadItem]) -> list[ThreadNode]:  # noqa: C901, PLR0912 - the RFC's steps
    """RFC 5256 REFERENCES (steps 1 to 6) over ``items`` given in sequence order. A node's ``uid`` is 0
    while it is a dummy (a Message-ID only referenced so far)."""
    position = {it.uid: i for i, it in enumerate(items)}

    def key(node: ThreadNode) -> tuple[int, int]:
        """(sent date, sequence order); a dummy sorts by its first child."""
        while node.uid == 0 and node.children:
            node = node.children[0]
        i = position.get(node.uid, -1)
        return (items[i].date, i) if i >= 0 else (0, -1)

    table: dict[str, ThreadNode] = {}
    own: list[ThreadNode] = []

    def container(msgid: str) -> ThreadNode:
        node = table.get(msgid)
        if node is None:
            node = table[msgid] = ThreadNode()
        return node

    # (1) link every message to its references
    for it in items:
        node = container(it.msgid) if it.msgid else None
        if node is None or node.uid:
            node = ThreadNode()  # no Message-ID, or the duplicate of an earlier one's: an id of its own
        node.uid = it.uid
        own.append(node)
        # (A) consecutive references are parent and child, unless the child already has a parent or the
        # link would close a loop
        prev: ThreadNode | None = None
        for ref in it.refs[-MAX_REFS:]:
            ref_node = container(ref)
            if prev is not None and ref_node.parent is None and not _would_loop(prev, ref_node):
                _link(prev, ref_node)
            prev = ref_node
        # (B) the last reference is the message's parent, replacing one guessed from someone else's
        # truncated References; no references, no parent
        _unlink(node)
        if prev is not None and not _would_loop(prev, node):
            _link(prev, node)

    # (2) the roots: every node without a parent
    seen: set[int] = set()
    roots: list[ThreadNode] = []
    for node in [*table.values(), *own]:
        if node.parent is None and id(node) not in seen:
            seen.add(id(node))
            roots.append(node)

    # (3) prune dummies: childless ones go; others hand their children to their parent, except at the top
    # level where a dummy stays to hold two or more children together
    for node in _post_order(roots):
        if not node.children or all(c.uid for c in node.children):
            continue
        kept: list[ThreadNode] = []
        for child in node.children:
            if child.uid:
                kept.append(child)
                continue
            for grandchild in child.children:
                grandchild.parent = node
            kept.extend(child.children)
        node.children = kept
    top: list[ThreadNode] = []
    for node in roots:
        if node.uid or len(node.children) > 1:
            top.append(node)
        elif node.children:
            node.children[0].parent = None
            top.append(node.children[0])

    # (4) sort the top level by sent date (a dummy by its earliest child)
    for node in top:
        if not node.uid:
            node.children.sort(key=key)
    top.sort(key=key)

    # (5) merge top-level threads with the same base subject
    def subject(n: ThreadNode) -> str:
        return items[position[(n.uid or n.children[0].uid)]].subject

    def reply(n: ThreadNode) -> bool:
        return items[position[n.uid]].reply

    chosen: dict[str, ThreadNode] = {}
    for node in top:
        s = subject(node)
        if not s:
            continue
        old = chosen.get(s)
        if old is None or (old.uid and (not node.uid or (reply(old) and not reply(node)))):
            chosen[s] = node
    merged: list[ThreadNode] = []
    slot: dict[int, int] = {}  # id(node) -> index in merged
    for node in top:
        s = subject(node)
        target = chosen.get(s) if s else None
        if target is None or target is node:
            slot[id(node)] = len(merged)
            merged.append(node)
        elif not target.uid and not node.uid:
            for child in node.children:
                child.parent = target
            target.children.extend(node.children)
            node.children = []
        elif not target.uid or (reply(node) and not reply(target)):
            _link(target, node)
        else:  # neither can be below the other: both go under a new dummy, in the earlier one's place
            dummy = ThreadNode()
            where = slot.get(id(target))  # the chosen thread always comes first (step 5.B picks the earliest)
            if where is None:
                where = len(merged)
                merged.append(dummy)
            merged[where] = dummy
            slot[id(dummy)] = where
            _link(dummy, target)
            _link(dummy, node)
            chosen[s] = dummy
    top = merged

    # (6) sort every set of siblings by sent date, deepest first (a dummy sorts by its earliest child)
    for node in _post_order(top):
        if len(node.children) > 1:
            node.children.sort(key=key)
    top.sort(key=key)
    for node in top:
        node.parent = None
    return top
