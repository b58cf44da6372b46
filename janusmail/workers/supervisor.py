"""The supervisor of ``janusmail serve --workers N`` (see :mod:`janusmail.workers` for the why).

At start, before any worker exists, it does once what workers must not race on: migrates the store, checks
the auth settings and makes the token signing key, makes a self-signed TLS certificate if one is used,
removes the previous run's spool leftovers, and binds every listener (an address in use fails here, with
nothing started). Then it starts N workers and waits until each says ready before it announces the server
(the banner is printed once, here). A worker that exits while the server runs is replaced (at once, then
with a growing pause if replacements keep dying young); one that fails before the server was ready fails
the start. SIGTERM/SIGINT pass SIGTERM to every worker and wait for them to drain.

On SQLite the supervisor also owns the change bus (:mod:`janusmail.store.changebus`): one socket pair per
worker, every event fanned out to the other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from janusmail.config import Config
from janusmail.spool import Spooler
from janusmail.store.changebus import BusHub, socket_pair

from .balance import LoadBoard
from .sockets import bind_listeners, close_all
from .worker import READY, WorkerSpec

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.observability.endpoint import WorkersMetrics

__all__ = ["Supervisor", "run"]

log = logging.getLogger("janusmail.workers")

#: Seconds a stopping worker may take to drain before it is killed.
DRAIN_SECONDS = 30.0
#: A replacement that lived less than this counts as dying young (the next one waits longer).
YOUNG_SECONDS = 10.0
#: Longest pause before replacing a worker that keeps dying young.
MAX_BACKOFF = 30.0


@dataclass(eq=False)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    started: float
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def prepare(config: Config) -> bool:
    """The once-per-start work (see the module docstring); returns whether the store is SQLite."""
    from janusmail.server import make_auth
    from janusmail.store.store import Store

    store = Store.open(config.data_dir, config.db, blob_store=config.store.blob_store)
    try:
        make_auth(config, store).close()  # raises ValueError on inconsistent settings; makes the signing key
        return store.sqlite
    finally:
        store.close()


class Supervisor:
    """Starts, watches, replaces and stops the workers; see the module docstring."""

    def __init__(self, config: Config, workers: int, *, sqlite: bool, listeners: dict[str, socket.socket],
                 ready: Callable[[dict[str, tuple[str, int]]], None] | None = None,
                 metrics: WorkersMetrics | None = None) -> None:
        if workers < 1:
            raise ValueError("--workers must be at least 1")
        self.config = config
        self.count = workers
        self.sqlite = sqlite
        self.listeners = listeners
        self.bound = {name: tuple(sock.getsockname()[:2]) for name, sock in listeners.items()}
        #: ``[metrics] listen``: the workers write their metrics for this process to serve (summed)
        self.metrics = metrics
        if metrics is not None:
            self.bound["metrics"] = metrics.bound
        self._ready_cb = ready
        self._workers: dict[int, _Worker] = {}
        self._hub: BusHub | None = None
        self._stop = asyncio.Event()
        self._serving = False
        self._failed = False
        self._young: dict[int, int] = {}  # slot -> replacements in a row that died young
        self._watchers: set[asyncio.Task[None]] = set()
        #: each worker's open connections, so a new one goes to the least loaded (balance.py); one worker: none
        self._board: LoadBoard | None = LoadBoard.create(workers) if workers > 1 else None

    async def _spawn(self, index: int) -> _Worker:
        hub_end: socket.socket | None = None
        worker_end: socket.socket | None = None
        if self._hub is not None:
            hub_end, worker_end = socket_pair()
        fds = {name: sock.fileno() for name, sock in self.listeners.items()}
        board = self._board
        pass_fds = [*fds.values(), *([worker_end.fileno()] if worker_end else []), *([board.fd] if board else [])]
        spec = WorkerSpec(index, self.config, fds, worker_end.fileno() if worker_end else None,
                          logging.getLogger().getEffectiveLevel(),
                          (board.fd, board.slots) if board is not None else None)
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "janusmail.workers.worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, pass_fds=pass_fds,
                env=self.metrics.worker_env() if self.metrics is not None else None)
        finally:
            if worker_end is not None:
                worker_end.close()  # the worker has its own copy now
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(spec))  # stdin stays open: its end tells the worker we are gone
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()
        if self._hub is not None and hub_end is not None:
            self._hub.add(index, hub_end)
        worker = _Worker(index, proc, time.monotonic())
        self._workers[index] = worker
        log.info("worker %d started (pid %d)", index, proc.pid)
        return worker

    async def _watch(self, worker: _Worker) -> None:
        """Follow one worker: its ready line, then its exit; replace it if the server is still running."""
        proc = worker.proc
        assert proc.stdout is not None
        line = await proc.stdout.readline()
        if line == READY:
            worker.ready.set()
            if self._serving:
                log.info("worker %d (pid %d) ready", worker.index, proc.pid)
        while await proc.stdout.read(4096):  # nothing more is expected; keep the pipe from filling
            pass
        code = await proc.wait()
        if self.metrics is not None:  # its open connections and push listeners leave the sums
            self.metrics.worker_exited(proc.pid)
        if self._hub is not None:
            self._hub.remove(worker.index)
        if self._board is not None:  # its connections died with it
            self._board.clear(worker.index)
        if self._workers.get(worker.index) is worker:
            del self._workers[worker.index]
        if self._stop.is_set():
            return
        if not self._serving:
            log.error("worker %d (pid %d) exited with status %s while starting", worker.index, proc.pid, code)
            self._failed = True
            self._stop.set()
            return
        young = time.monotonic() - worker.started < YOUNG_SECONDS
        self._young[worker.index] = self._young.get(worker.index, 0) + 1 if young else 0
        pause = min(MAX_BACKOFF, 0.25 * 2 ** self._young[worker.index]) if young else 0.0
        log.warning("worker %d (pid %d) exited with status %s; starting a new one%s", worker.index, proc.pid,
                    code, f" in {pause:.1f} s" if pause else "")
        if pause:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)
            if self._stop.is_set():
                return
        self._follow(await self._spawn(worker.index))

    def _follow(self, worker: _Worker) -> None:
        task = asyncio.create_task(self._watch(worker), name=f"worker-{worker.index}")
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _shutdown(self) -> None:
        workers = list(self._workers.values())
        for w in workers:
            with contextlib.suppress(ProcessLookupError):
                w.proc.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                await asyncio.wait_for(w.proc.wait(), DRAIN_SECONDS)
            except TimeoutError:
                log.warning("worker %d (pid %d) did not stop within %.0f s; killing it", w.index, w.proc.pid,
                            DRAIN_SECONDS)
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()
                await w.proc.wait()

    async def main(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit status (1: the workers could not start)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._stop.set)
        if self.sqlite:
            self._hub = BusHub(loop)
        try:
            for index in range(self.count):
                self._follow(await self._spawn(index))
            starting = asyncio.ensure_future(asyncio.gather(*(w.ready.wait() for w in list(self._workers.values()))))
            stopping = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            starting.cancel()
            if not self._stop.is_set():
                self._serving = True
                self._announce()
                await stopping
            stopping.cancel()
            log.info("shutting down %d workers", len(self._workers))
            await self._shutdown()
        finally:
            for task in list(self._watchers):
                task.cancel()
            if self._hub is not None:
                self._hub.close()
            if self._board is not None:
                self._board.close()
            close_all(self.listeners)
        return 1 if self._failed else 0

    def _announce(self) -> None:
        for name, (host, port) in self.bound.items():
            log.info("%s listening on %s:%d", name.upper(), host, port)
        log.info("JMAPACCESS points at %s",
                 self.config.session_url or "nothing (no JMAP here and no public URL): not offered")
        log.info("serving with %d worker processes; change events between them %s", self.count,
                 "over this supervisor's change bus (SQLite)" if self.sqlite else "by PostgreSQL NOTIFY")
        if self._ready_cb is not None:
            self._ready_cb(dict(self.bound))


def run(config: Config, workers: int, ready: Callable[[dict[str, tuple[str, int]]], None] | None = None) -> int:
    """Prepare, bind, and supervise ``workers`` worker processes until SIGTERM/SIGINT; the exit status."""
    config.check()
    sqlite = prepare(config)
    Spooler.from_config(config)  # removes a previous run's spool leftovers, once, before any worker runs
    listeners = bind_listeners(config)
    metrics: WorkersMetrics | None = None
    try:
        if config.metrics.listen:
            from janusmail.observability.endpoint import WorkersMetrics

            metrics = WorkersMetrics(config)  # served here: the sum of every worker's, and the store's numbers
        supervisor = Supervisor(config, workers, sqlite=sqlite, listeners=listeners, ready=ready, metrics=metrics)
    except BaseException:
        close_all(listeners)
        if metrics is not None:
            metrics.close()
        raise
    try:
        return asyncio.run(supervisor.main())
    finally:
        if metrics is not None:
            metrics.close()
