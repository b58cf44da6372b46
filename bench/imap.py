"""IMAP benchmark: a mixed multi-client workload, big-mailbox timings, and memory per idle connection.

The server runs as its own ``janusmail serve`` process (as in production); clients are threads (imaplib) or raw
sockets in this process.

1. 10,000-message INBOX, N concurrent clients (default 8) for D seconds (default 20) doing a mixed workload:
   SELECT, UID FETCH 1:* FLAGS, FETCH of a message body, STORE, UID SEARCH, APPEND, EXPUNGE. Prints ops/s and
   p50/p99 latency per command.
2. 100,000-message INBOX (skip with --no-big; about a minute to build here): SELECT (first and repeated),
   STATUS, ``UID FETCH 1:* (UID FLAGS)``, ``UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)``
   (first and repeated), UID SEARCH UNSEEN / FROM / TEXT, UID SORT by date / arrival / from / subject and UID
   THREAD (first and repeated).
3. Resident memory per idle authenticated connection: server RSS (``/proc/<pid>/status``) before and after
   opening 1,000 logged-in connections, divided.

Run: .venv/bin/python bench/imap.py [--clients 8] [--seconds 20] [--no-big] [--connections 1000] [--pg]
     [--workers 1] (``serve --workers N``; with N > 1 the memory step is skipped: RSS is per worker)
     Stress profiles (imaptest's default loop, 10 clients): --profile stress|stress-loggedin|stress-both
     [--store-size N] [--dovecot] [--repeat R] (Dovecot side by side, alternating, medians and ratios)
     APPEND rate (MULTIAPPEND of 20, 4 connections, new folders): --profile append [--dovecot] [--repeat R]
     The mixed workload alone, beside Dovecot: --profile mixed [--dovecot] [--repeat R] [--messages N]
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argon2  # noqa: E402

imaplib.Commands.setdefault("ENABLE", ("AUTH", "SELECTED"))

from janusmail.auth import passwords  # noqa: E402
from janusmail.store.model import IngestItem  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.mailgen import simple  # noqa: E402
from tests.serverutil import make_config  # noqa: E402

ADDRESS = "bench@example.test"
PASSWORD = "bench password"
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
         "quebec romeo sierra tango").split()


def build(data: Path, n: int, db: str | None) -> float:
    """An account with an n-message INBOX, ingested in batches of 1,000 (fsync off: this is set-up, not the
    measured path). Cheap argon2 parameters keep 1,000 logins from measuring the password hash."""
    passwords.set_hasher(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    (data / "janusmail.toml").parent.mkdir(parents=True, exist_ok=True)
    (data / "janusmail.toml").write_text(
        "[imap]\nmax_connections_per_account = 5000\nmax_connections_per_ip = 5000\n")
    store = Store.open(data, db, fsync=False)
    t0 = time.perf_counter()
    try:
        acct = store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
        inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
        assert inbox is not None
        items = []
        for i, raw, seen in corpus(n):
            items.append(IngestItem(raw, (inbox.id,), ("$seen",) if seen else (), 1_700_000_000 + i * 60))
            if len(items) == 1000:
                store.emails.ingest_many(acct.id, items)
                items = []
        if items:
            store.emails.ingest_many(acct.id, items)
        store.refresh_statistics()  # (a bulk load's end: its mail indexed for search, segments merged)
    finally:
        store.close()
    return time.perf_counter() - t0


def corpus(n: int) -> Iterator[tuple[int, bytes, bool]]:
    """The mixed workload's INBOX: (number, message, seen?), the same every run (for Janus and for Dovecot)."""
    rnd = random.Random(7)
    for i in range(n):
        body = " ".join(rnd.choice(WORDS) for _ in range(40)) + f" uniq{i}"
        raw = simple(i, frm=f"User {i % 500} <user{i % 500}@example.test>", body=body)
        yield i, raw, rnd.random() >= 0.1


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# -- 1. mixed workload -----------------------------------------------------------------------------------


def mixed(port: int, clients: int, seconds: float, n: int, address: str = ADDRESS, password: str = PASSWORD,
          label: str = "mixed workload") -> float:
    lat: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    errors: list[BaseException] = []
    stop = time.time() + seconds

    def worker(k: int) -> None:
        rnd = random.Random(k)
        try:
            m = imaplib.IMAP4("127.0.0.1", port, timeout=120)
            m.login(address, password)
            # IMAP4rev2 clients: with IMAP4rev1 \\Recent bookkeeping, concurrent SELECTs currently hit a
            # SQLite lock upgrade in Store.claim_recent ("database is locked"; reported to the store's owner)
            m._simple_command("ENABLE", "IMAP4rev2")
            mine: list[bytes] = []

            def timed(name: str, fn, *a):  # noqa: ANN001, ANN202
                t0 = time.perf_counter()
                typ, data = fn(*a)
                dt = time.perf_counter() - t0
                if typ != "OK":
                    raise RuntimeError(f"{name}: {typ} {data!r}")
                with lock:
                    lat[name].append(dt)
                return data

            timed("SELECT", m.select, "INBOX")
            while time.time() < stop:
                r = rnd.random()
                if r < 0.05:
                    timed("SELECT", m.select, "INBOX")
                elif r < 0.15:
                    timed("UID FETCH 1:* FLAGS", m.uid, "FETCH", "1:*", "(FLAGS)")
                elif r < 0.45:
                    timed("FETCH BODY[]", m.fetch, str(rnd.randint(1, n)), "(BODY.PEEK[] FLAGS)")
                elif r < 0.65:
                    op = rnd.choice(["+FLAGS", "-FLAGS"])
                    timed("STORE", m.store, str(rnd.randint(1, n)), op, "(\\Flagged $Bench)")
                elif r < 0.80:
                    key = rnd.choice([("UNSEEN",), ("FROM", f"user{rnd.randint(0, 499)}@"), ("TEXT", f"uniq{rnd.randint(0, n)}")])
                    timed("UID SEARCH", m.uid, "SEARCH", *key)
                elif r < 0.95:
                    data = timed("APPEND", m.append, "INBOX", None, None, simple(rnd.randint(0, 10**6)))
                    mine.append(data[0])
                else:
                    # expunge what this client appended (UID EXPUNGE keeps the others' messages)
                    uids = [d.split(b" ")[2].rstrip(b"]") for d in mine if d and b"APPENDUID" in d]
                    mine.clear()
                    if uids:
                        uid_set = ",".join(u.decode() for u in uids)
                        timed("STORE", m.uid, "STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)")
                        timed("UID EXPUNGE", m.uid, "EXPUNGE", uid_set)
            m.logout()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    total = sum(len(v) for v in lat.values())
    print(f"\n{label}: {clients} clients, {wall:.1f} s, {total / wall:,.0f} ops/s total")
    print(f"  {'command':22s} {'ops':>7s} {'ops/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name in sorted(lat):
        v = lat[name]
        print(f"  {name:22s} {len(v):7d} {len(v) / wall:8.1f} {pct(v, 50) * 1000:8.1f} {pct(v, 99) * 1000:8.1f}")
    return total / wall


# -- 2. big mailbox timings (raw socket: imaplib's parsing of 100k lines would dominate) -----------------------


class RawClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.buf = b""
        self._read_line()
        self.n = 0

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(1 << 20)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def cmd(self, text: str) -> tuple[float, int, bytes]:
        """(seconds until the tagged answer, bytes received, tagged line). The benchmark's data has no
        literal that could contain a line starting with the tag."""
        self.n += 1
        tag = b"T%d " % self.n
        t0 = time.perf_counter()
        self.sock.sendall(tag + text.encode() + b"\r\n")
        data = bytearray(self.buf)
        self.buf = b""
        pos = 0
        while True:
            i = 0 if data.startswith(tag) else data.find(b"\r\n" + tag, max(0, pos - len(tag) - 2))
            if i > 0:
                i += 2
            if i >= 0:
                end = data.find(b"\r\n", i)
                if end >= 0:
                    dt = time.perf_counter() - t0
                    self.buf = bytes(data[end + 2 :])
                    return dt, i, bytes(data[i:end])
            pos = len(data)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError
            data += chunk

    def close(self) -> None:
        self.sock.close()


def big(port: int) -> None:
    c = RawClient(port)
    dt, _, ok = c.cmd(f'LOGIN {ADDRESS} "{PASSWORD}"')
    assert ok.split()[1] == b"OK", ok
    rows = [("SELECT INBOX", "SELECT INBOX"),
            ("SELECT INBOX [again]", "SELECT INBOX"),
            ("SELECT INBOX [again]", "SELECT INBOX"),
            ("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"),
            ("STATUS INBOX (MESSAGES UNSEEN UIDNEXT)", "STATUS INBOX (MESSAGES UNSEEN UIDNEXT)"),
            ("UID FETCH 1:* (UID FLAGS) [first]", "UID FETCH 1:* (UID FLAGS)"),
            ("UID FETCH 1:* (UID FLAGS) [again]", "UID FETCH 1:* (UID FLAGS)"),
            ("UID FETCH 1:* (UID FLAGS) [again]", "UID FETCH 1:* (UID FLAGS)"),
            ("... FLAGS INTERNALDATE SIZE ENVELOPE [first]", "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"),
            ("... FLAGS INTERNALDATE SIZE ENVELOPE [again]", "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"),
            ("... FLAGS INTERNALDATE SIZE ENVELOPE [again]", "UID FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)"),
            ("UID SEARCH UNSEEN", "UID SEARCH UNSEEN"),
            ("UID SEARCH UNSEEN", "UID SEARCH UNSEEN"),
            ("UID SEARCH FROM user42@", "UID SEARCH FROM user42@"),
            ("UID SEARCH FROM user42@", "UID SEARCH FROM user42@"),
            ("UID SEARCH TEXT uniq4242", "UID SEARCH TEXT uniq4242"),
            ("UID SEARCH TEXT uniq4242", "UID SEARCH TEXT uniq4242"),
            ("UID SEARCH TEXT alpha (most match)", "UID SEARCH RETURN (COUNT) TEXT alpha"),
            # SORT / THREAD: [first] reads the sort keys (cold), [again] is the warm answer
            ("UID SORT (REVERSE DATE) [first]", "UID SORT (REVERSE DATE) UTF-8 ALL"),
            ("UID SORT (REVERSE DATE) [again]", "UID SORT (REVERSE DATE) UTF-8 ALL"),
            ("UID SORT (REVERSE ARRIVAL) [first]", "UID SORT (REVERSE ARRIVAL) UTF-8 ALL"),
            ("UID SORT (REVERSE ARRIVAL) [again]", "UID SORT (REVERSE ARRIVAL) UTF-8 ALL"),
            ("UID SORT (FROM) [first]", "UID SORT (FROM) UTF-8 ALL"),
            ("UID SORT (FROM) [again]", "UID SORT (FROM) UTF-8 ALL"),
            ("UID SORT (SUBJECT) [first]", "UID SORT (SUBJECT) UTF-8 ALL"),
            ("UID SORT (SUBJECT) [again]", "UID SORT (SUBJECT) UTF-8 ALL"),
            ("SORT (SUBJECT) [again, sequence numbers]", "SORT (SUBJECT) UTF-8 ALL"),
            ("UID SORT (DATE) UNSEEN", "UID SORT (DATE) UTF-8 UNSEEN"),
            ("UID SORT RETURN (MIN MAX COUNT) (SUBJECT)", "UID SORT RETURN (MIN MAX COUNT) (SUBJECT) UTF-8 ALL"),
            ("UID THREAD REFERENCES [first]", "UID THREAD REFERENCES UTF-8 ALL"),
            ("UID THREAD REFERENCES [again]", "UID THREAD REFERENCES UTF-8 ALL"),
            ("UID THREAD ORDEREDSUBJECT [first]", "UID THREAD ORDEREDSUBJECT UTF-8 ALL"),
            ("UID THREAD ORDEREDSUBJECT [again]", "UID THREAD ORDEREDSUBJECT UTF-8 ALL"),
            ("UID THREAD REFERENCES UNSEEN", "UID THREAD REFERENCES UTF-8 UNSEEN")]
    print(f"\n  {'command':46s} {'ms':>8s} {'MB out':>8s}")
    for label, text in rows:
        dt, size, ok = c.cmd(text)
        assert ok.split()[1] == b"OK", (text, ok)
        print(f"  {label:46s} {dt * 1000:8.1f} {size / 1e6:8.2f}")
    c.close()


# -- 3. memory per idle connection ------------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and every process under it (``serve --workers``: the supervisor and its
    workers), from ``/proc``: a server's CPU per command is a steadier figure than cmds/s on a shared machine."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        ticks[child] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(ticks.get(p, 0) for p in tree) / os.sysconf("SC_CLK_TCK")


def idle_memory(port: int, pid: int, count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    socks: list[RawClient] = []
    warm = [RawClient(port) for _ in range(20)]  # warm up allocator pools and code paths first
    for c in warm:
        c.cmd(f'LOGIN {ADDRESS} "{PASSWORD}"')
    time.sleep(1)
    before = rss_kb(pid)
    t0 = time.perf_counter()
    try:
        for _ in range(count):
            c = RawClient(port)
            _, _, ok = c.cmd(f'LOGIN {ADDRESS} "{PASSWORD}"')
            assert ok.split()[1] == b"OK", ok
            socks.append(c)
        time.sleep(2)
        after = rss_kb(pid)
    finally:
        for c in socks + warm:
            c.close()
    print(f"\n{count} idle authenticated connections (opened in {time.perf_counter() - t0:.1f} s): "
          f"server RSS {before / 1024:.1f} MB -> {after / 1024:.1f} MB, "
          f"{(after - before) / count:.1f} KB per connection (fd limit {soft}/{hard})")


def pg_schema(base: str | None) -> str | None:
    """A fresh schema per mailbox build on PostgreSQL (the account would otherwise exist twice)."""
    if not base:
        return None
    import uuid

    import sqlalchemy as sa

    schema = "bench_imap_" + uuid.uuid4().hex[:8]
    eng = sa.create_engine(base)
    with eng.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    eng.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


def serve(data: Path, db: str | None, workers: int = 1):  # noqa: ANN201
    """``janusmail serve`` with IMAP only; its log goes to DATA/server.log (printed if the run fails)."""
    cfg = make_config(data, db, jmap__listen=None, lmtp__listen=None, imap__imaps=None)
    env = dict(os.environ)
    if db:
        env["JANUSMAIL_DB"] = db
    log = open(data / "server.log", "w")  # noqa: SIM115 - lives as long as the server process
    proc = subprocess.Popen(
        [sys.executable, "-m", "janusmail.cli.main", "--data", str(data), "serve", "--imap", cfg.imap.listen,
         "--jmap", "off", "--lmtp", "off", "--public-url", cfg.public_url, "--workers", str(workers)],
        stdout=log, stderr=log, env=env)
    port = int(cfg.imap.listen.rsplit(":", 1)[1])
    deadline = time.time() + 60
    while time.time() < deadline:
        if "ready" in (data / "server.log").read_text():
            return proc, port
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start:\n" + (data / "server.log").read_text()[-3000:])


def server_log(data: Path) -> str:
    text = (data / "server.log").read_text()
    return text[-6000:]

# -- 4. stress profiles (imaptest's default loop) and the store-size run --------------------------------------

STRESS_ADDRESS = "stress@example.test"
STRESS_MESSAGES = 200  # the shared INBOX's size: every loop appends one message and expunges about one


def build_stress(data: Path, db: str | None, store_size: int) -> float:
    """The stress account (a ``STRESS_MESSAGES`` INBOX) and, for the store-size run, ``store_size`` messages in
    100 OTHER accounts, ingested with ``ingest_many`` in batches (fsync off: set-up, not the measured path)."""
    passwords.set_hasher(argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    data.mkdir(parents=True, exist_ok=True)
    (data / "janusmail.toml").write_text(
        "[imap]\nmax_connections_per_account = 5000\nmax_connections_per_ip = 5000\n")
    store = Store.open(data, db, fsync=False)
    t0 = time.perf_counter()
    try:
        acct = store.accounts.create(STRESS_ADDRESS, *passwords.make_credentials(PASSWORD))
        inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
        assert inbox is not None
        store.emails.ingest_many(acct.id, [IngestItem(simple(i), (inbox.id,), (), 1_700_000_000 + i)
                                           for i in range(STRESS_MESSAGES)])
        others = []
        for k in range(100 if store_size else 0):
            other = store.accounts.create(f"other{k}@example.test", "x")
            box = store.mailboxes.by_path(other.id, ["INBOX"])
            assert box is not None
            others.append((other.id, box.id))
        rnd = random.Random(11)
        per_account = -(-store_size // 100) if store_size else 0
        done = 0
        for start in range(0, per_account, 500):
            for account_id, box_id in others:
                count = min(500, per_account - start, store_size - done)
                if count <= 0:
                    break
                items = [IngestItem(simple(start + i, frm=f"User {i % 300} <user{i % 300}@example.test>",
                                           body=" ".join(rnd.choice(WORDS) for _ in range(30))),
                                    (box_id,), ("$seen",) if i % 3 else (), 1_700_000_000 + start + i)
                         for i in range(count)]
                store.emails.ingest_many(account_id, items)
                done += count
            print(f"  store-size fill: {done:,} / {store_size:,} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if store_size:
            store.refresh_statistics()
    finally:
        store.close()
    return time.perf_counter() - t0


class StressClient:
    """A raw-socket client that keeps each command's untagged data (SELECT's EXISTS) and never raises on NO/BAD:
    the stress run counts those as errors and goes on."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.n = 0
        self._line()

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def cmd(self, text: bytes) -> tuple[bool, list[bytes]]:
        """(tagged OK?, untagged lines). Literals in answers are not expected from the commands used here."""
        self.n += 1
        tag = b"s%d" % self.n
        self.sock.sendall(tag + b" " + text + b"\r\n")
        lines = []
        while True:
            line = self._line()
            if line.startswith(tag + b" "):
                return line.startswith(tag + b" OK"), lines
            lines.append(line)

    def close(self) -> None:
        self.sock.close()


def stress(port: int, clients: int, seconds: float, logged_in: bool, password: str = PASSWORD
           ) -> dict[str, list[float]]:
    """imaptest's default loop on one shared INBOX: LOGIN SELECT FETCH STORE(flags+keywords) EXPUNGE APPEND
    LOGOUT (a new connection per loop), or with ``logged_in`` one connection that stays logged in and loops
    SELECT .. APPEND. Returns the latencies by command; errors (NO/BAD, lost connections) under "errors"."""
    lat: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    stop = time.time() + seconds
    login = f'LOGIN {STRESS_ADDRESS} "{password}"'.encode()

    def worker(k: int) -> None:
        rnd = random.Random(k)
        mine: dict[str, list[float]] = defaultdict(list)
        c: StressClient | None = None

        def timed(name: str, text: bytes) -> list[bytes] | None:
            assert c is not None
            t0 = time.perf_counter()
            ok, lines = c.cmd(text)
            mine[name].append(time.perf_counter() - t0)
            if not ok:
                mine["errors"].append(0.0)
                return None
            return lines

        while time.time() < stop:
            try:
                if c is None:
                    c = StressClient(port)
                    if logged_in and timed("LOGIN", login) is None:
                        c.close()
                        c = None
                        continue
                if not logged_in:
                    timed("LOGIN", login)
                lines = timed("SELECT", b"SELECT INBOX") or []
                exists = next((int(x.split()[1]) for x in lines if x.endswith(b" EXISTS")), 0)
                if exists:
                    lo = rnd.randint(1, exists)
                    timed("FETCH", b"FETCH %d:%d (UID FLAGS)" % (lo, min(exists, lo + 9)))
                    timed("STORE", b"STORE %d +FLAGS (\\Seen \\Deleted $Stress%d)" % (rnd.randint(1, exists),
                                                                                        rnd.randint(0, 9)))
                timed("EXPUNGE", b"EXPUNGE")
                msg = simple(rnd.randint(0, 10**6))
                timed("APPEND", b"APPEND INBOX (\\Seen) {%d+}\r\n%s" % (len(msg), msg))
                if not logged_in:
                    timed("LOGOUT", b"LOGOUT")
                    c.close()
                    c = None
            except (OSError, EOFError):
                mine["errors"].append(0.0)
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            with contextlib.suppress(OSError, EOFError):
                c.cmd(b"LOGOUT")
            c.close()
        with lock:
            for name, values in mine.items():
                lat[name].extend(values)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat


def report_stress(label: str, lat: dict[str, list[float]], seconds: float, cpu: float | None = None
                  ) -> tuple[float, float | None]:
    """Print a round; returns its cmds/s and (``cpu``: the server's CPU seconds in the round) CPU ms per
    command."""
    errors = len(lat.pop("errors", []))
    total = sum(len(v) for v in lat.values())
    rate = total / seconds
    per_cmd = cpu * 1000 / total if cpu is not None and total else None
    cpu_text = f", server CPU {per_cmd:.2f} ms/command" if per_cmd is not None else ""
    print(f"\n{label}: {total:,} commands in {seconds:g} s = {rate:,.0f} cmds/s, {errors} errors{cpu_text}")
    print(f"  {'command':10s} {'count':>8s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name in ("LOGIN", "SELECT", "FETCH", "STORE", "EXPUNGE", "APPEND", "LOGOUT"):
        v = lat.get(name)
        if v:
            print(f"  {name:10s} {len(v):8d} {pct(v, 50) * 1000:8.2f} {pct(v, 99) * 1000:8.2f}")
    return rate, per_cmd



#: ``--profile append``: messages per MULTIAPPEND command (numbers-to-beat.md's row: 4 connections, 20 each)
APPEND_BATCH = 20


def append_load(port: int, clients: int, seconds: float, password: str, folder: str) -> tuple[int, list[float]]:
    """numbers-to-beat.md's APPEND row: ``clients`` connections, each LOGIN, CREATE its own new folder, then
    MULTIAPPEND (RFC 3502) of ``APPEND_BATCH`` messages per command (LITERAL+ literals, one round trip) until the
    time is up. Returns (messages appended, latency of each command); a refused command raises."""
    appended = [0]
    lat: list[float] = []
    lock = threading.Lock()
    stop = time.time() + seconds
    login = f'LOGIN {STRESS_ADDRESS} "{password}"'.encode()

    def worker(k: int) -> None:
        c = StressClient(port)
        mine: list[float] = []
        n = 0
        try:
            box = f"{folder}-{k}".encode()
            for text in (login, b"CREATE " + box):
                ok, _ = c.cmd(text)
                assert ok, text
            seq = 0
            while time.time() < stop:
                parts = []
                for _ in range(APPEND_BATCH):
                    seq += 1
                    msg = simple(k * 10**6 + seq)
                    parts.append(b"(\\Seen) {%d+}\r\n%s" % (len(msg), msg))
                t0 = time.perf_counter()
                ok, _ = c.cmd(b"APPEND " + box + b" " + b" ".join(parts))
                mine.append(time.perf_counter() - t0)
                assert ok, "MULTIAPPEND refused"
                n += APPEND_BATCH
            c.cmd(b"LOGOUT")
        finally:
            c.close()
        with lock:
            appended[0] += n
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return appended[0], lat


DOVECOT_CONF = """protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
base_dir = {scratch}/run
state_dir = {scratch}/state
log_path = {scratch}/dovecot.log
mail_location = maildir:{scratch}/mail/%n/Maildir
mail_fsync = {fsync}
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={scratch}/mail/%n
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
"""


@contextlib.contextmanager
def dovecot(scratch: Path, fill: Iterator[tuple[bytes, bool]] | None = None,  # noqa: ANN201
            fsync: str = "optimized"):
    """A private Dovecot (Debian's ``dovecot-imapd``, maildir, default settings) on a free loopback port, with
    the stress INBOX filled by APPEND: the reference server of numbers-to-beat.md, for ratios measured in one
    run. Any user name logs in with the bench password. Yields the port.

    ``fsync``: Dovecot's ``mail_fsync``. Its default, ``optimized``, syncs a new message's file but not the
    index and log files that record flags, expunges and UIDs, so an acknowledged STORE or EXPUNGE can be lost
    to a crash; Janus syncs every acknowledged write (one sync per group commit). ``always`` is the like-for-
    like comparison (``--dovecot-fsync always``)."""
    import pwd
    import shutil

    if shutil.which("dovecot") is None:
        raise SystemExit("--dovecot needs Debian's dovecot-imapd (apt-get install -y dovecot-imapd)")
    scratch.mkdir(parents=True, exist_ok=True)
    for p in (scratch, *scratch.parents):
        if p == Path("/"):
            break
        with contextlib.suppress(PermissionError):
            p.chmod(p.stat().st_mode | 0o755)  # dovecot's mail user must reach the mail folder
    mail = pwd.getpwnam("mail")
    (scratch / "mail").mkdir(exist_ok=True)
    os.chown(scratch / "mail", mail.pw_uid, mail.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = scratch / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(scratch=scratch, port=port, password=PASSWORD.replace(" ", ""),
                                         fsync=fsync))
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                c = StressClient(port)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("dovecot did not start: " + (scratch / "dovecot.log").read_text()[-2000:]
                                       if (scratch / "dovecot.log").exists() else "dovecot did not start") from None
                time.sleep(0.1)
        ok, _ = c.cmd(f'LOGIN {STRESS_ADDRESS} "{PASSWORD.replace(" ", "")}"'.encode())
        assert ok, "dovecot login failed"
        if fill is None:
            for i in range(STRESS_MESSAGES):
                msg = simple(i)
                ok, _ = c.cmd(b"APPEND INBOX {%d+}\r\n%s" % (len(msg), msg))
                assert ok
        else:  # (MULTIAPPEND, 200 messages per command)
            batch: list[bytes] = []
            for raw, seen in [*fill, (b"", False)]:
                if raw:
                    batch.append(b"%s{%d+}\r\n%s" % (b"(\\Seen) " if seen else b"", len(raw), raw))
                if batch and (len(batch) == 200 or not raw):
                    ok, _ = c.cmd(b"APPEND INBOX " + b" ".join(batch))
                    assert ok
                    batch = []
        c.cmd(b"LOGOUT")
        c.close()
        yield port
    finally:
        subprocess.run(["dovecot", "-c", str(conf), "stop"], check=False, capture_output=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if proc.poll() is None:
            proc.kill()


def median_line(rates: dict[str, list[float]], unit: str) -> str:
    """``median: janus N unit`` and, when Dovecot ran too, its median and the ratio."""
    j = statistics.median(rates["janus"])
    line = f"median: janus {j:,.0f} {unit}"
    if rates.get("dovecot"):
        dv = statistics.median(rates["dovecot"])
        line += f"   dovecot {dv:,.0f} {unit}   janus/dovecot {j / dv:.2f}x"
    return line


def run_mixed(args: argparse.Namespace) -> None:
    """``--profile mixed``: the mixed workload (section 1) on the ``--messages`` INBOX, with ``--dovecot`` against
    a private Dovecot holding the same messages too, alternating ``--repeat`` times, medians and the ratio. Aim
    (numbers-to-beat.md): >= 350 ops/s with 10 clients (Dovecot 173 there). The clients are imaplib threads of
    this one process: with a 10k mailbox its ``UID FETCH 1:* FLAGS`` parsing costs the client as much as the
    server, which is why the ratio says more than the absolute figure."""
    rates: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        data = Path(d) / "mixed"
        db = pg_schema(args.pg)
        took = build(data, args.messages, db)
        print(f"built {args.messages:,}-message INBOX in {took:.1f} s", flush=True)
        proc, port = serve(data, db, args.workers)
        stack.callback(lambda: (proc.terminate(), proc.wait(60)))
        servers = [("janus", port, ADDRESS, PASSWORD)]
        if args.dovecot:
            fill = ((raw, seen) for _, raw, seen in corpus(args.messages))
            servers.append(("dovecot", stack.enter_context(dovecot(Path(d) / "dovecot", fill, args.dovecot_fsync)),
                            STRESS_ADDRESS,
                            PASSWORD.replace(" ", "")))
        for rnd in range(args.repeat):
            for name, port, address, password in servers:
                rates[name].append(mixed(port, args.clients, args.seconds, args.messages, address, password,
                                         f"[{name} #{rnd + 1}] mixed workload"))
    print("\n" + median_line(rates, "ops/s"))


def run_stress(args: argparse.Namespace) -> None:
    """``--profile stress`` / ``stress-loggedin`` (both with ``--profile stress-both``), after filling
    ``--store-size`` messages into 100 other accounts. Aims (../shared/design/numbers-to-beat.md): Dovecot
    913 cmds/s, 2,774 logged in; the store-size run within 1.2x of the empty store.

    ``--dovecot``: the same profiles against a private Dovecot too, alternating servers ``--repeat`` times, and
    the medians side by side with their ratio (the machine's load drifts; a ratio of one run does not)."""
    if args.profile == "append":
        run_append(args)
        return
    profiles = {"stress": [False], "stress-loggedin": [True], "stress-both": [False, True]}[args.profile]
    rates: dict[tuple[str, bool], list[float]] = defaultdict(list)
    cpu_ms: dict[bool, list[float]] = defaultdict(list)  # Janus's CPU per command, per profile
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        data = Path(d) / "stress"
        db = pg_schema(args.pg)
        took = build_stress(data, db, args.store_size)
        print(f"built the stress INBOX ({STRESS_MESSAGES} messages) and {args.store_size:,} messages in 100 other "
              f"accounts in {took:.1f} s ({'PostgreSQL' if args.pg else 'SQLite'}, --workers {args.workers})")
        servers: list[tuple[str, int, str]] = []
        proc, port = serve(data, db, args.workers)
        stack.callback(lambda: (proc.terminate(), proc.wait(60)))
        servers.append(("janus", port, PASSWORD))
        print(f"janus server pid {proc.pid}", flush=True)
        if args.dovecot:
            servers.append(("dovecot", stack.enter_context(dovecot(Path(d) / "dovecot", fsync=args.dovecot_fsync)),
                            PASSWORD.replace(" ", "")))
        try:
            for rnd in range(args.repeat):
                for name, port, password in servers:
                    for logged_in in profiles:
                        before = cpu_seconds(proc.pid) if name == "janus" else None
                        lat = stress(port, args.clients, args.seconds, logged_in, password)
                        used = cpu_seconds(proc.pid) - before if before is not None else None
                        label = "stress, logged in" if logged_in else "stress (login/logout per loop)"
                        rate, per_cmd = report_stress(
                            f"[{name} #{rnd + 1}] {label}, {args.clients} clients, store size {args.store_size:,}",
                            lat, args.seconds, used)
                        rates[(name, logged_in)].append(rate)
                        if per_cmd is not None:
                            cpu_ms[logged_in].append(per_cmd)
        except BaseException:
            print("server errors:\n" + server_log(data), file=sys.stderr)
            raise
    if args.repeat > 1 or args.dovecot:
        print("\nmedians (cmds/s):")
        for logged_in in profiles:
            j = statistics.median(rates[("janus", logged_in)])
            line = f"  {'logged in' if logged_in else 'login/logout':14s} janus {j:8,.0f}"
            if cpu_ms[logged_in]:
                line += f" ({statistics.median(cpu_ms[logged_in]):.2f} CPU ms/cmd)"
            if args.dovecot:
                dv = statistics.median(rates[("dovecot", logged_in)])
                line += f"   dovecot {dv:8,.0f}   janus/dovecot {j / dv:5.2f}x"
            print(line)



def run_append(args: argparse.Namespace) -> None:
    """``--profile append``: :func:`append_load` with ``--clients`` connections (4 unless given) for
    ``--seconds``, each round into new folders; with ``--dovecot`` against a private Dovecot too, alternating,
    medians and the ratio. Aim (numbers-to-beat.md): >= 1,400 msg/s (Dovecot 1,336 there)."""
    rates: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        data = Path(d) / "stress"
        db = pg_schema(args.pg)
        build_stress(data, db, 0)
        servers: list[tuple[str, int, str]] = []
        proc, port = serve(data, db, args.workers)
        stack.callback(lambda: (proc.terminate(), proc.wait(60)))
        servers.append(("janus", port, PASSWORD))
        print(f"janus server pid {proc.pid} ({'PostgreSQL' if args.pg else 'SQLite'}, --workers {args.workers})",
              flush=True)
        if args.dovecot:
            servers.append(("dovecot", stack.enter_context(dovecot(Path(d) / "dovecot", fsync=args.dovecot_fsync)),
                            PASSWORD.replace(" ", "")))
        try:
            for rnd in range(args.repeat):
                for name, port, password in servers:
                    n, lat = append_load(port, args.clients, args.seconds, password, f"append{rnd}")
                    rate = n / args.seconds
                    rates[name].append(rate)
                    print(f"[{name} #{rnd + 1}] MULTIAPPEND x{APPEND_BATCH}, {args.clients} connections: {n:,} "
                          f"messages in {args.seconds:g} s = {rate:,.0f} msg/s; per command p50 "
                          f"{pct(lat, 50) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms", flush=True)
        except BaseException:
            print("server errors:\n" + server_log(data), file=sys.stderr)
            raise
    print("\n" + median_line(rates, "msg/s"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--big-messages", type=int, default=100_000)
    ap.add_argument("--no-big", action="store_true", help="skip the 100k-message mailbox (~1 min to build)")
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (default: SQLite)")
    ap.add_argument("--workers", type=int, default=1, help="serve --workers N (default 1: one process)")
    ap.add_argument("--profile", choices=["stress", "stress-loggedin", "stress-both", "append", "mixed"],
                    default=None,
                    help="run only a stress profile (imaptest's default loop; 10 clients x 20 s by default) or the "
                         "MULTIAPPEND rate (append: 4 connections x 20 messages per command)")
    ap.add_argument("--store-size", type=int, default=0, metavar="N",
                    help="with --profile: first fill N messages into 100 other accounts")
    ap.add_argument("--dovecot", action="store_true",
                    help="with --profile: run it against a private Dovecot too (dovecot-imapd) and print ratios")
    ap.add_argument("--dovecot-fsync", choices=["optimized", "always"], default="optimized",
                    help="Dovecot's mail_fsync: its default (optimized: index and log files are not synced) or "
                         "always (every change synced, as Janus does)")
    ap.add_argument("--repeat", type=int, default=1, help="with --profile: rounds to take medians of")
    args = ap.parse_args()
    if args.profile == "mixed":
        if "--clients" not in sys.argv:
            args.clients = 10
        run_mixed(args)
        return
    if args.profile:
        if "--clients" not in sys.argv:
            args.clients = 4 if args.profile == "append" else 10
        run_stress(args)
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.connections + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the server process inherits it
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = tmp / "small"
        db = pg_schema(args.pg)
        took = build(data, args.messages, db)
        print(f"built {args.messages:,}-message INBOX in {took:.1f} s ({'PostgreSQL' if args.pg else 'SQLite'})")
        proc, port = serve(data, db, args.workers)
        try:
            mixed(port, args.clients, args.seconds, args.messages)
            if args.workers == 1:
                idle_memory(port, proc.pid, args.connections)
        except BaseException:
            print("server errors:\n" + server_log(data), file=sys.stderr)
            raise
        finally:
            proc.terminate()
            proc.wait(60)
        if not args.no_big:
            data = tmp / "big"
            db = pg_schema(args.pg)
            took = build(data, args.big_messages, db)
            print(f"\nbuilt {args.big_messages:,}-message INBOX in {took:.1f} s")
            proc, port = serve(data, db, args.workers)
            try:
                big(port)
            finally:
                proc.terminate()
                proc.wait(60)


if __name__ == "__main__":
    main()
