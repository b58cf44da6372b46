"""CATENATE (RFC 4469): APPEND a message built from literal TEXT parts and parts of messages already in the
account, named by IMAP URLs (RFC 5092, :mod:`janusmail.imap.codec.imapurl`).

Used by the APPEND handler (:mod:`.append`, also for MULTIAPPEND): :func:`build` turns every CATENATE message
of the command into the bytes the store ingests, and the handler ingests them with the other messages in its
one transaction. What it promises:

* URLs name messages of THIS server and account only: a URL naming another server (a host that is neither the
  configured ``hostname``, nor the address the client connected to, nor ``localhost`` on a loopback connection;
  or another port than the one connected to), another user (``imap://bob@...``), a mailbox that
  does not exist, a wrong UIDVALIDITY, an expunged UID, a section the message does not have, or anything
  that is not the URL of one message is ``NO [BADURL url]`` and nothing is stored. Every URL of the command
  is resolved in one store hop (the mailbox tree, then one row read per URL).
* A built message over APPENDLIMIT (or the store's maximum) is ``NO [TOOBIG]``; a URL's message bigger than
  that is refused before its bytes are read.
* Memory: parts are joined into a spool (:mod:`janusmail.spool`), in memory while small and in a file past the
  spool threshold; a large TEXT literal arrives spooled and is copied piece by piece, and a large part of a
  stored message is only located in the resolving hop (:class:`_Stream`: blob location and byte range) and
  copied :data:`CHUNK` octets per store read, so a big message never exists whole in memory (small URL parts,
  up to :data:`INLINE_TOTAL` per command, come back with the resolving hop). Exceptions, read whole: a
  ``HEADER.FIELDS`` section and a part stored with ``Content-Transfer-Encoding: binary`` (its BODY form may
  be re-encoded), each bounded by the message size limit. The result reaches the store as a read-only map of
  that spool, like any large APPEND.
"""

from __future__ import annotations

import ipaddress
import mmap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from janusmail.imap.codec import AppendMessage, CatenatePart, FetchBody, Section
from janusmail.imap.codec.imapurl import BadUrl, MessageUrl, parse_message_url
from janusmail.imap.commands.base import Result
from janusmail.imap.commands.mailbox_tree import read_tree
from janusmail.imap.fetchbody import MISSING, RangeReader, body_section, needs_cache
from janusmail.imap.literals import BUSY_TEXT
from janusmail.mime.content import find_part
from janusmail.spool import Spool, spooler_for
from janusmail.store.mailbox_rows import CACHE, EMAIL_ID
from janusmail.store.model import BlobLocation

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession

__all__ = ["Built", "Refused", "build", "resolve_urls"]

#: octets copied per step from a spooled TEXT part or a stored message (bounded memory)
CHUNK = 1 << 20
#: URL parts of one command returned with the resolving hop, in total; past it, parts are streamed
INLINE_TOTAL = 4 << 20


class Refused(Exception):
    """A CATENATE message that cannot be built; ``result`` is the tagged answer (nothing was stored)."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.text)
        self.result = result


@dataclass(frozen=True, slots=True)
class _Bad:
    """A URL that names nothing this session may read (answered ``NO [BADURL url]``)."""

    url: str


@dataclass(frozen=True, slots=True)
class _TooBig:
    url: str


@dataclass(frozen=True, slots=True)
class _Stream:
    """A URL part too big to come back with the resolving hop: where its octets are."""

    loc: BlobLocation
    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


class _Big(Exception):
    def __init__(self, start: int, end: int) -> None:
        super().__init__(start, end)
        self.start, self.end = start, end


class _Probe:
    """Stands in for :class:`RangeReader` while a section is evaluated: reads a range only while the command's
    inline budget allows, else stops the evaluation with the range (:class:`_Big`) so it can be streamed."""

    __slots__ = ("_read", "size", "budget")

    def __init__(self, read: Any, size: int, budget: list[int]) -> None:
        self._read, self.size, self.budget = read, size, budget

    def read(self, start: int, end: int) -> bytes:
        start = max(0, min(start, self.size))
        end = max(start, min(end, self.size))
        if end - start > self.budget[0]:
            raise _Big(start, end)
        return self._read(start, end)


def _streamable(item: FetchBody, cache: dict[str, Any] | None) -> bool:
    """Whether the section is one byte range of the stored message, as read (no filtering, no re-encoding)."""
    sec = item.section
    if sec.text not in (None, "TEXT", "HEADER", "MIME"):
        return False
    if sec.part and sec.text is None:
        part = find_part(cache or {}, ".".join(str(p) for p in sec.part)) or {}
        return str(part.get("encoding") or "").upper() != "BINARY"  # BODY re-encodes those (fetchbody)
    return True


def _mailbox_name(name: str) -> str:
    head, sep, rest = name.partition("/")
    return "INBOX" + sep + rest if head.upper() == "INBOX" else name


def _one(store: Any, tree: Any, url: str, parsed: MessageUrl, limit: int, budget: list[int]
         ) -> bytes | _Stream | _Bad | _TooBig:
    box = tree.find(_mailbox_name(parsed.mailbox))
    if box is None or (parsed.uidvalidity is not None and parsed.uidvalidity != box.uidvalidity):
        return _Bad(url)
    found = store.messages.fetch_rows(box.id, [(parsed.uid, parsed.uid)], part_offsets=True, blob=True)
    if not found.rows:
        return _Bad(url)
    row = found.rows[0]
    loc = found.locations[row[EMAIL_ID]]
    partial = None
    if parsed.partial is not None:
        offset, length = parsed.partial
        partial = (offset, length if length is not None else loc.size)
    item = FetchBody(parsed.section or Section(), partial, peek=True)
    cache = orjson.loads(row[CACHE]) if needs_cache(item) and row[CACHE] else None
    if needs_cache(item) and cache is None:
        return _Bad(url)

    def read(a: int, b: int) -> bytes:
        return store.blobs.read_location(loc, a, b)

    try:
        value = body_section(item, cache, _Probe(read, loc.size, budget))  # type: ignore[arg-type]
    except _Big as big:
        if _streamable(item, cache):
            return _TooBig(url) if big.end - big.start > limit else _Stream(loc, big.start, big.end)
        if loc.size > limit:
            return _TooBig(url)
        value = body_section(item, cache, RangeReader(read, loc.size))
    if value is MISSING:
        return _Bad(url)
    data = bytes(value)  # type: ignore[arg-type]
    if len(data) > limit:
        return _TooBig(url)
    budget[0] = max(0, budget[0] - len(data))
    return data


@dataclass(frozen=True, slots=True)
class ThisServer:
    """How a URL's server part may name the server the session talks to (RFC 4469: a URL naming another
    server is ``BADURL``; RFC 5092 §3: host, optional port)."""

    hosts: frozenset[str]
    port: int | None

    @classmethod
    def of(cls, s: ImapSession) -> ThisServer:
        hosts = {s.rt.config.hostname.lower()}
        port = None
        if s.local is not None:
            addr, port = s.local
            hosts.add(_host_key(addr))
            if _is_loopback(addr):
                hosts.add("localhost")
        return cls(frozenset(hosts), port)

    def names(self, parsed: MessageUrl) -> bool:
        if parsed.host is None:
            return True  # a relative URL ("/mailbox/;UID=n") is this server's by definition
        if _host_key(parsed.host) not in self.hosts:
            return False
        return parsed.port is None or self.port is None or parsed.port == self.port


def _host_key(host: str) -> str:
    """A host name or address in one spelling (``[::1]`` and ``::1``, ``127.0.0.1``), lower case."""
    bare = host.strip("[]").lower()
    try:
        return str(ipaddress.ip_address(bare.split("%", 1)[0]))
    except ValueError:
        return bare


def _is_loopback(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def resolve_urls(store: Any, account_id: str, address: str | None, urls: list[str], limit: int,
                 server: ThisServer | None = None) -> list[bytes | _Stream | _Bad | _TooBig]:
    """On a store thread: the bytes each URL names, or where they are when big (:class:`_Stream`), in order
    (or why not). ``address``: the session's login, which a URL's user part must name (same account);
    ``server``: what a URL's host part may name (None: not checked)."""
    tree = read_tree(store, account_id)
    budget = [INLINE_TOTAL]
    out: list[bytes | _Stream | _Bad | _TooBig] = []
    for url in urls:
        try:
            parsed = parse_message_url(url)
        except BadUrl:
            out.append(_Bad(url))
            continue
        if parsed.user is not None and (address is None or parsed.user.lower() != address.lower()):
            out.append(_Bad(url))
            continue
        if server is not None and not server.names(parsed):
            out.append(_Bad(url))
            continue
        out.append(_one(store, tree, url, parsed, limit, budget))
    return out


def _code_text(url: str) -> str:
    """RFC 4469 ``url-resp-text``: the URL as sent, without the characters that would end the code."""
    return "".join(c for c in url if c not in "]\r\n")[:1024]


@dataclass
class Built:
    """The built messages by index in the command, and the spools holding them (closed after the ingest)."""

    raws: dict[int, bytes | mmap.mmap] = field(default_factory=dict)
    spools: list[Spool] = field(default_factory=list)

    def close(self) -> None:
        spools, self.spools = self.spools, []
        for sp in spools:
            sp.close()


def _size(part: bytes | Spool | _Stream) -> int:
    return part.size if isinstance(part, Spool) else len(part)


async def _join(s: ImapSession, pieces: list[bytes | Spool | _Stream], total: int, built: Built
                ) -> bytes | mmap.mmap:
    spooler = spooler_for(s.rt)
    out = spooler.open(total, to_file=total > spooler.threshold)
    if out is None:
        raise Refused(Result.no(BUSY_TEXT, "LIMIT"))
    built.spools.append(out)
    for piece in pieces:
        if isinstance(piece, Spool):
            (view,) = await spooler.load([piece])
            for off in range(0, len(view), CHUNK):
                out.write(bytes(view[off : off + CHUNK]))
                await out.drain()
            piece.close()  # copied: give its budget and load gate back now (the session's release is a no-op)
        elif isinstance(piece, _Stream):
            for off in range(piece.start, piece.end, CHUNK):
                out.write(await s.store.call(s.store.blobs.read_location, piece.loc, off, min(off + CHUNK, piece.end)))
                await out.drain()
        elif piece:
            out.write(bytes(piece))
            await out.drain()
    (raw,) = await spooler.load([out])
    return raw


async def build(s: ImapSession, messages: tuple[AppendMessage, ...], limit: int) -> Built:
    """Build every CATENATE message of an APPEND (raises :class:`Refused`); the caller closes the result."""
    urls = [p.url for m in messages for p in m.catenate if p.kind == "URL"]
    address = s.auth_result.address if s.auth_result is not None else None
    resolved = iter(await s.store.call(resolve_urls, s.rt.store, s.account_id, address, urls, limit,
                                       ThisServer.of(s)) if urls else ())
    built = Built()
    try:
        for index, msg in enumerate(messages):
            if not msg.catenate:
                continue
            pieces = [_piece(p, resolved) for p in msg.catenate]
            total = sum(_size(p) for p in pieces)
            if total > limit:
                raise Refused(Result.no("Message exceeds APPENDLIMIT", "TOOBIG"))
            if not total:
                raise Refused(Result.no("Empty message"))
            built.raws[index] = await _join(s, pieces, total, built)
    except BaseException:
        built.close()
        raise
    return built


def _piece(part: CatenatePart, resolved: Any) -> bytes | Spool | _Stream:
    if part.kind == "TEXT":
        data = part.data
        if not isinstance(data, bytes | Spool):  # pragma: no cover - the session only gives these two
            raise Refused(Result.bad("Unexpected literal"))
        return data
    value = next(resolved)
    if isinstance(value, _Bad):
        raise Refused(Result.no("The URL names no message of this account", f"BADURL {_code_text(value.url)}"))
    if isinstance(value, _TooBig):
        raise Refused(Result.no("The message a URL names exceeds APPENDLIMIT", "TOOBIG"))
    return value
