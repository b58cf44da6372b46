"""One worker process of ``serve --workers``: the whole server frame (:func:`janusmail.server.run`) on the
listening sockets its supervisor bound.

Started as ``python -m janusmail.workers.worker`` by :mod:`.supervisor`, which writes a pickled
:class:`WorkerSpec` to its stdin and keeps stdin open: end of file there means the supervisor is gone (even
killed with SIGKILL), and the worker then stops like on SIGTERM instead of serving on as an orphan. The
worker prints ``ready`` on stdout once its listeners are open; its log goes to the inherited stderr.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import threading
from dataclasses import dataclass

from janusmail.config import Config

__all__ = ["READY", "WorkerSpec", "main"]

#: The line a worker prints on stdout when it serves.
READY = b"ready\n"


@dataclass
class WorkerSpec:
    """What the supervisor hands a worker: its slot, the settled config (public URL included), the inherited
    descriptors by listener name, its end of the change bus (SQLite), the log level and the load board."""

    index: int
    config: Config
    listeners: dict[str, int]
    bus: int | None
    log_level: int
    #: (descriptor, slots) of the supervisor's load board (balance.py); None with one worker
    board: tuple[int, int] | None = None


def _watch_supervisor() -> None:
    """Block on stdin; at its end the supervisor is gone: stop gracefully. (The descriptor, not
    ``sys.stdin``: a daemon thread inside a buffered read would hold its lock at interpreter exit.)"""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group; the supervisor turns it into SIGTERM for each
    # worker, so a worker still starting up ends quietly instead of with a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    spec: WorkerSpec = pickle.load(sys.stdin.buffer)
    from janusmail.observability import logs

    logs.configure(spec.log_level, spec.config.log.format, worker=spec.index)  # the supervisor's format
    listeners = {name: socket.socket(fileno=fd) for name, fd in spec.listeners.items()}
    bus = socket.socket(fileno=spec.bus) if spec.bus is not None else None
    board = None
    if spec.board is not None:
        from janusmail.workers.balance import LoadBoard

        board = LoadBoard(spec.board[0], spec.board[1], spec.index)
    threading.Thread(target=_watch_supervisor, name="supervisor-watch", daemon=True).start()

    def ready(_rt: object) -> None:
        sys.stdout.buffer.write(READY)
        sys.stdout.buffer.flush()

    from janusmail.server import run

    run(spec.config, ready, listeners=listeners, bus=bus, board=board)


if __name__ == "__main__":
    main()
