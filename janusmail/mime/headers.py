"""JMAP header parsed forms (RFC 8621 §4.1.2) over a raw header value, plus header lookup.

Every function takes the raw value exactly as stored in the cache's ``headers`` list (the text
after the colon, folding kept) and never raises: unparsable input yields None or a best effort,
as the RFC asks.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import re
import unicodedata
from email.utils import _parsedate_tz

from .addresses import jmap_addresses, jmap_grouped, parse_address_list
from .charsets import decode_words

FORMS = ("asRaw", "asText", "asAddresses", "asGroupedAddresses", "asMessageIds", "asDate", "asURLs")

_ADDRESS_FIELDS = (
    "from sender reply-to to cc bcc resent-from resent-sender resent-reply-to resent-to resent-cc resent-bcc"
).split()
_MSGID_FIELDS = ("message-id", "in-reply-to", "references", "resent-message-id")
_DATE_FIELDS = ("date", "resent-date")
_URL_FIELDS = ("list-help", "list-unsubscribe", "list-subscribe", "list-post", "list-owner", "list-archive")
_TEXT_FIELDS = ("subject", "comments", "keywords", "list-id")
_OTHER_KNOWN = ("return-path", "received")  # RFC 5322 fields with no parsed form but asRaw


def _build_allowed() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = {}
    for names, form in (
        (_ADDRESS_FIELDS, "asAddresses"),
        (_ADDRESS_FIELDS, "asGroupedAddresses"),
        (_MSGID_FIELDS, "asMessageIds"),
        (_DATE_FIELDS, "asDate"),
        (_URL_FIELDS, "asURLs"),
        (_TEXT_FIELDS, "asText"),
        (_OTHER_KNOWN, "asRaw"),
    ):
        for n in names:
            table.setdefault(n, {"asRaw"}).add(form)
    # List-Id is RFC 2919, not RFC 5322/2369, so every form is allowed on it.
    table.pop("list-id", None)
    return {k: frozenset(v) for k, v in table.items()}


#: Lower-cased header name -> forms allowed on it. A name that is absent (not defined by
#: RFC 5322 or RFC 2369) allows every form. Anything else gives invalidArguments.
ALLOWED_FORMS: dict[str, frozenset[str]] = _build_allowed()


def form_allowed(name: str, form: str) -> bool:
    """May `form` (e.g. "asText") be requested on header `name`?"""
    if form not in FORMS:
        return False
    allowed = ALLOWED_FORMS.get(name.lower())
    return allowed is None or form in allowed


def header_values(headers: list[list[str]], name: str) -> list[str]:
    """Raw values of every header field called `name` (case-insensitive), in message order."""
    name = name.lower()
    return [v for n, v in headers if n.lower() == name]


def unfold(value: str) -> str:
    """RFC 5322 unfolding: drop the line breaks of folded lines (the whitespace stays)."""
    if "\n" in value or "\r" in value:
        return value.replace("\r", "").replace("\n", "")
    return value


def as_raw(value: str) -> str:
    return value


def as_text(value: str) -> str:
    """RFC 8621 asText: unfolded, leading spaces removed, well-placed RFC 2047 words decoded
    (controls they carry dropped), NFC."""
    return unicodedata.normalize("NFC", decode_words(unfold(value).lstrip(" \t"), strict=True))


def as_addresses(value: str) -> list[dict[str, str | None]]:
    return jmap_addresses(parse_address_list(unfold(value)))


def as_grouped_addresses(value: str) -> list[dict]:
    return jmap_grouped(parse_address_list(unfold(value)))


_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)", re.S)
#: a comment's content up to where it ends or cannot go on (no backtracking: the branches start differently)
_COMMENT_BODY = re.compile(r"(?:[^()\\]|\\.)*", re.S)
_ANGLE = re.compile(r"<([^<>]*)>")
_WS = re.compile(r"\s+")


def _peel_comments(s: str) -> str:
    """``_COMMENT.sub(" ", s)`` in linear time. The regex retried from every later "(" after a failed attempt,
    and an unclosed "(\\(\\(..." made that quadratic: a 64 KiB Message-ID (a delivered header, or a report's
    returned header block) cost a minute per pass. A start between a failed "(" and where its attempt stopped
    fails at that same place (each such "(" is the escaped half of a pair, so its attempt runs in step with the
    first), so the scan resumes there."""
    out: list[str] = []
    i, n = 0, len(s)
    while True:
        start = s.find("(", i)
        if start < 0:
            out.append(s[i:])
            return "".join(out)
        stop = _COMMENT_BODY.match(s, start + 1).end()  # type: ignore[union-attr]
        if stop < n and s[stop] == ")":
            out += (s[i:start], " ")
            i = stop + 1
        else:  # no comment starts in [start, stop): the next try is at stop (a "(", or nothing more)
            out.append(s[i:stop])
            i = stop


def _strip_comments(s: str) -> str:
    for _ in range(4):  # nested comments: peel a few levels, that is plenty for real mail
        if "(" not in s:
            break
        s = _peel_comments(s)
    return s


def as_message_ids(value: str) -> list[str] | None:
    """msg-id list with angle brackets and CFWS removed; None when nothing parses."""
    s = _strip_comments(unfold(value))
    ids = [_WS.sub("", m) for m in _ANGLE.findall(s)]
    ids = [i for i in ids if i]
    if ids:
        return ids
    # Bare ids without brackets (seen from broken mailers): accept tokens that look like one.
    bare = [t for t in s.split() if "@" in t and "<" not in t and ">" not in t]
    return bare or None


def parse_date(value: str) -> tuple[int, int] | None:
    """(epoch seconds, offset minutes east of UTC) for an RFC 5322 date, or None."""
    s = _strip_comments(unfold(value)).strip()
    if not s:
        return None
    try:
        t = _parsedate_tz(s)
    except Exception:  # noqa: BLE001 - stdlib raises on some garbage
        return None
    if t is None:
        return None
    y, mo, d, h, mi, sec = t[:6]
    off = t[9] or 0
    if abs(off) >= 24 * 3600 or off % 60:
        off = 0
    try:
        _dt.datetime(y, mo, d, h, mi, min(sec, 59))
    except (ValueError, OverflowError, TypeError):
        return None
    if not 1 <= y <= 9999:
        return None
    epoch = calendar.timegm((y, mo, d, h, mi, min(sec, 59), 0, 0, 0)) - off
    return epoch, off // 60


def format_rfc3339(epoch: int, offset_minutes: int = 0) -> str:
    """RFC 3339 date-time in the given offset ("Z" for zero), as JMAP's Date type wants."""
    t = _dt.datetime.fromtimestamp(epoch + offset_minutes * 60, _dt.UTC)
    base = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    if offset_minutes == 0:
        return base + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    hh, mm = divmod(abs(offset_minutes), 60)
    return f"{base}{sign}{hh:02d}:{mm:02d}"


def as_date(value: str) -> str | None:
    """RFC 3339 string with the header's own offset, or None if the date does not parse."""
    p = parse_date(value)
    if p is None:
        return None
    try:
        return format_rfc3339(*p)
    except (ValueError, OverflowError, OSError):
        return None


def as_urls(value: str) -> list[str] | None:
    """The <url> items of an RFC 2369 List-* field; None when there are none."""
    s = _strip_comments(unfold(value))
    urls = [_WS.sub("", u) for u in _ANGLE.findall(s)]
    urls = [u for u in urls if u]
    return urls or None


_DISPATCH = {
    "asRaw": as_raw,
    "asText": as_text,
    "asAddresses": as_addresses,
    "asGroupedAddresses": as_grouped_addresses,
    "asMessageIds": as_message_ids,
    "asDate": as_date,
    "asURLs": as_urls,
}


def parse_form(value: str, form: str):
    """Apply the named form (e.g. "asAddresses") to a raw value."""
    return _DISPATCH[form](value)


def header_property(headers: list[list[str]], name: str, form: str = "asRaw", all_: bool = False):
    """Value of JMAP property ``header:{name}[:{form}][:all]`` over a header list: the last
    instance (or None) without :all, every instance with it. Check `form_allowed` first."""
    fn = _DISPATCH[form]
    values = header_values(headers, name)
    if all_:
        return [fn(v) for v in values]
    return fn(values[-1]) if values else None
