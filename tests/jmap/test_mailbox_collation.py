"""The RFC 4790 collations Mailbox/query (and the Session) offer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from janusmail.jmap import collation
from janusmail.jmap.settings import COLLATIONS


def test_every_advertised_collation_is_implemented():
    for name in COLLATIONS:
        assert collation.supported(name)
        collation.key_function(name)("x")
    assert not collation.supported("i;klingon")


def test_ascii_numeric():
    key = collation.key_function("i;ascii-numeric")
    assert sorted(["10", "9", "abc", "2x", "010"], key=key) == ["2x", "9", "10", "010", "abc"]


def test_casemaps():
    assert collation.key_function("i;ascii-casemap")("ABC") == collation.key_function("i;ascii-casemap")("abc")
    assert collation.key_function("i;ascii-casemap")("É") != collation.key_function("i;ascii-casemap")("é")
    uni = collation.key_function("i;unicode-casemap")
    assert uni("É") == uni("é") == uni("e\u0301")
    assert collation.contains("Straße Nord", "STRASSE")
    assert not collation.contains("abc", "ABC", "i;octet")
    assert collation.contains("Inbox", "BOX", "i;ascii-casemap")


@given(st.lists(st.text(max_size=8), max_size=20), st.sampled_from(COLLATIONS))
def test_keys_sort_any_text(values, name):
    key = collation.key_function(name)
    out = sorted(values, key=key)
    assert sorted(out, key=key) == out and len(out) == len(values)
