"""asyncio listeners for IMAP: plain (with STARTTLS) and implicit TLS. Only moves bytes.

Each connection is an asyncio protocol (:class:`_Connection`) that runs a task only while it has input to
handle: feed the session a piece, drain, repeat; with the session's timeout (60 s before login, 30 min after;
``[spool] stall_timeout`` while a literal is arriving) kept by one lazily re-armed timer. No per-connection threads;
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
import contextvars
import logging
import ssl
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from janusmail.imap.codec import serializer
from janusmail.imap.session import ImapSession
from janusmail.observability import logs
from janusmail.workers.balance import BalancedServer, DoorLoad

from . import tls

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.auth.authenticator import AuthResult
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
#: Seconds a connection may keep the transport over its high-water mark (a client that stopped reading mid-FETCH,
#: or an idler whose updates pile up): then it is aborted, so it stops holding its per-IP and per-account slots,
#: its registry entry, its IDLE subscription and buffered output. A reading client drains far sooner.
WRITE_STALL = 300.0


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


class _Out(Protocol):
    """Where :class:`_Wire` sends bytes: the connection (tests pass a sink)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class _Wire:
    """The connection's bytes as the session sees them: passed through as they are, or, once the session said
    "start compression" (COMPRESS=DEFLATE), deflated on the way out and inflated on the way in.

    Output is compressed as the session writes it and ends with ``Z_SYNC_FLUSH`` whenever the session waits for
    the transport (:meth:`drain`: the end of each response burst, each IDLE push), so the client can decode
    every complete response at once. ``idling`` tells when the session is in IDLE: then the deflate state is
    dropped after the flush (a later response starts a fresh deflate stream part, which references nothing
    earlier: still one valid raw deflate stream for the client's inflater)."""

    __slots__ = ("writer", "idling", "deflate", "inflate", "unflushed", "queued", "queued_size")

    def __init__(self, writer: _Out, idling: Callable[[], bool]) -> None:
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


class _Connection(asyncio.Protocol):
    """One IMAP connection: an asyncio protocol that feeds the session what arrives, with no task, stream
    objects or timer context of its own while the client is silent.

    Why not streams: an idle connection (a thousand IDLE sessions are the scale aim) then held a StreamReader,
    a StreamWriter, their protocol (with its drain deque), a task parked in ``read()`` under an
    ``asyncio.timeout`` and that task's coroutine frames: about 3.5 KB each. Here a task runs only while there
    is input to handle (:meth:`_run`; IDLE's own task lives in the session), and the timeouts (60 s before login,
    30 min after, the literal stall timeout, :data:`DEFLATE_REST`) share one timer handle that is re-armed
    lazily: it fires at the earliest deadline it was set for and then looks at how long the client has really
    been silent. The order of work is the streams loop's: a piece of at most ``READ_SIZE`` bytes is fed,
    literals spooled and output drained before the next; reading pauses while ``READ_SIZE`` bytes wait."""

    __slots__ = ("listener", "implicit_tls", "transport", "ctx", "ip", "session", "wire", "ticket", "task",
                 "inbox", "reading_paused", "write_paused", "drain_waiter", "eof", "ended", "silent_since", "timer",
                 "stall_timer", "ip_held")

    def __init__(self, listener: _Listener, implicit_tls: bool) -> None:
        self.listener = listener
        self.implicit_tls = implicit_tls  # the listener's TLS (IMAPS) or STARTTLS to come
        self.transport: asyncio.Transport | None = None
        #: The connection's context: its log ids (``logs.bind``) last as long as it, across its tasks.
        self.ctx = contextvars.copy_context()
        self.ip = "?"
        self.session: ImapSession | None = None
        self.wire: _Wire | None = None
        self.ticket: int | None = None
        self.task: asyncio.Task[None] | None = None
        self.inbox = b""  # received, not yet fed
        self.reading_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.eof = False  # the client is gone (or half-closed): end once the inbox is handled
        self.ended = False  # cleanup has started
        #: loop time since when the client has been silent with nothing to do (None while a command runs)
        self.silent_since: float | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.stall_timer: asyncio.TimerHandle | None = None  # armed while writing is paused (WRITE_STALL)
        self.ip_held = False  # this connection holds one of its address's slots (ConnectionLimits)

    # -- asyncio.Protocol -----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        try:
            self.ctx.run(self._open)
        except Exception:  # a session that could not be set up: give back what _open took, close
            log.exception("IMAP connection from %s could not start", self.ip)
            self._abandon()

    def _abandon(self) -> None:
        """Undo a half-done ``_open``: whatever it registered is released, the socket closed."""
        listener, was_ended = self.listener, self.ended
        self.ended = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self in listener.live:
            listener.left(self)
        if self.ticket is not None:
            listener.rt.connections.closed(self.ticket)
            self.ticket = None
        if not was_ended and self.ip_held:  # (ended already: the IP cap refused it, nothing was taken)
            listener.limits.release_ip(self.ip)
        if self.transport is not None:
            self.transport.abort()

    def _open(self) -> None:
        listener, transport = self.listener, self.transport
        assert transport is not None
        peername = transport.get_extra_info("peername")
        self.ip = ip = str(peername[0]) if peername else "?"
        if not listener.limits.acquire_ip(ip):
            self.ended = True  # (holds no slot: _abandon must not give one back)
            with contextlib.suppress(Exception):
                transport.write(b"* BYE Too many connections from your address\r\n")
                transport.close()
            return
        self.ip_held = True
        implicit_tls = self.implicit_tls
        logs.bind(sid=logs.new_id("imap"))  # every line this connection's tasks write carries the id
        logs.event(log, logging.DEBUG, "imap.connect", peer=ip, tls=implicit_tls)
        self.wire = wire = _Wire(self, self._idling)
        self.session = session = ImapSession(
            listener.rt, peer=ip, tls_active=implicit_tls, tls_context=None if implicit_tls else listener.ctx,
            out=wire.write, drain=wire.drain, limits=listener.limits, hangup=self.close, local=_local(transport),
        )
        self.ticket = listener.rt.connections.opened("imap", ip, principal=self._principal, tls=self._tls)
        listener.rt.metrics.connection_opened("imap")
        listener.live.add(self)  # (after the gauge: in ``live`` means counted, for _abandon)
        session.greeting()
        wire.flush()
        self._silent()

    def data_received(self, data: bytes) -> None:
        if self.ended:
            return
        self.inbox = self.inbox + data if self.inbox else data
        if len(self.inbox) >= READ_SIZE and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._work()

    def eof_received(self) -> bool:
        self.eof = True
        self._work()
        # keep the writing half open for the answers still to come (TLS transports close anyway)
        return self.transport is not None and self.transport.get_extra_info("sslcontext") is None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionResetError("Connection lost"))
        self._work()

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.stall_timer is None and not self.ended:
            self.stall_timer = asyncio.get_running_loop().call_later(WRITE_STALL, self._stalled_writing,
                                                                     context=self.ctx)

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None
        waiter, self.drain_waiter = self.drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- what the wire and the session call -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the transport's buffer is over its high-water mark (what StreamWriter.drain does)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            if self.eof:
                raise ConnectionResetError("Connection lost")
            await asyncio.sleep(0)  # let connection_lost run, as StreamWriter.drain does
            return
        if self.write_paused:
            if self.drain_waiter is None:
                self.drain_waiter = asyncio.get_running_loop().create_future()
            await self.drain_waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _stalled_writing(self) -> None:
        """The client has not read for :data:`WRITE_STALL` seconds with our output piled up: drop the connection
        (no BYE: it would not be read either). ``connection_lost`` follows and ends the session."""
        self.stall_timer = None
        if self.write_paused and self.transport is not None:
            logs.event(log, logging.INFO, "imap.write_stall", peer=self.ip)
            self.transport.abort()

    def _idling(self) -> bool:
        return self.session is not None and self.session.idling

    def _principal(self) -> AuthResult | None:
        return self.session.auth_result if self.session is not None else None

    def _tls(self) -> bool:
        return self.session is not None and self.session.tls_active

    # -- the work -------------------------------------------------------------------------------------------

    def _work(self) -> None:
        """There is input (or an end) to handle: start the connection's task unless it runs already."""
        if self.task is None and not self.ended and self.session is not None:
            self.silent_since = None
            self.task = asyncio.get_running_loop().create_task(self._run(), context=self.ctx)

    def _take(self) -> bytes:
        data, rest = self.inbox[:READ_SIZE], self.inbox[READ_SIZE:]
        self.inbox = rest
        if self.reading_paused and len(rest) < READ_SIZE and self.transport is not None and not self.eof:
            self.reading_paused = False
            self.transport.resume_reading()
        return data

    async def _run(self) -> None:
        session, wire = self.session, self.wire
        assert session is not None and wire is not None
        try:
            while True:
                if session.closed:
                    break
                data = self._take()
                if not data:
                    if self.eof:
                        break
                    self.task = None  # nothing to do until the client sends more (data_received starts one)
                    self._silent()
                    return
                await self.listener.feed(session, wire, data)
                if session.starttls_pending and self.listener.ctx is not None:
                    await self._start_tls(self.listener.ctx)
                    session.tls_started()
                if session.compress_pending:
                    # the tagged OK has gone out uncompressed; whatever the client sent after COMPRESS is
                    # already compressed (RFC 4978 §3)
                    after = session.parser.take_buffer()
                    wire.start_compression()
                    session.compression_started()
                    if after:
                        await self.listener.feed(session, wire, after)
                if session.uncompress_pending:
                    # UNAUTHENTICATE's tagged OK went out compressed; from here on both sides are plain. What
                    # the parser still holds came compressed after it, which the client must not send: dropped.
                    session.parser.take_buffer()
                    wire.stop_compression()
                    session.compression_ended()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        except Exception:
            log.exception("IMAP connection from %s failed", self.ip)
        await self._end()

    async def _start_tls(self, ctx: ssl.SSLContext) -> None:
        """The STARTTLS handshake. Plaintext that arrived after the command (before the handshake) is dropped
        with what the parser held of it: it must not run inside TLS (the CVE-2011-0411 class)."""
        assert self.transport is not None
        await self.drain()
        self.inbox = b""
        if self.reading_paused:
            self.transport.resume_reading()
        # Until start_tls() returns, self.transport is the plain one, which the TLS layer now drives: the first
        # decrypted bytes can reach data_received before that (they came in the read that ended the handshake),
        # and pausing the plain transport then would leave it paused for good. "Paused" keeps data_received off
        # it; the TLS transport is paused below if what arrived meanwhile calls for it.
        self.reading_paused = True
        loop = asyncio.get_running_loop()
        tls_transport = await loop.start_tls(self.transport, self, ctx, server_side=True,
                                             ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
        if tls_transport is None:  # pragma: no cover - the connection closed during the handshake
            raise ConnectionResetError("Connection lost during the TLS handshake")
        self.transport = tls_transport
        self.reading_paused = len(self.inbox) >= READ_SIZE
        if self.reading_paused:
            tls_transport.pause_reading()

    async def _expire(self, stalled: bool) -> None:
        """The client was silent for its whole timeout: say BYE and end."""
        session, wire = self.session, self.wire
        assert session is not None and wire is not None
        try:
            if stalled:
                session.write(serializer.untagged_status("BYE", None, "No literal data for too long"))
            else:
                session.autologout()
            await wire.drain()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass
        except Exception:
            log.exception("IMAP connection from %s failed", self.ip)
        await self._end()

    async def _end(self) -> None:
        """Release everything the connection holds (once)."""
        if self.ended:
            return
        self.ended = True
        self.task = None
        for timer in (self.timer, self.stall_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.stall_timer = None
        listener, session = self.listener, self.session
        assert session is not None
        try:
            listener.left(self)
            if self.ticket is not None:
                listener.rt.connections.closed(self.ticket)
            await session.close()
        except Exception:  # noqa: BLE001 - the slot and the socket are given back whatever failed above
            log.exception("IMAP connection from %s: cleanup failed", self.ip)
        finally:
            listener.limits.release_ip(self.ip)
            self.close()

    # -- timeouts -------------------------------------------------------------------------------------------

    def _limits(self) -> tuple[float, bool]:
        """(seconds of silence allowed now, whether that is the literal stall timeout)."""
        session = self.session
        assert session is not None
        # A command whose literal is still arriving holds a share of the upload budget and a spool file: it
        # gets a shorter deadline than an idle session.
        if session.parser.in_literal_command:
            return min(session.timeout, session.literals.stall_timeout), True
        return session.timeout, False

    def _silent(self) -> None:
        """Nothing to do until the client speaks: make sure the timer fires by the earliest deadline."""
        loop = asyncio.get_running_loop()
        self.silent_since = now = loop.time()
        when = self._deadline(now)
        timer = self.timer
        if timer is None or timer.when() > when:
            if timer is not None:
                timer.cancel()
            self.timer = loop.call_at(when, self._alarm)

    def _deadline(self, since: float) -> float:
        """When the timer must look again: at the timeout, or at :data:`DEFLATE_REST` while a deflate state is
        held (and the timeout is longer)."""
        timeout, _ = self._limits()
        if self.wire is not None and self.wire.deflate is not None and timeout > DEFLATE_REST:
            return since + DEFLATE_REST
        return since + timeout

    def _alarm(self) -> None:
        self.timer = None
        since = self.silent_since
        if since is None or self.ended or self.task is not None:
            return  # a command runs: the timer is set again when it ends
        wire = self.wire
        assert wire is not None
        loop = asyncio.get_running_loop()
        silent = loop.time() - since
        timeout, stalled = self._limits()
        if wire.deflate is not None and timeout > DEFLATE_REST and silent >= DEFLATE_REST:
            wire.rest()  # the client is quiet: only the inflate state is kept
        if silent >= timeout:
            self.silent_since = None
            self.task = loop.create_task(self._expire(stalled), context=self.ctx)
            return
        self.timer = loop.call_at(self._deadline(since), self._alarm)


def _local(transport: asyncio.BaseTransport) -> tuple[str, int] | None:
    """The address and port this connection reached (None when the transport does not say)."""
    name = transport.get_extra_info("sockname")
    return (str(name[0]), int(name[1])) if isinstance(name, tuple) and len(name) >= 2 else None


class _Listener:
    def __init__(self, rt: Runtime, ctx: ssl.SSLContext | None, limits: ConnectionLimits) -> None:
        self.rt = rt
        self.ctx = ctx
        self.limits = limits
        self.live: set[_Connection] = set()
        #: this worker's count of open connections on its supervisor's load board (``serve --workers N``)
        self.load: DoorLoad | None = None

    def left(self, conn: _Connection) -> None:
        """``conn`` no longer counts: out of ``live``, off the gauge, and off this worker's load board."""
        self.live.discard(conn)
        self.rt.metrics.connection_closed("imap")
        if self.load is not None:
            self.load.publish()

    @staticmethod
    async def feed(session: ImapSession, wire: _Wire, data: bytes) -> None:
        """Run what the client sent (inflated first when compression is on), answering as it goes."""
        for piece in wire.inflated(data):
            await session.feed(piece)
            await session.literals.drain()  # spooled literal data to disk before reading more
            await wire.drain()
            if session.closed or session.layer_pending:
                break

    async def shutdown(self) -> None:
        for conn in list(self.live):
            session, wire = conn.session, conn.wire
            with contextlib.suppress(Exception):
                assert wire is not None
                wire.write(b"* BYE Server shutting down\r\n")
                wire.flush()
                conn.close()
            with contextlib.suppress(Exception):
                assert session is not None
                await session.close()


async def _serve(rt: Runtime, listener: _Listener, name: str, address: str, ctx: ssl.SSLContext | None
                 ) -> asyncio.base_events.Server | BalancedServer:
    """One listener: a worker of ``serve --workers N`` accepts on its supervisor's socket through the load board
    (janusmail.workers.balance: a new connection goes to the least loaded worker), anything else as asyncio
    does. ``ctx``: implicit TLS (IMAPS)."""
    tls_args: dict[str, Any] = {"ssl": ctx, "ssl_handshake_timeout": HANDSHAKE_TIMEOUT} if ctx is not None else {}
    sock = rt.listeners.get(name)
    if rt.board is not None and sock is not None:
        if listener.load is None:  # (one count for both doors: IMAP and IMAPS connections of this worker)
            listener.load = DoorLoad(rt.board, lambda: len(listener.live))
            listener.load.publish()  # this worker serves now: siblings may leave connections to it
        balanced = BalancedServer(sock, lambda: _Connection(listener, ctx is not None), listener.load,
                                  ssl_context=ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT if ctx is not None else None)
        return balanced
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _Connection(listener, ctx is not None), **rt.listen_args(name, address),
                                    **tls_args)


async def start_imap(rt: Runtime) -> None:
    """Open the IMAP listeners named by ``rt.config.imap`` (``listen`` plain+STARTTLS, ``imaps`` TLS)."""
    cfg = rt.config.imap
    if not cfg.listen and not cfg.imaps:
        return
    ctx = tls.server_context(rt.config)
    limits = ConnectionLimits(int(cfg.max_connections_per_ip), int(cfg.max_connections_per_account))
    listener = _Listener(rt, ctx, limits)
    servers: list[asyncio.base_events.Server | BalancedServer] = []
    if cfg.listen:
        server = await _serve(rt, listener, "imap", cfg.listen, None)
        servers.append(server)
        rt.bound["imap"] = server.sockets[0].getsockname()[:2]
    if cfg.imaps:
        if ctx is None:
            log.warning("no TLS certificate configured; not listening for IMAPS on %s", cfg.imaps)
        else:
            server = await _serve(rt, listener, "imaps", cfg.imaps, ctx)
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
