"""parse_message must accept anything: arbitrary bytes and damaged versions of real-looking mail."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janusmail.mime.content import decode_part, find_part, part_headers, part_text
from janusmail.mime.parse import parse_message
from tests.fuzzing import examples
from tests.mime.invariants import check_cache, walk
from tests.mime.mime_samples import RFC8621_EXAMPLE, typical_message

pytestmark = pytest.mark.fuzz

SEEDS = [
    RFC8621_EXAMPLE,
    typical_message(),
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
    b"Subject: x\r\nContent-Type: multipart/alternative; boundary=c\r\n\r\n--c\r\n\r\nt\r\n--c--\r\n--b--\r\n",
    b"From: =?utf-8?q?=E2=82=AC?= <a@b>\nSubject: =?bogus?b?////?=\nContent-Type: text/plain; charset=utf-7\n"
    b"Content-Transfer-Encoding: quoted-printable\n\n+2D3dAA- =ZZ =\n",
]

# Bytes that matter to the grammar, so mutations hit interesting places often.
_INTERESTING = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"\r",
        b"--",
        b"--b",
        b"--c--",
        b":",
        b";",
        b"=?",
        b"?=",
        b"\x00",
        b"\xff",
        b'"',
        b"<",
        b">",
        b"(",
        b" ",
    ]
)


def _exercise(raw: bytes) -> None:
    c = parse_message(raw)
    check_cache(c, raw)
    for p in walk(c["part"]):
        assert find_part(c, p["section"]) is not None
        data = decode_part(raw, p)
        if "children" not in p:
            assert len(data) == p["jmap"]["size"]
        text, problem = part_text(raw, p)
        assert isinstance(text, str) and isinstance(problem, bool)
        part_headers(raw, p)


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(raw: bytes):
    _exercise(raw)


@st.composite
def _mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "dup"]))
        pos = draw(st.integers(0, len(data)))
        if op == "insert":
            data[pos:pos] = draw(st.one_of(_INTERESTING, st.binary(min_size=1, max_size=8)))
        elif op == "delete":
            data[pos : pos + draw(st.integers(1, 20))] = b""
        elif op == "replace" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[pos:]
        elif op == "dup":
            n = draw(st.integers(1, 60))
            data[pos:pos] = data[pos : pos + n]
    return bytes(data)


@settings(max_examples=examples(400), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_mutated())
def test_mutated_messages(raw: bytes):
    _exercise(raw)


@settings(max_examples=examples(100), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_headers(s: str):
    raw = ("From: " + s + "\r\nTo: " + s + "\r\nSubject: " + s + "\r\nDate: " + s + "\r\n\r\nbody").encode(
        "utf-8", "surrogatepass"
    )
    _exercise(raw)


def test_deep_nesting_is_bounded():
    depth = 400
    head = "".join(f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(depth))
    raw = (head + "leaf\r\n").encode()
    c = parse_message(raw)
    check_cache(c, raw)
    raw2 = b"Content-Type: message/rfc822\r\n\r\n" * 400 + b"x"
    check_cache(parse_message(raw2), raw2)


def test_many_parts_is_bounded():
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 20000 + b"--b--\r\n"
    c = parse_message(raw)
    check_cache(c, raw)
    assert len(c["part"]["children"]) <= 5000
