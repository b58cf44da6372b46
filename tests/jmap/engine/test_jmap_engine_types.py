"""JMAP primitive type validators (RFC 8620 §1.2-§1.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from janusmail.jmap.engine.types import (
    INT_MAX,
    INT_MIN,
    JmapTypeError,
    check_id,
    check_int,
    check_unsigned_int,
    format_date,
    format_utc_date,
    is_creation_ref,
    is_id,
    parse_date,
    parse_utc_date,
)


@pytest.mark.parametrize("value", ["a", "A-_9", "x" * 255, "Mabc123"])
def test_ids_accepted(value: str) -> None:
    assert is_id(value) and check_id(value) == value


@pytest.mark.parametrize("value", ["", "x" * 256, "a b", "a=", "é", "#k1", 5, None, "a\n"])
def test_ids_refused(value: object) -> None:
    assert not is_id(value)
    with pytest.raises(JmapTypeError):
        check_id(value)


def test_creation_ref() -> None:
    assert is_creation_ref("#k1") and not is_creation_ref("#") and not is_creation_ref("k1")


def test_int_ranges() -> None:
    assert check_int(INT_MAX) == INT_MAX and check_int(INT_MIN) == INT_MIN
    for bad in (INT_MAX + 1, INT_MIN - 1, True, 1.0, "1", None):
        with pytest.raises(JmapTypeError):
            check_int(bad)
    assert check_unsigned_int(0) == 0
    with pytest.raises(JmapTypeError):
        check_unsigned_int(-1)
    with pytest.raises(JmapTypeError):
        check_unsigned_int(0, minimum=1)


def test_utc_date_parse_and_format() -> None:
    dt = parse_utc_date("2014-10-30T06:12:00Z")
    assert dt == datetime(2014, 10, 30, 6, 12, tzinfo=UTC)
    assert format_utc_date(dt) == "2014-10-30T06:12:00Z"
    assert format_utc_date(parse_utc_date("2014-10-30T06:12:00.000Z")) == "2014-10-30T06:12:00Z"
    assert format_utc_date(parse_utc_date("2014-10-30T06:12:00.250Z")) == "2014-10-30T06:12:00.25Z"
    assert format_utc_date(0) == "1970-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "value",
    [
        "2014-10-30t06:12:00Z",
        "2014-10-30T06:12:00z",
        "2014-10-30 06:12:00Z",
        "2014-13-01T00:00:00Z",
        "2014-02-30T00:00:00Z",
        "2014-10-30T24:00:00Z",
        "2014-10-30T06:12:60Z",
        "2014-10-30T06:12Z",
        "2014-10-30T06:12:00",
        "2014-10-30T06:12:00+01:00",  # a UTCDate must use Z
        "",
        None,
        20141030,
    ],
)
def test_utc_date_refused(value: object) -> None:
    with pytest.raises(JmapTypeError):
        parse_utc_date(value)


def test_date_with_offsets() -> None:
    dt = parse_date("2014-10-30T14:12:00+08:00")
    assert dt.utcoffset() == timedelta(hours=8)
    assert format_date(dt) == "2014-10-30T14:12:00+08:00"
    assert format_date(parse_date("2014-10-30T06:12:00-05:30")) == "2014-10-30T06:12:00-05:30"
    assert format_date(parse_date("2014-10-30T06:12:00+00:00")) == "2014-10-30T06:12:00Z"
    with pytest.raises(JmapTypeError):
        parse_date("2014-10-30T06:12:00+24:00")
    with pytest.raises(JmapTypeError):
        format_utc_date(datetime(2020, 1, 1))  # naive


@given(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)))
def test_utc_round_trip(dt: datetime) -> None:
    text = format_utc_date(dt)
    assert text.endswith("Z") and "T" in text
    if "." in text:  # a fraction is only written when non-zero, without trailing zeros
        assert not text[:-1].endswith("0")
    assert parse_utc_date(text) == dt


@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_date_round_trip(naive: datetime, minutes: int) -> None:
    dt = naive.replace(tzinfo=timezone(timedelta(minutes=minutes)))
    assert parse_date(format_date(dt)) == dt
