"""asyncio listeners for IMAP: plain (with STARTTLS) and implicit TLS. Only moves bytes.

Each connection is one coroutine: read, ``session.feed``, drain, repeat, with the session's timeout (60 s
before login, 30 min after; ``[spool] stall_timeout`` while a literal is arriving). No per-connection threads;
the session keeps no big buffers: a large APPEND literal is written to its spool file after every read, before
the next read (back-pressure), so memory per connection stays at about one read plus one spool flush. Connection caps per
IP (at accept) and per account (at login) come from ``[imap]`` config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from typing import TYPE_CHECKING

from janusmail.config import parse_hostport
from janusmail.imap.codec import serializer
from janusmail.imap.session import ImapSession

from . import tls

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.runtime import Runtime  # the doors import the runtime; it imports no door

log = logging.getLogger("janusmail.imap")

__all__ = ["ConnectionLimits", "start_imap"]

READ_SIZE = 64 * 1024
HANDSHAKE_TIMEOUT = 30.0


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


class _Listener:
    def __init__(self, rt: Runtime, ctx: ssl.SSLContext | None, limits: ConnectionLimits) -> None:
        self.rt = rt
        self.ctx = ctx
        self.limits = limits
        self.live: dict[asyncio.StreamWriter, ImapSession] = {}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, implicit_tls: bool) -> None:
        peername = writer.get_extra_info("peername")
        ip = str(peername[0]) if peername else "?"
        if not self.limits.acquire_ip(ip):
            with contextlib.suppress(Exception):
                writer.write(b"* BYE Too many connections from your address\r\n")
                await writer.drain()
                writer.close()
            return
        session = ImapSession(
            self.rt, peer=ip, tls_active=implicit_tls, tls_context=None if implicit_tls else self.ctx,
            out=writer.write, drain=writer.drain, limits=self.limits, hangup=writer.close,
        )
        self.live[writer] = session
        try:
            session.greeting()
            await writer.drain()
            while not session.closed:
                # A command whose literal is still arriving holds a share of the upload budget and a spool
                # file: it gets a shorter deadline than an idle session.
                stalled = session.parser.in_literal_command
                timeout = min(session.timeout, session.literals.stall_timeout) if stalled else session.timeout
                try:
                    data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
                except TimeoutError:
                    if stalled:
                        session.write(serializer.untagged_status("BYE", None, "No literal data for too long"))
                    else:
                        session.autologout()
                    await writer.drain()
                    break
                if not data:
                    break
                await session.feed(data)
                await session.literals.drain()  # spooled literal data to disk before reading more
                await writer.drain()
                if session.starttls_pending and self.ctx is not None:
                    await writer.start_tls(self.ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
                    session.tls_started()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:
            log.exception("IMAP connection from %s failed", ip)
        finally:
            self.live.pop(writer, None)
            await session.close()
            self.limits.release_ip(ip)
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 5)

    async def shutdown(self) -> None:
        for writer, session in list(self.live.items()):
            with contextlib.suppress(Exception):
                writer.write(b"* BYE Server shutting down\r\n")
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
        host, port = parse_hostport(cfg.listen)
        server = await asyncio.start_server(
            lambda r, w: listener.serve(r, w, implicit_tls=False), host, port, limit=READ_SIZE,
        )
        servers.append(server)
        rt.bound["imap"] = server.sockets[0].getsockname()[:2]
    if cfg.imaps:
        if ctx is None:
            log.warning("no TLS certificate configured; not listening for IMAPS on %s", cfg.imaps)
        else:
            host, port = parse_hostport(cfg.imaps)
            server = await asyncio.start_server(
                lambda r, w: listener.serve(r, w, implicit_tls=True), host, port, ssl=ctx,
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
