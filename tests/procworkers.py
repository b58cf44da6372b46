"""Which process is which under ``janusmail serve --workers N``, read from /proc (Linux): the supervisor's worker
processes, and which of them serves a given client connection.

Read from the kernel, not asked of the server: the worker whose descriptors include the accepted socket of our
client port (``/proc/net/tcp`` gives that socket's inode, ``/proc/PID/fd`` who holds it). For tests and
benchmarks that need a connection on one worker and another connection on a different one.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first, then the parent pid), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def worker_pids(supervisor: int) -> set[int]:
    """The live (not zombie) children of ``supervisor``: its worker processes."""
    pids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields and int(fields[1]) == supervisor and fields[0] != "Z":
                pids.add(int(entry.name))
    return pids


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for whoever adopted it counts as exited)."""
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z"


def _inode(server_port: int, client_port: int) -> int | None:
    """Inode of the server side of the loopback TCP connection ``client_port`` -> ``server_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                local, remote = cols[1], cols[2]
                if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port:
                    return int(cols[9])
    return None


def serving_pid(sock: socket.socket, pids: set[int]) -> int | None:
    """Which of ``pids`` holds the accepted end of our connection ``sock`` (ask once the server has spoken on
    it, e.g. after its greeting: then it was accepted)."""
    inode = _inode(sock.getpeername()[1], sock.getsockname()[1])
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) == target:
                        return pid
    return None
