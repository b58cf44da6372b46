"""Content-Type / Content-Disposition parameters: quoted strings are values, comments are not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.mime.params import param_value, parse_content_type, parse_disposition, strip_comments
from janusmail.mime.parse import parse_message
from tests.fuzzing import examples

pytestmark = pytest.mark.fuzz


def test_parenthesis_inside_a_quoted_filename_is_kept():
    """Regression: the comment stripper ate "(1)" inside the quotes, giving "Invoice .pdf"."""
    dtype, params = parse_disposition('attachment; filename="Invoice (1).pdf"')
    assert dtype == "attachment" and params == [["filename", "Invoice (1).pdf"]]
    raw = (b"From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Type: text/plain\r\n\r\nhi\r\n--B\r\nContent-Type: application/pdf; name=\"Invoice (1).pdf\"\r\n"
           b"Content-Disposition: attachment; filename=\"Invoice (1).pdf\"\r\n\r\n%PDF\r\n--B--\r\n")
    att = parse_message(raw)["part"]["children"][1]
    assert att["jmap"]["name"] == "Invoice (1).pdf"
    assert att["disposition"] == ["attachment", [["filename", "Invoice (1).pdf"]]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("attachment (a comment); filename=x.pdf", ("attachment", [["filename", "x.pdf"]])),
        ("attachment; filename=x.pdf (a (nested) comment)", ("attachment", [["filename", "x.pdf"]])),
        ('inline (say "hi); filename="a.txt"', ("inline", [["filename", "a.txt"]])),  # a quote in a comment opens nothing
        ('attachment; filename="a \\" (b).txt"', ("attachment", [["filename", 'a " (b).txt']])),
        ("attachment; filename=x (unterminated", ("attachment", [["filename", "x (unterminated"]])),
        ('attachment; filename="(all comment-like)"', ("attachment", [["filename", "(all comment-like)"]])),
        ("attachment; filename=(c)a.txt", ("attachment", [["filename", "a.txt"]])),
    ],
)
def test_comments_outside_quotes_are_dropped(value, expected):
    assert parse_disposition(value) == expected


def test_strip_comments_handles_escapes_and_nesting():
    assert strip_comments('a(b\\)c)d"(e)"') == 'ad"(e)"'
    assert strip_comments("no comments") == "no comments"
    assert strip_comments("(((deep)))x") == "x"


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Quoted-string content: any text but CR/LF (header unfolding removes those before parameters are read).
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40)
_biased = st.lists(st.one_of(st.sampled_from(['(', ')', '"', "\\", ";", "=", " ", "'", "*"]), _values),
                   max_size=8).map("".join)


@settings(max_examples=examples(300), deadline=None)
@given(value=st.one_of(_values, _biased), kind=st.sampled_from(["attachment", "inline", "attachment (c)"]))
def test_quoted_disposition_values_round_trip(value, kind):
    dtype, params = parse_disposition(f"{kind}; filename={quote(value)}; size=3")
    assert dtype == kind.split()[0]
    assert params == [["filename", value], ["size", "3"]]


@settings(max_examples=examples(300), deadline=None)
@given(value=st.one_of(_values, _biased))
def test_quoted_content_type_values_round_trip(value):
    ctype, sub, params = parse_content_type(f"application/octet-stream; name={quote(value)}; x=y")
    assert (ctype, sub) == ("application", "octet-stream")
    assert params == [["name", value], ["x", "y"]]
    assert param_value(params, "name") == value.replace("\x00", "") or "=?" in value


@settings(max_examples=examples(300), deadline=None)
@given(st.one_of(_values, _biased))
def test_strip_comments_never_grows_and_keeps_quoted_text(value):
    out = strip_comments(value)
    assert len(out) <= len(value)
    assert strip_comments(f"x; a={quote(value)}") == f"x; a={quote(value)}"
