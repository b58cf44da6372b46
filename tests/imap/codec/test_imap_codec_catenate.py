"""APPEND ... CATENATE grammar (RFC 4469 §5) and the IMAP message URL parser (RFC 5092): accepted forms,
refusals (BAD for the grammar, BadUrl for URLs, never another exception), and generated round trips."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import AppendArgs, CatenatePart, Command, Section
from janusmail.imap.codec.imapurl import BadUrl, MessageUrl, parse_message_url
from janusmail.imap.codec.strings import literal, quoted
from tests.fuzzing import examples
from tests.imap.codec.imap_codec_util import bad, cmd, feed_all, without_continuations

pytestmark = pytest.mark.fuzz


def test_catenate_forms() -> None:
    c = cmd(b'a APPEND Drafts (\\Seen) CATENATE (URL "/Drafts;UIDVALIDITY=3/;UID=20/;section=HEADER" '
            b"TEXT {4+}\r\nabcd URL /INBOX/;UID=1) {3+}\r\nxyz CATENATE (TEXT ~{1+}\r\n\x00)")
    assert isinstance(c.args, AppendArgs)
    first, plain, binary = c.args.messages
    assert first.flags == ("\\Seen",) and first.catenate == (
        CatenatePart("URL", url="/Drafts;UIDVALIDITY=3/;UID=20/;section=HEADER"), CatenatePart("TEXT", b"abcd"),
        CatenatePart("URL", url="/INBOX/;UID=1"))
    assert plain.data == b"xyz" and not plain.catenate
    assert binary.catenate == (CatenatePart("TEXT", b"\x00"),)


@pytest.mark.parametrize("line", [
    "a APPEND x CATENATE", "a APPEND x CATENATE ()", "a APPEND x CATENATE (TEXT \"q\")", "a APPEND x CATENATE (URL)",
    "a APPEND x CATENATE (FOO 1)", "a APPEND x CATENATE (URL /INBOX/;UID=1", "a APPEND x CATENATE URL /a/;UID=1",
    "a APPEND x CATENATE (URL /INBOX/;UID=1) trailing",
])
def test_catenate_refused(line: str) -> None:
    assert bad(line).status == "BAD"


def test_url_forms() -> None:
    assert parse_message_url("/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER.FIELDS%20(SUBJECT)") == \
        MessageUrl("Drafts", 20, 385759045, Section((), "HEADER.FIELDS", ("SUBJECT",)))
    assert parse_message_url("imap://alice@example.test:143/INBOX/;UID=3/;SECTION=1.MIME/;PARTIAL=0.10") == \
        MessageUrl("INBOX", 3, None, Section((1,), "MIME"), (0, 10), "alice", "example.test", 143)
    assert parse_message_url("imap://a%40b.test;AUTH=*@[::1]/a%C3%A9/b/;UID=3/;partial=7").mailbox == "a\u00e9/b"


@pytest.mark.parametrize("url", [
    "", "INBOX/;UID=1", "/INBOX", "/INBOX/;UID=0", "/INBOX/;UID=1/;SECTION=", "/INBOX/;UID=1/;SECTION=1.BAD",
    "/INBOX/;UID=1/;URLAUTH=anonymous", "/INBOX?SUBJECT%20x", "/%FF/;UID=1", "/a//b/;UID=1", "/INBOX/;UID=1 x",
    "imap://host", "imap:///INBOX/;UID=1", "/INBOX/;UID=99999999999", "http://h/INBOX/;UID=1",
])
def test_bad_urls(url: str) -> None:
    with pytest.raises(BadUrl):
        parse_message_url(url)


_NAME = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="/"), min_size=1,
                max_size=10)


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(_NAME, min_size=1, max_size=3), st.integers(1, 2**32 - 1), st.none() | st.integers(1, 2**32 - 1),
       st.none() | st.lists(st.integers(1, 99), min_size=1, max_size=3),
       st.none() | st.tuples(st.integers(0, 10**6), st.none() | st.integers(1, 10**6)), st.booleans())
def test_url_round_trip(path: list[str], uid: int, uidvalidity: int | None, part: list[int] | None,
                        partial: tuple[int, int | None] | None, server: bool) -> None:
    url = "imap://me@example.test" if server else ""
    url += "/" + "/".join(quote(p, safe="") for p in path)
    if uidvalidity is not None:
        url += f";UIDVALIDITY={uidvalidity}"
    url += f"/;UID={uid}"
    if part is not None:
        url += "/;SECTION=" + ".".join(map(str, part))
    if partial is not None:
        url += f"/;PARTIAL={partial[0]}" + (f".{partial[1]}" if partial[1] is not None else "")
    got = parse_message_url(url)
    assert got == MessageUrl("/".join(path), uid, uidvalidity, Section(tuple(part)) if part else None, partial,
                             "me" if server else None, "example.test" if server else None)


@settings(max_examples=examples(500), deadline=None)
@given(st.text(max_size=120))
def test_any_text_is_a_url_or_badurl(text: str) -> None:
    try:
        parse_message_url(text)
    except BadUrl:
        pass


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=30).map(lambda b: ("TEXT", b)),
                          st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                                  max_size=30).map(lambda u: ("URL", u))), min_size=1, max_size=6))
def test_catenate_round_trip(parts: list[tuple[str, object]]) -> None:
    wire = []
    for kind, value in parts:
        if kind == "TEXT":
            assert isinstance(value, bytes)
            wire.append(b"TEXT " + literal(value, binary=b"\x00" in value).replace(b"}\r\n", b"+}\r\n", 1))
        else:
            assert isinstance(value, str)
            wire.append(b"URL " + quoted(value))
    events = without_continuations(feed_all(b"t APPEND Drafts CATENATE (" + b" ".join(wire) + b")\r\n"))
    assert len(events) == 1 and isinstance(events[0], Command), events
    args = events[0].args
    assert isinstance(args, AppendArgs)
    assert args.messages[0].catenate == tuple(
        CatenatePart("TEXT", v) if k == "TEXT" else CatenatePart("URL", url=v) for k, v in parts)  # type: ignore[arg-type]
