"""Offsets, section numbers, ENVELOPE and BODYSTRUCTURE fields over the raw bytes."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janusmail.mime.content import (
    find_part,
    message_header,
    message_text,
    part_bytes,
    part_headers,
    part_mime_header,
    part_text,
)
from janusmail.mime.parse import parse_message
from tests.fuzzing import examples
from tests.mime.invariants import check_cache, leaves, walk
from tests.mime.mime_samples import RFC8621_EXAMPLE, crlf, typical_message

NESTED = """From: Outer <outer@example.com>
To: you@example.com
Subject: outer
Content-Type: multipart/mixed; boundary="outer"

This is the preamble.
--outer
Content-Type: text/plain; charset=us-ascii

First part.
--outer
Content-Type: message/rfc822
Content-Description: forwarded

From: Inner <inner@example.com>
Subject: =?utf-8?q?inn=C3=A9r?=
Date: Mon, 2 Jan 2006 15:04:05 +0000
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

inner text
--inner
Content-Type: text/html

<p>inner html</p>
--inner--
--outer
Content-Type: application/octet-stream; name="data.bin"
Content-Disposition: attachment; filename="data.bin"
Content-Transfer-Encoding: base64

AAECAwQF
--outer--
epilogue
"""


@pytest.fixture(params=["crlf", "lf"])
def nested(request) -> bytes:
    return crlf(NESTED) if request.param == "crlf" else NESTED.encode()


def test_nested_sections_and_slices(nested: bytes):
    c = parse_message(nested)
    check_cache(c, nested)
    nl = b"\r\n" if b"\r\n" in nested else b"\n"
    root = c["part"]
    assert root["section"] == "" and [ch["section"] for ch in root["children"]] == ["1", "2", "3"]
    assert part_bytes(nested, find_part(c, "1")) == b"First part."
    assert (
        part_mime_header(nested, find_part(c, "1")) == b"Content-Type: text/plain; charset=us-ascii" + nl * 2
    )
    msg = find_part(c, "2")
    assert msg["type"] == "message" and msg["subtype"] == "rfc822"
    assert msg["description"] == "forwarded"
    inner_hdr = message_header(nested, msg)
    assert inner_hdr.startswith(b"From: Inner") and inner_hdr.endswith(nl * 2)
    assert message_text(nested, msg).startswith(b"--inner") and message_text(nested, msg).endswith(
        b"--inner--"
    )
    assert part_bytes(nested, msg) == inner_hdr + message_text(nested, msg)
    assert msg["lines"] == part_bytes(nested, msg).count(b"\n") + 1
    assert part_bytes(nested, find_part(c, "2.1")) == b"inner text"
    assert part_bytes(nested, find_part(c, "2.2")) == b"<p>inner html</p>"
    assert find_part(c, "2.3") is None and find_part(c, "4") is None and find_part(c, "1.1") is None
    assert find_part(c, "") is root
    att = find_part(c, "3")
    assert att["jmap"]["name"] == "data.bin" and att["jmap"]["size"] == 6 and att["size"] == 8
    assert att["encoding"] == "BASE64"
    assert att["disposition"] == ["attachment", [["filename", "data.bin"]]]
    env = msg["message"]["envelope"]
    assert env[1] == "=?utf-8?q?inn=C3=A9r?="  # IMAP: encoded words stay encoded
    assert env[2] == [["Inner", None, "inner", "example.com"]]
    assert env[3] == env[4] == env[2]
    assert env[0] == "Mon, 2 Jan 2006 15:04:05 +0000"
    assert c["attachments"] == ["2", "3"] and c["textBody"] == ["1"]


def test_single_part_message_is_section_1():
    raw = crlf("Subject: hi\n\nline one\nline two\n")
    c = parse_message(raw)
    check_cache(c, raw)
    p = c["part"]
    assert p["section"] == "1" and p["type"] == "text" and p["subtype"] == "plain"
    assert p["params"] == [["charset", "us-ascii"]]
    assert p["lines"] == 2 and p["encoding"] == "7BIT"
    assert part_bytes(raw, find_part(c, "1")) == b"line one\r\nline two\r\n"
    assert raw[p["header_start"] : p["header_end"]] == b"Subject: hi\r\n\r\n"


def test_envelope_fields_and_groups():
    raw = crlf(
        "Date: Tue, 14 May 2024 09:12:30 +0200\n"
        "Subject: =?utf-8?q?caf=C3=A9?=\n"
        'From: "Doe, John" <john@example.com>\n'
        "Reply-To: \n"
        "To: undisclosed-recipients:;\n"
        'Cc: Team: a@x.test, "B" <b@x.test>;, c@y.test\n'
        "Bcc: <@route.a,@route.b:user@host.test>\n"
        "In-Reply-To: <x@y>\n"
        "Message-ID:\n <folded@id>\n"
        "\nbody\n"
    )
    c = parse_message(raw)
    env = c["envelope"]
    assert env[0] == "Tue, 14 May 2024 09:12:30 +0200"
    assert env[1] == "=?utf-8?q?caf=C3=A9?="
    assert env[2] == [["Doe, John", None, "john", "example.com"]]
    assert env[3] == env[2]  # Sender missing -> From
    assert env[4] == env[2]  # Reply-To empty -> From
    assert env[5] == [[None, None, "undisclosed-recipients", None], [None, None, None, None]]
    assert env[6] == [
        [None, None, "Team", None],
        [None, None, "a", "x.test"],
        ["B", None, "b", "x.test"],
        [None, None, None, None],
        [None, None, "c", "y.test"],
    ]
    assert env[7] == [[None, "@route.a,@route.b", "user", "host.test"]]
    assert env[8] == "<x@y>"
    assert env[9] == "<folded@id>"
    assert c["subject"] == "café"
    assert c["to"] == []
    assert c["cc"] == [
        {"name": None, "email": "a@x.test"},
        {"name": "B", "email": "b@x.test"},
        {"name": None, "email": "c@y.test"},
    ]
    assert c["message_ids"] == ["folded@id"] and c["in_reply_to"] == ["x@y"]
    assert c["sent_at"] == 1715670750 and c["sent_offset"] == 120


def test_missing_headers_give_nil():
    raw = b"\r\njust a body\r\n"
    c = parse_message(raw)
    check_cache(c, raw)
    assert c["envelope"] == [None] * 10
    assert c["headers"] == [] and c["subject"] is None and c["from"] is None
    assert c["sent_at"] is None and c["message_ids"] == []
    assert part_bytes(raw, c["part"]) == b"just a body\r\n"


def test_raw_header_values_keep_folding_and_order():
    raw = b"X-A: one\r\nSubject: folded\r\n  more\r\nX-A:two\r\n\r\nb"
    c = parse_message(raw)
    assert c["headers"] == [["X-A", " one"], ["Subject", " folded\r\n  more"], ["X-A", "two"]]
    assert c["subject"] == "folded  more"
    assert c["envelope"][1] == "folded  more"


def test_eight_bit_headers():
    raw = (
        "From: Jörg Müller <jörg@bücher.example>\r\nSubject: Grüße ☃\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nHällo\r\n"
    ).encode() + b"X-Latin: caf\xe9\r\n"
    c = parse_message(raw)
    check_cache(c, raw)
    assert c["subject"] == "Grüße ☃"
    assert c["envelope"][1] == "Grüße ☃"
    assert c["envelope"][2] == [["Jörg Müller", None, "jörg", "bücher.example"]]
    assert c["from"] == [{"name": "Jörg Müller", "email": "jörg@bücher.example"}]
    assert part_text(raw, c["part"]) == ("Hällo\nX-Latin: caf\ufffd\n", True)
    latin = b"Subject: caf\xe9 cr\xe8me\r\n\r\nx"
    c = parse_message(latin)
    assert c["headers"] == [["Subject", " caf\ufffd cr\ufffdme"]]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n",
        b"\r\n\r\n",
        b"Subject: only a header",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary parameter",
        b"Content-Type: multipart/mixed; boundary=zz\r\n\r\nthe boundary never appears",
        b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n\r\nfirst\r\n--zz\r\nContent-Type: text/html\r\n\r\nunclosed",
        b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz--\r\n",
        b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\nx\r\n----\r\n',
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQpi\r\n",
        b'Content-Type: text/plain; charset="unclosed\r\n\r\nbody',
        b"Content-Type: /\r\nContent-Disposition: ;;;\r\nContent-Language: ,\r\n\r\nx",
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!! not base64 @@@=",
        b"\xff\xfe\x00\x01 binary junk \x00\r\n\r\n\x80\x81",
        b"From mbox-line Mon Jan  1 00:00:00 2024\nSubject: mbox\n\nbody",
    ],
)
def test_broken_input_parses(raw: bytes):
    c = parse_message(raw)
    check_cache(c, raw)
    assert c["damaged"] is False


def test_unclosed_and_outer_boundary_ends_inner_part():
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=a\n\n"
        "--a\nContent-Type: multipart/alternative; boundary=b\n\n--b\n\ninner one\n"
        "--a\n\nouter two\n--a--\n"
    )
    c = parse_message(raw)
    check_cache(c, raw)
    assert [p["section"] for p in walk(c["part"])] == ["", "1", "1.1", "2"]
    assert part_bytes(raw, find_part(c, "1.1")) == b"inner one"
    assert part_bytes(raw, find_part(c, "2")) == b"outer two"


def test_boundary_rules():
    raw = crlf(
        'Content-Type: multipart/mixed; boundary="b"\n\n'
        "--b  \t\nContent-Type: text/plain\n\nkeep --b mid-line and\n--bb is not a delimiter\n"
        "--b--\n"
    )
    c = parse_message(raw)
    assert len(c["part"]["children"]) == 1
    assert part_bytes(raw, find_part(c, "1")) == b"keep --b mid-line and\r\n--bb is not a delimiter"


def test_no_boundary_multipart_reads_as_text():
    raw = b"Content-Type: multipart/mixed\r\n\r\nhello"
    c = parse_message(raw)
    assert c["part"]["type"] == "text" and c["part"]["section"] == "1"
    assert c["preview"] == "hello"


def test_encoded_message_rfc822_is_opaque_for_imap():
    raw = b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQpi\r\n"
    c = parse_message(raw)
    p = c["part"]
    assert (p["type"], p["subtype"]) == ("application", "octet-stream") and "message" not in p
    assert p["jmap"]["type"] == "message/rfc822"


def test_digest_children_default_to_message():
    raw = crlf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody1\n--d\n\nSubject: two\n\nb2\n--d--\n"
    )
    c = parse_message(raw)
    check_cache(c, raw)
    kids = c["part"]["children"]
    assert [(k["type"], k["subtype"]) for k in kids] == [("message", "rfc822")] * 2
    assert kids[1]["message"]["envelope"][1] == "two"
    assert part_bytes(raw, find_part(c, "2.1")) == b"b2"


def test_bodystructure_extension_fields():
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=x\nContent-Language: en\n\n"
        '--x\nContent-Type: TEXT/HTML; CHARSET="ISO-8859-1"\nContent-ID: <c1@x>\n'
        "Content-Description: a page\nContent-Language: en, de\nContent-Location: http://x/y\n"
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\nContent-Disposition: inline; filename*=iso-8859-1''caf%E9.html\n"
        "Content-Transfer-Encoding: quoted-printable\n\ncaf=E9\n--x--\n"
    )
    c = parse_message(raw)
    p = find_part(c, "1")
    assert (p["type"], p["subtype"]) == ("text", "html")
    assert p["params"] == [["CHARSET", "ISO-8859-1"]]
    assert p["id"] == "<c1@x>" and p["description"] == "a page"
    assert p["language"] == ["en", "de"] and p["location"] == "http://x/y"
    assert p["md5"] == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    assert p["disposition"] == ["inline", [["filename*", "iso-8859-1''caf%E9.html"]]]
    assert p["encoding"] == "QUOTED-PRINTABLE" and p["lines"] == 1
    j = p["jmap"]
    assert j == {
        "partId": "1",
        "type": "text/html",
        "name": "café.html",
        "charset": "ISO-8859-1",
        "disposition": "inline",
        "cid": "c1@x",
        "language": ["en", "de"],
        "location": "http://x/y",
        "size": 4,
    }
    assert part_text(raw, p) == ("café", False)
    assert c["part"]["language"] == ["en"]
    assert part_headers(raw, p)[0] == ["Content-Type", ' TEXT/HTML; CHARSET="ISO-8859-1"']


def test_rfc2231_continuations_and_2047_names():
    raw = crlf(
        "Content-Type: multipart/mixed; boundary=x\n\n"
        "--x\nContent-Type: application/pdf;\n name*0*=utf-8''%E2%82%AC;\n name*1=\" rates.pdf\"\n\nA\n"
        '--x\nContent-Type: application/pdf; name="=?utf-8?b?w6TDtsO8LnBkZg==?="\n\nB\n--x--\n'
    )
    c = parse_message(raw)
    assert find_part(c, "1")["jmap"]["name"] == "€ rates.pdf"
    assert find_part(c, "2")["jmap"]["name"] == "äöü.pdf"


def test_typical_message():
    raw = typical_message()
    c = parse_message(raw)
    check_cache(c, raw)
    assert c["subject"] == "Re: [team] Planning notes für next week"
    assert c["base_subject"] == "Planning notes für next week"
    assert c["from"] == [{"name": "Björn Example", "email": "bjorn@lists.example.org"}]
    assert c["to"][1] == {"name": "Team, All", "email": "team@example.com"}
    assert c["references"] == ["20240512.QRS@example.com", "20240513.XYZ@example.com"]
    assert c["textBody"] == ["1"] and c["htmlBody"] == ["2"] and not c["hasAttachment"]
    assert c["preview"].startswith("Hi team, here are the notes") and "été" in c["search_text"]


def test_rfc8621_example_offsets():
    c = parse_message(RFC8621_EXAMPLE)
    check_cache(c, RFC8621_EXAMPLE)
    j = find_part(c, "2.4")
    assert j["message"]["part"]["section"] == "2.4.1"
    assert part_bytes(RFC8621_EXAMPLE, j["message"]["part"]) == b"J"


# ------------------------------------------------------------------ cross-check with the stdlib

_text = st.text(alphabet="abc xyz-=.:\t", min_size=0, max_size=40)


@st.composite
def _tree(draw, depth=0):
    kind = draw(st.sampled_from(["leaf", "leaf", "multi", "message"] if depth < 3 else ["leaf"]))
    if kind == "leaf":
        ctype = draw(st.sampled_from(["text/plain", "text/html", "image/png", "application/octet-stream"]))
        lines = draw(st.lists(_text, max_size=3))
        return ("leaf", ctype, lines)
    if kind == "message":
        return ("message", draw(_tree(depth + 1)))
    sub = draw(st.sampled_from(["mixed", "alternative", "related"]))
    kids = draw(st.lists(_tree(depth + 1), min_size=1, max_size=3))
    return (
        "multi",
        sub,
        kids,
        draw(_text),
        draw(_text),
        draw(st.booleans()),
        draw(st.sampled_from(["", " ", "\t "])),
    )


def _render(node, nl: str, counter: list[int]) -> str:
    if node[0] == "leaf":
        return f"Content-Type: {node[1]}{nl}{nl}" + nl.join(node[2])
    if node[0] == "message":
        return f"Content-Type: message/rfc822{nl}{nl}Subject: inner{nl}" + _render(node[1], nl, counter)
    counter[0] += 1
    b = f"bnd{counter[0]}"
    body = f'Content-Type: multipart/{node[1]}; boundary="{b}"{nl}{nl}{node[3]}{nl}'
    for k in node[2]:
        body += f"--{b}{node[6]}{nl}{_render(k, nl, counter)}{nl}"
    if node[5]:  # closed; otherwise the last part runs on to the enclosing end
        body += f"--{b}--{node[6]}{nl}"
    return body + node[4]


def _stdlib_leaves(msg) -> list[tuple[str, bytes]]:
    return [
        (p.get_content_type(), p.get_payload(decode=True) or b"") for p in msg.walk() if not p.is_multipart()
    ]


@pytest.mark.fuzz
@settings(max_examples=examples(150), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(tree=_tree(), nl=st.sampled_from(["\r\n", "\n"]))
def test_structure_agrees_with_stdlib(tree, nl):
    raw = ("From: a@b" + nl + _render(tree, nl, [0])).encode()
    ours = parse_message(raw)
    check_cache(ours, raw)
    theirs = email.message_from_bytes(raw, policy=email.policy.compat32)
    got = [(p["jmap"]["type"], part_bytes(raw, p)) for p in leaves(ours["part"])]
    assert got == _stdlib_leaves(theirs)
    assert len(got) >= 1
