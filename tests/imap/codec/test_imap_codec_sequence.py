"""SequenceSet / NumberSet: parsing, `*` and `$`, resolution by ranges, membership."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import NumberSet, SequenceSet
from tests.fuzzing import examples

pytestmark = pytest.mark.fuzz


def test_parse_and_to_string() -> None:
    for text in ["1", "*", "1:*", "*:4", "2,4:7,9,12:*", "$", "4294967295"]:
        assert SequenceSet.parse(text).to_string() == text


@pytest.mark.parametrize(
    "text",
    ["", "0", "1:0", "01", ",1", "1,", "1::2", "a", "1:2:3", "$,1", "1,$", "4294967296", "-1", "1 2", "**"],
)
def test_invalid_sets(text: str) -> None:
    with pytest.raises(ValueError):
        SequenceSet.parse(text)


def test_resolve_star_and_unordered_ranges() -> None:
    assert SequenceSet.parse("1:*").resolve(5).ranges == ((1, 5),)
    assert SequenceSet.parse("*").resolve(5).ranges == ((5, 5),)
    assert SequenceSet.parse("4:2").resolve(10).ranges == ((2, 4),)
    # RFC 9051: "n:*" with n above the largest number still covers the largest one
    assert SequenceSet.parse("10:*").resolve(7).ranges == ((7, 7),)
    assert SequenceSet.parse("10:20").resolve(7).ranges == ()
    assert SequenceSet.parse("1:*").resolve(0).ranges == ()
    assert SequenceSet.parse("3,1,2,7:9,8").resolve(100).ranges == ((1, 3), (7, 9))


def test_saved_result() -> None:
    saved = NumberSet.from_numbers([2, 3, 4, 10, 99])
    s = SequenceSet.parse("$")
    assert s.is_saved and s.items == ()
    assert s.resolve(50, saved).ranges == ((2, 4), (10, 10))
    assert s.resolve(50).ranges == ()  # nothing saved: empty set (RFC 5182)


def test_max_number_for_sequence_range_checks() -> None:
    assert SequenceSet.parse("1:*,7").max_number() == 7
    assert SequenceSet.parse("*").max_number() is None
    assert SequenceSet.parse("1:*").uses_star and not SequenceSet.parse("1:4").uses_star


def test_numberset_behaviour() -> None:
    ns = NumberSet([(5, 3), (7, 7), (8, 9), (20, 25)])
    assert ns.ranges == ((3, 5), (7, 9), (20, 25))
    assert len(ns) == 12 and list(ns)[:4] == [3, 4, 5, 7]
    assert 7 in ns and 6 not in ns and 25 in ns and 26 not in ns and 0 not in ns and "7" not in ns
    assert ns.to_string() == "3:5,7:9,20:25" and ns.min == 3 and ns.max == 25
    assert not NumberSet() and NumberSet().to_string() == ""
    assert SequenceSet.of([5, 1, 2, 3]).to_string() == "1:3,5"


def test_one_to_star_on_a_huge_mailbox_stays_a_range() -> None:
    """A range, never an expanded list: that is what keeps it cheap (the time is in bench/codec.py)."""
    ns = SequenceSet.parse("1:*").resolve(100_000)
    assert 99_999 in ns
    assert ns.ranges == ((1, 100_000),) and len(ns) == 100_000
    assert SequenceSet.parse("1:4294967295").resolve(4294967295).ranges == ((1, 4294967295),)


_bound = st.one_of(st.none(), st.integers(min_value=1, max_value=60))


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(_bound, _bound), min_size=1, max_size=8), st.integers(min_value=0, max_value=70))
def test_resolve_matches_naive_expansion(items: list, largest: int) -> None:
    s = SequenceSet(items)
    assert SequenceSet.parse(s.to_string()) == s
    naive = set()
    for a, b in items:
        x = largest if a is None else a
        y = largest if b is None else b
        naive.update(n for n in range(min(x, y), max(x, y) + 1) if 1 <= n <= largest)
    resolved = s.resolve(largest)
    assert set(resolved) == naive and len(resolved) == len(naive)
    for n in range(0, 75):
        assert (n in resolved) == (n in naive) == s.contains(n, largest)


@settings(max_examples=examples(200), deadline=None)
@given(st.sets(st.integers(min_value=1, max_value=500)))
def test_numberset_from_numbers_roundtrip(numbers: set[int]) -> None:
    ns = NumberSet.from_numbers(numbers)
    assert set(ns) == numbers
    if numbers:
        assert set(SequenceSet.parse(ns.to_string()).resolve(500)) == numbers
