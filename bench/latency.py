"""Change-notification latency: delivery -> IMAP IDLE ``EXISTS``, and delivery -> JMAP EventSource ``state``.

The tests check that the notification comes (waiting as long as a busy machine needs); how soon is measured
here. The server runs in a thread of this process (tests/serverutil.py); each sample delivers one message
through the store and times until the client reads the notification. Prints p50 / p99 / max.

Run: .venv/bin/python bench/latency.py [--samples 200]
"""

from __future__ import annotations

import argparse
import queue
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from janusmail.auth import make_credentials  # noqa: E402
from tests.mailgen import simple  # noqa: E402
from tests.serverutil import ServerThread, make_config  # noqa: E402

ADDRESS = "bench@example.test"
PASSWORD = "bench password"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def report(name: str, ms: list[float]) -> None:
    print(f"{name:40s} p50 {pct(ms, 50):7.2f} ms   p99 {pct(ms, 99):7.2f} ms   max {max(ms):7.2f} ms  (n={len(ms)})")


def idle_latency(srv: ServerThread, account_id: str, inbox: str, samples: int) -> list[float]:
    sock = socket.create_connection(("127.0.0.1", srv.imap_port), timeout=30)
    f = sock.makefile("rb")

    def cmd(tag: str, text: str) -> None:
        sock.sendall(f"{tag} {text}\r\n".encode())
        while not f.readline().startswith(tag.encode() + b" "):
            pass

    f.readline()  # greeting
    cmd("a", f'LOGIN {ADDRESS} "{PASSWORD}"')
    cmd("s", "SELECT INBOX")
    sock.sendall(b"i IDLE\r\n")
    assert f.readline().startswith(b"+")
    out = []
    for n in range(samples):
        t0 = time.perf_counter()
        srv.run(srv.store.deliver(account_id, simple(n), (inbox,)))
        while not f.readline().endswith(b" EXISTS\r\n"):
            pass
        out.append((time.perf_counter() - t0) * 1000)
    sock.sendall(b"DONE\r\n")
    sock.close()
    return out


def push_latency(srv: ServerThread, account_id: str, inbox: str, samples: int) -> list[float]:
    events: queue.Queue = queue.Queue()
    opened = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=srv.config.public_url, auth=(ADDRESS, PASSWORD), timeout=None) as c, \
                c.stream("GET", "/jmap/eventsource?types=*&closeafter=no&ping=0") as r:
            opened.set()
            for line in r.iter_lines():
                if line.startswith("event: state"):
                    events.put(time.perf_counter())

    threading.Thread(target=read, daemon=True).start()
    assert opened.wait(30)
    deadline = time.monotonic() + 30
    while srv.store.notifier.subscriber_count(account_id) < 1:  # the stream has subscribed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    out = []
    for n in range(samples):
        t0 = time.perf_counter()
        srv.run(srv.store.deliver(account_id, simple(10_000 + n), (inbox,)))
        out.append((events.get(timeout=30) - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        srv = ServerThread(make_config(Path(d) / "data")).start()
        try:
            acct = srv.store.accounts.create(ADDRESS, *make_credentials(PASSWORD))
            inbox = srv.store.mailboxes.by_path(acct.id, ["INBOX"]).id
            report("delivery -> IMAP IDLE EXISTS", idle_latency(srv, acct.id, inbox, args.samples))
            report("delivery -> JMAP EventSource state", push_latency(srv, acct.id, inbox, args.samples))
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
