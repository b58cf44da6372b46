"""Validators for the JMAP primitive types (RFC 8620 §1.2-§1.4), shared by every data type module.

Why here: an Id, an UnsignedInt or a UTCDate must be judged the same way in Mailbox/set, Email/query and
every other method, so each module calls these rather than writing its own regex. Validators raise
``JmapTypeError`` (a ValueError); the caller chooses the JMAP error it maps to (invalidArguments for method
arguments, invalidProperties for record properties), since the same bad value means different things there.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "UNSIGNED_INT_MAX",
    "JmapTypeError",
    "check_id",
    "check_int",
    "check_unsigned_int",
    "format_date",
    "format_utc_date",
    "is_creation_ref",
    "is_id",
    "parse_date",
    "parse_utc_date",
]

INT_MAX = 2**53 - 1
INT_MIN = -(2**53) + 1
UNSIGNED_INT_MAX = 2**53 - 1

_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
# RFC 3339 date-time, uppercase T and Z only (RFC 8620 §1.4).
_DATE = re.compile(
    r"(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})T(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})"
    r"(?:\.(?P<frac>[0-9]{1,9}))?(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})"
)


class JmapTypeError(ValueError):
    """A value does not have the JMAP type it must have; the message is safe to show to the client."""


def is_id(value: Any) -> bool:
    """1-255 characters of the base64url alphabet (§1.2)."""
    return type(value) is str and _ID.fullmatch(value) is not None


def check_id(value: Any, what: str = "id") -> str:
    if not is_id(value):
        raise JmapTypeError(f"{what} must be a JMAP Id (1-255 characters of A-Za-z0-9_-)")
    return value


def is_creation_ref(value: Any) -> bool:
    """``#k1``: a reference to a record created earlier in this request (§5.3)."""
    return type(value) is str and len(value) > 1 and value[0] == "#"


def check_int(value: Any, what: str = "value", minimum: int = INT_MIN, maximum: int = INT_MAX) -> int:
    """An Int (§1.3): a JSON integer in [-2^53+1, 2^53-1]. Booleans and floats (even 5.0) are refused."""
    if type(value) is not int:
        raise JmapTypeError(f"{what} must be an integer")
    if not (max(minimum, INT_MIN) <= value <= min(maximum, INT_MAX)):
        raise JmapTypeError(f"{what} is out of range")
    return value


def check_unsigned_int(value: Any, what: str = "value", minimum: int = 0) -> int:
    """An UnsignedInt (§1.3): an integer in [0, 2^53-1]; ``minimum`` raises the floor (e.g. 1)."""
    return check_int(value, what, minimum=max(0, minimum), maximum=UNSIGNED_INT_MAX)


def _parse(value: Any, what: str) -> tuple[datetime, bool]:
    if type(value) is not str:
        raise JmapTypeError(f"{what} must be a string")
    m = _DATE.fullmatch(value)
    if m is None:
        raise JmapTypeError(f"{what} must be an RFC 3339 date-time with uppercase 'T' and offset")
    frac = m["frac"] or ""
    micro = int((frac + "000000")[:6]) if frac else 0
    tz = m["tz"]
    if tz == "Z":
        tzinfo: timezone = UTC
    else:
        hours, minutes = int(tz[1:3]), int(tz[4:6])
        if hours > 23 or minutes > 59:
            raise JmapTypeError(f"{what} has an invalid UTC offset")
        delta = timedelta(hours=hours, minutes=minutes)
        tzinfo = timezone(-delta if tz[0] == "-" else delta)
    try:
        dt = datetime(
            int(m["y"]), int(m["mo"]), int(m["d"]), int(m["h"]), int(m["mi"]), int(m["s"]), micro, tzinfo
        )
    except ValueError:
        raise JmapTypeError(f"{what} is not a valid calendar date and time") from None
    return dt, tz == "Z"


def parse_date(value: Any, what: str = "date") -> datetime:
    """A Date (§1.4): RFC 3339 with any offset; returns an aware datetime (sub-microseconds dropped).

    We accept a zero fraction such as ``.000`` on input (liberal), but never produce one.
    """
    return _parse(value, what)[0]


def parse_utc_date(value: Any, what: str = "date") -> datetime:
    """A UTCDate (§1.4): like Date but the offset MUST be ``Z``."""
    dt, is_utc = _parse(value, what)
    if not is_utc:
        raise JmapTypeError(f"{what} must be in UTC with a 'Z' suffix")
    return dt


def _as_datetime(value: datetime | int | float) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise JmapTypeError("naive datetime: give a timezone")
        return value
    return datetime.fromtimestamp(value, UTC)


def _format(dt: datetime, offset: str) -> str:
    # Not strftime: its %Y gives "999" rather than "0999" for early years on glibc.
    text = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    if dt.microsecond:
        text += "." + f"{dt.microsecond:06d}".rstrip("0")
    return text + offset


def format_utc_date(value: datetime | int | float) -> str:
    """UTCDate text: ``2014-10-30T06:12:00Z``; the store's epoch seconds may be passed as they are."""
    return _format(_as_datetime(value).astimezone(UTC), "Z")


def format_date(value: datetime) -> str:
    """Date text keeping the datetime's own offset (``Z`` when it is zero)."""
    dt = _as_datetime(value)
    off = dt.utcoffset() or timedelta(0)
    if not off:
        return _format(dt, "Z")
    total = int(off.total_seconds() // 60)
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return _format(dt, f"{sign}{total // 60:02d}:{total % 60:02d}")
