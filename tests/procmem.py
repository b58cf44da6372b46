"""Memory and I/O of another process, read from /proc (Linux): for tests that start the server as its own process
and check that load does not grow its resident memory."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

MIB = 1024 * 1024


class ProcMem:
    def __init__(self, pid: int) -> None:
        self.pid = pid

    def status(self) -> dict[str, int]:
        """The ``kB`` fields of /proc/PID/status, in octets (VmRSS, VmHWM, RssAnon, RssFile...)."""
        out = {}
        with open(f"/proc/{self.pid}/status") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                parts = value.split()
                if len(parts) == 2 and parts[1] == "kB":
                    out[name] = int(parts[0]) * 1024
        return out

    def rss(self) -> int:
        return self.status()["VmRSS"]

    def reset_peak(self) -> bool:
        """Reset VmHWM to the current RSS (Linux >= 4.0); False when not permitted."""
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as fh:
                fh.write("5")
            return True
        except OSError:
            return False

    def peak(self) -> int:
        return self.status()["VmHWM"]

    def written(self) -> int:
        """Octets the process has written with write-like calls (``wchar``): files and sockets."""
        with open(f"/proc/{self.pid}/io") as fh:
            for line in fh:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
        raise AssertionError("no wchar in /proc/PID/io")

    def open_files_under(self, directory: str) -> list[int]:
        """Sizes of the files the process holds open under ``directory`` (deleted ones included)."""
        sizes = []
        fd_dir = f"/proc/{self.pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
                if target.startswith(directory.rstrip("/") + "/"):
                    sizes.append(os.stat(f"{fd_dir}/{fd}").st_size)
            except OSError:
                continue
        return sizes


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    """Poll until ``predicate()`` holds (an event we cannot be told about), failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
