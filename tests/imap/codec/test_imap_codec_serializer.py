"""Serializer: string forms, round trips through the parser, status lines, codes, FETCH, ENVELOPE, BODYSTRUCTURE."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import Command, CommandParser, LoginArgs, NumberSet
from janusmail.imap.codec import serializer as s
from janusmail.imap.codec.structure import body_structure, envelope
from tests.imap.codec.imap_codec_util import cmd, feed_all, without_continuations

# -- strings ----------------------------------------------------------------------------------------------


def test_quoted_or_literal_choices() -> None:
    assert s.quoted_or_literal("hello") == b'"hello"'
    assert s.quoted_or_literal('say "hi" \\o/') == b'"say \\"hi\\" \\\\o/"'
    assert s.quoted_or_literal("") == b'""'
    assert s.quoted_or_literal("a\r\nb") == b"{4}\r\na\r\nb"
    assert s.quoted_or_literal("nul\x00") == b"{4}\r\nnul\x00"
    assert s.quoted_or_literal("café") == b"{5}\r\ncaf\xc3\xa9"  # 8-bit without UTF8=ACCEPT
    assert s.quoted_or_literal("café", utf8_ok=True) == b'"caf\xc3\xa9"'
    assert s.quoted_or_literal("x" * (s.QUOTED_MAX + 1)).startswith(b"{4097}\r\n")
    assert s.quoted_or_literal(b"raw") == b'"raw"'
    assert s.quoted_or_literal(b"\xff\xfe", utf8_ok=True) == b"{2}\r\n\xff\xfe"  # not UTF-8: literal
    assert s.quoted_or_literal("\udcff") == b"{1}\r\n\xff"  # surrogateescape'd octet goes back out as-is


def test_astring_nstring_atom() -> None:
    assert s.astring("INBOX") == b"INBOX"
    assert s.astring("a]b") == b'"a]b"'  # valid astring char, but keep responses unambiguous
    assert s.astring("NIL") == b'"NIL"'
    assert s.astring("two words") == b'"two words"'
    assert s.astring("") == b'""'
    assert s.astring("%") == b'"%"'
    assert s.nstring(None) == b"NIL"
    assert s.nstring("NIL") == b'"NIL"'
    assert s.nstring("abc") == b'"abc"'
    assert s.atom("\\Seen") == b"\\Seen"
    assert s.atom("\\*") == b"\\*" and s.atom("$Label") == b"$Label"
    for not_atom in ("a b", "", "\\", "a(", "x]"):
        with pytest.raises(ValueError):
            s.atom(not_atom)
    assert s.quoted("https://example.com/.s/[jmap]") == b'"https://example.com/.s/[jmap]"'
    with pytest.raises(ValueError):
        s.quoted("a\r\nb")


def test_mailbox_name_encoding() -> None:
    assert s.mailbox_name("inbox") == b"INBOX"
    assert s.mailbox_name("Entwürfe") == b"Entw&APw-rfe"
    assert s.mailbox_name("Entwürfe", utf8_ok=True) == b'"Entw\xc3\xbcrfe"'
    assert s.mailbox_name("My Folder/Sub") == b'"My Folder/Sub"'
    assert s.mailbox_name("A&B") == b"A&-B"


def _login_roundtrip(user_wire: bytes) -> str:
    events = without_continuations(feed_all(b"a LOGIN " + user_wire + b" pw\r\n"))
    assert len(events) == 1 and isinstance(events[0], Command), events
    assert isinstance(events[0].args, LoginArgs)
    return events[0].args.username


@settings(max_examples=400, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs"]), max_size=60), st.booleans())
def test_astring_roundtrip_through_parser(value: str, utf8_ok: bool) -> None:
    assert _login_roundtrip(s.astring(value, utf8_ok)) == value
    assert _login_roundtrip(s.quoted_or_literal(value, utf8_ok)) == value


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs"]), max_size=30))
def test_mailbox_name_roundtrip_through_parser(name: str) -> None:
    from janusmail.imap.codec import mutf7

    events = without_continuations(feed_all(b"a SELECT " + s.mailbox_name(name) + b"\r\n"))
    (c,) = events
    assert isinstance(c, Command)
    expected = "INBOX" if name.upper() == "INBOX" else name
    assert mutf7.decode(c.args.mailbox) == expected


# -- status lines -----------------------------------------------------------------------------------------


def test_tagged_untagged_continuation() -> None:
    assert s.tagged("a1", "OK", None, "LOGIN completed") == b"a1 OK LOGIN completed\r\n"
    assert s.tagged("a1", "OK", s.capability_code(["IMAP4rev2", "JMAPACCESS"]), "done") == (
        b"a1 OK [CAPABILITY IMAP4rev2 JMAPACCESS] done\r\n"
    )
    assert s.tagged("a1", "NO") == b"a1 NO Completed\r\n"  # text is mandatory in RFC 3501
    assert s.tagged("a", "BAD", "CLIENTBUG", "bad\r\ninjected") == b"a BAD [CLIENTBUG] bad  injected\r\n"
    assert (
        s.untagged_status("OK", s.mailboxid_code("F2212ea87"), "Ok") == b"* OK [MAILBOXID (F2212ea87)] Ok\r\n"
    )
    assert s.untagged(5, "EXISTS") == b"* 5 EXISTS\r\n"
    assert s.untagged("LIST", s.paren([b"\\Noselect"]), s.quoted("/"), s.astring("foo")) == (
        b'* LIST (\\Noselect) "/" foo\r\n'
    )
    assert s.continuation() == b"+ Ready\r\n"
    assert s.continuation("idling") == b"+ idling\r\n"
    assert s.continuation_data(b"\x00challenge") == b"+ AGNoYWxsZW5nZQ==\r\n"
    assert s.continuation_data(b"") == b"+ \r\n"


def test_response_codes() -> None:
    assert s.appenduid_code(38505, 3955) == "APPENDUID 38505 3955"
    assert s.appenduid_code(38505, [1, 2, 3, 5]) == "APPENDUID 38505 1:3,5"
    assert s.copyuid_code(38505, [304, 319, 320, 321], [3956, 3957, 3958, 3959]) == (
        "COPYUID 38505 304,319:321 3956:3959"
    )
    assert s.highestmodseq_code(715194045007) == "HIGHESTMODSEQ 715194045007"
    assert s.uidvalidity_code(3857529045) == "UIDVALIDITY 3857529045"
    assert s.uidnext_code(4392) == "UIDNEXT 4392"
    assert s.permanentflags_code(["\\Deleted", "\\Seen", "\\*"]) == "PERMANENTFLAGS (\\Deleted \\Seen \\*)"
    assert s.modified_code(NumberSet.from_numbers([7, 9])) == "MODIFIED 7,9"
    assert s.badcharset_code() == "BADCHARSET (UTF-8 US-ASCII)"
    assert s.code("MAILBOXID", ["F1"]) == "MAILBOXID (F1)"
    assert s.code("TOOBIG") == "TOOBIG"


def test_compress_uids() -> None:
    assert s.compress_uids([1, 2, 3, 5]) == "1:3,5"
    assert s.compress_uids([]) == ""
    assert s.compress_uids([7]) == "7"
    assert s.compress_uids([5, 1, 2]) == "5,1:2"  # order kept: COPYUID pairs by position
    assert s.compress_uids(range(1, 100_001)) == "1:100000"
    assert s.compress_uids(NumberSet.from_numbers([3, 1, 2])) == "1:3"


def test_internal_date() -> None:
    tz = dt.timezone(dt.timedelta(hours=-7))
    assert s.internal_date(dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=tz)) == "17-Jul-1996 02:44:25 -0700"
    assert s.internal_date(dt.datetime(2024, 1, 5, 23, 0, 0)) == "05-Jan-2024 23:00:00 +0000"
    tz = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert s.internal_date(dt.datetime(2024, 12, 31, 0, 0, 1, tzinfo=tz)) == "31-Dec-2024 00:00:01 +0530"


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(9999, 1, 1)).map(
        lambda d: d.replace(microsecond=0)
    ),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_internal_date_roundtrip_through_append(when: dt.datetime, offset_minutes: int) -> None:
    when = when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=offset_minutes)))
    c = cmd(b'a APPEND INBOX "' + s.internal_date(when).encode() + b'" {1+}\r\nx')
    parsed = c.args.messages[0].date
    assert parsed == when and parsed.utcoffset() == when.utcoffset()


# -- FETCH ------------------------------------------------------------------------------------------------


def test_fetch_flags_uid() -> None:
    assert (
        s.fetch_response(12, [("UID", 42), ("FLAGS", ("\\Seen",))])
        == b"* 12 FETCH (UID 42 FLAGS (\\Seen))\r\n"
    )
    assert s.fetch_response(1, [("FLAGS", [])]) == b"* 1 FETCH (FLAGS ())\r\n"
    assert s.fetch_response(1, [("FLAGS", {"\\Seen", "$A"})]) == b"* 1 FETCH (FLAGS ($A \\Seen))\r\n"


def test_fetch_typed_values() -> None:
    when = dt.datetime(1996, 7, 17, 2, 44, 25, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    out = s.fetch_response(
        3,
        [
            ("INTERNALDATE", when),
            ("RFC822.SIZE", 4286),
            ("MODSEQ", 624140003),
            ("EMAILID", "M6d99ac3275bb4e"),
            ("THREADID", None),
            ("BODY[HEADER.FIELDS (From)]", b"From: a@b\r\n\r\n"),
            ("BODY[1]<0>", None),
            ("BINARY[2]", b"\x00\x01"),
            ("BINARY[3]", b"text"),
            ("BINARY.SIZE[2]", 2),
            ("X-CUSTOM", ["a", 1, None, s.Atom("\\X"), [b"lit"]]),
        ],
    )
    assert out == (
        b'* 3 FETCH (INTERNALDATE "17-Jul-1996 02:44:25 -0700" RFC822.SIZE 4286 MODSEQ (624140003) '
        b"EMAILID (M6d99ac3275bb4e) THREADID NIL BODY[HEADER.FIELDS (From)] {13}\r\nFrom: a@b\r\n\r\n "
        b"BODY[1]<0> NIL BINARY[2] ~{2}\r\n\x00\x01 BINARY[3] {4}\r\ntext BINARY.SIZE[2] 2 "
        b'X-CUSTOM ("a" 1 NIL \\X ({3}\r\nlit)))\r\n'
    )
    assert (
        s.fetch_response(1, [("THREADID", "T64b478a75b7ea9")])
        == b"* 1 FETCH (THREADID (T64b478a75b7ea9))\r\n"
    )
    assert s.fetch_response(1, [("ENVELOPE", s.Raw(b"(cached)"))]) == b"* 1 FETCH (ENVELOPE (cached))\r\n"
    with pytest.raises(TypeError):
        s.render(object())
    with pytest.raises(TypeError):
        s.render(True)


def _as_imaplib_delivers(line: bytes) -> list:
    """Split ``* n FETCH (...)`` the way imaplib hands it to imapclient: ``n (...`` cut at literals."""
    data = line[2:-2].replace(b" FETCH ", b" ", 1)
    out: list = []
    pos = 0
    while (m := re.compile(rb"\{(\d+)\}\r\n").search(data, pos)) is not None:
        n = int(m.group(1))
        out.append((data[pos : m.start()] + b"{%d}" % n, data[m.end() : m.end() + n]))
        pos = m.end() + n
    out.append(data[pos:])
    return out


def test_fetch_response_parses_back_with_a_real_client_library() -> None:
    from imapclient.response_parser import parse_fetch_response

    when = dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    line = s.fetch_response(
        7,
        [
            ("UID", 70),
            ("FLAGS", ("\\Seen", "$Forwarded")),
            ("INTERNALDATE", when),
            ("BODY[]", b"Subject: hi\r\n\r\nbody\r\n"),
            ("ENVELOPE", ["Mon, 4 Mar 2024 05:06:07 +0000", "hé", [["Ann", None, "ann", "example.com"]],
                          None, None, [["Bob", None, "bob", "example.com"]], None, None, None, "<id@x>"]),
        ],
    )  # fmt: skip
    parsed = parse_fetch_response(_as_imaplib_delivers(line), normalise_times=False)
    msg = parsed[70]
    assert msg[b"FLAGS"] == (b"\\Seen", b"$Forwarded")
    assert msg[b"BODY[]"] == b"Subject: hi\r\n\r\nbody\r\n"
    assert msg[b"INTERNALDATE"] == when
    env = msg[b"ENVELOPE"]
    assert env.subject == "hé".encode() and env.from_[0].mailbox == b"ann" and env.message_id == b"<id@x>"


_values = {
    "UID": st.integers(min_value=1, max_value=2**32 - 1),
    "RFC822.SIZE": st.integers(min_value=0, max_value=2**40),
    "MODSEQ": st.integers(min_value=1, max_value=2**63 - 1),
    "FLAGS": st.lists(st.sampled_from(["\\Seen", "\\Answered", "$Label", "$Junk"]), unique=True).map(tuple),
    "EMAILID": st.from_regex(r"M[A-Za-z0-9_-]{1,20}", fullmatch=True),
    "THREADID": st.one_of(st.none(), st.from_regex(r"T[A-Za-z0-9_-]{1,20}", fullmatch=True)),
    "INTERNALDATE": st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.replace(microsecond=0)),
    "BODY[]": st.binary(max_size=40),
    "BODY[HEADER.FIELDS (X%d)]<0>": st.one_of(st.none(), st.binary(max_size=10)),
    "BINARY[1]": st.binary(max_size=10),
    "BINARY.SIZE[1]": st.integers(min_value=0, max_value=10**9),
    "ENVELOPE": st.just(s.Raw(b"(cached)")),
    "X-OTHER": st.recursive(
        st.one_of(st.none(), st.integers(0, 9), st.text(max_size=5)), st.lists, max_leaves=5
    ),
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(_values)), unique=True, max_size=8).flatmap(
    lambda names: st.tuples(st.just(names), st.tuples(*[_values[n] for n in names]))
), st.booleans())  # fmt: skip
def test_fetch_renderer_matches_generic_renderer(case: tuple, utf8_ok: bool) -> None:
    names, values = case
    renderer = s.FetchRenderer(names, utf8_ok)
    assert renderer(9, values) == s.fetch_response(9, list(zip(names, values, strict=True)), utf8_ok)


# -- ENVELOPE / BODYSTRUCTURE -----------------------------------------------------------------------------


def test_envelope_rfc_example() -> None:
    env = [
        "Wed, 17 Jul 1996 02:23:25 -0700 (PDT)",
        "IMAP4rev2 WG mtg summary and minutes",
        [["Terry Gray", None, "gray", "cac.washington.edu"]],
        [["Terry Gray", None, "gray", "cac.washington.edu"]],
        [["Terry Gray", None, "gray", "cac.washington.edu"]],
        [[None, None, "imap", "cac.washington.edu"]],
        [[None, None, "minutes", "CNRI.Reston.VA.US"], ["John Klensin", None, "KLENSIN", "MIT.EDU"]],
        None,
        None,
        "<B27397-0100000@cac.washington.edu>",
    ]
    assert envelope(env) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev2 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL '
        b'"<B27397-0100000@cac.washington.edu>")'
    )


def test_envelope_8bit_and_short_input() -> None:
    out = envelope([None, "Grüße", [], None, None, None, None, None, None, None])
    assert out == b"(NIL {7}\r\nGr\xc3\xbc\xc3\x9fe NIL NIL NIL NIL NIL NIL NIL NIL)"
    assert (
        envelope([None, "Grüße"], utf8_ok=True)
        == b'(NIL "Gr\xc3\xbc\xc3\x9fe" NIL NIL NIL NIL NIL NIL NIL NIL)'
    )


TEXT_PART = {
    "type": "TEXT", "subtype": "PLAIN", "params": [["CHARSET", "US-ASCII"]], "id": None, "description": None,
    "encoding": "7BIT", "size": 3028, "lines": 92, "md5": None, "disposition": None, "language": None,
    "location": None,
}  # fmt: skip


def test_bodystructure_single_part() -> None:
    assert (
        body_structure(TEXT_PART, extended=False)
        == b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
    )
    assert body_structure(TEXT_PART) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL)'
    )


def test_bodystructure_multipart_with_extensions() -> None:
    attachment = {
        "type": "application", "subtype": "pdf", "params": [["name", "a b.pdf"]], "encoding": "base64",
        "size": 1000, "disposition": ["attachment", [["filename", "a b.pdf"]]], "language": ["en", "de"],
        "location": "http://x/y", "md5": "Q2hlY2sgSW50ZWdyaXR5IQ==",
    }  # fmt: skip
    mixed = {
        "type": "multipart", "subtype": "mixed", "params": [["boundary", "xyz"]], "children": [TEXT_PART, attachment],
        "disposition": None, "language": "en", "location": None,
    }  # fmt: skip
    assert body_structure(mixed, extended=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92)'
        b'("application" "pdf" ("name" "a b.pdf") NIL NIL "base64" 1000) "mixed")'
    )
    assert body_structure(mixed) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92 NIL NIL NIL NIL)'
        b'("application" "pdf" ("name" "a b.pdf") NIL NIL "base64" 1000 "Q2hlY2sgSW50ZWdyaXR5IQ==" '
        b'("attachment" ("filename" "a b.pdf")) ("en" "de") "http://x/y") "mixed" ("boundary" "xyz") NIL "en" NIL)'
    )


def test_bodystructure_message_rfc822_and_odd_input() -> None:
    inner_env = [None, "inner", None, None, None, None, None, None, None, None]
    msg = {"type": "message", "subtype": "rfc822", "size": 500, "lines": 20,
           "message": {"envelope": inner_env, "part": TEXT_PART}}  # fmt: skip
    assert body_structure(msg, extended=False) == (
        b'("message" "rfc822" NIL NIL NIL "7BIT" 500 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 3028 92) 20)'
    )
    # an empty multipart still renders valid syntax (1*body)
    assert body_structure({"type": "multipart", "subtype": "mixed"}, extended=False) == (
        b'(("TEXT" "PLAIN" NIL NIL NIL "7BIT" 0 0) "mixed")'
    )
    # absurd nesting does not blow the stack
    part: dict = TEXT_PART
    for _ in range(3000):
        part = {"type": "multipart", "subtype": "mixed", "children": [part]}
    assert body_structure(part).startswith(b"((((")


def test_fetch_bodystructure_and_body_dicts() -> None:
    out = s.fetch_response(1, [("BODY", TEXT_PART), ("BODYSTRUCTURE", TEXT_PART)])
    assert out.count(b"3028 92") == 2 and b"92 NIL NIL NIL NIL)" in out


def test_parser_and_serializer_agree_on_pipelined_input() -> None:
    p = CommandParser()
    wire = b"a LOGIN " + s.astring("ü ser", False) + b" " + s.astring('p"w', False) + b"\r\n"
    events = without_continuations(p.feed(wire))
    assert events == [Command("a", "LOGIN", LoginArgs("ü ser", 'p"w'))]
