"""FETCH / UID FETCH and STORE / UID STORE argument parsing."""

from __future__ import annotations

import pytest

from janusmail.imap.codec import (
    FetchArgs,
    FetchAttr,
    FetchBinarySize,
    FetchBody,
    Section,
    SequenceSet,
    StoreArgs,
)
from tests.imap.codec.imap_codec_util import bad, cmd


def items(text: str) -> tuple:
    c = cmd("f FETCH 1 " + text)
    assert isinstance(c.args, FetchArgs)
    return c.args.items


@pytest.mark.parametrize(
    "name",
    [
        "FLAGS",
        "INTERNALDATE",
        "RFC822.SIZE",
        "ENVELOPE",
        "BODY",
        "BODYSTRUCTURE",
        "UID",
        "MODSEQ",
        "EMAILID",
        "THREADID",
    ],
)
def test_simple_items(name: str) -> None:
    assert items(name.lower()) == (FetchAttr(name),)


def test_macros() -> None:
    fast = (FetchAttr("FLAGS"), FetchAttr("INTERNALDATE"), FetchAttr("RFC822.SIZE"))
    assert items("FAST") == fast
    assert items("all") == (*fast, FetchAttr("ENVELOPE"))
    assert items("FULL") == (*fast, FetchAttr("ENVELOPE"), FetchAttr("BODY"))
    assert bad("f FETCH 1 (ALL)").command == "FETCH"  # macros are not fetch-atts


def test_rfc822_aliases() -> None:
    (rfc822,) = items("RFC822")
    assert rfc822 == FetchBody(Section(), peek=False, alias="RFC822") and rfc822.response_key() == "RFC822"
    (hdr,) = items("RFC822.HEADER")
    assert hdr.section == Section(text="HEADER") and hdr.peek and hdr.response_key() == "RFC822.HEADER"
    (txt,) = items("RFC822.TEXT")
    assert txt.section == Section(text="TEXT") and not txt.peek


@pytest.mark.parametrize(
    ("text", "expected", "key"),
    [
        ("BODY[]", FetchBody(Section()), "BODY[]"),
        ("BODY.PEEK[]", FetchBody(Section(), peek=True), "BODY[]"),
        ("BODY[HEADER]", FetchBody(Section(text="HEADER")), "BODY[HEADER]"),
        ("BODY[TEXT]<0.2048>", FetchBody(Section(text="TEXT"), (0, 2048)), "BODY[TEXT]<0>"),
        ("body.peek[1.2.3]<100.5>", FetchBody(Section((1, 2, 3)), (100, 5), peek=True), "BODY[1.2.3]<100>"),
        ("BODY[1.MIME]", FetchBody(Section((1,), "MIME")), "BODY[1.MIME]"),
        ("BODY[4.2.HEADER]", FetchBody(Section((4, 2), "HEADER")), "BODY[4.2.HEADER]"),
        ("BODY[3.TEXT]", FetchBody(Section((3,), "TEXT")), "BODY[3.TEXT]"),
        (
            'BODY.PEEK[HEADER.FIELDS (From To "X-Weird Name")]',
            FetchBody(Section(text="HEADER.FIELDS", fields=("From", "To", "X-Weird Name")), peek=True),
            'BODY[HEADER.FIELDS (From To "X-Weird Name")]',
        ),
        (
            "BODY[1.header.fields.not (Received)]",
            FetchBody(Section((1,), "HEADER.FIELDS.NOT", ("Received",))),
            "BODY[1.HEADER.FIELDS.NOT (Received)]",
        ),
        ("BINARY[]", FetchBody(Section(), binary=True), "BINARY[]"),
        (
            "BINARY.PEEK[1.2]<0.10>",
            FetchBody(Section((1, 2)), (0, 10), peek=True, binary=True),
            "BINARY[1.2]<0>",
        ),
        ("BINARY.SIZE[3]", FetchBinarySize((3,)), "BINARY.SIZE[3]"),
        ("BINARY.SIZE[]", FetchBinarySize(()), "BINARY.SIZE[]"),
    ],
)
def test_body_sections(text: str, expected: object, key: str) -> None:
    (item,) = items(text)
    assert item == expected
    assert item.response_key() == key


def test_header_fields_from_literal() -> None:
    (item,) = items("BODY[HEADER.FIELDS ({7}\r\nSubject)]")
    assert item.section.fields == ("Subject",)


@pytest.mark.parametrize(
    "text",
    [
        "BODY[MIME]",  # MIME needs a part number
        "BODY[0]",
        "BODY[01]",
        "BODY[1.]",
        "BODY[HEADER.FIELDS]",
        "BODY[HEADER.FIELDS ()]",
        "BODY[BOGUS]",
        "BODY[TEXT",
        "BODY[]<0.0>",  # length is nz-number
        "BODY[]<5>",
        "BODY.PEEK",
        "BINARY",
        "BINARY[TEXT]",
        "BINARY[1.MIME]",
        "BINARY.SIZE[1]<0.5>",
        "FLAGS BOGUS",
        "(FLAGS",
        "()",
        "(FLAGS  UID)",
        "BOGUS",
    ],
)
def test_fetch_syntax_errors(text: str) -> None:
    assert bad("f FETCH 1 " + text).command == "FETCH"


def test_full_fetch_commands() -> None:
    c = cmd("a UID FETCH 1:* (FLAGS)")
    assert c.name == "UID FETCH" and c.uid
    assert c.args == FetchArgs(SequenceSet.parse("1:*"), (FetchAttr("FLAGS"),))
    c = cmd("a FETCH 2:4,7 (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE EMAILID THREADID BODY.PEEK[])")
    assert len(c.args.items) == 8
    c = cmd("a FETCH $ FLAGS")
    assert c.args.sequence.is_saved


def test_changedsince_and_vanished() -> None:
    c = cmd("s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)")
    assert c.args.changedsince == 12345 and c.args.vanished
    c = cmd("s FETCH 1:* (FLAGS MODSEQ) (CHANGEDSINCE 12345)")
    assert c.args.changedsince == 12345 and not c.args.vanished
    assert bad("s FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)").command == "FETCH"  # RFC 7162 §3.2.6
    assert bad("s UID FETCH 1:* FLAGS (VANISHED)").command == "UID FETCH"
    assert bad("s FETCH 1 FLAGS (CHANGEDSINCE 0)").command == "FETCH"
    assert bad("s FETCH 1 FLAGS (BOGUS 1)").command == "FETCH"
    assert bad("s FETCH 1 FLAGS ()").command == "FETCH"


@pytest.mark.parametrize(
    "line",
    [
        "s FETCH",
        "s FETCH 1",
        "s FETCH x FLAGS",
        "s FETCH 4294967296 FLAGS",
        "s FETCH 1:2:3 FLAGS",
        "s FETCH 1 FLAGS extra",
    ],
)
def test_fetch_structure_errors(line: str) -> None:
    assert bad(line).tag == "s"


def test_store_forms() -> None:
    assert cmd("a STORE 2:4 +FLAGS (\\Deleted)").args == StoreArgs(
        SequenceSet.parse("2:4"), "add", ("\\Deleted",)
    )
    assert cmd("a STORE 1 -flags.silent (\\SEEN $Junk)").args == StoreArgs(
        SequenceSet.parse("1"), "remove", ("\\Seen", "$Junk"), silent=True
    )
    assert cmd("a STORE 1 FLAGS ()").args == StoreArgs(SequenceSet.parse("1"), "set", ())
    assert cmd("a STORE 1 FLAGS \\Seen \\Flagged").args.flags == ("\\Seen", "\\Flagged")
    c = cmd("d105 UID STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)")
    assert c.name == "UID STORE"
    assert c.args == StoreArgs(SequenceSet.parse("7,5,9"), "add", ("\\Deleted",), True, 320162338)
    assert cmd("a STORE 1 (UNCHANGEDSINCE 0) FLAGS ()").args.unchangedsince == 0


@pytest.mark.parametrize(
    "line",
    [
        "a STORE 1 FLAGS",
        "a STORE 1 +FLAGS",
        "a STORE 1 *FLAGS (\\Seen)",
        "a STORE 1 FLAGSX (\\Seen)",
        "a STORE 1 FLAGS.LOUD (\\Seen)",
        "a STORE 1 (BOGUS 1) FLAGS (\\Seen)",
        "a STORE 1 (UNCHANGEDSINCE) FLAGS (\\Seen)",
        "a STORE 1 FLAGS (\\Seen",
        "a STORE 1 FLAGS (\\Seen) extra",
        "a STORE 1 FLAGS (\\*)",
        "a STORE FLAGS (\\Seen)",
    ],
)
def test_store_errors(line: str) -> None:
    assert bad(line).command == "STORE"
