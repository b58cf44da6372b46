"""RFC 5256 base subject, and body content served from the cache."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from janusmail.mime.content import decode_part, find_part, part_bytes, part_headers, part_text
from janusmail.mime.htmltext import html_to_text
from janusmail.mime.parse import parse_message
from janusmail.mime.subject import MAX_SUBJECT, base_subject
from tests.mime.mime_samples import crlf


@pytest.mark.parametrize(
    ("subject", "base"),
    [
        ("test", "test"),
        ("Re: test", "test"),
        ("RE: Re: re: test", "test"),
        ("Fwd: test", "test"),
        ("Fw: test", "test"),
        ("FWD:test", "test"),
        ("Re[2]: test", "test"),
        ("Re [2] : test", "test"),
        ("Re : test", "test"),
        ("Ref: test", "Ref: test"),
        ("[PATCH] test", "test"),
        ("[list] Re: [list] Re: test", "test"),
        ("[a][b] c", "c"),
        ("[a] [b]", "[b]"),
        ("[PATCH]", "[PATCH]"),
        ("test (fwd)", "test"),
        ("test (fwd) (FWD)  ", "test"),
        ("[fwd: test]", "test"),
        ("[Fwd: Re: [list] test (fwd)]", "test"),
        ("Re: [fwd: [fwd: x]]", "x"),
        ("  lots   of\t space  ", "lots of space"),
        ("Re:", ""),
        ("", ""),
        ("Re: café", "café"),
        ("Re: Fwd: Re: Mixed Case Kept", "Mixed Case Kept"),
    ],
)
def test_base_subject(subject: str, base: str):
    assert base_subject(subject) == base


@pytest.mark.fuzz
@given(st.text(max_size=120))
def test_base_subject_is_idempotent(s: str):
    b = base_subject(s)
    assert base_subject(b) == b or b.startswith("[")


def test_base_subject_hostile_input():
    """Right answers on pathological subjects (how fast: bench/codec.py)."""
    # Subjects are cut to MAX_SUBJECT characters first, so hostile lengths cannot cost more than that.
    assert base_subject("Re: " * 50000 + "x") == ""
    assert base_subject("Re: " * 100 + "x") == "x"
    for hostile in ("[x]" * 50000, "(fwd)" * 50000, "x" + "(fwd)" * 50000):
        out = base_subject(hostile)
        assert isinstance(out, str) and len(out) <= MAX_SUBJECT


MSG = crlf(
    "Content-Type: multipart/mixed; boundary=x\n\n"
    "--x\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
    "caf=E9 soft=\nbreak\n"
    "--x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
    "aMOpbGxvCndvcmxk\n"
    "--x\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
    "aMOpbGx!!!v\n"
    "--x\nContent-Type: text/plain; charset=klingon\n\nqapla'\n"
    "--x\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\nAAEC\n/w==\n"
    "--x--\n"
)


def test_content_decoding():
    c = parse_message(MSG)
    assert part_text(MSG, find_part(c, "1")) == ("café softbreak", False)
    assert part_text(MSG, find_part(c, "2")) == ("héllo\nworld", False)
    text, problem = part_text(MSG, find_part(c, "3"))
    assert problem is True and text.startswith("h")
    assert part_text(MSG, find_part(c, "4")) == ("qapla'", True)
    p5 = find_part(c, "5")
    assert decode_part(MSG, p5) == b"\x00\x01\x02\xff"
    assert p5["jmap"]["size"] == 4 and part_bytes(MSG, p5) == b"AAEC\r\n/w=="
    assert find_part(c, "2")["jmap"]["size"] == len("héllo\nworld".encode())
    assert find_part(c, "1")["jmap"]["size"] == len(b"caf\xe9 softbreak\r\n") - 2
    assert part_headers(MSG, p5) == [
        ["Content-Type", " application/octet-stream"],
        ["Content-Transfer-Encoding", " base64"],
    ]
    assert part_headers(MSG, c["part"]) == [["Content-Type", " multipart/mixed; boundary=x"]]


def test_html_to_text():
    html = (
        "<html><head><title>T</title><style>p{x:y}</style></head><body>"
        "<script>alert(1)</script><!-- hidden --><p>Hello&nbsp;&amp; <b>world</b></p>"
        "<div>next   line</div>3 &lt; 4</body></html>"
    )
    assert html_to_text(html) == "Hello & world\nnext line\n3 < 4"
    assert html_to_text("a < b and c > d") == "a < b and c > d"
    assert html_to_text("<p>unterminated <script>x") == "unterminated"


def test_truncate_value():
    from janusmail.mime.content import truncate_value

    assert truncate_value("héllo", 0) == ("héllo", False)
    assert truncate_value("héllo", 10) == ("héllo", False)
    assert truncate_value("héllo", 2) == ("h", True)  # never half of "é"
    assert truncate_value("héllo", 3) == ("hé", True)
    assert truncate_value('<p>a <a href="x">b</a>', 10, html=True) == ("<p>a ", True)
    assert truncate_value('<p>a <a href="x">b</a>', 10) == ("<p>a <a hr", True)
