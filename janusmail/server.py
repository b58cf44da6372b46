"""The ``serve`` process frame: one asyncio loop hosting every listener, logging, graceful shutdown.

Each protocol plugs in as a *starter*: an async function that opens its listener(s) on the shared loop and
returns a closer. SIGTERM/SIGINT stop accepting, let the closers run, and close the store (which waits for
in-flight transactions), so nothing acknowledged is lost on shutdown.

With ``serve --workers N`` (janusmail.workers) this frame runs in each worker process: the listening
sockets come bound from the supervisor (``listeners``), the supervisor announced them and cleaned the spool,
and on SQLite the worker joins the supervisor's change bus (``bus``, janusmail.store.changebus) so its
sessions hear the other workers' writes. ``--workers 1`` runs it as the whole server, as before.

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
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from janusmail.auth.authenticator import Authenticator
from janusmail.auth.factory import build_authenticator
from janusmail.config import Config
from janusmail.connections import publish_forever
from janusmail.imap.server import start_imap
from janusmail.jmap.http import start_jmap
from janusmail.observability.metrics import build_metrics
from janusmail.process_memory import limit_malloc_arenas
from janusmail.runtime import Runtime
from janusmail.smtp.lmtp import start_lmtp as _open_lmtp
from janusmail.smtp.outbound import start_outbound
from janusmail.smtp.submission import start_submission
from janusmail.spool import Spooler
from janusmail.store.changebus import BusLink
from janusmail.store.search.merging import merge_forever
from janusmail.store.search.queue import index_forever
from janusmail.store.store import Store
from janusmail.workers.balance import LoadBoard

__all__ = ["STARTERS", "make_auth", "run", "serve_forever", "start_all", "stop_all"]

log = logging.getLogger("janusmail")


def _bound(server: asyncio.base_events.Server) -> tuple[str, int]:
    sock = server.sockets[0]
    host, port = sock.getsockname()[:2]
    return host, port


async def start_lmtp(rt: Runtime) -> None:
    if not rt.config.lmtp.listen:
        return
    where = rt.listen_args("lmtp", rt.config.lmtp.listen)
    server = await _open_lmtp(rt.store, where.get("host"), where.get("port"), rt.config.lmtp.max_message_size,
                              sock=where.get("sock"), metrics=rt.metrics)
    rt.bound["lmtp"] = _bound(server)

    async def close() -> None:
        server.close()
        await server.wait_closed()

    rt.closers.append(close)


#: Every door of the process, imported at the top of this module: a door that cannot be imported stops
#: ``janusmail serve`` at start with the import error, instead of a server running without that door.
#: Each starter opens nothing when its section names no listener.
STARTERS: list[Callable[[Runtime], Awaitable[None]]] = [start_lmtp, start_imap, start_jmap, start_submission,
                                                        start_outbound]


async def start_metrics(rt: Runtime) -> None:
    """Serve ``/metrics`` at ``[metrics] listen`` (this process's metrics and the store's numbers). Not a
    starter of every process: a worker of ``serve --workers`` reports to its supervisor, which serves."""
    from janusmail.observability.collectors import StoreCollector
    from janusmail.observability.endpoint import MetricsEndpoint

    registry = rt.metrics.registry  # type: ignore[attr-defined] # (the Prometheus facade's)
    registry.register(StoreCollector(rt.store, ttl=float(rt.config.metrics.store_refresh)))
    endpoint = MetricsEndpoint(str(rt.config.metrics.listen), registry)
    rt.bound["metrics"] = endpoint.bound

    async def close() -> None:
        await asyncio.to_thread(endpoint.close)

    rt.closers.append(close)


def start_publishing_connections(rt: Runtime) -> None:
    """Copy this process's open connections and recent failed logins into the store
    (janusmail.connections.publish_forever), so the web admin of any worker or node lists them: only where other processes may serve too (a worker of
    ``serve --workers``, a node on PostgreSQL); a lone SQLite server's admin reads its own registry."""
    run_in_background(rt, publish_forever(rt.store, rt.connections, rt.auth.throttle), "publish-process-state")


def run_in_background(rt: Runtime, work: Coroutine[Any, Any, None], name: str) -> None:
    """A task of the process's life: cancelled (and awaited) when the runtime stops."""
    task = asyncio.get_running_loop().create_task(work, name=name)

    async def close() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    rt.closers.append(close)


def start_segment_merger(rt: Runtime) -> None:
    """SQLite: merge the full-text indexes' segments in small background steps (store/search/merging.py), so
    no delivery pays for a level's merge while every other write waits."""
    run_in_background(rt, merge_forever(rt.store), "fts-segment-merger")


def start_search_indexer(rt: Runtime) -> None:
    """SQLite: index queued mail for full-text search in batches, in the background (store/search/queue.py):
    the writes that store mail no longer tokenize it while holding the one write lock."""
    run_in_background(rt, index_forever(rt.store), "fts-indexer")


def make_auth(config: Config, store: Store) -> Authenticator:
    """The one authenticator IMAP, JMAP and SMTP share; raises ``ValueError`` on inconsistent settings."""
    return build_authenticator(config, store)


async def start_all(config: Config, store: Store, *, listeners: Mapping[str, socket.socket] | None = None,
                    board: LoadBoard | None = None) -> Runtime:
    """Open every listener; ``listeners``: the sockets a supervisor bound (a worker of ``serve --workers``), and
    ``board`` its load board (janusmail.workers.balance: new IMAP connections go to the least loaded worker)."""
    rt = Runtime(config, store, make_auth(config, store))
    rt.board = board
    # Prometheus only with [metrics] listen; a worker's go to its supervisor (multiprocess mode), which serves.
    rt.metrics = build_metrics(config, worker=listeners is not None)
    if rt.metrics.enabled:
        store.on_group_commit = rt.metrics.group_commit
    if listeners is not None:
        rt.listeners.update(listeners)
        rt.spooler = Spooler.from_config(config, clean=False)  # the supervisor cleaned, before any worker ran
    # The spool budget exists before any listener (and a previous run's spool leftovers are gone).
    rt.spooler  # noqa: B018
    store.start_listener()
    try:
        if rt.metrics.enabled and listeners is None:
            await start_metrics(rt)
        for starter in STARTERS:
            await starter(rt)
        if listeners is not None or not store.sqlite:  # other processes may serve beside this one
            start_publishing_connections(rt)
        if store.sqlite:
            start_search_indexer(rt)
            start_segment_merger(rt)
    except BaseException:  # a listener that cannot open stops the start: close the ones already open
        await stop_all(rt)
        raise
    return rt


#: Longest wait for one part of the process to close at shutdown (a door, the outbound sender, a background
#: task) before the next one is closed anyway. A part that never finished closing kept the process alive, its
#: other listeners open, after SIGTERM (seen under a loaded test run); the log names it.
CLOSE_TIMEOUT = 10.0


async def stop_all(rt: Runtime) -> None:
    for close in reversed(rt.closers):
        try:
            await asyncio.wait_for(close(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("shutdown: %s did not finish within %.0f s; going on without it",
                        getattr(close, "__qualname__", close), CLOSE_TIMEOUT)
        except Exception:  # noqa: BLE001 - closing the rest matters more
            log.debug("shutdown: %s failed", getattr(close, "__qualname__", close), exc_info=True)
    rt.auth.close()  # the login threads (janusmail.auth.Authenticator.run)
    if rt.store.on_group_commit == rt.metrics.group_commit:
        rt.store.on_group_commit = None


async def serve_forever(config: Config, ready: Callable[[Runtime], None] | None = None, *,
                        listeners: Mapping[str, socket.socket] | None = None,
                        bus: socket.socket | None = None, board: LoadBoard | None = None) -> None:
    """Serve until SIGTERM/SIGINT. A worker of ``serve --workers`` passes the supervisor's ``listeners`` and
    its end of the change ``bus`` (SQLite); it stops by itself when the bus says the supervisor is gone."""
    config.check()
    store = Store.open(config.data_dir, config.db, blob_store=config.store.blob_store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    link: BusLink | None = None
    if bus is not None:
        link = BusLink(store, bus, on_lost=lambda: loop.call_soon_threadsafe(stop.set))
        link.start()
    try:
        rt = await start_all(config, store, listeners=listeners, board=board)
    except BaseException:
        store.close()
        if link is not None:
            link.stop()
        raise
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    # A worker's listeners were announced once by its supervisor.
    say = log.debug if listeners is not None else log.info
    for name, (host, port) in rt.bound.items():
        say("%s listening on %s:%d", name.upper(), host, port)
    # What RFC 9698 clients are sent to (settled by now: derived from the JMAP listener when not configured).
    say("JMAPACCESS points at %s", config.session_url or "nothing (no JMAP here and no public URL): not offered")
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
        say("shutting down")
        await stop_all(rt)
        store.close()
        if link is not None:
            link.stop()  # after the store: its last commits were still told to the other workers


def run(config: Config, ready: Callable[[Runtime], None] | None = None, *,
        listeners: Mapping[str, socket.socket] | None = None, bus: socket.socket | None = None,
        board: LoadBoard | None = None) -> None:
    limit_malloc_arenas()  # before the store's and the doors' threads start (process_memory.py)
    try:
        import uvloop  # type: ignore[import-not-found]

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    runner(serve_forever(config, ready, listeners=listeners, bus=bus, board=board))
