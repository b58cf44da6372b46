"""Run the real server for end-to-end tests: in a thread of this process, or as a `janusmail serve` process.

Both listen on free loopback ports picked up front (the JMAP public URL must name its port before start).
A port picked up front can be taken by someone else (another test worker, a second `make test` on the same
machine) before the server binds it; both starters then pick new ports and try again, instead of failing.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from janusmail.config import Config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _in_use(exc: BaseException | None) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE


def repick_ports(cfg: Config) -> None:
    """New free ports for every loopback listener of ``cfg`` (and the public URL that names the JMAP one)."""
    for section, attr in (("imap", "listen"), ("imap", "imaps"), ("jmap", "listen"), ("lmtp", "listen"),
                          ("submission", "listen"), ("submission", "listen_tls")):
        obj = getattr(cfg, section)
        old = getattr(obj, attr)
        if not old or not old.startswith("127.0.0.1:"):
            continue
        new = f"127.0.0.1:{free_port()}"
        setattr(obj, attr, new)
        if (section, attr) == ("jmap", "listen") and cfg.public_url == f"http://{old}":
            cfg.public_url = f"http://{new}"


START_ATTEMPTS = 5


def make_config(data_dir: Path, db: str | None = None, **overrides: Any) -> Config:
    cfg = Config(data_dir=data_dir, db=db)
    cfg.imap.listen = f"127.0.0.1:{free_port()}"
    cfg.imap.imaps = f"127.0.0.1:{free_port()}"
    jport = free_port()
    cfg.jmap.listen = f"127.0.0.1:{jport}"
    cfg.public_url = f"http://127.0.0.1:{jport}"
    cfg.lmtp.listen = f"127.0.0.1:{free_port()}"
    for dotted, value in overrides.items():
        obj: Any = cfg
        parts = dotted.split("__")
        for p in parts[:-1]:
            obj = getattr(obj, p)
        setattr(obj, parts[-1], value)
    return cfg


def port_of(addr: str | None) -> int:
    assert addr
    return int(addr.rsplit(":", 1)[1])


@dataclass
class ServerThread:
    """The whole server (every listener on one asyncio loop) in a background thread."""

    config: Config
    store: Any = None
    runtime: Any = None
    loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    def start(self) -> ServerThread:
        from janusmail.store.store import Store

        self.store = Store.open(self.config.data_dir, self.config.db)

        async def main() -> None:
            from janusmail.server import start_all, stop_all

            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                self.runtime = await start_all(self.config, self.store)
            except BaseException as exc:  # surface start-up failures in the test
                self._error = exc
                self._ready.set()
                if _in_use(exc):
                    return  # start() picks new ports and tries again
                raise
            self._ready.set()
            await self._stop.wait()
            await stop_all(self.runtime)

        for attempt in range(START_ATTEMPTS):
            self._error = None
            self._ready.clear()
            self._thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
            self._thread.start()
            if not self._ready.wait(120):
                raise RuntimeError("the server thread did not start within 120 s")
            if self._error is None:
                return self
            self._thread.join(30)
            if not _in_use(self._error) or attempt == START_ATTEMPTS - 1:
                raise self._error
            repick_ports(self.config)  # someone took a port between picking and binding: pick again
        return self

    def run(self, coro) -> Any:  # noqa: ANN001
        """Run a coroutine on the server's loop (e.g. a store call that must publish on it)."""
        assert self.loop
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        if self.loop and self._stop:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(30)
        if self.store:
            self.store.close()

    @property
    def imap_port(self) -> int:
        return port_of(self.config.imap.listen)

    @property
    def imaps_port(self) -> int:
        return port_of(self.config.imap.imaps)

    @property
    def jmap_port(self) -> int:
        return port_of(self.config.jmap.listen)

    @property
    def lmtp_port(self) -> int:
        return port_of(self.config.lmtp.listen)


def janusmail_cmd(data_dir: Path, *args: str, db: str | None = None, input: str | None = None,
                  check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if db:
        env["JANUSMAIL_DB"] = db
    return subprocess.run([sys.executable, "-m", "janusmail.cli.main", "--data", str(data_dir), *args],
                          capture_output=True, text=True, input=input, check=check, env=env, timeout=300)


def spawn_server(data_dir: Path, cfg: Config, db: str | None = None, *, workers: int = 1) -> subprocess.Popen:
    """``janusmail serve`` with ``cfg``'s listeners, returned once it says ready. If a port was taken in the
    meantime, ``cfg`` gets new ports (read them after this returns) and the server is started again.
    ``workers``: ``serve --workers`` (1, the default here: one process, whose pid is the server's, as tests
    measuring it need; more: a supervisor, ``proc``, and its worker processes)."""
    for attempt in range(START_ATTEMPTS):
        proc, output = _spawn_once(data_dir, cfg, db, workers)
        if proc is not None:
            return proc
        if "Address already in use" not in output and f"[Errno {errno.EADDRINUSE}]" not in output:
            break
        if attempt < START_ATTEMPTS - 1:
            repick_ports(cfg)
    raise RuntimeError("server did not start:\n" + output[-4000:])


def _spawn_once(data_dir: Path, cfg: Config, db: str | None, workers: int) -> tuple[subprocess.Popen | None, str]:
    env = dict(os.environ)
    if db:
        env["JANUSMAIL_DB"] = db
    proc = subprocess.Popen(
        [sys.executable, "-m", "janusmail.cli.main", "--data", str(data_dir), "serve",
         "--imap", cfg.imap.listen or "off", "--jmap", cfg.jmap.listen or "off", "--lmtp", cfg.lmtp.listen or "off",
         "--public-url", cfg.public_url, "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stderr
    seen: list[str] = []
    # The server prints "ready" once every listener is bound; the pipe ends if it exits instead. (No clock
    # here: a busy machine starts slowly, and pytest-timeout bounds a server that hangs.)
    for line in proc.stderr:
        if line.strip() == "ready":
            # Keep draining the server's output so a full pipe never blocks it.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # type: ignore[union-attr]
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, ""
        seen.append(line)
    proc.kill()
    proc.wait()
    return None, "".join(seen)
