"""JMAP header forms (RFC 8621 §4.1.2), address parsing, RFC 2047 and charsets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from janusmail.mime.addresses import _fast, imap_addresses, parse_address_list, parse_full
from janusmail.mime.charsets import decode_text, decode_words
from janusmail.mime.headers import (
    ALLOWED_FORMS,
    as_addresses,
    as_date,
    as_grouped_addresses,
    as_message_ids,
    as_raw,
    as_text,
    as_urls,
    form_allowed,
    header_property,
    header_values,
    parse_date,
)

pytestmark = pytest.mark.fuzz


def test_as_text_unfolds_decodes_and_normalises():
    assert as_text(" =?utf-8?q?caf=C3=A9?=\r\n =?utf-8?q?_au_lait?= ok ") == "café au lait ok "
    assert (
        as_text(" glued=?utf-8?q?x?= =?utf-8?q?a b?= =?utf-8?q?y?=") == "glued=?utf-8?q?x?= =?utf-8?q?a b?= y"
    )
    assert as_text(" =?utf-8?q?line=0Abreak?=") == "linebreak"
    assert as_text(" e\u0301t\u0301") == "ét\u0301"  # NFC composes what it can
    assert as_text(" plain\r\n\tfolded") == "plain\tfolded"
    assert as_raw(" x\r\n y") == " x\r\n y"


def test_rfc2047_details():
    # adjacent words: whitespace between them disappears, and split UTF-8 sequences are rejoined
    assert decode_words("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=") == "€"
    assert decode_words("a =?iso-8859-1?q?caf=E9?= b") == "a café b"
    assert decode_words("=?utf-8*en?b?SGk=?=") == "Hi"
    assert decode_words("=?x-unknown?q?abc?=") == "abc"
    assert decode_words("=?utf-8?b?!!bad!!?=") == decode_words("=?utf-8?b?!!bad!!?=")  # no exception
    assert decode_words("=?utf-8?q?nul=00byte?=") == "nulbyte"
    assert decode_words("not =? encoded") == "not =? encoded"


def test_charsets():
    assert decode_text(b"caf\xe9", "iso-8859-1") == ("café", False)
    assert decode_text(b"\x80", "iso-8859-1") == ("€", False)  # windows-1252 reading
    assert decode_text(b"\x81", "iso-8859-1") == ("\x81", False)
    assert decode_text("日本".encode("shift_jis"), "Shift_JIS") == ("日本", False)
    assert decode_text(b"abc", "no-such-charset") == ("abc", True)
    assert decode_text(b"\xff", "utf-8") == ("\ufffd", True)
    assert decode_text(b"x", "zlib") == ("x", True)  # not a text codec: refused
    assert decode_text(b"+2D3dAA-", "utf-7")[0].encode("utf-8")  # no lone surrogates


def test_as_addresses_and_groups():
    v = ' "Doe, J." <j@x.test>, =?utf-8?q?J=C3=B6rg?= <jorg@x.test>, g: a@x.test, (c) b@x.test;, bare@y.test (Bare Name)'
    assert as_addresses(v) == [
        {"name": "Doe, J.", "email": "j@x.test"},
        {"name": "Jörg", "email": "jorg@x.test"},
        {"name": None, "email": "a@x.test"},
        {"name": None, "email": "b@x.test"},
        {"name": "Bare Name", "email": "bare@y.test"},
    ]
    assert as_grouped_addresses(v) == [
        {
            "name": None,
            "addresses": [{"name": "Doe, J.", "email": "j@x.test"}, {"name": "Jörg", "email": "jorg@x.test"}],
        },
        {
            "name": "g",
            "addresses": [{"name": None, "email": "a@x.test"}, {"name": None, "email": "b@x.test"}],
        },
        {"name": None, "addresses": [{"name": "Bare Name", "email": "bare@y.test"}]},
    ]
    assert as_addresses(' "john doe"@x.test') == [{"name": None, "email": '"john doe"@x.test'}]
    assert as_addresses(" undisclosed-recipients:;") == []
    assert as_addresses(" ") == []
    assert as_addresses(" <>") == [{"name": None, "email": ""}]
    assert as_addresses(" garbage without at") == [{"name": None, "email": "garbage without at"}]


def test_imap_address_forms():
    assert imap_addresses(parse_address_list("a")) == [[None, None, "a", ".MISSING-HOST-NAME."]]
    assert imap_addresses(parse_address_list('"q\\"uote" <x@y>')) == [['q"uote', None, "x", "y"]]
    assert imap_addresses(parse_address_list("")) is None
    assert imap_addresses(parse_address_list("Unclosed <x@y")) == [["Unclosed", None, "x", "y"]]
    assert imap_addresses(parse_address_list("g: x@y")) == [
        [None, None, "g", None],
        [None, None, "x", "y"],
        [None] * 4,
    ]


_ADDR_ALPHABET = st.sampled_from(list("ab.@<>, \t=?xé\xa0") + ["\r\n "])


@given(st.lists(_ADDR_ALPHABET, max_size=40).map("".join))
def test_fast_path_agrees_with_full_parser(value: str):
    fast = _fast(value)
    if fast is not None:
        assert fast == parse_full(value)


def test_message_ids():
    assert as_message_ids(" <a@b>\r\n <c@d> (comment) < e @ f >") == ["a@b", "c@d", "e@f"]
    assert as_message_ids(" bare@id") == ["bare@id"]
    assert as_message_ids(" nothing here") is None
    assert as_message_ids("") is None


def test_dates():
    assert as_date(" Tue, 14 May 2024 09:12:30 +0200") == "2024-05-14T09:12:30+02:00"
    assert as_date(" 14 May 2024 09:12 -0000") == "2024-05-14T09:12:00Z"
    assert as_date(" Tue, 14 May 24 09:12:30 EST (Eastern)") == "2024-05-14T09:12:30-05:00"
    assert as_date(" Mon, 31 Feb 2024 09:12:30 +0000") is None
    assert as_date(" yesterday") is None
    assert parse_date(" Thu, 1 Jan 1970 00:00:00 +0000") == (0, 0)
    assert parse_date(" Thu, 1 Jan 1970 01:30:00 +0130") == (0, 90)


def test_urls():
    assert as_urls(" <mailto:a@b>, (c) <https://x/y>") == ["mailto:a@b", "https://x/y"]
    assert as_urls(" none") is None


def test_allowed_forms():
    assert form_allowed("Subject", "asText") and form_allowed("subject", "asRaw")
    assert not form_allowed("Subject", "asAddresses")
    assert form_allowed("From", "asGroupedAddresses") and not form_allowed("From", "asText")
    assert form_allowed("Resent-Message-ID", "asMessageIds") and not form_allowed("Date", "asURLs")
    assert form_allowed("List-Post", "asURLs") and not form_allowed("List-Post", "asText")
    assert form_allowed("Received", "asRaw") and not form_allowed("Received", "asText")
    assert form_allowed("X-Custom", "asDate") and form_allowed("List-Id", "asAddresses")
    assert not form_allowed("X-Custom", "asBogus")
    assert "list-id" not in ALLOWED_FORMS


def test_header_lookup():
    headers = [["X-A", " 1"], ["x-a", " 2"], ["Subject", " s"]]
    assert header_values(headers, "X-a") == [" 1", " 2"]
    assert header_property(headers, "X-A") == " 2"  # the last instance
    assert header_property(headers, "X-A", all_=True) == [" 1", " 2"]
    assert header_property(headers, "Missing") is None
    assert header_property(headers, "Missing", all_=True) == []
    assert header_property(headers, "subject", "asText") == "s"


@pytest.mark.parametrize(
    "fn", [as_text, as_addresses, as_grouped_addresses, as_message_ids, as_date, as_urls]
)
@given(value=st.text(max_size=200))
def test_forms_never_raise(fn, value):
    fn(value)
