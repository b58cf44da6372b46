"""Grammar of REPLACE / UID REPLACE (RFC 8508), UNAUTHENTICATE (RFC 8437), COMPRESS (RFC 4978), FETCH PREVIEW
(RFC 8970) and PARTIAL in SEARCH/SORT return options and as a FETCH modifier (RFC 9394): accepted forms, the
refusals (always a ParseError, never another exception), and generated round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import CompressArgs, FetchArgs, FetchAttr, NoArgs, ReplaceArgs, SearchArgs, SortArgs
from tests.fuzzing import examples
from tests.imap.codec.imap_codec_util import bad, cmd, feed_all

pytestmark = pytest.mark.fuzz


def test_replace_forms() -> None:
    c = cmd(b'a UID REPLACE 42 Drafts (\\Draft $Edited) "06-Dec-2026 01:02:03 +0100" {3+}\r\nabc')
    assert c.name == "UID REPLACE" and isinstance(c.args, ReplaceArgs)
    assert c.args.number == 42 and c.args.mailbox == "Drafts"
    assert c.args.message.data == b"abc" and c.args.message.flags == ("\\Draft", "$Edited")
    assert c.args.message.date is not None
    star = cmd(b"b REPLACE * inbox ~{2+}\r\n\x00x")
    assert isinstance(star.args, ReplaceArgs) and star.args.number is None and star.args.mailbox == "INBOX"
    assert star.args.message.binary


@pytest.mark.parametrize("line", [
    b"a REPLACE", b"a REPLACE 1", b"a REPLACE 1 INBOX", b"a REPLACE 0 INBOX {1+}\r\nx", b"a REPLACE 1:2 INBOX {1+}\r\nx",
    b"a REPLACE $ INBOX {1+}\r\nx", b"a REPLACE 4294967296 INBOX {1+}\r\nx", b"a REPLACE 1 INBOX {1+}\r\nx {1+}\r\ny",
    b"a UID REPLACE x INBOX {1+}\r\nx", b"a REPLACE 1 INBOX (\\Seen", b"a REPLACE 1 INBOX {1+}\r\nx trailing",
])
def test_replace_refused(line: bytes) -> None:
    assert bad(line).status == "BAD"


def test_unauthenticate_and_compress() -> None:
    assert isinstance(cmd("a UNAUTHENTICATE").args, NoArgs)
    assert bad("a UNAUTHENTICATE now").status == "BAD"
    c = cmd("a COMPRESS deflate")
    assert isinstance(c.args, CompressArgs) and c.args.mechanism == "DEFLATE"
    assert bad("a COMPRESS").status == "BAD"


def test_compress_pauses_the_parser() -> None:
    """Bytes after COMPRESS are compressed data: the parser stops and leaves them for the session."""
    from janusmail.imap.codec import CommandParser

    p = CommandParser()
    events = p.feed(b"a COMPRESS DEFLATE\r\n\x78\x9c garbage\r\n")
    assert len(events) == 1 and p.paused
    assert p.take_buffer() == b"\x78\x9c garbage\r\n"


def test_preview_forms() -> None:
    for line in ("a FETCH 1 PREVIEW", "a FETCH 1 (PREVIEW)", "a FETCH 1 PREVIEW (LAZY)", "a FETCH 1 (PREVIEW (lazy))",
                 "a FETCH 1 (UID PREVIEW (LAZY) FLAGS)"):
        args = cmd(line).args
        assert isinstance(args, FetchArgs) and FetchAttr("PREVIEW") in args.items, line
    modified = cmd("a FETCH 1 PREVIEW (LAZY) (CHANGEDSINCE 5)").args
    assert isinstance(modified, FetchArgs) and modified.changedsince == 5
    for line in ("a FETCH 1 PREVIEW (FUZZY)", "a FETCH 1 (PREVIEW (LAZY FUZZY))", "a FETCH 1 (PREVIEW ())",
                 "a FETCH 1 (PREVIEW (LAZY)"):
        assert bad(line).status == "BAD", line


def test_partial_forms() -> None:
    s = cmd("a SEARCH RETURN (PARTIAL -1:-100 COUNT) UNDELETED").args
    assert isinstance(s, SearchArgs) and s.partial == (-1, -100) and s.return_opts == ("PARTIAL", "COUNT")
    assert cmd("a SEARCH RETURN (PARTIAL 500:400) ALL").args.partial == (400, 500)
    so = cmd("a UID SORT RETURN (PARTIAL 1:2) (DATE) UTF-8 ALL").args
    assert isinstance(so, SortArgs) and so.partial == (1, 2)
    f = cmd("a UID FETCH 1:* (FLAGS) (PARTIAL -1:-30)").args
    assert isinstance(f, FetchArgs) and f.partial == (-1, -30)
    assert cmd("a FETCH 1:* FLAGS (CHANGEDSINCE 3 PARTIAL 2:1)").args.partial == (1, 2)
    for line in ("a SEARCH RETURN (PARTIAL 1:5 ALL) ALL", "a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL",
                 "a SEARCH RETURN (ALL ALL) ALL", "a SEARCH RETURN (PARTIAL -1:5) ALL",
                 "a SEARCH RETURN (PARTIAL 1:-5) ALL", "a SEARCH RETURN (PARTIAL 0:5) ALL",
                 "a UID FETCH 1:* FLAGS (PARTIAL 1:5 PARTIAL 1:2)", "a UID FETCH 1:* FLAGS (PARTIAL)"):
        assert bad(line).status == "BAD", line


_N = st.integers(min_value=1, max_value=4294967295)


@settings(max_examples=examples(300))
@given(a=_N, b=_N, neg=st.booleans(), where=st.sampled_from(["SEARCH", "SORT", "FETCH"]))
def test_partial_round_trip(a: int, b: int, neg: bool, where: str) -> None:
    sign = "-" if neg else ""
    rng = f"{sign}{a}:{sign}{b}"
    line = {"SEARCH": f"t UID SEARCH RETURN (COUNT PARTIAL {rng}) ALL",
            "SORT": f"t UID SORT RETURN (PARTIAL {rng}) (ARRIVAL) UTF-8 ALL",
            "FETCH": f"t UID FETCH 1:* (UID) (PARTIAL {rng})"}[where]
    first, last = sorted((a, b))
    want = (-first, -last) if neg else (first, last)
    assert cmd(line).args.partial == want


@settings(max_examples=examples(300))
@given(st.binary(max_size=40), st.sampled_from([b"t REPLACE ", b"t UID REPLACE ", b"t FETCH 1 PREVIEW ",
                                                  b"t SEARCH RETURN (PARTIAL ", b"t UID FETCH 1 UID (PARTIAL ",
                                                  b"t COMPRESS ", b"t UNAUTHENTICATE"]))
def test_garbage_is_refused_cleanly(tail: bytes, head: bytes) -> None:
    """Whatever follows, the parser answers with events (a BAD at worst), never an exception or a hang."""
    data = head + tail.replace(b"\n", b" ") + b"\r\n"
    events = feed_all(data)
    assert events is not None
    for ev in events:
        assert type(ev).__name__ in ("Command", "ParseError", "ContinuationRequest", "LargeLiteral"), ev
        assert getattr(ev, "code", None) != "SERVERBUG", ev  # an exception inside the parser
