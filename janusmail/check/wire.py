"""Reading an IMAP server's exact answers, without sockets: the lines of one exchange, the capability lists in
them, and RFC 9051 quoted strings.

Why not only a client library's parsed view: RFC 9698 is strict about the wire (the URL must be a *quoted* string,
*one* untagged ``JMAPACCESS`` response, JMAPACCESS in *every* capability list after login, and only then), and
a library that tolerates a literal or keeps the last of two responses would hide exactly what the checker is
there to see. The I/O side (``imap_io``) records the lines; everything here is a pure function of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

_STATUS = re.compile(rb"^(?:\*|(?P<tag>[^ ]+)) (?P<status>OK|NO|BAD|PREAUTH|BYE)\b ?(?P<rest>.*)$", re.I | re.S)
_CAP_CODE = re.compile(rb"^\[CAPABILITY(?: (?P<caps>[^\]]*))?\]", re.I)
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')


@dataclass(frozen=True)
class Exchange:
    """One command and every line the server answered with, the tagged completion last (literal contents are
    not lines and are left out; the line announcing a literal ends with ``{n}``)."""

    command: str  # as sent, secrets replaced by "***"
    tag: str
    lines: tuple[bytes, ...]

    @property
    def tagged(self) -> bytes | None:
        prefix = self.tag.encode() + b" "
        return next((line for line in reversed(self.lines) if line.startswith(prefix)), None)

    @property
    def status(self) -> str:
        """``OK``, ``NO`` or ``BAD`` of the tagged completion; ``""`` if there was none."""
        line = self.tagged
        if line is None:
            return ""
        m = _STATUS.match(line)
        return m.group("status").decode().upper() if m else ""

    @property
    def completion(self) -> str:
        """The tagged completion without its tag (``NO [AUTHENTICATIONFAILED] ...``), for messages."""
        line = self.tagged
        return _short(line.split(b" ", 1)[1]) if line and b" " in line else ""

    def untagged(self, name: str) -> list[bytes]:
        """The data of every ``* NAME data`` line (``name`` compared case-insensitively), in order."""
        out: list[bytes] = []
        key = name.upper().encode()
        for line in self.lines:
            if not line.startswith(b"* "):
                continue
            word, _, data = line[2:].partition(b" ")
            if word.upper() == key:
                out.append(data)
        return out

    def transcript(self, limit: int = 4) -> str:
        """The first lines of the answer, for a verdict's detail."""
        shown = [_short(line) for line in self.lines[:limit]]
        if len(self.lines) > limit:
            shown.append(f"... ({len(self.lines) - limit} more lines)")
        return " | ".join(shown) or "(no answer)"


def _short(line: bytes, width: int = 120) -> str:
    text = line.decode("utf-8", "replace")
    return text if len(text) <= width else text[: width - 3] + "..."


def capability_lists(lines: tuple[bytes, ...] | list[bytes]) -> list[frozenset[str]]:
    """Every capability list in these lines: ``* CAPABILITY ...`` responses and ``[CAPABILITY ...]`` codes of
    status responses (the greeting, a login's tagged OK), each as a set of uppercase names."""
    out: list[frozenset[str]] = []
    for line in lines:
        if line[:13].upper() == b"* CAPABILITY ":
            out.append(_names(line[13:]))
            continue
        m = _STATUS.match(line)
        if m:
            code = _CAP_CODE.match(m.group("rest"))
            if code:
                out.append(_names(code.group("caps") or b""))
    return out


def _names(raw: bytes) -> frozenset[str]:
    return frozenset(raw.decode("ascii", "replace").upper().split())


def parse_quoted(data: bytes) -> str | None:
    """The value of ``data`` if it is exactly one RFC 9051 ``quoted`` string (backslash escapes only before
    ``"`` and ``\\``, no CR/LF, valid UTF-8), else None: an atom, a literal or trailing text are not quoted."""
    m = _QUOTED.fullmatch(data)
    if not m:
        return None
    try:
        return re.sub(rb'\\(["\\])', rb"\1", m.group(1)).decode("utf-8")
    except UnicodeDecodeError:
        return None


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a JMAP session URL (RFC 8620 §2: an absolute http(s) URL), or None."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "not an absolute http(s) URL"
    return None
