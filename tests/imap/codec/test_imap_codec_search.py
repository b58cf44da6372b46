"""SEARCH / UID SEARCH / SORT / THREAD: every search key, return options, charsets, nesting limits."""

from __future__ import annotations

import datetime as dt

import pytest

from janusmail.imap.codec import SearchArgs, SequenceSet, SortArgs, SortCriterion, ThreadArgs
from janusmail.imap.codec.searchkeys import (
    AllKey,
    And,
    BodyKey,
    DateKey,
    EmailIdKey,
    FlagKey,
    HeaderKey,
    ModSeqKey,
    Not,
    Or,
    SequenceKey,
    SizeKey,
    TextKey,
    ThreadIdKey,
    WithinKey,
)
from tests.imap.codec.imap_codec_util import bad, cmd


def key(text: str | bytes):  # noqa: ANN201 - returns whichever key type was parsed
    prefix = b"s SEARCH " if isinstance(text, bytes) else "s SEARCH "
    c = cmd(prefix + text)
    assert isinstance(c.args, SearchArgs)
    return c.args.key


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ALL", AllKey()),
        ("ANSWERED", FlagKey("\\Answered")),
        ("DELETED", FlagKey("\\Deleted")),
        ("DRAFT", FlagKey("\\Draft")),
        ("FLAGGED", FlagKey("\\Flagged")),
        ("SEEN", FlagKey("\\Seen")),
        ("RECENT", FlagKey("\\Recent")),
        ("UNANSWERED", FlagKey("\\Answered", False)),
        ("UNDELETED", FlagKey("\\Deleted", False)),
        ("UNDRAFT", FlagKey("\\Draft", False)),
        ("UNFLAGGED", FlagKey("\\Flagged", False)),
        ("unseen", FlagKey("\\Seen", False)),
        ("OLD", FlagKey("\\Recent", False)),
        ("NEW", And((FlagKey("\\Recent"), FlagKey("\\Seen", False)))),
        ("KEYWORD $Forwarded", FlagKey("$Forwarded")),
        ("UNKEYWORD $Junk", FlagKey("$Junk", False)),
        ('BCC "x@y"', HeaderKey("bcc", "x@y")),
        ("CC bob", HeaderKey("cc", "bob")),
        ('FROM "Smith"', HeaderKey("from", "Smith")),
        ("SUBJECT {5}\r\nhello", HeaderKey("subject", "hello")),
        ("TO alice", HeaderKey("to", "alice")),
        ('HEADER X-Mailer ""', HeaderKey("x-mailer", "")),
        ('HEADER "List-Id" foo', HeaderKey("list-id", "foo")),
        ('BODY "some words"', BodyKey("some words")),
        ("TEXT word", TextKey("word")),
        ("BEFORE 1-Feb-1994", DateKey("internal", "before", dt.date(1994, 2, 1))),
        ('ON "17-Jul-1996"', DateKey("internal", "on", dt.date(1996, 7, 17))),
        ("SINCE 01-jan-2024", DateKey("internal", "since", dt.date(2024, 1, 1))),
        ("SENTBEFORE 2-Mar-2020", DateKey("sent", "before", dt.date(2020, 3, 2))),
        ("SENTON 2-Mar-2020", DateKey("sent", "on", dt.date(2020, 3, 2))),
        ("SENTSINCE 2-Mar-2020", DateKey("sent", "since", dt.date(2020, 3, 2))),
        ("LARGER 10000", SizeKey("larger", 10000)),
        ("SMALLER 9999999999", SizeKey("smaller", 9999999999)),  # number64 in RFC 9051
        ("UID 1:100,200", SequenceKey(SequenceSet.parse("1:100,200"), uid=True)),
        ("UID $", SequenceKey(SequenceSet.parse("$"), uid=True)),
        ("2:4,*", SequenceKey(SequenceSet.parse("2:4,*"))),
        ("$", SequenceKey(SequenceSet.parse("$"))),
        ("NOT SEEN", Not(FlagKey("\\Seen"))),
        ("OR SEEN FLAGGED", Or(FlagKey("\\Seen"), FlagKey("\\Flagged"))),
        ("MODSEQ 620162338", ModSeqKey(620162338)),
        ('MODSEQ "/flags/\\\\draft" all 620162338', ModSeqKey(620162338, ("/flags/\\draft", "all"))),
        ("MODSEQ 0", ModSeqKey(0)),
        ("EMAILID M6d99ac3275bb4e", EmailIdKey("M6d99ac3275bb4e")),
        ("THREADID T64b478a75b7ea9", ThreadIdKey("T64b478a75b7ea9")),
        ("OLDER 3600", WithinKey("older", 3600)),
        ("YOUNGER 60", WithinKey("younger", 60)),
    ],
)
def test_every_search_key(text: str, expected: object) -> None:
    assert key(text) == expected


def test_object_ids_are_case_sensitive() -> None:
    assert key("EMAILID MaBc-_9") == EmailIdKey("MaBc-_9")
    assert key("emailid mABC") == EmailIdKey("mABC")
    assert key("THREADID TxYz") == ThreadIdKey("TxYz")
    assert key("EMAILID MaBc") != key("EMAILID Mabc")


@pytest.mark.parametrize(
    "text",
    ["EMAILID", "EMAILID M.x", 'EMAILID "Mx"', "EMAILID " + "a" * 256, "THREADID (T1)"],
)
def test_bad_object_ids(text: str) -> None:
    assert bad("s SEARCH " + text).command == "SEARCH"


def test_nesting_and_implicit_and() -> None:
    assert key("OR (FROM a SEEN) NOT (TO b)") == Or(
        And((HeaderKey("from", "a"), FlagKey("\\Seen"))), Not(HeaderKey("to", "b"))
    )
    assert key("SEEN FLAGGED 1:5") == And(
        (FlagKey("\\Seen"), FlagKey("\\Flagged"), SequenceKey(SequenceSet.parse("1:5")))
    )
    assert key("((SEEN))") == FlagKey("\\Seen")
    assert key("OR OR SEEN DRAFT NOT DELETED") == Or(
        Or(FlagKey("\\Seen"), FlagKey("\\Draft")), Not(FlagKey("\\Deleted"))
    )


def test_deep_nesting_is_refused_not_crashing() -> None:
    e = bad("s SEARCH " + "NOT " * 5000 + "ALL")
    assert e.code == "LIMIT" and e.tag == "s"
    e = bad("s SEARCH " + "(" * 5000 + "ALL" + ")" * 5000)
    assert e.code == "LIMIT"
    e = bad("s SEARCH " + "OR ALL " * 3000 + "ALL")
    assert e.code == "LIMIT"
    # within the limit it works
    assert isinstance(key("NOT " * 20 + "ALL"), Not)


def test_return_options() -> None:
    c = cmd("a UID SEARCH RETURN (MIN MAX COUNT ALL SAVE) UNSEEN")
    assert c.name == "UID SEARCH"
    assert c.args == SearchArgs(FlagKey("\\Seen", False), None, ("MIN", "MAX", "COUNT", "ALL", "SAVE"))
    assert cmd("a SEARCH RETURN () ALL").args.return_opts == ("ALL",)  # RFC 4731: () means ALL
    assert cmd("a SEARCH ALL").args.return_opts is None
    c = cmd("a SEARCH RETURN (PARTIAL 1:100) ALL")
    assert c.args.return_opts == ("PARTIAL",) and c.args.partial == (1, 100)
    assert cmd("a SEARCH RETURN (PARTIAL -1:-50 COUNT) ALL").args.partial == (-1, -50)
    assert bad("a SEARCH RETURN (BOGUS) ALL").command == "SEARCH"
    assert bad("a SEARCH RETURN ALL").command == "SEARCH"


def test_charset_decoding() -> None:
    c = cmd(b"a SEARCH CHARSET ISO-8859-1 SUBJECT {4}\r\ncaf\xe9")
    assert c.args.charset == "ISO-8859-1" and c.args.key == HeaderKey("subject", "caf\xe9")
    c = cmd('a SEARCH CHARSET "UTF-8" TEXT "café"'.encode())
    assert c.args.key == TextKey("café")
    c = cmd("a SEARCH RETURN (COUNT) CHARSET us-ascii ALL")
    assert c.args.charset == "US-ASCII" and c.args.return_opts == ("COUNT",)


def test_unknown_charset_is_no_badcharset() -> None:
    e = bad("a SEARCH CHARSET X-NO-SUCH-CHARSET TEXT foo")
    assert e.status == "NO" and e.code is not None and e.code.startswith("BADCHARSET")
    assert e.tag == "a"
    assert bad("a SEARCH CHARSET hex TEXT 41").status == "NO"  # a codec, but not a charset


def test_invalid_bytes_for_charset_are_bad() -> None:
    e = bad(b"a SEARCH CHARSET UTF-8 TEXT {2}\r\n\xff\xfe")
    assert e.status == "BAD"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BOGUS",
        "KEYWORD \\Seen",
        "BEFORE 32-Jan-2020",
        "BEFORE 1-Foo-2020",
        "BEFORE 2020-01-01",
        "LARGER x",
        "LARGER",
        "NOT",
        "OR SEEN",
        "(SEEN",
        "SEEN)",
        "UID",
        "0",
        "1:0",
        "1,,2",
        'MODSEQ "/flags/\\\\seen" bogus 5',
        "SEEN  FLAGGED",
        "OLDER 0",
    ],
)
def test_search_syntax_errors(text: str) -> None:
    e = bad("a SEARCH " + text)
    assert e.tag == "a" and e.status == "BAD"


def test_sort_and_thread() -> None:
    c = cmd("a UID SORT (REVERSE ARRIVAL subject) UTF-8 SINCE 1-Feb-1994")
    assert c.args == SortArgs(
        (SortCriterion("ARRIVAL", True), SortCriterion("SUBJECT")),
        "UTF-8",
        DateKey("internal", "since", dt.date(1994, 2, 1)),
    )
    c = cmd("a SORT RETURN (MIN COUNT) (DATE) US-ASCII ALL")
    assert c.args.return_opts == ("MIN", "COUNT")
    c = cmd("a THREAD REFERENCES UTF-8 SINCE 5-MAR-2000 SEEN")
    assert c.args == ThreadArgs(
        "REFERENCES", "UTF-8", And((DateKey("internal", "since", dt.date(2000, 3, 5)), FlagKey("\\Seen")))
    )
    assert bad("a SORT (DATE) ALL").command == "SORT"  # charset is mandatory
    assert bad("a SORT () UTF-8 ALL").command == "SORT"
    assert bad("a SORT (BOGUS) UTF-8 ALL").command == "SORT"
    assert bad("a THREAD REFERENCES").command == "THREAD"
