"""A real ``janusmail serve`` process for the metrics and log tests: every listener on port 0 (the ports come back
in its ready banner, so no port is picked up front and none can be taken meanwhile), its stderr kept line by
line, and ``/metrics`` scraped and parsed with prometheus-client's own parser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

#: A safety net for things that should happen: generous, because a busy machine is slow, not broken.
WAIT = 60.0


@dataclass(eq=False)
class Served:
    proc: subprocess.Popen
    bound: dict[str, tuple[str, int]]
    #: everything the server wrote on stderr, banner included (appended by a reader thread)
    lines: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def port(self, name: str) -> int:
        return self.bound[name][1]

    def output(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.output():
                if predicate(line):
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError("no such log line; the server wrote:\n" + "".join(self.output()[-50:]))

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics`` by (name, sorted labels)."""
        host, port = self.bound["metrics"]
        text = httpx.get(f"http://{host}:{port}/metrics", timeout=WAIT).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def sample(samples: dict, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for_sample(served: Served, name: str, want: Callable[[float], bool], **labels: str) -> float:
    """Scrape until the sample satisfies ``want`` (gauges change as connections come and go)."""
    deadline = time.monotonic() + WAIT
    while True:
        value = sample(served.scrape(), name, **labels)
        if want(value):
            return value
        assert time.monotonic() < deadline, f"{name}{labels} stayed at {value}"
        time.sleep(0.05)


def serve(data: Path, *args: str, workers: int = 1, verbose: bool = True) -> Served:
    """``janusmail serve`` on ``data`` with IMAP, JMAP, LMTP, submission and metrics on ephemeral loopback
    ports, plus ``args``; returned once ready."""
    cmd = [sys.executable, "-m", "janusmail.cli.main", *(["-v"] if verbose else []), "--data", str(data), "serve",
           "--imap", "127.0.0.1:0", "--jmap", "127.0.0.1:0", "--lmtp", "127.0.0.1:0",
           "--submission", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--workers", str(workers), *args]
    env = {k: v for k, v in os.environ.items() if k not in ("JANUSMAIL_DB", "PROMETHEUS_MULTIPROC_DIR")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stderr is not None
    served = Served(proc, {})
    for line in proc.stderr:  # (no clock: pytest-timeout bounds a server that hangs)
        with served._lock:
            served.lines.append(line)
        name, tab, where = line.rstrip("\n").partition("\t")
        if tab:
            host, _, port = where.rpartition(":")
            served.bound[name] = (host, int(port))
        elif line.strip() == "ready":
            break
    else:
        proc.wait()
        raise RuntimeError("the server did not start:\n" + "".join(served.lines[-50:]))

    def drain() -> None:
        for rest in proc.stderr:  # type: ignore[union-attr]
            with served._lock:
                served.lines.append(rest)

    threading.Thread(target=drain, daemon=True).start()
    return served
