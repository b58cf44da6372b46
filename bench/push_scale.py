"""Push at scale (issue 10 item 6): 1,000 IMAP IDLE sessions and 100 JMAP EventSource clients, messages delivered
over LMTP at a steady rate; how long after each delivery is acknowledged does every client hear of it, and how
much server memory does an idle connection cost.

Two scenarios, each on a freshly started server (``janusmail serve`` as its own process):

* ``fanout``: one account; all 1,000 idlers have its INBOX selected and all 100 event sources watch it, so each
  delivery wakes 1,100 connections (what "1,000 idlers, change made by another connection" measures).
* ``spread``: 10 accounts with 100 idlers and 10 event sources each; deliveries go round-robin, so each wakes 110.

Latency of one notification = the client's receipt of ``* N EXISTS`` (IMAP; N tells which delivery it is) or of
an ``event: state`` (EventSource; attributed to the newest delivery to that account that had started) minus the
moment the LMTP client read the delivery's ``250`` (negative values, a push that beat the 250, count as 0). The
clients are raw asyncio protocols in this process, timestamped in ``data_received`` (no parsing before the
clock is read); the LMTP sender is a thread. Memory: the server's VmRSS (the sum over worker processes with
``--workers N``) before and after opening the idlers, then the event sources, divided by their number; printed
twice: from the freshly started server (what numbers-to-beat.md asks; it includes what the first connections
make the server build once), and from after the first ``--warm`` connections (what one more connection costs).

Run: .venv/bin/python bench/push_scale.py [--scenario fanout|spread|both] [--workers 1] [--postgres [URL]]
     [--idlers 1000] [--sources 100] [--warm 50] [--deliveries 40] [--rate 2] [--profile DIR (py-spy of the burst)]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import smtplib
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import argon2  # noqa: E402

from janusmail.auth import passwords  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.mailgen import simple  # noqa: E402
from tests.procworkers import worker_pids  # noqa: E402
from tests.serverutil import make_config  # noqa: E402

PASSWORD = "push scale password"
PG = os.environ.get("JANUS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
OPEN_AT_ONCE = 50  # connections being set up concurrently


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def cpu_seconds(pids: set[int]) -> float:
    """User + system CPU the processes used so far (/proc/PID/stat), in seconds."""
    total = 0
    for pid in pids:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def rss_kb(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


# -- clients -----------------------------------------------------------------------------------------------------


class Idler(asyncio.Protocol):
    """LOGIN, SELECT INBOX, IDLE; then records when each ``* N EXISTS`` arrived (N -> perf_counter)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.buf = b""
        self.lines: asyncio.Queue[bytes] = asyncio.Queue()
        self.idling = False
        self.seen: dict[int, float] = {}
        self.transport: asyncio.Transport | None = None
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        *lines, self.buf = self.buf.split(b"\r\n")
        for line in lines:
            if self.idling:
                if line.endswith(b" EXISTS"):
                    self.seen.setdefault(int(line.split()[1]), now)
            else:
                self.lines.put_nowait(line)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)

    async def command(self, tag: str, text: str) -> bytes:
        assert self.transport is not None
        self.transport.write(f"{tag} {text}\r\n".encode())
        while True:
            line = await asyncio.wait_for(self.lines.get(), 120)
            if line.startswith(tag.encode() + b" ") or (tag == "+" and line.startswith(b"+")):
                return line

    async def begin(self) -> None:
        await asyncio.wait_for(self.lines.get(), 120)  # greeting
        for attempt in range(200):  # one account gets few places in the login hashing queue: "busy", retry
            ok = await self.command(f"a{attempt}", f'LOGIN {self.address} "{PASSWORD}"')
            if b"[UNAVAILABLE]" not in ok:
                break
            await asyncio.sleep(0.05)
        assert ok.split()[1] == b"OK", ok
        ok = await self.command("s", "SELECT INBOX")
        assert ok.split()[1] == b"OK", ok
        self.idling = True
        assert self.transport is not None
        self.transport.write(b"i IDLE\r\n")


class EventSource(asyncio.Protocol):
    """GET eventSourceUrl (types=*); records when each ``event: state`` arrived."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.tail = b""
        self.opened = asyncio.get_running_loop().create_future()
        self.events: list[float] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        text = self.tail + data
        self.events.extend(now for _ in range(text.count(b"event: state")))
        if not self.opened.done():
            if b": janus push" in text:
                self.opened.set_result(True)
            elif text.startswith(b"HTTP/1.1 ") and not text.startswith(b"HTTP/1.1 200"):
                self.opened.set_exception(RuntimeError(text[:300].decode(errors="replace")))
        self.tail = text[-16:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"event source closed: {exc}"))

    def request(self, host: str) -> bytes:
        auth = base64.b64encode(f"{self.address}:{PASSWORD}".encode()).decode()
        return (f"GET /jmap/eventsource?types=*&closeafter=no&ping=0 HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Basic {auth}\r\nAccept: text/event-stream\r\n\r\n").encode()


# -- one scenario ----------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    account: str
    number: int  # the account INBOX's message count after it (what ``* N EXISTS`` says)
    started: float
    acked: float = 0.0


@dataclass
class Result:
    imap: list[float] = field(default_factory=list)
    events: list[float] = field(default_factory=list)
    imap_sent: list[float] = field(default_factory=list)  # the same, measured from the start of the LMTP send
    events_sent: list[float] = field(default_factory=list)
    lmtp: list[float] = field(default_factory=list)
    missing_imap: int = 0
    rss_idlers_kb: float = 0.0
    rss_sources_kb: float = 0.0
    rss_idlers_marginal_kb: float = 0.0  # the same, counted from after the warm-up connections
    rss_sources_marginal_kb: float = 0.0
    cpu_per_delivery: float = 0.0  # server CPU seconds used by the delivery phase, per delivery
    woken_per_delivery: float = 0.0  # connections told about each delivery


def addresses(n: int) -> list[str]:
    return [f"push{i}@example.test" for i in range(n)]


def deliver_all(lmtp_addr: str, accounts: list[str], count: int, rate: float, log: list[Delivery]) -> None:
    """Deliver ``count`` messages round-robin over ``accounts``, one every 1/rate seconds (a thread)."""
    host, port = lmtp_addr.rsplit(":", 1)
    client = smtplib.LMTP(host, int(port))
    per_account: dict[str, int] = defaultdict(int)
    start = time.perf_counter()
    try:
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            acct = accounts[i % len(accounts)]
            per_account[acct] += 1
            d = Delivery(acct, per_account[acct], time.perf_counter())
            log.append(d)  # before the send: an event source may hear of it before the 250
            refused = client.sendmail("sender@example.test", [acct], simple(i))
            d.acked = time.perf_counter()
            assert not refused, refused
    finally:
        client.quit()


async def run_clients(args: argparse.Namespace, cfg, pids: set[int], accounts: list[str],
                      profile: Path | None) -> Result:
    loop = asyncio.get_running_loop()
    imap_host, imap_port = cfg.imap.listen.rsplit(":", 1)
    jmap_host, jmap_port = cfg.jmap.listen.rsplit(":", 1)
    res = Result()
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def open_idler(address: str) -> Idler:
        async with gate:
            _, proto = await loop.create_connection(lambda: Idler(address), imap_host, int(imap_port))
            await proto.begin()
            return proto

    async def open_source(address: str) -> EventSource:
        async with gate:
            _, proto = await loop.create_connection(lambda: EventSource(address), jmap_host, int(jmap_port))
            assert proto.transport is not None
            proto.transport.write(proto.request(cfg.jmap.listen))
            await asyncio.wait_for(proto.opened, 120)
            return proto

    await asyncio.sleep(1)
    before = rss_kb(pids)
    # The first connections pay once for what the server builds on first use (store threads and their database
    # connections, lazily imported command modules, statement caches): measured from the fresh server and,
    # separately, from after the first ``--warm`` connections of each kind (the cost of one more connection).
    warm_i, warm_s = min(args.warm, args.idlers), min(max(1, args.warm // 5), args.sources)
    idlers = list(await asyncio.gather(*(open_idler(accounts[i % len(accounts)]) for i in range(warm_i))))
    await asyncio.sleep(1)
    warm_idlers = rss_kb(pids)
    idlers += await asyncio.gather(*(open_idler(accounts[i % len(accounts)]) for i in range(warm_i, args.idlers)))
    await asyncio.sleep(2)
    after_idlers = rss_kb(pids)
    sources = list(await asyncio.gather(*(open_source(accounts[i % len(accounts)]) for i in range(warm_s))))
    await asyncio.sleep(1)
    warm_sources = rss_kb(pids)
    sources += await asyncio.gather(*(open_source(accounts[i % len(accounts)]) for i in range(warm_s, args.sources)))
    await asyncio.sleep(2)
    after_sources = rss_kb(pids)
    res.rss_idlers_kb = (after_idlers - before) / max(1, args.idlers)
    res.rss_sources_kb = (after_sources - after_idlers) / max(1, args.sources)
    res.rss_idlers_marginal_kb = (after_idlers - warm_idlers) / max(1, args.idlers - warm_i)
    res.rss_sources_marginal_kb = (after_sources - warm_sources) / max(1, args.sources - warm_s)

    spy = None
    if profile is not None:
        spy = subprocess.Popen(  # noqa: S603
            [str(Path(sys.executable).parent / "py-spy"), "record", "--nonblocking", "-r", "200", "-f", "raw",
             "-o", str(profile), "-p", str(min(pids)), "--threads"] + (["--subprocesses"] if len(pids) > 1 else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.sleep(1)
    log: list[Delivery] = []
    cpu0 = cpu_seconds(pids)
    await loop.run_in_executor(None, deliver_all, cfg.lmtp.listen, accounts, args.deliveries, args.rate, log)
    # wait (generously) until every idler saw its account's last message
    last = {d.account: d.number for d in log}
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        if all(max(i.seen, default=0) >= last.get(i.address, 0) for i in idlers):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # stragglers among the event sources
    res.cpu_per_delivery = (cpu_seconds(pids) - cpu0) / max(1, len(log))
    res.woken_per_delivery = (args.idlers + args.sources) / len(accounts)
    if spy is not None:
        spy.send_signal(2)
        spy.wait(60)

    by_number = {(d.account, d.number): d for d in log}
    for idler in idlers:
        for n in range(1, last.get(idler.address, 0) + 1):
            d = by_number[(idler.address, n)]
            at = idler.seen.get(n)
            if at is None:  # coalesced into a later EXISTS: heard at that one's time
                later = [t for k, t in idler.seen.items() if k > n]
                if not later:
                    res.missing_imap += 1
                    continue
                at = min(later)
            res.imap.append(max(0.0, at - d.acked))
            res.imap_sent.append(at - d.started)
    per_account: dict[str, list[Delivery]] = defaultdict(list)
    for d in log:
        per_account[d.account].append(d)
    for src in sources:
        mine = per_account[src.address]
        for at in src.events:
            started = [d for d in mine if d.started <= at]
            if started:
                res.events.append(max(0.0, at - started[-1].acked))
                res.events_sent.append(at - started[-1].started)
    res.lmtp = [d.acked - d.started for d in log]
    for c in [*idlers, *sources]:
        assert c.transport is not None
        c.transport.close()
    return res


def scenario(name: str, args: argparse.Namespace, tmp: Path) -> Result:
    n_accounts = 1 if name == "fanout" else args.spread_accounts
    accounts = addresses(n_accounts)
    data = tmp / name
    db = None
    if args.postgres:
        from imap import pg_schema  # bench/imap.py: a fresh schema per run

        db = pg_schema(args.postgres)
    passwords.set_hasher(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store = Store.open(data, db)
    try:
        for a in accounts:
            store.accounts.create(a, *passwords.make_credentials(PASSWORD))
    finally:
        store.close()
    (data / "janusmail.toml").write_text(
        "[imap]\nidle_poll_interval = 3600\nmax_connections_per_account = 5000\nmax_connections_per_ip = 5000\n"
        "[jmap]\nmax_event_sources = 1000\n")
    cfg = make_config(data, db, imap__imaps=None)
    proc = serve(data, cfg, db, args.workers)
    try:
        pids = worker_pids(proc.pid) if args.workers > 1 else {proc.pid}
        profile = Path(args.profile) / f"{name}-w{args.workers}.txt" if args.profile else None
        if profile is not None:
            profile.parent.mkdir(parents=True, exist_ok=True)
        return asyncio.run(run_clients(args, cfg, pids, accounts, profile))
    except BaseException:
        print("server log (tail):\n" + (data / "server.log").read_text()[-5000:], file=sys.stderr)
        raise
    finally:
        proc.terminate()
        proc.wait(60)


def serve(data: Path, cfg, db: str | None, workers: int) -> subprocess.Popen:
    """``janusmail serve`` with ``cfg``'s listeners, its output in DATA/server.log (shown when a run fails)."""
    env = dict(os.environ)
    if db:
        env["JANUSMAIL_DB"] = db
    log = open(data / "server.log", "w")  # noqa: SIM115 - lives as long as the server process
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "janusmail.cli.main", "--data", str(data), "serve", "--imap", cfg.imap.listen,
         "--jmap", cfg.jmap.listen, "--lmtp", cfg.lmtp.listen, "--public-url", cfg.public_url,
         "--workers", str(workers)], stdout=log, stderr=log, env=env)
    deadline = time.time() + 120
    while time.time() < deadline:
        if "ready" in (data / "server.log").read_text():
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start:\n" + (data / "server.log").read_text()[-3000:])


def report(name: str, args: argparse.Namespace, r: Result) -> None:
    n_accounts = 1 if name == "fanout" else args.spread_accounts
    print(f"{name}: {n_accounts} account(s), {args.idlers} idlers, {args.sources} event sources, "
          f"{args.deliveries} deliveries at {args.rate}/s, workers={args.workers}, "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}, cpus={len(os.sched_getaffinity(0))}")
    ms = 1000.0
    print(f"  LMTP delivery round trip   p50 {pct(r.lmtp, 50) * ms:8.1f} ms  p99 {pct(r.lmtp, 99) * ms:8.1f} ms")
    for label, v in (("IMAP IDLE EXISTS", r.imap), ("EventSource state", r.events)):
        print(f"  {label:26s} p50 {pct(v, 50) * ms:8.1f} ms  p99 {pct(v, 99) * ms:8.1f} ms  "
              f"max {max(v, default=float('nan')) * ms:8.1f} ms  ({len(v)} samples, after the LMTP 250)")
    for label, v in (("IMAP, from LMTP send", r.imap_sent), ("EventSource, from send", r.events_sent)):
        print(f"  {label:26s} p50 {pct(v, 50) * ms:8.1f} ms  p99 {pct(v, 99) * ms:8.1f} ms  "
              f"max {max(v, default=float('nan')) * ms:8.1f} ms  (from the delivery's first LMTP byte)")
    print(f"  server CPU per delivery    {r.cpu_per_delivery * ms:8.1f} ms  ({r.cpu_per_delivery / r.woken_per_delivery * 1e6:.0f}"
          f" us per connection told; includes the delivery itself)")
    if r.missing_imap:
        print(f"  !! {r.missing_imap} EXISTS never arrived")
    rss = f"server VmRSS{' summed over workers' if args.workers > 1 else ''}"
    print(f"  memory: {r.rss_idlers_kb:.1f} KiB per IDLE connection, {r.rss_sources_kb:.1f} KiB per event source"
          f" ({rss} from the fresh server, first-use costs included)")
    print(f"          {r.rss_idlers_marginal_kb:.1f} KiB per IDLE connection, {r.rss_sources_marginal_kb:.1f} KiB per"
          f" event source (after the first {args.warm} idlers / {max(1, args.warm // 5)} event sources)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", choices=["fanout", "spread", "both"], default="both")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--postgres", nargs="?", const=PG, default=None, help="PostgreSQL URL (default: SQLite)")
    ap.add_argument("--idlers", type=int, default=1000)
    ap.add_argument("--sources", type=int, default=100)
    ap.add_argument("--spread-accounts", type=int, default=10)
    ap.add_argument("--warm", type=int, default=50,
                    help="idlers (and a fifth as many event sources) opened before the marginal memory reading")
    ap.add_argument("--deliveries", type=int, default=40)
    ap.add_argument("--rate", type=float, default=2.0, help="deliveries per second")
    ap.add_argument("--profile", default=None, help="directory for py-spy raw profiles of the delivery burst")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 2 * (args.idlers + args.sources) + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the server process inherits it
    names = ["fanout", "spread"] if args.scenario == "both" else [args.scenario]
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            report(name, args, scenario(name, args, Path(d)))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
