"""The ``serve`` process frame: one asyncio loop hosting every listener, logging, graceful shutdown.

Each protocol plugs in as a *starter*: an async function that opens its listener(s) on the shared loop and
returns a closer. SIGTERM/SIGINT stop accepting, let the closers run, and close the store (which waits for
in-flight transactions), so nothing acknowledged is lost on shutdown.

What the listeners share is :class:`janusmail.runtime.Runtime` (its own module: the doors import it, and this
frame imports the doors). The doors and the authenticator are imported and built unconditionally: a broken
import or an inconsistent auth setting stops the start with its error, never a server missing a door.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

from janusmail.auth.authenticator import Authenticator
from janusmail.auth.factory import build_authenticator
from janusmail.config import Config, parse_hostport
from janusmail.imap.server import start_imap
from janusmail.jmap.http import start_jmap
from janusmail.runtime import Runtime
from janusmail.smtp.lmtp import start_lmtp as _open_lmtp
from janusmail.store.store import Store

__all__ = ["STARTERS", "make_auth", "run", "serve_forever", "start_all", "stop_all"]

log = logging.getLogger("janusmail")


def _bound(server: asyncio.base_events.Server) -> tuple[str, int]:
    sock = server.sockets[0]
    host, port = sock.getsockname()[:2]
    return host, port


async def start_lmtp(rt: Runtime) -> None:
    if not rt.config.lmtp.listen:
        return
    host, port = parse_hostport(rt.config.lmtp.listen)
    server = await _open_lmtp(rt.store, host, port, rt.config.lmtp.max_message_size)
    rt.bound["lmtp"] = _bound(server)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    rt.closers.append(close)


#: Every door of the process, imported at the top of this module: a door that cannot be imported stops
#: ``janusmail serve`` at start with the import error, instead of a server running without that door.
#: Each starter opens nothing when its section names no listener.
STARTERS: list[Callable[[Runtime], Awaitable[None]]] = [start_lmtp, start_imap, start_jmap]


def make_auth(config: Config, store: Store) -> Authenticator:
    """The one authenticator IMAP, JMAP and SMTP share; raises ``ValueError`` on inconsistent settings."""
    return build_authenticator(config, store)


async def start_all(config: Config, store: Store) -> Runtime:
    rt = Runtime(config, store, make_auth(config, store))
    # The spool budget exists before any listener (and a previous run's spool leftovers are gone).
    rt.spooler  # noqa: B018
    store.start_listener()
    try:
        for starter in STARTERS:
            await starter(rt)
    except BaseException:  # a listener that cannot open stops the start: close the ones already open
        await stop_all(rt)
        raise
    return rt


async def stop_all(rt: Runtime) -> None:
    for close in reversed(rt.closers):
        with contextlib.suppress(Exception):
            await close()
    rt.auth.close()  # the login threads (janusmail.auth.Authenticator.run)


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
