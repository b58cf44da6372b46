"""Modified UTF-7 (RFC 3501 §5.1.3): known vectors, strict canonical decoding, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import mutf7
from tests.fuzzing import examples

pytestmark = pytest.mark.fuzz

VECTORS = [
    ("INBOX", "INBOX"),
    ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ("Entwürfe", "Entw&APw-rfe"),
    ("A&B", "A&-B"),
    ("&", "&-"),
    ("Ünïcödé", "&ANw-n&AO8-c&APY-d&AOk-"),
    ("😀", "&2D3eAA-"),
    ("tab\there", "tab&AAk-here"),
    ("", ""),
]


@pytest.mark.parametrize(("text", "wire"), VECTORS)
def test_vectors(text: str, wire: str) -> None:
    assert mutf7.encode(text) == wire
    assert mutf7.decode(wire) == text


@pytest.mark.parametrize(
    "wire",
    [
        "&",  # unterminated
        "&U,BTFw",  # unterminated
        "&U,BTFw-&ZeVnLIqe-",  # two adjacent shifts: not canonical
        "&AGE-",  # "a" encoded: printable ASCII must stand for itself
        "&AEE-",
        "&U/BTFw-",  # "/" instead of ","
        "&U,BTFx-",  # non-zero padding bits
        "&2D0-",  # lone high surrogate
        "&A-",  # too short
        "&AAA=-",  # padding is not used
        "ä",  # raw 8-bit is not modified UTF-7
        "tab\there",  # raw control character
        "&-&-" + "\x7f",
    ],
)
def test_strict_decode_rejects(wire: str) -> None:
    with pytest.raises(ValueError):
        mutf7.decode(wire)


def test_encode_rejects_lone_surrogate() -> None:
    with pytest.raises(ValueError):
        mutf7.encode("a\ud800b")


_names = st.text(st.characters(blacklist_categories=["Cs"]), max_size=40)


@settings(max_examples=examples(500), deadline=None)
@given(_names)
def test_roundtrip(text: str) -> None:
    wire = mutf7.encode(text)
    assert wire.isascii() and all("\x20" <= c <= "\x7e" for c in wire)
    assert mutf7.decode(wire) == text


@settings(max_examples=examples(500), deadline=None)
@given(st.text(st.sampled_from("&-ABCabc+,/019 AGEU"), max_size=30))
def test_decode_is_canonical_or_raises(wire: str) -> None:
    try:
        text = mutf7.decode(wire)
    except ValueError:
        return
    assert mutf7.encode(text) == wire
