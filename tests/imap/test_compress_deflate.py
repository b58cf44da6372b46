"""COMPRESS=DEFLATE (RFC 4978) end to end: a raw socket client that deflates what it sends and inflates what it
reads with zlib (raw deflate, 15-bit window, a sync flush per command), on SQLite and PostgreSQL. It covers
commands pipelined in the same packet as COMPRESS, a synchronizing literal APPEND, a FETCH of a body (a literal
in the answer), IDLE pushes (the server drops and rebuilds its deflate state while idling), the refusals (a
second COMPRESS, an unknown mechanism, before login), a broken compressed stream (the connection closes),
UNAUTHENTICATE ending the layer (RFC 8437 §4.1), and the adapter's deflate layer on its own: one decodable
stream across dropped deflate states, bounded inflate pieces, any packet boundaries.

One server per backend for the module; each end-to-end test logs in to an account of its own."""

from __future__ import annotations

import re
import socket
import zlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzzing import examples
from tests.imap.e2e_util import Raw, Tenant, login, serve_shared, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

MESSAGE = (b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: squeeze\r\n\r\n"
           + b"Compressible body line, said again and again.\r\n" * 40)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def server(shared: ServerThread) -> Tenant:
    return Tenant(shared)


class Deflated:
    """The client side of a compressed IMAP connection."""

    def __init__(self, sock: socket.socket, pending: bytes = b"") -> None:
        self.sock = sock
        self.out = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self.inflate = zlib.decompressobj(-15)
        self.buf = b""
        self.wire_in = 0
        if pending:
            self.feed(pending)

    def feed(self, data: bytes) -> None:
        self.wire_in += len(data)
        self.buf += self.inflate.decompress(data)

    def packet(self, data: bytes) -> bytes:
        return self.out.compress(data) + self.out.flush(zlib.Z_SYNC_FLUSH)

    def send(self, data: bytes) -> None:
        self.sock.sendall(self.packet(data))

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(self.buf)
        self.feed(chunk)

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def response(self) -> bytes:
        """One response line with the literals it carries (``{n}`` + n bytes), CRLF-joined."""
        out = self.line()
        while (m := re.search(rb"\{(\d+)\}$", out)) is not None:
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            out += self.line()
        return out

    def until(self, tag: str) -> list[bytes]:
        lines = []
        while True:
            lines.append(self.response())
            if lines[-1].startswith(tag.encode() + b" "):
                return lines

    def cmd(self, tag: str, text: str) -> list[bytes]:
        self.send(f"{tag} {text}\r\n".encode())
        return self.until(tag)


def compressed(srv: Tenant, after: bytes = b"") -> tuple[Raw, Deflated]:
    """Log in, COMPRESS DEFLATE (with ``after`` deflated in the same packet), switch to the deflated wire."""
    c = Raw(srv.imap_port)
    assert c.cmd("l", f'LOGIN {srv.address} "{srv.password}"')[-1].startswith(b"l OK")
    z = Deflated(c.sock)
    c.send(b"z COMPRESS DEFLATE\r\n" + (z.packet(after) if after else b""))
    # the tagged OK is the last uncompressed line: split exactly after its CRLF
    while b"\r\n" not in c.buf:
        c.buf += c.sock.recv(65536)
    line, _, rest = c.buf.partition(b"\r\n")
    assert line == b"z OK DEFLATE active"
    c.buf = b""
    z.feed(rest)
    return c, z


def test_session_through_deflate_both_ways(server: Tenant):
    c, z = compressed(server, after=b"p NOOP\r\n")
    try:
        assert z.until("p")[-1].startswith(b"p OK")  # pipelined behind COMPRESS: inflated from the parser's buffer
        caps = z.cmd("c", "CAPABILITY")
        assert b"COMPRESS=DEFLATE" in caps[0]
        # a synchronizing literal: the continuation comes back compressed, the data goes out compressed
        z.send(b"a APPEND INBOX (\\Seen) {%d}\r\n" % len(MESSAGE))
        assert z.line().startswith(b"+ ")
        z.send(MESSAGE + b"\r\n")
        done = z.until("a")
        assert re.match(rb"a OK \[APPENDUID \d+ 1\]", done[-1]), done
        assert z.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
        body = z.cmd("f", "FETCH 1 (BODY.PEEK[] RFC822.SIZE)")
        assert body[0].startswith(b"* 1 FETCH (")
        assert (b"{%d}\r\n" % len(MESSAGE)) + MESSAGE in body[0]
        assert b"RFC822.SIZE %d" % len(MESSAGE) in body[0]
        assert body[-1] == b"f OK FETCH completed"
        # the answer really was compressed: far fewer octets on the wire than it decodes to
        assert z.wire_in < len(MESSAGE)
        again = z.cmd("x", "COMPRESS DEFLATE")
        assert again[-1].startswith(b"x NO [COMPRESSIONACTIVE]")
        assert z.cmd("o", "LOGOUT")[-1].startswith(b"o OK")
    finally:
        c.close()


def test_big_spooled_literal_through_deflate(server: Tenant):
    """A literal above the spool threshold, inflated in 64 KB pieces, streams to its spool file like a plain one."""
    big = MESSAGE + b"".join(b"%08d compressible padding line of the big message\r\n" % i for i in range(8000))
    c, z = compressed(server)
    try:
        z.send(b"a APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")  # one non-synchronizing burst
        assert z.until("a")[-1].startswith(b"a OK [APPENDUID")
        z.cmd("s", "SELECT INBOX")
        got = z.cmd("f", "FETCH 1 (BODY.PEEK[])")
        assert got[0].endswith(b"{%d}\r\n" % len(big) + big + b")")
    finally:
        c.close()


def test_idle_pushes_through_deflate(server: Tenant):
    c, z = compressed(server)
    other = login(server)
    try:
        assert z.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
        z.send(b"i IDLE\r\n")
        assert z.line().startswith(b"+ ")
        for n in (1, 2):  # the deflate state is dropped while idling and made again for the next push
            other.append("INBOX", None, None, MESSAGE)
            while True:
                line = z.line()
                if line == b"* %d EXISTS" % n:
                    break
        z.send(b"DONE\r\n")
        assert z.until("i")[-1].startswith(b"i OK")
        assert z.cmd("n", "NOOP")[-1].startswith(b"n OK")
    finally:
        other.logout()
        c.close()


def test_unauthenticate_ends_compression(server: Tenant):
    """RFC 8437 §4.1: the COMPRESS layer ends with UNAUTHENTICATE's tagged OK (sent compressed); then both
    sides talk plain again, and a new login may compress again."""
    c, z = compressed(server)
    try:
        assert z.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
        assert z.cmd("u", "UNAUTHENTICATE")[-1].startswith(b"u OK")
        assert not z.buf
        c.buf = b""
        assert c.cmd("l", f'LOGIN {server.address} "{server.password}"')[-1].startswith(b"l OK")  # plain text again
        assert b"COMPRESS=DEFLATE" in c.cmd("c", "CAPABILITY")[0]
        z2 = Deflated(c.sock)
        c.send(b"z2 COMPRESS DEFLATE\r\n")
        assert c.line() == b"z2 OK DEFLATE active"
        assert z2.cmd("n", "NOOP")[-1] == b"n OK NOOP completed"
    finally:
        c.close()


def test_refusals(server: Tenant):
    c = Raw(server.imap_port)
    try:
        assert c.cmd("a", "COMPRESS DEFLATE")[-1].startswith(b"a BAD")  # not before login
        assert c.cmd("l", f'LOGIN {server.address} "{server.password}"')[-1].startswith(b"l OK")
        assert c.cmd("b", "COMPRESS GZIP")[-1].startswith(b"b BAD")
        assert c.cmd("c", "COMPRESS")[-1].startswith(b"c BAD")
        assert c.cmd("d", "NOOP")[-1] == b"d OK NOOP completed"  # still uncompressed
    finally:
        c.close()


def test_broken_stream_closes_the_connection(server: Tenant):
    c, _z = compressed(server)
    try:
        c.send(b"this is not deflate data \xff\xff\xff\xff\r\n" * 4)
        c.sock.settimeout(30)
        data = b""
        while chunk := c.sock.recv(65536):
            data += chunk
        # nothing was executed from it: the server just hung up
    finally:
        c.close()


# -- the adapter's deflate layer on its own (no socket) ---------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None


def test_dropped_deflate_state_keeps_one_decodable_stream():
    from janusmail.imap.server import _Wire

    sink = _Sink()
    idling = [False]
    wire = _Wire(sink, lambda: idling[0])  # type: ignore[arg-type]
    wire.start_compression()
    client = zlib.decompressobj(-15)
    wire.write(b"* 1 EXISTS\r\n")
    wire.flush()
    assert client.decompress(bytes(sink.data)) == b"* 1 EXISTS\r\n"  # decodable at every flush
    assert wire.deflate is not None
    idling[0] = True
    wire.write(b"* 2 EXISTS\r\n")
    wire.flush()
    assert wire.deflate is None  # in IDLE the state goes once flushed
    idling[0] = False
    wire.write(b"* 3 EXISTS\r\n")
    wire.rest()
    assert wire.deflate is None
    wire.write(b"t OK done\r\n")
    wire.flush()
    assert zlib.decompressobj(-15).decompress(bytes(sink.data)) == (
        b"* 1 EXISTS\r\n* 2 EXISTS\r\n* 3 EXISTS\r\nt OK done\r\n")


def test_inflated_in_bounded_pieces():
    from janusmail.imap.server import READ_SIZE, _Wire

    wire = _Wire(_Sink(), lambda: False)  # type: ignore[arg-type]
    wire.start_compression()
    plain = b"a NOOP\r\n" * 100_000  # 800 KB from a few KB on the wire
    packed = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = packed.compress(plain) + packed.flush(zlib.Z_SYNC_FLUSH)
    pieces = list(wire.inflated(data))
    assert all(len(p) <= READ_SIZE for p in pieces) and len(pieces) > 1
    assert b"".join(pieces) == plain
    with pytest.raises(ConnectionError):
        list(wire.inflated(b"\xff\xff\xff\xff not deflate"))


class _QuietSession:
    """What the connection's timer asks of a session: its timeouts (no literal arriving)."""

    timeout = 60.0

    class parser:  # noqa: N801
        in_literal_command = False


async def test_silence_rests_the_deflate_state(monkeypatch: pytest.MonkeyPatch):
    import asyncio
    import time

    from janusmail.imap import server as imap_server

    monkeypatch.setattr(imap_server, "DEFLATE_REST", 0.01)
    conn = imap_server._Connection(None, False)  # type: ignore[arg-type]  # only its timer runs here
    conn.session = _QuietSession()  # type: ignore[assignment]
    conn.wire = wire = imap_server._Wire(_Sink(), lambda: False)  # type: ignore[arg-type]
    wire.start_compression()
    wire.write(b"* OK hello\r\n")
    wire.flush()
    conn._silent()  # the client says nothing from here on
    deadline = time.monotonic() + 30
    while wire.deflate is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert wire.deflate is None  # the client was quiet: only the inflate state is left
    assert conn.task is None and not conn.ended  # rested, not logged out: the session timeout is still ahead
    assert conn.timer is not None and conn.silent_since is not None
    assert conn.timer.when() >= conn.silent_since + _QuietSession.timeout - 1
    conn.timer.cancel()


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=3000), min_size=1, max_size=8), st.data())
def test_inflated_whatever_the_packet_boundaries(commands: list[bytes], data: st.DataObject):
    """The client's sync-flushed commands, cut into packets anywhere, come out whole and in order."""
    from janusmail.imap.server import _Wire

    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    stream = b"".join(packer.compress(c) + packer.flush(zlib.Z_SYNC_FLUSH) for c in commands)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    packets = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    wire = _Wire(_Sink(), lambda: False)  # type: ignore[arg-type]
    wire.start_compression()
    assert b"".join(piece for p in packets for piece in wire.inflated(p)) == b"".join(commands)
