"""What the stress loop's writes cost (issue 10): statements, COMMITs, thread hops and writer-lane time per command.

The stress profile (``bench/imap.py --profile stress-loggedin``) is bound by the single writer lane on SQLite, and
its cmds/s vary 2.5x between rounds on a shared machine. These counts do not (much): the real server runs in a
thread of this process, clients on raw sockets run imaptest's logged-in loop (SELECT, FETCH, STORE flags and a
keyword, EXPUNGE, APPEND) a fixed number of times, and the harness counts

* per IMAP command kind, with ONE client (commands never overlap, so every count is the command's own):
  SQL statements (SQLite's trace callback: BEGIN, SAVEPOINT and COMMIT included; not the statements SQLite
  runs inside one, FTS5's shadow tables), write COMMITs, thread hops (tasks
  handed to the store's reader, ingest and writer threads, named by function) and writer-lane busy time;
* with ``--clients`` clients at once: the same totals per loop, the groups the lane formed (calls per COMMIT)
  and the lane's busy share of the wall time, per function run on the lane.

Wall times here are as noisy as the machine; statements, COMMITs, hops and calls per group are the figures to
compare before/after a change. SQLite only (the trace callback).

Run: .venv/bin/python bench/write_cost.py [--loops 40] [--clients 8] [--sql]
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import argon2  # noqa: E402
from command_cost import TRACE, Client, _trace_new_connections  # noqa: E402

from janusmail.auth import passwords  # noqa: E402
from janusmail.store.model import IngestItem  # noqa: E402
from tests.mailgen import simple  # noqa: E402
from tests.serverutil import ServerThread, make_config  # noqa: E402

ADDRESS = "writes@example.test"
PASSWORD = "writes password"
INBOX_SIZE = 200
KINDS = ("SELECT", "FETCH", "STORE", "EXPUNGE", "APPEND")


def _fn_name(fn: Any) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__qualname__", repr(fn)).replace(".<locals>", "").split(".")[-1]


class Counts:
    """Everything counted since the last :meth:`take` (thread-safe enough: counters under one lock)."""

    def __init__(self, store: Any) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.lane_threads: set[int] = set()
        self.reset()
        TRACE[:] = [self]  # command_cost's trace callback calls on_statement
        self._wrap_executors(store)
        prev = store.on_group_commit

        def on_group(calls: int, commit_s: float, group_s: float) -> None:
            with self._lock:
                self.groups += 1
                self.group_calls += calls
                self.group_seconds += group_s
                self.commit_seconds += commit_s
            if prev is not None:
                prev(calls, commit_s, group_s)

        store.on_group_commit = on_group

    def reset(self) -> None:
        self.sql = 0
        self.inner = 0
        self.statements: Counter[tuple[str, str]] = Counter()
        self.commits = 0
        self.hops: Counter[str] = Counter()
        self.lane_calls: Counter[str] = Counter()
        self.lane_sql: Counter[str] = Counter()
        self.lane_seconds: defaultdict[str, float] = defaultdict(float)
        self.groups = 0
        self.lane_busy = 0.0
        self.group_calls = 0
        self.group_seconds = 0.0
        self.commit_seconds = 0.0

    def take(self) -> dict[str, Any]:
        with self._lock:
            out = dict(self.__dict__)
            self.reset()
        return out

    def on_statement(self, statement: str) -> None:
        if statement.startswith("--"):  # a statement SQLite runs inside one (FTS5's shadow tables): no Python cost
            with self._lock:
                self.inner += 1
            return
        head = statement.lstrip()[:6].upper()
        fn = getattr(self._local, "fn", None)
        with self._lock:
            self.sql += 1
            self.statements[(fn or threading.current_thread().name.rsplit("_", 1)[0], " ".join(statement.split())[:110])] += 1
            if head == "COMMIT" and threading.current_thread().name.startswith("store-write"):
                self.commits += 1  # a write transaction's (a read transaction's COMMIT syncs nothing)
            if fn is not None:
                self.lane_sql[fn] += 1

    def _wrap_executors(self, store: Any) -> None:
        """Count every task handed to another thread (a hop), and time the writer lane's calls by function."""
        counts = self

        for pool in (store._pool, store._ingest_pool):
            orig = pool.submit

            def submit(fn: Any, /, *args: Any, _orig: Any = orig, **kwargs: Any) -> Any:
                with counts._lock:
                    counts.hops[_fn_name(fn)] += 1
                return _orig(fn, *args, **kwargs)

            pool.submit = submit

        writer = store._writer
        orig_submit = writer.submit

        def lane_submit(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            name = _fn_name(fn)
            if name.startswith("_checked"):  # the session's credential check riding on the command's write
                name = _fn_name(args[1])

            def timed(*a: Any, **k: Any) -> Any:
                counts._local.fn = name
                t0 = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    dt = time.perf_counter() - t0
                    counts._local.fn = None
                    with counts._lock:
                        counts.lane_calls[name] += 1
                        counts.lane_seconds[name] += dt

            timed.__janus_writes__ = True  # type: ignore[attr-defined]
            with counts._lock:
                counts.hops[f"lane:{name}"] += 1
            return orig_submit(timed, *args, **kwargs)

        writer.submit = lane_submit
        orig_run = writer.run_group

        def run_group(calls: Any, lock: Any = None, **kw: Any) -> None:  # the lane's own time per group
            t0 = time.perf_counter()
            try:
                orig_run(calls, lock, **kw)
            finally:
                with counts._lock:
                    counts.lane_busy += time.perf_counter() - t0

        writer.run_group = run_group


def setup(srv: ServerThread) -> None:
    store = srv.store
    acct = store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    store.emails.ingest_many(acct.id, [IngestItem(simple(i), (inbox.id,), (), 1_700_000_000 + i)
                                       for i in range(INBOX_SIZE)])


def loop_once(c: Client, rnd: random.Random, each: Any) -> None:
    """imaptest's logged-in loop, as bench/imap.py's stress profile runs it. ``each(kind)`` after every command."""
    data = c.cmd("SELECT INBOX")
    each("SELECT")
    exists = next((int(x.split()[1]) for x in data.split(b"\r\n") if x.endswith(b" EXISTS")), 0)
    if exists:
        lo = rnd.randint(1, exists)
        c.cmd(f"FETCH {lo}:{min(exists, lo + 9)} (UID FLAGS)")
        each("FETCH")
        c.cmd(f"STORE {rnd.randint(1, exists)} +FLAGS (\\Seen \\Deleted $Stress{rnd.randint(0, 9)})")
        each("STORE")
    c.cmd("EXPUNGE")
    each("EXPUNGE")
    msg = simple(rnd.randint(0, 10**6)).decode()
    c.cmd(f"APPEND INBOX (\\Seen) {{{len(msg)}+}}\r\n{msg}")
    each("APPEND")


def login(port: int) -> Client:
    c = Client(port)
    c.cmd(f'LOGIN "{ADDRESS}" "{PASSWORD}"')
    return c


def one_client(port: int, counts: Counts, loops: int, show_sql: bool = False) -> None:
    """Per command kind, exact: one client, counters taken after every command."""
    c = login(port)
    rnd = random.Random(1)
    for _ in range(3):
        loop_once(c, rnd, lambda kind: None)  # warm-up
    counts.take()
    per: dict[str, list[dict[str, Any]]] = defaultdict(list)
    loop_once(c, rnd, lambda kind: None)
    counts.take()
    for _ in range(loops):
        loop_once(c, rnd, lambda kind: per[kind].append(counts.take()))
    if show_sql:
        print("\nthe SQL of one loop, by command (thread or lane function, statement):")
        loop_once(c, rnd, lambda kind: print(f"-- {kind}\n" + "\n".join(
            f"   {k} x [{who}] {stmt}" for (who, stmt), k in counts.take()["statements"].items())))
    c.cmd("LOGOUT")
    print(f"\none client, {loops} loops: per command (exact counts; lane ms is wall time on the writer lane)")
    print(f"{'command':9} {'SQL':>6} {'COMMIT':>7} {'hops':>6} {'lane ms':>8} {'COMMIT ms':>9}   hops by function")
    for kind in KINDS:
        rows = per[kind]
        n = len(rows)
        hops: Counter[str] = Counter()
        for r in rows:
            hops.update(r["hops"])
        lane_ms = sum(sum(r["lane_seconds"].values()) for r in rows) / n * 1000
        print(f"{kind:9} {sum(r['sql'] for r in rows) / n:6.2f} {sum(r['commits'] for r in rows) / n:7.2f} "
              f"{sum(hops.values()) / n:6.2f} {lane_ms:8.3f} {sum(r['commit_seconds'] for r in rows) / n * 1000:9.3f}   "
              + ", ".join(f"{k} x{v / n:g}" for k, v in hops.most_common()))


def many_clients(port: int, counts: Counts, clients: int, loops: int) -> None:
    """``clients`` sessions at once, ``loops`` loops each: totals per loop, group sizes, lane busy share."""
    conns = [login(port) for _ in range(clients)]
    for c in conns:
        loop_once(c, random.Random(0), lambda kind: None)  # warm-up
    barrier = threading.Barrier(clients + 1)

    def run(k: int) -> None:
        rnd = random.Random(100 + k)
        barrier.wait()
        for _ in range(loops):
            loop_once(conns[k], rnd, lambda kind: None)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    counts.take()
    barrier.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    r = counts.take()
    for c in conns:
        c.cmd("LOGOUT")
    n = clients * loops
    lane_busy = sum(r["lane_seconds"].values())
    print(f"\n{clients} clients x {loops} loops ({n} loops, {n * len(KINDS)} commands in {wall:.2f} s = "
          f"{n * len(KINDS) / wall:.0f} cmds/s, noisy): per loop")
    print(f"  SQL {r['sql'] / n:.1f}   COMMIT {r['commits'] / n:.2f}   hops {sum(r['hops'].values()) / n:.2f}   "
          f"groups {r['groups'] / n:.2f} ({r['group_calls'] / max(1, r['groups']):.2f} calls per group)")
    print(f"  writer lane busy {r['lane_busy'] / wall:.0%} of wall time (calls {lane_busy / wall:.0%}, "
          f"COMMIT {r['commit_seconds'] / wall:.0%}); per loop {r['lane_busy'] / n * 1000:.2f} ms; "
          f"group commit to answer {r['group_seconds'] / max(1, r['groups']) * 1000:.2f} ms; "
          f"process CPU {cpu / wall:.2f} cores (clients included)")
    print(f"  {'lane function':24} {'calls/loop':>10} {'SQL/call':>9} {'ms/call':>8}")
    for name, k in r["lane_calls"].most_common():
        print(f"  {name:24} {k / n:10.2f} {r['lane_sql'][name] / k:9.1f} {r['lane_seconds'][name] / k * 1000:8.3f}")
    print("  hops per loop: " + ", ".join(f"{k} x{v / n:.2f}" for k, v in r["hops"].most_common()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loops", type=int, default=40, help="loops per client")
    ap.add_argument("--clients", type=int, default=8, help="clients at once for the concurrent part")
    ap.add_argument("--sql", action="store_true", help="print the SQL of one loop with one client")
    ap.add_argument("--switch-interval", type=float, metavar="S", help="sys.setswitchinterval(S) first")
    args = ap.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    passwords.set_hasher(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    _trace_new_connections()
    with tempfile.TemporaryDirectory(prefix="write-cost-") as tmp:
        srv = ServerThread(make_config(Path(tmp) / "data", None)).start()
        try:
            setup(srv)
            counts = Counts(srv.store)
            one_client(srv.imap_port, counts, args.loops, args.sql)
            many_clients(srv.imap_port, counts, args.clients, args.loops)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
