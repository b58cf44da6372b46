"""Cross-process push latency of ``janusmail serve --workers N``: how long after an APPEND is acknowledged do
IDLE sessions see ``* n EXISTS``, split by whether the idler is on the writer's worker or on another one.

Why: with several workers a write in one process must wake sessions in the others (PostgreSQL NOTIFY, or on
SQLite the supervisor's change bus); the aim is 50 ms p50. The writer APPENDs one message at a time and waits
until every idler has seen it, so each sample is one write's trip. Which worker serves which connection is
read from /proc (tests/procworkers.py; Linux).

Run: .venv/bin/python bench/push_workers.py [--workers 2] [--idlers 20] [--appends 100] [--pg URL]
"""

from __future__ import annotations

import argparse
import imaplib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argon2  # noqa: E402

from janusmail.auth import passwords  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.mailgen import simple  # noqa: E402
from tests.procworkers import serving_pid, worker_pids  # noqa: E402
from tests.serverutil import make_config, spawn_server  # noqa: E402

ADDRESS = "push@example.test"
PASSWORD = "push bench password"


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


class Idler(threading.Thread):
    """One IDLE session; records when each ``* n EXISTS`` arrived."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.client = imaplib.IMAP4("127.0.0.1", port, timeout=120)
        self.seen: dict[int, float] = {}
        self.cond = threading.Condition()

    def begin(self) -> None:
        self.client.login(ADDRESS, PASSWORD)
        self.client.select("INBOX")
        self.client.send(b"I IDLE\r\n")
        assert self.client.readline().startswith(b"+")
        self.start()

    def run(self) -> None:
        while True:
            try:
                line = self.client.readline()
            except OSError:
                return
            if not line:
                return
            parts = line.split()
            if len(parts) == 3 and parts[2] == b"EXISTS":
                with self.cond:
                    self.seen[int(parts[1])] = time.perf_counter()
                    self.cond.notify_all()

    def wait_for(self, n: int, deadline: float) -> float | None:
        with self.cond:
            while n not in self.seen and not any(k >= n for k in self.seen):
                if not self.cond.wait(max(0.0, deadline - time.perf_counter())):
                    return None
            return self.seen.get(n) or min(t for k, t in self.seen.items() if k >= n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--idlers", type=int, default=20)
    ap.add_argument("--appends", type=int, default=100)
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (a fresh schema is made; default: SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "data"
        db = None
        if args.pg:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from imap import pg_schema  # bench/imap.py: a fresh schema per run

            db = pg_schema(args.pg)
        passwords.set_hasher(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        store = Store.open(data, db)
        try:
            store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
        finally:
            store.close()
        (data / "janusmail.toml").write_text("[imap]\nidle_poll_interval = 3600\n")  # pushes only
        cfg = make_config(data, db, imap__imaps=None, jmap__listen=None, lmtp__listen=None)
        proc: subprocess.Popen = spawn_server(data, cfg, db, workers=args.workers)
        try:
            port = int(cfg.imap.listen.rsplit(":", 1)[1])
            pids = worker_pids(proc.pid) if args.workers > 1 else {proc.pid}
            idlers = [Idler(port) for _ in range(args.idlers)]
            for idler in idlers:
                idler.begin()
            writer = imaplib.IMAP4("127.0.0.1", port, timeout=120)
            # imaplib sends a literal and its closing CRLF in two writes: with Nagle on, the second waited for
            # the server's delayed ACK, and the APPEND round trip read ~47 ms instead of ~3 ms
            writer.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            writer.login(ADDRESS, PASSWORD)
            writer_pid = serving_pid(writer.sock, pids)
            where = [serving_pid(i.client.sock, pids) for i in idlers]
            same: list[float] = []
            other: list[float] = []
            appends: list[float] = []
            for n in range(1, args.appends + 1):
                t0 = time.perf_counter()
                typ, _ = writer.append("INBOX", None, None, simple(n))
                ok = time.perf_counter()
                assert typ == "OK"
                appends.append(ok - t0)
                deadline = ok + 30
                for idler, pid in zip(idlers, where, strict=True):
                    at = idler.wait_for(n, deadline)
                    assert at is not None, f"an idler on pid {pid} never saw message {n}"
                    (same if pid == writer_pid else other).append(max(0.0, at - ok))
            print(f"workers={args.workers} backend={'PostgreSQL' if args.pg else 'SQLite'} idlers={args.idlers} "
                  f"({sum(p != writer_pid for p in where)} on other workers) appends={args.appends} "
                  f"cpus={len(os.sched_getaffinity(0))}")
            print(f"  APPEND round trip          p50 {pct(appends, 50) * 1000:7.1f} ms  p99 {pct(appends, 99) * 1000:7.1f} ms")
            for name, v in (("EXISTS, writer's worker", same), ("EXISTS, another worker", other)):
                if v:
                    print(f"  {name:26s} p50 {pct(v, 50) * 1000:7.1f} ms  p99 {pct(v, 99) * 1000:7.1f} ms"
                          f"  ({len(v)} samples, after the APPEND's OK)")
            writer.logout()
        finally:
            proc.terminate()
            proc.wait(60)


if __name__ == "__main__":
    main()
