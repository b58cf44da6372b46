"""GETMETADATA / SETMETADATA grammar (RFC 5464 §5) and the SAVEDATE search keys (RFC 8514): what parses, what
is refused (BAD, never an exception), and round trips of generated commands."""

from __future__ import annotations

import datetime as _dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import Command, CommandParser, GetMetadataArgs, ParseError, SetMetadataArgs
from janusmail.imap.codec.grammar_metadata import valid_entry
from janusmail.imap.codec.searchkeys import AllKey, And, DateKey
from janusmail.imap.codec.strings import literal, quoted
from tests.fuzzing import examples
from tests.imap.codec.imap_codec_util import bad, cmd, feed_all, without_continuations

pytestmark = pytest.mark.fuzz


def test_getmetadata_forms() -> None:
    assert cmd('a GETMETADATA "" /shared/comment').args == GetMetadataArgs("", ("/shared/comment",))
    assert cmd("a GETMETADATA (MAXSIZE 1024 DEPTH infinity) inbox (/Private /shared/A)").args == \
        GetMetadataArgs("INBOX", ("/private", "/shared/a"), 1024, None)
    assert cmd("a GETMETADATA (DEPTH 1) Work /shared").args == GetMetadataArgs("Work", ("/shared",), None, 1)
    assert cmd('a GETMETADATA x ("/shared/a" /shared/A)').args.entries == ("/shared/a",)  # type: ignore[union-attr]


def test_setmetadata_forms() -> None:
    assert cmd('a SETMETADATA INBOX (/shared/comment "hi" /private/x NIL)').args == \
        SetMetadataArgs("INBOX", (("/shared/comment", b"hi"), ("/private/x", None)))
    c = cmd(b"a SETMETADATA \"\" (/private/b ~{3+}\r\n\x00\r\n /private/c {2+}\r\nok)")
    assert c.args == SetMetadataArgs("", (("/private/b", b"\x00\r\n"), ("/private/c", b"ok")))


@pytest.mark.parametrize("line", [
    "a GETMETADATA", "a GETMETADATA INBOX", "a GETMETADATA INBOX /private/", "a GETMETADATA INBOX private/x",
    "a GETMETADATA INBOX /shared//x", "a GETMETADATA INBOX /other/x", 'a GETMETADATA INBOX "/shared/%"',
    'a GETMETADATA INBOX "/shared/\u00e9"', "a GETMETADATA () INBOX /shared", "a GETMETADATA (DEPTH) INBOX /shared",
    "a GETMETADATA (DEPTH 3) INBOX /shared", "a GETMETADATA (MAXSIZE x) INBOX /shared",
    "a GETMETADATA INBOX (/shared", "a GETMETADATA INBOX /shared extra",
    "a SETMETADATA INBOX", "a SETMETADATA INBOX ()", "a SETMETADATA INBOX (/private NIL)",
    "a SETMETADATA INBOX (/shared/a)", "a SETMETADATA INBOX (/shared/a atom)", "a SETMETADATA INBOX /shared/a NIL",
    "a SETMETADATA INBOX (/shared/a NIL) x",
])
def test_refused(line: str) -> None:
    err = bad(line)
    assert err.status == "BAD" and err.tag == "a"


def test_saved_search_keys() -> None:
    args = cmd("a SEARCH SAVEDON 1-Feb-2024 SAVEDBEFORE \"02-Feb-2024\" SAVEDSINCE 3-Mar-2020 SAVEDATESUPPORTED").args
    assert args.key == And((  # type: ignore[union-attr]
        DateKey("saved", "on", _dt.date(2024, 2, 1)), DateKey("saved", "before", _dt.date(2024, 2, 2)),
        DateKey("saved", "since", _dt.date(2020, 3, 3)), AllKey()))
    for line in ("a SEARCH SAVEDON", "a SEARCH SAVEDON 30-Feb-2024", "a SEARCH SAVEDSINCE 1-Foo-2024"):
        assert bad(line).status == "BAD"


_ENTRY_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='*%/"\\(){]')
_COMPONENT = st.text(_ENTRY_CHARS, min_size=1, max_size=8)
_ENTRY = st.builds(lambda root, parts: "/".join([root, *parts]),
                   st.sampled_from(["/private", "/shared", "/PRIVATE", "/Shared"]),
                   st.lists(_COMPONENT, min_size=1, max_size=4))


def _wire_value(value: bytes | None, form: int) -> bytes:
    if value is None:
        return b"NIL"
    if form == 0 and b"\x00" not in value and b"\r" not in value and b"\n" not in value:
        return quoted(value)
    return literal(value, binary=form == 2 or b"\x00" in value).replace(b"}\r\n", b"+}\r\n", 1)


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.tuples(_ENTRY, st.none() | st.binary(max_size=40), st.integers(0, 2)), min_size=1, max_size=6))
def test_setmetadata_round_trip(pairs: list[tuple[str, bytes | None, int]]) -> None:
    wire = b" ".join(quoted(e) + b" " + _wire_value(v, f) for e, v, f in pairs)
    events = without_continuations(feed_all(b"t SETMETADATA INBOX (" + wire + b")\r\n"))
    assert events == [Command("t", "SETMETADATA",
                              SetMetadataArgs("INBOX", tuple((e.lower(), v) for e, v, _ in pairs)))]
    assert all(valid_entry(e) for e, _, _ in pairs)


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=80), st.sampled_from([b"GETMETADATA ", b"SETMETADATA INBOX (", b"GETMETADATA (",
                                                   b"SEARCH SAVEDON ", b"SETMETADATA "]))
def test_garbage_never_crashes(tail: bytes, head: bytes) -> None:
    parser = CommandParser()
    events = parser.feed(b"t " + head + tail.replace(b"\n", b" ") + b"\r\nn NOOP\r\n")
    assert all(isinstance(e, Command | ParseError) or type(e).__name__ == "ContinuationRequest" for e in events)
    assert not any(isinstance(e, ParseError) and e.code == "SERVERBUG" for e in events)
