"""IMAP URLs naming one message or one part of it (RFC 5092), as CATENATE's ``URL`` parts use them (RFC 4469).

Accepted forms (``[...]`` optional; the names of the parameters are case-insensitive)::

    imap://[user[;AUTH=mech]@]host[:port]/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]
    /mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]

The mailbox is percent-encoded UTF-8 (RFC 5092 §3.2, not modified UTF-7); the section is a FETCH
``BODY[...]`` section (``1.2``, ``HEADER``, ``1.MIME``, ``HEADER.FIELDS (SUBJECT)``) after percent-decoding.
Anything else (no UID, a search or list URL, ``;URLAUTH=``, an unknown parameter, bad encoding) is a
:class:`BadUrl`: the command answers ``NO [BADURL ...]``. Which account and server a URL may name is the
caller's decision (it knows the session); this module only parses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from .args import Section
from .cursor import Cursor, SyntaxFault
from .grammar_fetch import _section

__all__ = ["BadUrl", "MessageUrl", "parse_message_url"]

_NUMBER = r"[1-9][0-9]{0,9}"
_PATH_RE = re.compile(
    r"/(?P<mailbox>[^;/?#]+(?:/[^;/?#]+)*)"
    rf"(?:;UIDVALIDITY=(?P<uidvalidity>{_NUMBER}))?"
    rf"/;UID=(?P<uid>{_NUMBER})"
    r"(?:/;SECTION=(?P<section>[^/;?#]+))?"
    rf"(?:/;PARTIAL=(?P<offset>0|{_NUMBER})(?:\.(?P<length>{_NUMBER}))?)?\Z",
    re.IGNORECASE,
)
_SERVER_RE = re.compile(
    r"imap://(?:(?P<user>[^@/;:]+)(?:;AUTH=(?:\*|[A-Za-z0-9_.+-]+))?@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:@\[\]]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?=/)",
    re.IGNORECASE,
)
_ENCODED_OK = re.compile(r"[\x21-\x7e]*\Z")
MAX_URL = 4096


class BadUrl(ValueError):
    """The text is not an IMAP URL of one message (or part) this server can resolve."""


@dataclass(frozen=True, slots=True)
class MessageUrl:
    """A parsed message URL: ``user`` None when not given; ``section`` None for the whole message;
    ``partial`` ``(offset, length or None)``; ``host`` (lower case, IPv6 in brackets) and ``port`` as written."""

    mailbox: str
    uid: int
    uidvalidity: int | None = None
    section: Section | None = None
    partial: tuple[int, int | None] | None = None
    user: str | None = None
    host: str | None = None
    port: int | None = None


def _decode(text: str, what: str) -> str:
    try:
        return unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise BadUrl(f"{what} is not UTF-8") from None


def _parse_section(text: str) -> Section:
    raw = _decode(text, "section").encode("utf-8")
    cur = Cursor(b"[" + raw + b"]", [])
    try:
        section = _section(cur, binary=False)
        cur.finish()
    except SyntaxFault:
        raise BadUrl("invalid section") from None
    return section


def parse_message_url(url: str) -> MessageUrl:
    """Parse ``url`` (raises :class:`BadUrl`)."""
    if len(url) > MAX_URL or not _ENCODED_OK.match(url):
        raise BadUrl("not a URL")
    user = host = None
    port: int | None = None
    path = url
    if url[:7].lower() == "imap://":
        m = _SERVER_RE.match(url)
        if m is None:
            raise BadUrl("invalid server part")
        user = _decode(m.group("user"), "user") if m.group("user") else None
        host = m.group("host").lower()
        port = int(m.group("port")) if m.group("port") else None
        path = url[m.end():]
    m = _PATH_RE.match(path)
    if m is None:
        raise BadUrl("not the URL of one message")
    mailbox = _decode(m.group("mailbox"), "mailbox")
    if not mailbox or any(not c for c in mailbox.split("/")):
        raise BadUrl("invalid mailbox")
    section = _parse_section(m.group("section")) if m.group("section") else None
    partial = None
    if m.group("offset") is not None:
        partial = (int(m.group("offset")), int(m.group("length")) if m.group("length") else None)
    uidvalidity = int(m.group("uidvalidity")) if m.group("uidvalidity") else None
    uid = int(m.group("uid"))
    if uid > 0xFFFFFFFF or (uidvalidity is not None and uidvalidity > 0xFFFFFFFF):
        raise BadUrl("number out of range")
    return MessageUrl(mailbox, uid, uidvalidity, section, partial, user, host, port)
