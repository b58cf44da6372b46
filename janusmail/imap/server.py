"""asyncio listeners for IMAP: plain (with STARTTLS) and implicit TLS. Only moves bytes.

Each connection is one coroutine: read, ``session.feed``, drain, repeat, with the session's timeout (60 s
before login, 30 min after; ``[spool] stall_timeout`` while a literal is arriving). No per-connection threads;
the session keeps no big buffers: a large APPEND literal is written to its spool file after every read, before
the next read (back-pressure), so memory per connection stays at about one read plus one spool flush. Connection caps per
IP (at accept) and per account (at login) come from ``[imap]`` config.

COMPRESS=DEFLATE (RFC 4978) lives here too, in :class:`_Wire`: the session only says "start compression" (as it
says "start TLS"), and the adapter then runs every byte each way through raw deflate (zlib, 15-bit window),
ending each burst of responses with a sync flush. What a client sends is inflated at most ``READ_SIZE`` bytes
at a time (a small compressed command cannot make the server hold megabytes). The deflate state (about 256 KB)
is dropped whenever the session is in IDLE and everything sent has been flushed, or the client has been silent
for :data:`DEFLATE_REST` seconds, and made again for the next response, so an idle compressed connection keeps
only the inflate state (measured: about 44 KB per connection in IDLE, against about 20 KB uncompressed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from janusmail.imap.codec import serializer
from janusmail.imap.session import ImapSession
from janusmail.observability import logs

from . import tls

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.runtime import Runtime  # the doors import the runtime; it imports no door

log = logging.getLogger("janusmail.imap")

__all__ = ["ConnectionLimits", "start_imap"]

READ_SIZE = 64 * 1024
HANDSHAKE_TIMEOUT = 30.0
#: Raw deflate (no zlib header or checksum) with the full 32 KB window: what RFC 4978 §3 names.
DEFLATE_WBITS = -15
#: Seconds of client silence after which a compressed connection's deflate state is dropped (made again for the
#: next response): a connection that sits between commands keeps only its inflate state.
DEFLATE_REST = 5.0


class ConnectionLimits:
    """Counts of open connections per peer address and logged-in connections per account."""

    def __init__(self, per_ip: int, per_account: int) -> None:
        self.per_ip = per_ip
        self.per_account = per_account
        self.ips: dict[str, int] = {}
        self.accounts: dict[str, int] = {}

    @staticmethod
    def _acquire(table: dict[str, int], key: str, cap: int) -> bool:
        n = table.get(key, 0)
        if cap > 0 and n >= cap:
            return False
        table[key] = n + 1
        return True

    @staticmethod
    def _release(table: dict[str, int], key: str) -> None:
        n = table.get(key, 0) - 1
        if n > 0:
            table[key] = n
        else:
            table.pop(key, None)

    def acquire_ip(self, ip: str) -> bool:
        return self._acquire(self.ips, ip, self.per_ip)

    def release_ip(self, ip: str) -> None:
        self._release(self.ips, ip)

    def acquire_account(self, account_id: str) -> bool:
        return self._acquire(self.accounts, account_id, self.per_account)

    def release_account(self, account_id: str) -> None:
        self._release(self.accounts, account_id)


class _Wire:
    """The connection's bytes as the session sees them: passed through as they are, or, once the session said
    "start compression" (COMPRESS=DEFLATE), deflated on the way out and inflated on the way in.

    Output is compressed as the session writes it and ends with ``Z_SYNC_FLUSH`` whenever the session waits for
    the transport (:meth:`drain`: the end of each response burst, each IDLE push), so the client can decode
    every complete response at once. ``idling`` tells when the session is in IDLE: then the deflate state is
    dropped after the flush (a later response starts a fresh deflate stream part, which references nothing
    earlier: still one valid raw deflate stream for the client's inflater)."""

    __slots__ = ("writer", "idling", "deflate", "inflate", "unflushed", "queued", "queued_size")

    def __init__(self, writer: asyncio.StreamWriter, idling: Callable[[], bool]) -> None:
        self.writer = writer
        self.idling = idling
        self.deflate: zlib._Compress | None = None
        self.inflate: zlib._Decompress | None = None
        self.unflushed = False
        #: uncompressed output not yet handed to the transport: a burst of responses (an IDLE push's EXISTS
        #: and RECENT, a FETCH's lines) leaves in one send at :meth:`flush`, not one system call per line
        self.queued: list[bytes] = []
        self.queued_size = 0

    def start_compression(self) -> None:
        self._send_queued()  # what was written before COMPRESS's OK (and the OK) goes out uncompressed
        self.inflate = zlib.decompressobj(DEFLATE_WBITS)

    def stop_compression(self) -> None:
        """Plain bytes again both ways (UNAUTHENTICATE, RFC 8437 §4.1), once everything written is flushed."""
        self.flush()
        self.deflate = self.inflate = None
        self.unflushed = False

    def write(self, data: bytes) -> None:
        if self.inflate is None:
            self.queued.append(data)
            self.queued_size += len(data)
            if self.queued_size >= READ_SIZE:
                self._send_queued()
            return
        if self.deflate is None:
            self.deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, DEFLATE_WBITS)
        out = self.deflate.compress(data)
        self.unflushed = True
        if out:
            self.writer.write(out)

    def _send_queued(self) -> None:
        queued = self.queued
        if queued:
            self.writer.write(queued[0] if len(queued) == 1 else b"".join(queued))
            self.queued = []
            self.queued_size = 0

    def flush(self) -> None:
        """Everything written so far goes to the transport, decodable by the client (sync flush)."""
        self._send_queued()
        deflate = self.deflate
        if deflate is None:
            return
        if self.unflushed:
            self.writer.write(deflate.flush(zlib.Z_SYNC_FLUSH))
            self.unflushed = False
        if self.idling():
            self.deflate = None  # ~256 KB that an idle connection does not need

    def rest(self) -> None:
        """The client has been quiet for a while: flush, and let the deflate state go until the next response."""
        self.flush()
        self.deflate = None

    async def drain(self) -> None:
        self.flush()
        await self.writer.drain()

    async def read(self, reader: asyncio.StreamReader, timeout: float) -> bytes:
        """The next bytes from the client within ``timeout`` (TimeoutError otherwise), resting the deflate state
        after :data:`DEFLATE_REST` seconds of silence (a cancelled read loses no data).

        ``asyncio.timeout``, not ``wait_for``: the read runs in the connection's own task under one timer, where
        ``wait_for`` would wrap it in a second task with its own future and callback for as long as the client
        is silent (about 700 bytes more for each idle connection)."""
        if self.deflate is None or timeout <= DEFLATE_REST:
            async with asyncio.timeout(timeout):
                return await reader.read(READ_SIZE)
        try:
            async with asyncio.timeout(DEFLATE_REST):
                return await reader.read(READ_SIZE)
        except TimeoutError:
            self.rest()
        async with asyncio.timeout(timeout - DEFLATE_REST):
            return await reader.read(READ_SIZE)

    def inflated(self, data: bytes) -> Iterator[bytes]:
        """What the client sent, in pieces of at most ``READ_SIZE`` bytes once compression is on. Raises
        ``ConnectionError`` for a broken or finished deflate stream (nothing sensible can follow)."""
        inflate = self.inflate
        if inflate is None:
            yield data
            return
        try:
            out = inflate.decompress(data, READ_SIZE)
            while True:
                if out:
                    yield out
                tail = inflate.unconsumed_tail
                if not tail:
                    break
                out = inflate.decompress(tail, READ_SIZE)
        except zlib.error as exc:
            raise ConnectionError(f"invalid compressed data: {exc}") from None
        if inflate.eof:
            raise ConnectionError("the client ended its compressed stream")


def _local(writer: asyncio.StreamWriter) -> tuple[str, int] | None:
    """The address and port this connection reached (None when the transport does not say)."""
    name = writer.get_extra_info("sockname")
    return (str(name[0]), int(name[1])) if isinstance(name, tuple) and len(name) >= 2 else None


class _Listener:
    def __init__(self, rt: Runtime, ctx: ssl.SSLContext | None, limits: ConnectionLimits) -> None:
        self.rt = rt
        self.ctx = ctx
        self.limits = limits
        self.live: dict[asyncio.StreamWriter, tuple[ImapSession, _Wire]] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, implicit_tls: bool) -> None:
        peername = writer.get_extra_info("peername")
        ip = str(peername[0]) if peername else "?"
        if not self.limits.acquire_ip(ip):
            with contextlib.suppress(Exception):
                writer.write(b"* BYE Too many connections from your address\r\n")
                await writer.drain()
                writer.close()
            return
        logs.bind(sid=logs.new_id("imap"))  # this connection's task: every line it writes carries the id
        logs.event(log, logging.DEBUG, "imap.connect", peer=ip, tls=implicit_tls)
        wire = _Wire(writer, lambda: session.idling)
        session = ImapSession(
            self.rt, peer=ip, tls_active=implicit_tls, tls_context=None if implicit_tls else self.ctx,
            out=wire.write, drain=wire.drain, limits=self.limits, hangup=writer.close, local=_local(writer),
        )
        self.live[writer] = (session, wire)
        ticket = self.rt.connections.opened("imap", ip, principal=lambda: session.auth_result,
                                            tls=lambda: session.tls_active)
        self.rt.metrics.connection_opened("imap")
        try:
            session.greeting()
            await wire.drain()
            while not session.closed:
                # A command whose literal is still arriving holds a share of the upload budget and a spool
                # file: it gets a shorter deadline than an idle session.
                stalled = session.parser.in_literal_command
                timeout = min(session.timeout, session.literals.stall_timeout) if stalled else session.timeout
                try:
                    data = await wire.read(reader, timeout)
                except TimeoutError:
                    if stalled:
                        session.write(serializer.untagged_status("BYE", None, "No literal data for too long"))
                    else:
                        session.autologout()
                    await wire.drain()
                    break
                if not data:
                    break
                await self._feed(session, wire, data)
                if session.starttls_pending and self.ctx is not None:
                    await writer.start_tls(self.ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
                    session.tls_started()
                if session.compress_pending:
                    # the tagged OK has gone out uncompressed; whatever the client sent after COMPRESS is
                    # already compressed (RFC 4978 §3)
                    after = session.parser.take_buffer()
                    wire.start_compression()
                    session.compression_started()
                    if after:
                        await self._feed(session, wire, after)
                if session.uncompress_pending:
                    # UNAUTHENTICATE's tagged OK went out compressed; from here on both sides are plain. What
                    # the parser still holds came compressed after it, which the client must not send: dropped.
                    session.parser.take_buffer()
                    wire.stop_compression()
                    session.compression_ended()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("IMAP connection from %s failed", ip)
        finally:
            self.rt.metrics.connection_closed("imap")
            self.live.pop(writer, None)
            self.rt.connections.closed(ticket)
            await session.close()
            self.limits.release_ip(ip)
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 5)

    @staticmethod
    async def _feed(session: ImapSession, wire: _Wire, data: bytes) -> None:
        """Run what the client sent (inflated first when compression is on), answering as it goes."""
        for piece in wire.inflated(data):
            await session.feed(piece)
            await session.literals.drain()  # spooled literal data to disk before reading more
            await wire.drain()
            if session.closed or session.layer_pending:
                break

    async def shutdown(self) -> None:
        for writer, (session, wire) in list(self.live.items()):
            with contextlib.suppress(Exception):
                wire.write(b"* BYE Server shutting down\r\n")
                wire.flush()
                writer.close()
            with contextlib.suppress(Exception):
                await session.close()


async def start_imap(rt: Runtime) -> None:
    """Open the IMAP listeners named by ``rt.config.imap`` (``listen`` plain+STARTTLS, ``imaps`` TLS)."""
    cfg = rt.config.imap
    if not cfg.listen and not cfg.imaps:
        return
    ctx = tls.server_context(rt.config)
    limits = ConnectionLimits(int(cfg.max_connections_per_ip), int(cfg.max_connections_per_account))
    listener = _Listener(rt, ctx, limits)
    servers: list[asyncio.base_events.Server] = []
    if cfg.listen:
        server = await asyncio.start_server(
            lambda r, w: listener.serve(r, w, implicit_tls=False), **rt.listen_args("imap", cfg.listen),
            limit=READ_SIZE,
        )
        servers.append(server)
        rt.bound["imap"] = server.sockets[0].getsockname()[:2]
    if cfg.imaps:
        if ctx is None:
            log.warning("no TLS certificate configured; not listening for IMAPS on %s", cfg.imaps)
        else:
            server = await asyncio.start_server(
                lambda r, w: listener.serve(r, w, implicit_tls=True), **rt.listen_args("imaps", cfg.imaps), ssl=ctx,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT, limit=READ_SIZE,
            )
            servers.append(server)
            rt.bound["imaps"] = server.sockets[0].getsockname()[:2]

    async def close() -> None:
        for server in servers:
            server.close()
        await listener.shutdown()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    rt.closers.append(close)
