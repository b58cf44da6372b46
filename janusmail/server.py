"""The ``serve`` process frame: one asyncio loop hosting every listener, logging, graceful shutdown.

Each protocol plugs in as a *starter*: an async function that opens its listener(s) on the shared loop and
returns a closer. SIGTERM/SIGINT stop accepting, let the closers run, and close the store (which waits for
in-flight transactions), so nothing acknowledged is lost on shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from janusmail.config import Config, parse_hostport
from janusmail.store.store import Store

log = logging.getLogger("janusmail")

Closer = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    """What the listeners share: config, store, auth, and the addresses actually bound (for tests: port 0)."""

    config: Config
    store: Store
    auth: object | None = None
    bound: dict[str, tuple[str, int]] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)


def _bound(server: asyncio.base_events.Server) -> tuple[str, int]:
    sock = server.sockets[0]
    host, port = sock.getsockname()[:2]
    return host, port


async def start_lmtp(rt: Runtime) -> None:
    from janusmail.smtp.lmtp import start_lmtp as start

    if not rt.config.lmtp.listen:
        return
    host, port = parse_hostport(rt.config.lmtp.listen)
    server = await start(rt.store, host, port, rt.config.lmtp.max_message_size)
    rt.bound["lmtp"] = _bound(server)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    rt.closers.append(close)


async def start_imap(rt: Runtime) -> None:
    try:
        from janusmail.imap.server import start_imap as start
    except ImportError:
        if rt.config.imap.listen or rt.config.imap.imaps:
            log.warning("IMAP is not yet served by this build; ignoring --imap/--imaps")
        return
    await start(rt)


async def start_jmap(rt: Runtime) -> None:
    try:
        from janusmail.jmap.http import start_jmap as start
    except ImportError:
        if rt.config.jmap.listen:
            log.warning("JMAP is not yet served by this build; ignoring --jmap")
        return
    await start(rt)


STARTERS: list[Callable[[Runtime], Awaitable[None]]] = [start_lmtp, start_imap, start_jmap]


def make_auth(config: Config, store: Store) -> object | None:
    """The shared authentication subsystem (janusmail.auth), or None while it is not built."""
    try:
        from janusmail.auth.factory import build_authenticator
    except ImportError:
        return None
    return build_authenticator(config, store)


async def start_all(config: Config, store: Store) -> Runtime:
    rt = Runtime(config, store, make_auth(config, store))
    store.start_listener()
    for starter in STARTERS:
        await starter(rt)
    return rt


async def stop_all(rt: Runtime) -> None:
    for close in reversed(rt.closers):
        with contextlib.suppress(Exception):
            await close()
    auth_close = getattr(rt.auth, "close", None)  # the login threads (janusmail.auth.Authenticator.run)
    if auth_close is not None:
        auth_close()


async def serve_forever(config: Config, ready: Callable[[Runtime], None] | None = None) -> None:
    config.check()
    store = Store.open(config.data_dir, config.db)
    rt = await start_all(config, store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    for name, (host, port) in rt.bound.items():
        log.info("%s listening on %s:%d", name.upper(), host, port)
    # What RFC 9698 clients are sent to (settled by now: derived from the JMAP listener when not configured).
    log.info("JMAPACCESS points at %s", config.session_url or "nothing (no JMAP here and no public URL): not offered")
    # Everything loaded so far lives as long as the process: keep the collector from rescanning it, and let
    # the young generation grow (big FETCH/SEARCH answers allocate many short-lived objects).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    if ready:
        ready(rt)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await stop_all(rt)
        store.close()


def run(config: Config, ready: Callable[[Runtime], None] | None = None) -> None:
    try:
        import uvloop  # type: ignore[import-not-found]

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    runner(serve_forever(config, ready))
