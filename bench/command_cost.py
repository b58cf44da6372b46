"""The fixed cost of one IMAP command (issue 10 item 0): p50 latency, SQL statements and store thread hops.

A STATUS of an empty mailbox should cost about what a NOOP round trip costs; whatever it costs beyond that is
per-command overhead (thread hops, queries, Python work) that every command of a busy server pays. This driver
runs the real server in a thread of this process (so it can count), logs in over a raw socket and, for each
command, times N round trips and counts, per command:

* SQL statements executed (on SQLite: every statement the database runs, BEGIN and ROLLBACK included, via the
  driver's trace callback; on PostgreSQL: SQLAlchemy's ``before_cursor_execute``);
* store thread hops (calls of ``store.call``), with the functions called, so a regression names its cause.

Wall-clock numbers on a shared machine are noisy; the counts are not, and neither (much) is the CPU time of this
process per command (``CPU ms``: server and client together; the client's share is the same for every server
version, about 0.1 ms). For a profile, loop one command and attach
py-spy to this process: ``--loop STATUS --seconds 30`` prints the pid, then
``py-spy record --pid PID -o out.json --format speedscope`` (or ``py-spy top --pid PID``).

Run: .venv/bin/python bench/command_cost.py [-n 300] [--rev2] [--pg URL] [--loop STATUS --seconds 30]
     [--switch-interval 0.0005]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argon2  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from janusmail.auth import passwords  # noqa: E402
from janusmail.store.model import IngestItem  # noqa: E402
from tests.mailgen import simple  # noqa: E402
from tests.serverutil import ServerThread, make_config  # noqa: E402

ADDRESS = "cost@example.test"
PASSWORD = "cost password"


class Client:
    """A minimal raw-socket IMAP client: one command, read until its tagged completion."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.n = 0
        self._read_until(b"\r\n")

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def cmd(self, text: str) -> bytes:
        self.n += 1
        tag = f"c{self.n}"
        self.sock.sendall(f"{tag} {text}\r\n".encode())
        data = b""
        while True:
            line = self._read_until(b"\r\n")
            data += line
            if line.startswith(tag.encode() + b" "):
                if not line.startswith(tag.encode() + b" OK"):
                    raise RuntimeError(f"{text}: {line!r}")
                return data


#: On SQLite, every statement the database runs is counted through the driver's trace callback (installed on
#: each new connection), so reads that bypass SQLAlchemy (raw cursors) and the BEGIN/ROLLBACK of each read
#: transaction count too; on PostgreSQL, SQLAlchemy's ``before_cursor_execute`` (raw-cursor reads not counted).
TRACE: list[Counters] = []


def _trace_new_connections() -> None:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        if hasattr(dbapi_conn, "set_trace_callback"):
            dbapi_conn.set_trace_callback(lambda stmt: TRACE and TRACE[0].on_statement(stmt))

    sa.event.listen(sa.engine.Engine, "connect", on_connect)


class Counters:
    """SQL statements and store.call hops (with the functions' names) since the last :meth:`take`."""

    def __init__(self, store: Any) -> None:
        self.sql = 0
        self.hops = 0
        self.fns: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()
        if store.sqlite:
            TRACE[:] = [self]
        else:
            sa.event.listen(store.engine, "before_cursor_execute", self._on_sql)
        orig = store.call

        async def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
            self.hops += 1
            name = _name(fn)
            if name.startswith("_checked"):  # the session's credential check riding on the command's call
                name = f"check+{_name(args[1])}"
            self.fns[name] += 1
            return await orig(fn, *args, **kwargs)

        store.call = call

    def _on_sql(self, conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        self.on_statement(statement)

    def on_statement(self, statement: str) -> None:
        self.sql += 1
        self.statements[" ".join(statement.split())[:90]] += 1

    def take(self) -> tuple[int, int, Counter[str], Counter[str]]:
        out = (self.sql, self.hops, self.fns, self.statements)
        self.sql, self.hops, self.fns, self.statements = 0, 0, Counter(), Counter()
        return out


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", repr(fn)).replace(".<locals>", "").split(".")[-1]


def setup(srv: ServerThread) -> None:
    store = srv.store
    acct = store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
    store.mailboxes.create(acct.id, "Empty")
    ten = store.mailboxes.create(acct.id, "Ten")
    store.emails.ingest_many(acct.id, [IngestItem(simple(i), (ten.id,), ("$seen",) if i % 2 else (), 1_700_000_000 + i)
                                for i in range(10)])


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


#: (label, command, state needed first): "auth" = nothing selected, "selected" = Ten selected read-write.
CASES = [
    ("NOOP", "NOOP", "auth"),
    ("NOOP (selected)", "NOOP", "selected"),
    ("STATUS empty", "STATUS Empty (MESSAGES UNSEEN UIDNEXT)", "auth"),
    ("STATUS empty (selected)", "STATUS Empty (MESSAGES UNSEEN UIDNEXT)", "selected"),
    ("SELECT empty", "SELECT Empty", "auth"),
    ("EXAMINE empty", "EXAMINE Empty", "auth"),
    ("SELECT 10", "SELECT Ten", "auth"),
    ("LIST", 'LIST "" "*"', "auth"),
    ("FETCH 1:* FLAGS (10)", "FETCH 1:* (FLAGS)", "selected"),
    ("UID SEARCH UNSEEN (10)", "UID SEARCH UNSEEN", "selected"),
]


def prepare(c: Client, text: str, state: str) -> None:
    """Put the session in the state a case needs: nothing selected, or the 10-message mailbox selected."""
    if getattr(c, "selected", False):
        c.cmd("UNSELECT")
    if state == "selected":
        c.cmd("SELECT Ten")
    c.selected = state == "selected" or text.startswith(("SELECT", "EXAMINE"))  # type: ignore[attr-defined]


def measure(c: Client, counters: Counters, n: int) -> dict[str, tuple[float, float, float]]:
    """p50 ms, SQL statements and store hops per command. A repeated SELECT closes the previous mailbox
    first, as a client switching mailboxes does."""
    out = {}
    print(f"{'command':26} {'p50 ms':>8} {'p90 ms':>8} {'CPU ms':>7} {'SQL/cmd':>8} {'hops/cmd':>9}   store calls per command")
    for label, text, state in CASES:
        prepare(c, text, state)
        for _ in range(max(3, n // 10)):  # warm-up
            c.cmd(text)
        counters.take()
        times = []
        cpu0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            c.cmd(text)
            times.append(time.perf_counter() - t0)
        cpu = (time.process_time() - cpu0) / n * 1000
        sql, hops, fns, _stmts = counters.take()
        calls = ", ".join(f"{k} x{v / n:g}" for k, v in fns.most_common())
        p50 = pct(times, 50) * 1000
        print(f"{label:26} {p50:8.3f} {pct(times, 90) * 1000:8.3f} {cpu:7.3f} {sql / n:8.2f} {hops / n:9.2f}   {calls}")
        out[label] = (p50, sql / n, hops / n)
    return out


def show_statements(c: Client, counters: Counters) -> None:
    """The SQL of one run of each command (what to cut)."""
    for label, text, state in CASES:
        prepare(c, text, state)
        counters.take()
        c.cmd(text)
        _, _, _, stmts = counters.take()
        print(f"-- {label}")
        for stmt, k in stmts.items():
            print(f"   {k} x {stmt}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=300, help="round trips per command")
    ap.add_argument("--rev2", action="store_true", help="ENABLE IMAP4rev2 first (no \\Recent bookkeeping)")
    ap.add_argument("--pg", metavar="URL", help="PostgreSQL URL instead of SQLite")
    ap.add_argument("--sql", action="store_true", help="print the SQL statements of one run of each command")
    ap.add_argument("--loop", metavar="CMD", help="loop one command (e.g. STATUS) for profiling instead")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--switch-interval", type=float, metavar="S",
                    help="sys.setswitchinterval(S) first (default 0.005): how long a thread that wants the GIL "
                         "waits for a busy holder, which every store thread hop crosses twice")
    args = ap.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    passwords.set_hasher(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    _trace_new_connections()
    with tempfile.TemporaryDirectory(prefix="command-cost-") as tmp:
        srv = ServerThread(make_config(Path(tmp) / "data", args.pg)).start()
        try:
            setup(srv)
            c = Client(srv.imap_port)
            c.cmd(f'LOGIN "{ADDRESS}" "{PASSWORD}"')
            if args.rev2:
                c.cmd("ENABLE IMAP4rev2")
            if args.loop:
                text, state = next((t, st) for label, t, st in CASES if label.split()[0] == args.loop.upper())
                prepare(c, text, state)
                print(f"pid {os.getpid()}: looping {text!r} for {args.seconds:g} s", flush=True)
                stop, k = time.time() + args.seconds, 0
                while time.time() < stop:
                    c.cmd(text)
                    k += 1
                print(f"{k} commands, {args.seconds / k * 1000:.3f} ms each")
                return
            counters = Counters(srv.store)  # not while profiling: counting costs time too
            print(f"{'IMAP4rev2' if args.rev2 else 'IMAP4rev1'} session, {'PostgreSQL' if args.pg else 'SQLite'}, "
                  f"n={args.n}")
            measure(c, counters, args.n)
            if args.sql:
                show_statements(c, counters)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
