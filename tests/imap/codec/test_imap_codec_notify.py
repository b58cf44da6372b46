"""NOTIFY grammar (RFC 5465 §8) and its rules (janusmail/imap/notify.py), without sockets: what parses, what
is refused (BAD, never an exception), generated commands round-trip, and the STATUS / LIST notifications a
change produces."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import Command, CommandParser, ParseError
from janusmail.imap.codec.args import FetchAttr, NotifyArgs, NotifyEvent, NotifyGroup
from janusmail.imap.notify import NotifyError, NotifyState, Snapshot, compile_spec, list_lines, status_lines
from janusmail.store.model import Mailbox, MailboxCounts
from tests.fuzzing import examples
from tests.imap.codec.imap_codec_util import feed_all

pytestmark = pytest.mark.fuzz


def parse(line: bytes) -> Command | ParseError:
    events = feed_all(line + b"\r\n")
    assert len(events) == 1, events
    return events[0]  # type: ignore[return-value]


def test_forms() -> None:
    assert parse(b"t NOTIFY NONE") == Command("t", "NOTIFY", NotifyArgs(none=True))
    got = parse(b't NOTIFY SET STATUS (SELECTED (MessageNew (UID FLAGS) MessageExpunge)) '
                b'(mailboxes (INBOX "a b") NONE) (subtree Lists (MailboxName))')
    assert got == Command("t", "NOTIFY", NotifyArgs(False, True, (
        NotifyGroup("SELECTED", (), (NotifyEvent("MESSAGENEW", (FetchAttr("UID"), FetchAttr("FLAGS"))),
                                     NotifyEvent("MESSAGEEXPUNGE"))),
        NotifyGroup("MAILBOXES", ("INBOX", "a b"), ()),
        NotifyGroup("SUBTREE", ("Lists",), (NotifyEvent("MAILBOXNAME"),)),
    )))


@pytest.mark.parametrize("line", [
    b"t NOTIFY", b"t NOTIFY SET", b"t NOTIFY SET STATUS", b"t NOTIFY ALL", b"t NOTIFY NONE extra",
    b"t NOTIFY SET (personal)", b"t NOTIFY SET (personal ())", b"t NOTIFY SET (bogus NONE)",
    b"t NOTIFY SET (subtree NONE)", b"t NOTIFY SET (personal NONE)(inboxes NONE)",
    b"t NOTIFY SET (selected (MessageNew (NOSUCHITEM) MessageExpunge))",
])
def test_refused(line: bytes) -> None:
    got = parse(line)
    assert isinstance(got, ParseError) and got.status == "BAD", got


_FILTER = st.sampled_from(["SELECTED", "SELECTED-DELAYED", "INBOXES", "PERSONAL", "SUBSCRIBED"])
_EVENT = st.sampled_from(["MessageNew", "MessageExpunge", "FlagChange", "MailboxName", "SubscriptionChange"])
_NAME = st.text(st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=1, max_size=8)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(_FILTER | st.tuples(st.sampled_from(["SUBTREE", "MAILBOXES"]),
                                              st.lists(_NAME, min_size=1, max_size=3)),
                          st.lists(_EVENT, max_size=4, unique=True)), min_size=1, max_size=4), st.booleans())
def test_round_trip(groups: list, status: bool) -> None:  # noqa: ANN001
    wire = []
    expected = []
    for filt, events in groups:
        if isinstance(filt, tuple):
            kind, names = filt
            head = kind + " (" + " ".join(names) + ")"
        else:
            kind, names, head = filt, [], filt
        ev = "(" + " ".join(events) + ")" if events else "NONE"
        wire.append(f"({head} {ev})")
        expected.append(NotifyGroup(kind, tuple(names), tuple(NotifyEvent(e.upper()) for e in events)))
    line = b"t NOTIFY SET " + (b"STATUS " if status else b"") + " ".join(wire).encode()
    assert parse(line) == Command("t", "NOTIFY", NotifyArgs(False, status, tuple(expected)))


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=80), st.sampled_from([b"NOTIFY ", b"NOTIFY SET (", b"NOTIFY SET STATUS (personal (",
                                                   b"NOTIFY SET (selected (MessageNew ("]))
def test_garbage_never_crashes(tail: bytes, head: bytes) -> None:
    events = CommandParser().feed(b"t " + head + tail.replace(b"\n", b" ") + b"\r\nn NOOP\r\n")
    assert all(isinstance(e, Command | ParseError) or type(e).__name__ == "ContinuationRequest" for e in events)
    assert not any(isinstance(e, ParseError) and e.code == "SERVERBUG" for e in events)


# -- rules and notifications ---------------------------------------------------------------------------------


def spec_of(line: bytes):  # noqa: ANN201
    got = parse(line)
    assert isinstance(got, Command)
    return compile_spec(got.args, lambda w: w)  # type: ignore[arg-type]


@pytest.mark.parametrize(("line", "status"), [
    (b"t NOTIFY SET (selected (MessageNew))", "BAD"),
    (b"t NOTIFY SET (inboxes (FlagChange))", "BAD"),
    (b"t NOTIFY SET (selected (SubscriptionChange))", "BAD"),
    (b"t NOTIFY SET (selected NONE) (selected-delayed NONE)", "BAD"),
    (b"t NOTIFY SET (personal (MessageNew (UID) MessageExpunge))", "BAD"),
    (b"t NOTIFY SET (personal (ServerMetadataChange))", "NO"),
    (b"t NOTIFY SET (selected (MessageNew MessageExpunge AnnotationChange))", "NO"),
])
def test_rules(line: bytes, status: str) -> None:
    with pytest.raises(NotifyError) as err:
        spec_of(line)
    assert err.value.status == status
    if status == "NO":
        assert err.value.code is not None and err.value.code.startswith("BADEVENT (MessageNew ")


def box(mid: str, name: str, *, uidnext: int = 1, subscribed: bool = False, modseq: int = 1) -> Mailbox:
    return Mailbox(mid, "acct", name, None, None, 0, subscribed, 7, uidnext, 1, modseq, 1)


def snapshot(*boxes: tuple[Mailbox, str, MailboxCounts]) -> Snapshot:
    return Snapshot({b.id: (name, b) for b, name, _ in boxes}, frozenset(), {b.id: c for b, _, c in boxes})


def test_status_only_when_a_watched_number_moved() -> None:
    spec = spec_of(b"t NOTIFY SET (mailboxes (Lists) (MessageNew MessageExpunge)) (personal NONE)")
    state = NotifyState(spec)
    lists = box("L", "Lists", uidnext=5)
    other = box("O", "Other", uidnext=9)
    snap = snapshot((lists, "Lists", MailboxCounts(messages=4, unseen=1)), (other, "Other", MailboxCounts(3)))
    assert status_lines(state, snap, ["L", "O"], None, condstore=False, utf8=False, initial=True) == [
        b"* STATUS Lists (MESSAGES 4 UIDNEXT 5 UIDVALIDITY 7 UNSEEN 1)\r\n"
    ]
    # only UNSEEN changed and FlagChange is not watched: quiet
    snap = snapshot((lists, "Lists", MailboxCounts(messages=4, unseen=0)),)
    assert status_lines(state, snap, ["L"], None, condstore=False, utf8=False) == []
    # a new message: told, with HIGHESTMODSEQ under CONDSTORE
    lists = box("L", "Lists", uidnext=6, modseq=9)
    snap = snapshot((lists, "Lists", MailboxCounts(messages=5, unseen=1)),)
    assert status_lines(state, snap, ["L"], None, condstore=True, utf8=False) == [
        b"* STATUS Lists (MESSAGES 5 UIDNEXT 6 UIDVALIDITY 7 UNSEEN 1 HIGHESTMODSEQ 9)\r\n"
    ]
    # the selected mailbox is the base protocol's business
    assert status_lines(state, snap, ["L"], "L", condstore=False, utf8=False, initial=True) == []


def test_list_notifications() -> None:
    spec = spec_of(b"t NOTIFY SET (personal (MailboxName SubscriptionChange))")
    state = NotifyState(spec)
    a = box("A", "a")
    state.tree = {"A": ("a", False), "B": ("b", False)}
    b2, c = box("B", "bee", subscribed=True), box("C", "c")
    snap = snapshot((b2, "bee", MailboxCounts()), (c, "c", MailboxCounts()))
    lines = list_lines(state, snap, utf8=False)
    assert lines == [
        b'* LIST (\\HasNoChildren) "/" bee ("OLDNAME" ("b"))\r\n',
        b'* LIST (\\HasNoChildren \\Subscribed) "/" bee\r\n',
        b'* LIST (\\HasNoChildren) "/" c\r\n',
        b'* LIST (\\NonExistent) "/" a\r\n',
    ]
    assert state.tree == {"B": ("bee", True), "C": ("c", False)}
    assert a.id == "A"


def test_oldname_is_a_mailbox_name_in_modified_utf7() -> None:
    """RFC 5258 §3.1: OLDNAME carries a mailbox name, so it is modified UTF-7 like the new name unless the
    client enabled UTF8=ACCEPT (it was sent as a raw UTF-8 literal)."""
    spec = spec_of(b"t NOTIFY SET (personal (MailboxName))")
    for utf8, want in (
        (False, b'* LIST (\\HasNoChildren) "/" B&APw-ro ("OLDNAME" ("Caf&AOk-"))\r\n'),
        (True, '* LIST (\\HasNoChildren) "/" "Büro" ("OLDNAME" ("Café"))\r\n'.encode()),
    ):
        state = NotifyState(spec)
        state.tree = {"A": ("Café", False)}
        snap = snapshot((box("A", "Büro"), "Büro", MailboxCounts()))
        assert list_lines(state, snap, utf8=utf8) == [want]
