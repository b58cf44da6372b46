"""Token reader over one fully framed command.

The framer (:mod:`.parser`) delivers a command as its text with every literal replaced by a single NUL
byte (NUL is forbidden in IMAP command text, so it cannot clash) plus the literal payloads in order. The
grammar then reads it with regexes anchored at a position, which is both simple and fast.

The same reader validates a *prefix* of a command (``partial=True``) when a literal header arrives: running
out of input raises :class:`Incomplete` ("fine so far") instead of a syntax error. This lets the parser
refuse a broken command before the client sends the literal's data.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from typing import Any, TypeVar

from .sequence import MAX_NUMBER, SequenceSet

__all__ = ["Cursor", "Incomplete", "SyntaxFault", "canonical_flag"]

MAX_NUMBER64 = 2**63 - 1
T = TypeVar("T")

_ATOM_RE = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_ASTRING_RE = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\]+')
_TAG_RE = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+')
_LIST_RE = re.compile(rb'[^\x00-\x20\x7f-\xff(){"\\]+')
_FLAG_RE = re.compile(rb'\\?[^\x00-\x20\x7f-\xff(){%*"\\\]]+')
_DIGITS_RE = re.compile(rb"[0-9]+")
_QUOTED_RE = re.compile(rb'"((?:[^"\\\r\n\x00]|\\["\\])*)"')
_UNESCAPE_RE = re.compile(rb"\\(.)")
_SEQSET_RE = re.compile(rb"[0-9*:,$]+")
_DATE_RE = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})")
_DATE_TIME_RE = re.compile(
    rb'"([ 0-9]?[0-9])-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"'
)

MONTHS = {
    b"JAN": 1, b"FEB": 2, b"MAR": 3, b"APR": 4, b"MAY": 5, b"JUN": 6,
    b"JUL": 7, b"AUG": 8, b"SEP": 9, b"OCT": 10, b"NOV": 11, b"DEC": 12,
}  # fmt: skip

_SYSTEM_FLAGS = {
    f.lower(): f
    for f in (
        "\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent",
        # mailbox attributes (RFC 6154, RFC 8457) share the backslash namespace
        "\\All", "\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash", "\\Important",
    )
}  # fmt: skip


def canonical_flag(flag: str) -> str:
    """``\\SEEN`` -> ``\\Seen``; keywords and unknown ``\\Ext`` flags are returned unchanged."""
    if flag.startswith("\\"):
        return _SYSTEM_FLAGS.get(flag.lower(), flag)
    return flag


class Incomplete(Exception):
    """The input ended where more was required; in prefix mode this means "valid so far"."""


class SyntaxFault(Exception):
    """A definite syntax error, carrying the response code and status the session should send."""

    def __init__(self, text: str, code: str | None = "CLIENTBUG", status: str = "BAD") -> None:
        super().__init__(text)
        self.text = text
        self.code = code
        self.status = status


class Cursor:
    """Position-based reader. Every method either consumes a token or raises."""

    __slots__ = ("buf", "pos", "end", "lits", "lit_at", "partial", "depth", "max_depth", "charset")

    def __init__(
        self, buf: bytes, lits: list[tuple[Any, bool]], *, partial: bool = False, max_depth: int = 32
    ) -> None:
        self.buf = buf
        self.pos = 0
        self.end = len(buf)
        self.lits = lits
        self.lit_at: dict[int, int] = {}
        i = -1
        for n in range(len(lits)):
            i = buf.find(b"\x00", i + 1)
            self.lit_at[i] = n
        self.partial = partial
        self.depth = 0
        self.max_depth = max_depth
        self.charset = "utf-8"

    # -- basic movement -------------------------------------------------------------------------------

    def fail(self, text: str) -> SyntaxFault:
        return SyntaxFault(text)

    def eof(self, what: str) -> Exception:
        if self.partial:
            return Incomplete()
        return SyntaxFault(f"Missing {what}")

    def peek(self) -> int:
        """Next byte, or -1 at the end."""
        return self.buf[self.pos] if self.pos < self.end else -1

    def at_end(self) -> bool:
        return self.pos >= self.end

    def sp(self) -> None:
        if self.pos >= self.end:
            raise self.eof("argument")
        if self.buf[self.pos] != 0x20:
            raise self.fail("Expected a single space")
        self.pos += 1

    def extra_spaces(self) -> None:
        """Skip further spaces where a known client sends more than one (imapclient's MULTIAPPEND)."""
        while self.pos < self.end and self.buf[self.pos] == 0x20:
            self.pos += 1

    def expect(self, char: bytes) -> None:
        if self.pos >= self.end:
            raise self.eof(repr(char.decode()))
        if self.buf[self.pos] != char[0]:
            raise self.fail(f"Expected {char.decode()!r}")
        self.pos += 1

    def maybe(self, char: bytes) -> bool:
        if self.pos < self.end and self.buf[self.pos] == char[0]:
            self.pos += 1
            return True
        return False

    def finish(self) -> None:
        """The command must end here."""
        if self.pos < self.end:
            raise self.fail("Unexpected extra arguments")

    def token(self, regex: re.Pattern[bytes], what: str) -> bytes:
        m = regex.match(self.buf, self.pos)
        if m is None or m.end() == self.pos:
            if self.pos >= self.end:
                raise self.eof(what)
            raise self.fail(f"Expected {what}")
        self.pos = m.end()
        return m.group()

    def open(self) -> None:
        """Consume ``(`` and count nesting, so hostile input cannot exhaust the stack."""
        self.expect(b"(")
        self.enter()

    def close(self) -> None:
        self.expect(b")")
        self.depth -= 1

    def enter(self) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise SyntaxFault("Too deeply nested", code="LIMIT")

    def leave(self) -> None:
        self.depth -= 1

    def paren_list(self, item: Callable[[], T], *, allow_empty: bool = False) -> list[T]:
        """``"(" item *(SP item) ")"`` (or ``"()"`` when ``allow_empty``)."""
        self.open()
        out: list[T] = []
        if self.maybe(b")"):
            if not allow_empty:
                raise self.fail("Empty list")
        else:
            out.append(item())
            while not self.maybe(b")"):
                self.sp()
                out.append(item())
        self.depth -= 1
        return out

    # -- tokens -------------------------------------------------------------------------------------------

    def tag(self) -> str:
        return self.token(_TAG_RE, "tag").decode("ascii")

    def atom(self, what: str = "atom") -> str:
        return self.token(_ATOM_RE, what).decode("ascii")

    def keyword(self, what: str = "keyword") -> str:
        return self.token(_ATOM_RE, what).decode("ascii").upper()

    def try_keyword(self, word: str) -> bool:
        """Consume ``word`` (case-insensitive) if it is the whole next atom."""
        m = _ATOM_RE.match(self.buf, self.pos)
        if m is not None and m.group().upper() == word.encode("ascii"):
            self.pos = m.end()
            return True
        return False

    def number(self, what: str = "number", *, low: int = 0, high: int = MAX_NUMBER) -> int:
        digits = self.token(_DIGITS_RE, what)
        if len(digits) > 19 or not low <= int(digits) <= high:
            raise self.fail(f"{what} out of range")
        return int(digits)

    def nz_number(self, what: str = "number") -> int:
        return self.number(what, low=1)

    def number64(self, what: str = "number", *, low: int = 0) -> int:
        return self.number(what, low=low, high=MAX_NUMBER64)

    def literal(self, allow8: bool = False) -> tuple[Any, bool]:
        """A literal at the cursor: (data, was_literal8). ``data`` is bytes, or the sink a large literal was
        streamed into (only meaningful where a message is expected)."""
        if self.pos >= self.end:
            raise self.eof("literal")
        idx = self.lit_at.get(self.pos)
        if idx is None:
            raise self.fail("Expected literal")
        data, is8 = self.lits[idx]
        if is8 and not allow8:
            raise self.fail("literal8 is not allowed here")
        self.pos += 1
        return data, is8

    def string_bytes(self) -> bytes:
        """``string`` = quoted / literal, as raw octets."""
        c = self.peek()
        if c == 0x22:
            m = _QUOTED_RE.match(self.buf, self.pos)
            if m is None:
                raise self.fail("Invalid quoted string")
            self.pos = m.end()
            raw = m.group(1)
            return _UNESCAPE_RE.sub(rb"\1", raw) if b"\\" in raw else raw
        if c == 0:
            data = self.literal()[0]
            if not isinstance(data, bytes):  # streamed to a sink: only a message may be that large
                raise self.fail("Literal too large here")
            return data
        if c < 0:
            raise self.eof("string")
        raise self.fail("Expected quoted string or literal")

    def decode(self, raw: bytes, charset: str = "utf-8") -> str:
        try:
            return raw.decode(charset)
        except UnicodeDecodeError:
            raise self.fail(f"String is not valid {charset}") from None

    def string(self) -> str:
        return self.decode(self.string_bytes())

    def astring(self, what: str = "string") -> str:
        c = self.peek()
        if c == 0x22 or c == 0:
            return self.string()
        return self.token(_ASTRING_RE, what).decode("ascii")

    def search_string(self) -> str:
        """An astring in the SEARCH charset (RFC 9051 §6.4.4)."""
        c = self.peek()
        if c == 0x22 or c == 0:
            return self.decode(self.string_bytes(), self.charset)
        return self.token(_ASTRING_RE, "search string").decode("ascii")

    def nstring(self) -> str | None:
        c = self.peek()
        if c == 0x22 or c == 0:
            return self.string()
        if self.keyword("string or NIL") != "NIL":
            raise self.fail("Expected string or NIL")
        return None

    def mailbox(self) -> str:
        name = self.astring("mailbox name")
        return "INBOX" if name.upper() == "INBOX" else name

    def list_mailbox(self) -> str:
        c = self.peek()
        if c == 0x22 or c == 0:
            return self.string()
        return self.token(_LIST_RE, "mailbox pattern").decode("ascii")

    def flag(self) -> str:
        return canonical_flag(self.token(_FLAG_RE, "flag").decode("ascii"))

    def flag_list(self) -> tuple[str, ...]:
        return tuple(self.paren_list(self.flag, allow_empty=True))

    def sequence_set(self) -> SequenceSet:
        text = self.token(_SEQSET_RE, "sequence set").decode("ascii")
        try:
            return SequenceSet.parse(text)
        except ValueError:
            raise self.fail(f"Invalid sequence set {text}") from None

    def date(self) -> _dt.date:
        """``date`` = date-text / DQUOTE date-text DQUOTE."""
        quoted = self.maybe(b'"')
        m = _DATE_RE.match(self.buf, self.pos)
        if m is None:
            if self.pos >= self.end:
                raise self.eof("date")
            raise self.fail("Invalid date")
        self.pos = m.end()
        if quoted:
            self.expect(b'"')
        month = MONTHS.get(m.group(2).upper())
        try:
            if month is None:
                raise ValueError
            return _dt.date(int(m.group(3)), month, int(m.group(1)))
        except ValueError:
            raise self.fail("Invalid date") from None

    def date_time(self) -> _dt.datetime:
        """``date-time`` as used by APPEND: ``"17-Jul-1996 02:44:25 -0700"``."""
        m = _DATE_TIME_RE.match(self.buf, self.pos)
        if m is None:
            if self.pos >= self.end:
                raise self.eof("date-time")
            raise self.fail("Invalid date-time")
        self.pos = m.end()
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        month = MONTHS.get(mon.upper())
        try:
            if month is None or int(zm) > 59:
                raise ValueError
            offset = _dt.timedelta(hours=int(zh), minutes=int(zm))
            tz = _dt.timezone(-offset if sign == b"-" else offset)
            return _dt.datetime(int(year), month, int(day), int(hh), int(mm), int(ss), tzinfo=tz)
        except ValueError:
            raise self.fail("Invalid date-time") from None
