"""Quoted-printable body decoding (RFC 2045 §6.7) and ENVELOPE names taken from comments (RFC 5322 §3.4).

The decoder is the stdlib's after one fix-up, so the properties pin it to ``binascii.a2b_qp`` wherever the
RFC and the stdlib agree, and check the two rules where they do not: transport padding before a line end is
deleted, and ``=`` followed by padding then a line end is a soft line break."""

from __future__ import annotations

import binascii
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.mime.addresses import imap_addresses, parse_address_list
from janusmail.mime.content import decode_body
from janusmail.mime.envelope import envelope_from_fields
from janusmail.mime.parse import parse_message
from janusmail.mime.transfer import qp_decode, qp_decoded_size
from tests.fuzzing import examples

_PADDING = st.text(alphabet=" \t", max_size=4).map(str.encode)
_NO_PADDED_EOL = re.compile(rb"[ \t](?:\r?\n|\Z)")


def test_transport_padding_is_deleted() -> None:
    assert qp_decode(b"foo \t \r\nbar  \r\n") == b"foo\r\nbar\r\n"
    assert qp_decode(b"foo  \nbar \t") == b"foo\nbar"  # bare LF lines, and the body's last line
    assert qp_decode(b"foo=20\r\n") == b"foo \r\n"  # an encoded space is data, not padding
    assert qp_decode(b"a \tb\r\n") == b"a \tb\r\n"  # white space inside a line stays


def test_equals_then_padding_is_a_soft_line_break() -> None:
    assert qp_decode(b"foo= \r\nbar") == b"foobar"
    assert qp_decode(b"foo=\t \t\r\nbar") == b"foobar"
    assert qp_decode(b"foo= \nbar") == b"foobar"
    assert binascii.a2b_qp(b"foo= \r\nbar") != b"foobar"  # why the fix-up exists


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=300))
def test_equals_stdlib_without_padding(data: bytes) -> None:
    """Where no white space ends a line the RFC and binascii agree: same output, byte for byte."""
    data = _NO_PADDED_EOL.sub(lambda m: m.group(0)[1:], data)
    while _NO_PADDED_EOL.search(data):
        data = _NO_PADDED_EOL.sub(lambda m: m.group(0)[1:], data)
    assert qp_decode(data) == binascii.a2b_qp(data)


@settings(max_examples=examples(400), deadline=None)
@given(st.binary(max_size=300), st.lists(_PADDING, min_size=1, max_size=40), st.sampled_from([b"\r\n", b"\n"]))
def test_padding_added_in_transport_changes_nothing(data: bytes, pads: list[bytes], eol: bytes) -> None:
    """Encode with the stdlib (which never leaves padding), let an MTA pad every line: the decode is the
    stdlib's decode of the unpadded text, and the windowed size agrees with it."""
    encoded = binascii.b2a_qp(data, istext=False).replace(b"\n", eol)
    lines = encoded.split(eol)
    padded = eol.join(line + pads[i % len(pads)] for i, line in enumerate(lines))
    assert qp_decode(padded) == binascii.a2b_qp(encoded) == data
    for window in (1, 7, 64):
        assert qp_decoded_size(padded, 0, len(padded), window) == len(data)


QP_MESSAGE = (
    b"From: a@example.test\r\n"
    b"Subject: qp\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"hello  \r\n"
    b"foo=\tbar\r\n"
    b"long = \r\n"
    b"line\t\r\n"
)
QP_DECODED = b"hello\r\nfoo=\tbar\r\nlong line\r\n"


def test_jmap_size_and_blob_agree_with_the_decoder() -> None:
    cache = parse_message(QP_MESSAGE)
    part = cache["part"]
    assert decode_body(QP_MESSAGE, part) == (QP_DECODED, False)
    assert part["jmap"]["size"] == len(QP_DECODED)


# -- ENVELOPE names from comments -------------------------------------------------------------------------


def test_trailing_comment_is_the_envelope_name() -> None:
    assert imap_addresses(parse_address_list("user@domain (Real Name)")) == [["Real Name", None, "user", "domain"]]
    # a phrase wins over a comment; a comment inside the address is not a name; encoded words stay encoded
    assert imap_addresses(parse_address_list("Phrase <u@d> (c)")) == [["Phrase", None, "u", "d"]]
    assert imap_addresses(parse_address_list("u(x)@d")) == [[None, None, "u", "d"]]
    assert imap_addresses(parse_address_list("u@d (=?utf-8?q?J=C3=B6rg?=)")) == [
        ["=?utf-8?q?J=C3=B6rg?=", None, "u", "d"]
    ]
    assert imap_addresses(parse_address_list("u@d ()")) == [[None, None, "u", "d"]]


def test_sender_and_reply_to_inherit_the_comment_name() -> None:
    env = envelope_from_fields([(b"From", b"user@domain (Real Name)")])
    assert env[2] == env[3] == env[4] == [["Real Name", None, "user", "domain"]]
