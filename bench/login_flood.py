"""Login-flood benchmark (issue 8 item 3): how long does the owner wait while 200 connections guess passwords?

The server runs as its own ``janusmail serve`` process with the *production* argon2 parameters. 200 attacker
connections from 50 loopback source addresses (127.0.0.2 .. 127.0.0.51; all of 127/8 is loopback on Linux)
send wrong-password LOGINs for the owner's account, each sending the next as soon as the last is answered,
for the whole run. The owner's LOGIN latency (connect to tagged OK) is measured:

1. idle, from a fresh address, then again from that (now trusted) address;
2. at the start of a flood (the attackers' first attempts are still being hashed), from a fresh address;
3. at the start of a second flood from 50 other addresses, from the trusted address (one owner login at a
   time: two concurrent logins with the same password would share one hash);
4. after that flood has run ``--settle`` seconds, fresh and trusted.

The success cache is off (``credential_cache_seconds = 0``) so every owner login pays one argon2 verification:
the worst case. With the cache on, a client that logged in within the last 10 minutes needs no hashing at all.

Run: .venv/bin/python bench/login_flood.py [--attackers 200] [--addresses 50] [--settle 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from janusmail.auth import passwords  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.serverutil import free_port  # noqa: E402

ADDRESS = "owner@example.test"
PASSWORD = "the owner's real password"


def build(data: Path) -> None:
    data.mkdir(parents=True, exist_ok=True)
    (data / "janusmail.toml").write_text("[auth]\ncredential_cache_seconds = 0\n")
    store = Store.open(data, None)
    try:
        store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))  # production argon2 parameters
    finally:
        store.close()


def serve(data: Path, port: int) -> subprocess.Popen:
    log = open(data / "server.log", "w")  # noqa: SIM115 - lives as long as the server process
    proc = subprocess.Popen(
        [sys.executable, "-m", "janusmail.cli.main", "--data", str(data), "serve", "--imap", f"127.0.0.1:{port}",
         "--jmap", "off", "--lmtp", "off", "--public-url", "http://127.0.0.1:8080"],
        stdout=log, stderr=log, env=dict(os.environ))
    deadline = time.time() + 60
    while time.time() < deadline:
        if "ready" in (data / "server.log").read_text():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start:\n" + (data / "server.log").read_text()[-3000:])


async def login(port: int, source: str, user: str, password: str) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        await reader.readline()
        writer.write(f'a LOGIN "{user}" "{password}"\r\n'.encode())
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line or line.startswith(b"a "):
                return time.perf_counter() - t0, line
    finally:
        writer.close()


class Flood:
    def __init__(self, port: int, attackers: int, addresses: int, net: str) -> None:
        self.port = port
        self.sources = [f"{net}.{2 + i % addresses}" for i in range(attackers)]
        self.answers: Counter[str] = Counter()
        self.sent = 0
        self.started = asyncio.Event()
        self._first = 0
        self.tasks: list[asyncio.Task] = []

    async def _attacker(self, source: str, k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(source, 0))
        await reader.readline()
        n = 0
        try:
            while True:
                n += 1
                writer.write(f'a LOGIN "{ADDRESS}" "guess {k}-{n}"\r\n'.encode())
                await writer.drain()
                self.sent += 1
                if n == 1:
                    self._first += 1
                    if self._first == len(self.sources):
                        self.started.set()
                line = await reader.readline()
                while line and not line.startswith(b"a "):
                    line = await reader.readline()
                if not line:
                    return
                self.answers[" ".join(line.decode().split()[1:3])] += 1
        finally:
            writer.close()

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._attacker(s, k)) for k, s in enumerate(self.sources)]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def run(args: argparse.Namespace, port: int) -> None:
    def show(label: str, result: tuple[float, bytes]) -> None:
        took, line = result
        print(f"  {label:<44} {took * 1000:8.0f} ms  {line.decode().strip()[:60]}")

    print(f"owner LOGIN latency (production argon2, cache off), {args.attackers} attackers "
          f"from {args.addresses} addresses:")
    show("idle, fresh address", await login(port, "127.0.0.100", ADDRESS, PASSWORD))
    show("idle, trusted address", await login(port, "127.0.0.100", ADDRESS, PASSWORD))
    sent: Counter[str] = Counter()
    for net, who, source in (("127.0.1", "fresh", "127.0.0.101"), ("127.0.2", "trusted", "127.0.0.100")):
        flood = Flood(port, args.attackers, args.addresses, net)
        flood.start()
        await asyncio.wait_for(flood.started.wait(), 60)
        show(f"flood start, {who} address", await login(port, source, ADDRESS, PASSWORD))
        if who == "trusted":
            await asyncio.sleep(args.settle)
            show(f"after {args.settle:g} s of flood, fresh address",
                 await login(port, "127.0.0.102", ADDRESS, PASSWORD))
            show(f"after {args.settle:g} s of flood, trusted address",
                 await login(port, "127.0.0.100", ADDRESS, PASSWORD))
        await flood.stop()
        sent.update(flood.answers)
        sent["sent"] += flood.sent
    print(f"attacker LOGINs: {dict(sent)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attackers", type=int, default=200)
    ap.add_argument("--addresses", type=int, default=50)
    ap.add_argument("--settle", type=float, default=5.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.attackers + 256)), hard))
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "data"
        build(data)
        port = free_port()
        proc = serve(data, port)
        try:
            asyncio.run(run(args, port))
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
