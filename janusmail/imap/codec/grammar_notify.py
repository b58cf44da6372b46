"""NOTIFY (RFC 5465 §8): ``NOTIFY NONE`` and ``NOTIFY SET [STATUS] (filter events) ...``.

Only the syntax lives here. Which events the server supports, and the rules that combine them (MessageNew and
MessageExpunge together, FlagChange only with both, only message events for SELECTED), are checked by the
command (janusmail/imap/commands/notify.py) so an unknown event is a ``NO [BADEVENT ...]``, not a BAD.
"""

from __future__ import annotations

from .args import NotifyArgs, NotifyEvent, NotifyGroup
from .cursor import Cursor
from .grammar_fetch import fetch_att

__all__ = ["FILTERS", "parse_notify"]

#: filter-mailboxes keywords; SUBTREE and MAILBOXES take one-or-more-mailbox.
FILTERS = frozenset({"SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED", "SUBTREE", "MAILBOXES"})


def _mailboxes(cur: Cursor) -> tuple[str, ...]:
    """one-or-more-mailbox = mailbox / "(" mailbox *(SP mailbox) ")"."""
    if cur.peek() == 0x28:  # "("
        return tuple(cur.paren_list(cur.mailbox))
    return (cur.mailbox(),)


def _event(cur: Cursor) -> NotifyEvent:
    name = cur.keyword("event")
    if name == "MESSAGENEW" and cur.pos + 1 < cur.end and cur.buf[cur.pos : cur.pos + 2] == b" (":
        cur.sp()
        return NotifyEvent(name, tuple(cur.paren_list(lambda: fetch_att(cur))))
    return NotifyEvent(name)


def _group(cur: Cursor) -> NotifyGroup:
    cur.open()
    kind = cur.keyword("mailbox filter")
    if kind not in FILTERS:
        raise cur.fail(f"Unknown mailbox filter {kind}")
    boxes: tuple[str, ...] = ()
    if kind in ("SUBTREE", "MAILBOXES"):
        cur.sp()
        boxes = _mailboxes(cur)
    cur.sp()
    events: tuple[NotifyEvent, ...] = ()
    if cur.peek() == 0x28:
        events = tuple(cur.paren_list(lambda: _event(cur)))
    elif cur.keyword("events") != "NONE":
        raise cur.fail("Expected an event list or NONE")
    cur.close()
    return NotifyGroup(kind, boxes, events)


def parse_notify(cur: Cursor, uid: bool) -> NotifyArgs:
    cur.sp()
    word = cur.keyword("NONE or SET")
    if word == "NONE":
        cur.finish()
        return NotifyArgs(none=True)
    if word != "SET":
        raise cur.fail("Expected NONE or SET")
    cur.sp()
    status = cur.try_keyword("STATUS")
    if status:
        cur.sp()
    groups = [_group(cur)]
    while not cur.at_end():
        cur.sp()
        groups.append(_group(cur))
    cur.finish()
    return NotifyArgs(none=False, status=status, groups=tuple(groups))
