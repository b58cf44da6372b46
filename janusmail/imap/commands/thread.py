"""THREAD and UID THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES.

The search keys are matched as SEARCH matches them (:mod:`.search`); the store builds the thread trees
(``store.search.mailbox_thread``, :mod:`janusmail.store.thread_tree`) over UIDs; this module maps them to
the numbers the client asked for and writes ``* THREAD`` in the RFC's nested-list form, without recursion
(a reply chain can be far deeper than Python's stack).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from janusmail.imap.codec import ThreadArgs
from janusmail.imap.commands import Result, handler
from janusmail.imap.commands.search import charset_refusal, search_condition, snapshot_numbers
from janusmail.imap.search_query import has_modseq

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession
    from janusmail.store.thread_tree import ThreadNode

ALGORITHMS = {"ORDEREDSUBJECT": "orderedsubject", "REFERENCES": "references"}


def thread_data(nodes: Sequence[ThreadNode], number: Callable[[int], int | None]) -> bytes:
    """The ``thread-list``s of RFC 5256's grammar for the given top-level nodes: ``(a b c)`` for a chain,
    ``(a (b)(c))`` where a message has several children, ``((b)(c))`` for a dummy holding threads.

    ``number`` maps a UID to the sequence number or UID to show; a UID it does not know (None) is treated
    like a dummy, so a message the session cannot name never appears."""
    out: list[bytes] = []
    for top in nodes:
        n = number(top.uid) if top.uid else None
        if n is not None and not top.children:  # the common case, a thread of one message
            out.append(b"(%d)" % n)
        else:
            _thread_list(top, number, out)
    return b"".join(out)


def _thread_list(top: ThreadNode, number: Callable[[int], int | None], out: list[bytes]) -> None:
    """One thread, without recursion: the work stack holds nodes to open and bytes to emit."""
    stack: list[ThreadNode | bytes] = [top]
    while stack:
        item = stack.pop()
        if isinstance(item, bytes):
            out.append(item)
            continue
        node = item
        n = number(node.uid) if node.uid else None
        while n is None and len(node.children) == 1:  # a dummy with one child is just that child
            node = node.children[0]
            n = number(node.uid) if node.uid else None
        if n is None and not node.children:
            continue
        out.append(b"(")
        stack.append(b")")
        if n is None:
            stack.extend(reversed(node.children))
            continue
        out.append(b"%d" % n)
        while len(node.children) == 1:
            child = node.children[0]
            c = number(child.uid) if child.uid else None
            if c is None:
                break
            node = child
            out.append(b" %d" % c)
        if node.children:
            out.append(b" ")
            stack.extend(reversed(node.children))


@handler("THREAD", "UID THREAD", states=("selected",), capabilities=("THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"))
async def thread(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, ThreadArgs)
    sel = s.selected
    assert sel is not None
    algorithm = ALGORITHMS.get(args.algorithm.upper())
    if algorithm is None:
        return Result.bad(f"Unsupported threading algorithm {args.algorithm}")
    refusal = charset_refusal(args.charset)
    if refusal is not None:
        return refusal
    if has_modseq(args.key):
        s.enable_condstore()
    cond = search_condition(s, sel, args.key)
    nodes = await s.store.call(s.store.search.mailbox_thread, s.account_id or "", sel.mailbox_id, cond, algorithm,
                               below_uid=sel.uidnext, size_hint=len(sel.uids))
    seqs = snapshot_numbers(sel.uids)
    if cmd.uid:
        def number(uid: int) -> int | None:
            return uid if uid in seqs else None
    else:
        number = seqs.get
    data = thread_data(nodes, number)
    s.write(b"* THREAD" + (b" " + data if data else b"") + b"\r\n")
    return Result.ok("THREAD completed")
