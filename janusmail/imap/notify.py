"""NOTIFY (RFC 5465): which mailboxes a session watches, and what it is told when they change.

The session feeds this module the notifier's change events (which mailboxes a committed write touched, and
whether the mailbox tree changed); when it may speak (at the end of each command and while idling) it reads
the current tree and the counters of the touched, watched mailboxes in one store hop and writes what differs
from what it last told the client:

* message events in a mailbox other than the selected one -> ``* STATUS name (MESSAGES UIDNEXT UIDVALIDITY
  UNSEEN [HIGHESTMODSEQ])`` (RFC 5465 §5.2-5.4), sent only when a number the watched events cover changed;
* MailboxName -> ``* LIST () "/" name`` for a new mailbox, ``* LIST (\\NonExistent) "/" old`` for a deleted one,
  ``* LIST () "/" new ("OLDNAME" ("old"))`` for a rename (§5.4, RFC 5258 OLDNAME);
* SubscriptionChange -> ``* LIST (\\Subscribed) "/" name`` or ``* LIST () "/" name`` (§5.5).

The selected mailbox keeps the base protocol's updates (EXISTS, EXPUNGE, FETCH FLAGS) from
janusmail/imap/selected.py; a SELECTED group adds the MessageNew fetch attributes for new messages, and makes
expunges immediate (§5.2-5.3: a client that asks for that uses UIDs). Notifications are sent while idling and
before every tagged response, not between commands: the session never writes while no command or IDLE runs.
Everything here is plain code over plain data (tested without sockets); the session does the store hop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from janusmail.imap.codec import Command, mutf7
from janusmail.imap.codec.args import FetchArgs, FetchBody, FetchItem, NotifyArgs, NotifyGroup
from janusmail.imap.codec.responses import list_response, status_response
from janusmail.imap.codec.sequence import SequenceSet
from janusmail.imap.codec.serializer import Raw
from janusmail.imap.codec.strings import quoted_or_literal
from janusmail.imap.commands.mailbox_tree import read_tree
from janusmail.store.model import Mailbox, MailboxCounts

__all__ = ["NotifyError", "NotifySpec", "NotifyState", "Watch", "compile_spec"]

DELIM = "/"
MESSAGE_EVENTS = ("MESSAGENEW", "MESSAGEEXPUNGE", "FLAGCHANGE")
MAILBOX_EVENTS = ("MAILBOXNAME", "SUBSCRIPTIONCHANGE")
#: Wire spelling of the events this server supports (listed in ``NO [BADEVENT (...)]``).
SUPPORTED = {
    "MESSAGENEW": "MessageNew",
    "MESSAGEEXPUNGE": "MessageExpunge",
    "FLAGCHANGE": "FlagChange",
    "MAILBOXNAME": "MailboxName",
    "SUBSCRIPTIONCHANGE": "SubscriptionChange",
}
#: Mailboxes whose STATUS one round may report; past it the client is told NOTIFICATIONOVERFLOW (§3) and
#: NOTIFY is switched off, as the RFC prescribes, rather than flooding the connection.
MAX_PENDING = 10_000


class NotifyError(Exception):
    """A NOTIFY the server refuses: ``status`` BAD (rules of the RFC broken) or NO (an unsupported event)."""

    def __init__(self, status: str, code: str | None, text: str) -> None:
        super().__init__(text)
        self.status, self.code, self.text = status, code, text


@dataclass(frozen=True, slots=True)
class Watch:
    """One non-selected filter: ``kind`` INBOXES/PERSONAL/SUBSCRIBED/SUBTREE/MAILBOXES, decoded names."""

    kind: str
    names: tuple[str, ...]
    events: frozenset[str]

    def matches(self, name: str, box: Mailbox | None, subscribed: bool) -> bool:
        if self.kind == "PERSONAL":
            return True
        if self.kind == "INBOXES":  # the mailboxes mail is delivered to: LMTP delivers to INBOX only
            return name == "INBOX"
        if self.kind == "SUBSCRIBED":
            return subscribed
        if self.kind == "MAILBOXES":
            return name in self.names
        return any(name == n or name.startswith(n + DELIM) for n in self.names)  # SUBTREE


@dataclass(frozen=True, slots=True)
class NotifySpec:
    """A NOTIFY SET, checked. ``selected`` is None when no SELECTED/SELECTED-DELAYED group was given (the
    selected mailbox then has the base protocol's updates only)."""

    watches: tuple[Watch, ...]
    selected: frozenset[str] | None = None
    selected_delayed: bool = False
    new_fetch: tuple[FetchItem, ...] = ()

    def events_for(self, name: str, box: Mailbox | None, subscribed: bool) -> frozenset[str]:
        """The events watched for a (non-selected) mailbox: the first group that names it decides (a later,
        broader group such as PERSONAL does not add to a narrower one given first)."""
        for w in self.watches:
            if w.matches(name, box, subscribed):
                return w.events
        return frozenset()

    @property
    def immediate_expunge(self) -> bool:
        return self.selected is not None and not self.selected_delayed and "MESSAGEEXPUNGE" in self.selected

    @property
    def watches_mailbox_events(self) -> bool:
        return any(w.events & set(MAILBOX_EVENTS) for w in self.watches)


def compile_spec(args: NotifyArgs, decode: Any) -> NotifySpec:
    """Check a NOTIFY SET against RFC 5465 §3-§6 and turn it into a spec; ``decode`` turns a wire mailbox
    name into the session's Unicode IMAP name (it may raise for an undecodable one: such a name can name no
    mailbox, so it is dropped from its filter). Raises :class:`NotifyError`."""
    unsupported: list[str] = []
    watches: list[Watch] = []
    selected: frozenset[str] | None = None
    delayed = False
    new_fetch: tuple[FetchItem, ...] = ()
    for group in args.groups:
        names = {e.name for e in group.events}
        _check_group(group, names)
        unsupported.extend(e.name for e in group.events if e.name not in SUPPORTED)
        if group.filter in ("SELECTED", "SELECTED-DELAYED"):
            if selected is not None:
                raise NotifyError("BAD", "CLIENTBUG", "Only one SELECTED or SELECTED-DELAYED group is allowed")
            selected = frozenset(names)
            delayed = group.filter == "SELECTED-DELAYED"
            new_fetch = next((e.fetch for e in group.events if e.name == "MESSAGENEW"), ())
            continue
        if any(e.fetch for e in group.events):
            raise NotifyError("BAD", "CLIENTBUG", "MessageNew fetch attributes are only for the selected mailbox")
        decoded: list[str] = []
        for wire in group.mailboxes:
            try:
                decoded.append(decode(wire))
            except ValueError:
                continue
        watches.append(Watch(group.filter, tuple(decoded), frozenset(names)))
    if unsupported:
        supported = " ".join(SUPPORTED.values())
        raise NotifyError("NO", f"BADEVENT ({supported})", "Unsupported event: " + " ".join(sorted(set(unsupported))))
    return NotifySpec(tuple(watches), selected, delayed, new_fetch)


#: Events of RFC 5465 §5 this server knows but does not offer (answered NO [BADEVENT], not BAD).
KNOWN_MESSAGE_EVENTS = frozenset({*MESSAGE_EVENTS, "ANNOTATIONCHANGE"})
KNOWN_OTHER_EVENTS = frozenset({*MAILBOX_EVENTS, "MAILBOXMETADATACHANGE", "SERVERMETADATACHANGE"})


def _check_group(group: NotifyGroup, names: set[str]) -> None:
    if group.filter in ("SELECTED", "SELECTED-DELAYED") and names & KNOWN_OTHER_EVENTS:
        raise NotifyError("BAD", "CLIENTBUG", "Only message events may be watched in the selected mailbox")
    if ("MESSAGENEW" in names) != ("MESSAGEEXPUNGE" in names):
        raise NotifyError("BAD", "CLIENTBUG", "MessageNew and MessageExpunge must be specified together")
    if names & {"FLAGCHANGE", "ANNOTATIONCHANGE"} and "MESSAGENEW" not in names:
        raise NotifyError("BAD", "CLIENTBUG", "FlagChange requires MessageNew and MessageExpunge")


#: What a STATUS notification carried last time, per mailbox: (MESSAGES, UIDNEXT, UIDVALIDITY, UNSEEN,
#: HIGHESTMODSEQ).
Numbers = tuple[int, int, int, int, int]


@dataclass(slots=True)
class NotifyState:
    """The session's NOTIFY: the spec, what changed since the client was last told, what it was told."""

    spec: NotifySpec
    pending: set[str] = field(default_factory=set)
    tree_changed: bool = False
    told: dict[str, Numbers] = field(default_factory=dict)
    #: id -> (name, subscribed) as the client last learned it (LIST diffs for MailboxName/SubscriptionChange).
    tree: dict[str, tuple[str, bool]] | None = None
    overflowed: bool = False

    def absorb(self, events: Iterable[Any]) -> None:
        """Change events from the notifier (janusmail.store.notifier.ChangeEvent): remember what to look at."""
        for ev in events:
            if "Mailbox" in ev.kinds:
                self.tree_changed = True
            self.pending.update(ev.mailbox_ids)
        if len(self.pending) > MAX_PENDING:
            self.overflowed = True

    @property
    def due(self) -> bool:
        return bool(self.pending) or self.tree_changed or self.overflowed

    def take(self) -> tuple[set[str], bool]:
        pending, changed = self.pending, self.tree_changed
        self.pending, self.tree_changed = set(), False
        return pending, changed


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one store hop read for a notification round: every mailbox (name, subscribed), the counters of
    the watched mailboxes among those that changed."""

    boxes: dict[str, tuple[str, Mailbox]]  # id -> (IMAP name, mailbox)
    has_children: frozenset[str]
    counts: dict[str, MailboxCounts]


def numbers(box: Mailbox, c: MailboxCounts | None) -> Numbers:
    c = c or MailboxCounts()
    return (c.messages, box.uidnext, box.uidvalidity, c.unseen, box.highest_modseq)


def status_lines(state: NotifyState, snap: Snapshot, ids: Iterable[str], selected_id: str | None, *,
                 condstore: bool, utf8: bool, initial: bool = False) -> list[bytes]:
    """``* STATUS`` for each watched, non-selected mailbox among ``ids`` whose numbers changed in a way its
    events cover (``initial``: the NOTIFY SET STATUS baseline, sent whatever it was before)."""
    out: list[bytes] = []
    spec = state.spec
    for mid in sorted(ids, key=lambda i: snap.boxes[i][0] if i in snap.boxes else ""):
        if mid == selected_id or mid not in snap.boxes:
            continue
        name, box = snap.boxes[mid]
        events = spec.events_for(name, box, box.subscribed)
        if "MESSAGENEW" not in events:  # MessageExpunge and FlagChange come with it (compile_spec)
            continue
        now = numbers(box, snap.counts.get(mid))
        before = state.told.get(mid)
        state.told[mid] = now
        if not initial and before is not None:
            moved = now[:3] != before[:3]
            flags = now[3:] != before[3:] and "FLAGCHANGE" in events
            if not moved and not flags:
                continue
        items: list[tuple[str, int | str]] = [("MESSAGES", now[0]), ("UIDNEXT", now[1]), ("UIDVALIDITY", now[2]),
                                              ("UNSEEN", now[3])]
        if condstore:
            items.append(("HIGHESTMODSEQ", now[4]))
        out.append(status_response(name, items, utf8))
    return out


def tree_of(snap: Snapshot) -> dict[str, tuple[str, bool]]:
    return {mid: (name, box.subscribed) for mid, (name, box) in snap.boxes.items()}


def list_lines(state: NotifyState, snap: Snapshot, *, utf8: bool) -> list[bytes]:
    """``* LIST`` notifications for mailboxes created, deleted, renamed or (un)subscribed since the client
    last learned the tree, for the mailboxes whose filters watch MailboxName / SubscriptionChange."""
    spec = state.spec
    before = state.tree or {}
    now = tree_of(snap)
    state.tree = now
    out: list[bytes] = []

    def children_attr(mid: str) -> str:
        return "\\HasChildren" if mid in snap.has_children else "\\HasNoChildren"

    for mid, (name, subscribed) in now.items():
        box = snap.boxes[mid][1]
        events = spec.events_for(name, box, subscribed)
        old = before.get(mid)
        if old is None:
            if "MAILBOXNAME" in events:
                attrs = [children_attr(mid)] + (["\\Subscribed"] if subscribed else [])
                out.append(list_response(attrs, DELIM, name, utf8))
            continue
        old_name, old_subscribed = old
        if old_name != name and ("MAILBOXNAME" in events or "MAILBOXNAME" in spec.events_for(old_name, None, old_subscribed)):
            # OLDNAME's value is a mailbox name (RFC 5258 §3.1): modified UTF-7 like the name itself
            oldname = Raw(quoted_or_literal(old_name if utf8 else mutf7.encode(old_name), utf8))
            out.append(list_response([children_attr(mid)], DELIM, name, utf8, [("OLDNAME", [oldname])]))
        if old_subscribed != subscribed and "SUBSCRIPTIONCHANGE" in events:
            attrs = [children_attr(mid)] + (["\\Subscribed"] if subscribed else [])
            out.append(list_response(attrs, DELIM, name, utf8))
    for mid, (old_name, old_subscribed) in before.items():
        if mid not in now and "MAILBOXNAME" in spec.events_for(old_name, None, old_subscribed):
            out.append(list_response(["\\NonExistent"], DELIM, old_name, utf8))
            state.told.pop(mid, None)
    return out


# -- the session's side: one store hop per round -----------------------------------------------------------


def read_snapshot(store: Any, account_id: str, spec: NotifySpec, ids: Iterable[str] | None) -> Snapshot:
    """Synchronous (on a store thread): the tree, and the counters of the mailboxes among ``ids`` (None: all)
    that the spec watches for message events (one grouped read: ``store.mailboxes.counts``)."""
    tree = read_tree(store, account_id)
    boxes = {b.id: (tree.name_of(b), b) for b in tree.boxes}
    wanted = boxes.keys() if ids is None else [i for i in ids if i in boxes]
    watched = [i for i in wanted if "MESSAGENEW" in spec.events_for(boxes[i][0], boxes[i][1], boxes[i][1].subscribed)]
    counts = store.mailboxes.counts(account_id, watched) if watched else {}
    has_children = frozenset(b.id for b in tree.boxes if tree.has_children(b))
    return Snapshot(boxes, has_children, counts)


async def start(s: Any, spec: NotifySpec, *, send_status: bool) -> NotifyState:
    """NOTIFY SET: the baseline of what the client knows (and, with STATUS, tell it now)."""
    state = NotifyState(spec)
    snap = await s.store.call(read_snapshot, s.rt.store, s.account_id, spec, None)
    state.tree = tree_of(snap)
    selected_id = s.selected.mailbox_id if s.selected is not None else None
    lines = status_lines(state, snap, snap.boxes.keys(), selected_id, condstore=s.condstore, utf8=s.utf8,
                         initial=True)
    if send_status:
        for line in lines:
            s.write(line)
    return state


async def flush(s: Any) -> None:
    """Tell the client what changed in the mailboxes it watches since the last round (nothing when nothing
    did: no store call then)."""
    state: NotifyState | None = s.notify
    if state is None or not state.due:
        return
    if state.overflowed:
        s.notify = None
        s.write(b"* OK [NOTIFICATIONOVERFLOW] Too many changes at once: NOTIFY is off, resynchronise\r\n")
        return
    pending, tree_changed = state.take()
    snap = await s.store.call(read_snapshot, s.rt.store, s.account_id, state.spec, pending)
    lines: list[bytes] = []
    if tree_changed:
        if state.spec.watches_mailbox_events:
            lines.extend(list_lines(state, snap, utf8=s.utf8))
        else:
            state.tree = tree_of(snap)
    selected_id = s.selected.mailbox_id if s.selected is not None else None
    lines.extend(status_lines(state, snap, pending, selected_id, condstore=s.condstore, utf8=s.utf8))
    for line in lines:
        s.write(line)


async def fetch_new(s: Any, uids: list[int], items: tuple[FetchItem, ...]) -> None:
    """The MessageNew fetch attributes for messages that just appeared in the selected mailbox, as
    unsolicited FETCH responses (the FETCH command's own code renders them). A body section never sets
    \\Seen here: the client did not ask to read the message (RFC 5465 §5.2: BODY is treated as BODY.PEEK)."""
    from janusmail.imap.commands.fetch import fetch  # the command module, loaded by the session already

    if not uids:
        return
    peeked = tuple(replace(it, peek=True) if isinstance(it, FetchBody) else it for it in items)
    await fetch(s, Command("*", "UID FETCH", FetchArgs(SequenceSet.of(uids), peeked)))
