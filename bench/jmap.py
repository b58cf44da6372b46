"""JMAP benchmark: a large Inbox served by `janusmail serve`, measured over HTTP with a keep-alive client.

Builds an N-message Inbox (default 100,000; ``--messages 10000`` for a quick run) straight through
``store.emails.ingest_many`` in batches of 1000, with threads (~45% replies), 800 senders and one word ("quokka") in
1% of the bodies, then starts the server as its own process and measures p50/p99 of:

  first screen     Mailbox/get + Email/query {inMailbox, receivedAt desc, collapseThreads, limit 50,
                   calculateTotal} + back-referenced Email/get of the 50 (threadId mailboxIds keywords from to
                   subject receivedAt size preview hasAttachment): warm (unchanged state) and cold (just after a
                   keyword change, so no per-state cache can help)
  deep page        the same query at position 50,000 (or the last page when smaller), warm and cold
  resync           Email/changes + Email/get (#updated) after 100 keyword changes
  text search      Email/query {text: quokka} + 50 SearchSnippets, one request
  from filter      Email/query {from: address}
  throughput       first screens/s with 4 and 16 concurrent clients
  writes           one Email/set of 100 keyword updates; upload + Email/import of 2,000 messages
  sending          EmailSubmission/set to a local SMTP sink, msgs/s accepted and delivered (bench/submission.py's
                   run, on a fresh account and database of its own; ``--submissions 0`` skips it, ``--dkim both``
                   measures with and without DKIM signing)

Run: .venv/bin/python bench/jmap.py [--messages N] [--runs R] [--postgres] [--no-sqlite] [--submissions N]
     [--submission-batch B] [--dkim on|off|both]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import submission as submission_bench  # noqa: E402
from janusmail.auth import make_credentials  # noqa: E402
from janusmail.store.model import IngestItem  # noqa: E402
from janusmail.store.search.queue import drain  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.serverutil import make_config, spawn_server  # noqa: E402

PG = os.environ.get("JANUS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADDRESS, PASSWORD = "bench@example.test", "bench-password-1"
USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"]
FIRST_SCREEN_PROPS = [
    "threadId", "mailboxIds", "keywords", "from", "to", "subject", "receivedAt", "size", "preview", "hasAttachment",
]  # fmt: skip
RARE_WORD = "quokka"
SENDER = "person17@example17.test"


# -- the mailbox ------------------------------------------------------------------------------------------------


def messages(n: int, seed: int = 7) -> list[tuple[bytes, int]]:
    """n generated messages with their receivedAt, oldest first."""
    rnd = random.Random(seed)
    vocab = [f"w{i:04d}{rnd.choice(['ing', 'ed', 's', 'er', 'ly', ''])}" for i in range(3000)]
    senders = [(f"Person {i}", f"person{i}@example{i % 37}.test") for i in range(800)]
    threads: list[list[Any]] = []
    base = 1_700_000_000
    out = []
    for i in range(n):
        mid = f"m{i}@bench.test"
        refs: list[str] = []
        if threads and rnd.random() < 0.45:
            t = threads[rnd.randrange(max(0, len(threads) - 300), len(threads))]
            subject, refs = "Re: " + t[0], list(t[1])
            t[1].append(mid)
        else:
            subject = " ".join(rnd.choices(vocab, k=5))
            threads.append([subject, [mid]])
        name, addr = senders[rnd.randrange(len(senders))]
        lines = [" ".join(rnd.choices(vocab, k=12)) for _ in range(rnd.randint(5, 30))]
        if i % 100 == 3:
            lines.insert(rnd.randrange(len(lines)), f"the {RARE_WORD} appears here")
        head = [
            f"From: {name} <{addr}>",
            "To: Bench <bench@example.test>",
            f"Subject: {subject}",
            f"Message-ID: <{mid}>",
            "Date: Fri, 27 Nov 2026 08:00:00 +0100",
        ]
        if refs:
            head += [f"In-Reply-To: <{refs[-1]}>", "References: " + " ".join(f"<{r}>" for r in refs[-10:])]
        head.append("Content-Type: text/plain; charset=utf-8")
        out.append((("\r\n".join(head) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode(), base + i * 60))
    return out


def build(data_dir: Path, db: str | None, n: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "janusmail.toml").write_text("[jmap]\nmax_concurrent_requests = 64\n")
    store = Store.open(data_dir, db, fsync=False)
    try:
        pw_hash, scram = make_credentials(PASSWORD)
        acct = store.accounts.create(ADDRESS, pw_hash, scram)
        inbox = next(m.id for m in store.mailboxes.list(acct.id) if m.role == "inbox")
        t0 = time.perf_counter()
        msgs = messages(n)
        for i in range(0, n, 1000):
            items = [IngestItem(raw, (inbox,), ("$seen",) if (i + j) % 3 else (), received)
                     for j, (raw, received) in enumerate(msgs[i : i + 1000])]
            store.emails.ingest_many(acct.id, items)
            print(f"\r  ingest {i + len(items):,}/{n:,}", end="", flush=True)
        if store.sqlite:  # (a bulk load's end: its mail indexed for search, as refresh_statistics does)
            drain(store)
        dt = time.perf_counter() - t0
        print(f"\r  built {n:,} messages in {dt:.0f} s ({n / dt:,.0f}/s)")
        # Fresh tables have no planner statistics; a real server's autovacuum / PRAGMA optimize gets them.
        if store.sqlite:
            with store.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
        else:
            with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        store.close()


# -- the client -------------------------------------------------------------------------------------------------


class Client:
    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, auth=(ADDRESS, PASSWORD), timeout=120)
        session = self.http.get("/jmap/session").json()
        self.account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        boxes = self.call([["Mailbox/get", {"accountId": self.account, "ids": None}, "m"]])[0][1]["list"]
        self.inbox = next(b["id"] for b in boxes if b["role"] == "inbox")

    def call(self, calls: list[list[Any]]) -> list[Any]:
        r = self.http.post("/jmap/api", json={"using": USING, "methodCalls": calls})
        r.raise_for_status()
        out = r.json()["methodResponses"]
        for name, args, _ in out:
            if name == "error":
                raise RuntimeError(f"JMAP error: {args}")
        return out

    def first_screen(self, position: int = 0, mailboxes: bool = True) -> list[Any]:
        a = self.account
        boxes = [["Mailbox/get", {"accountId": a, "ids": None}, "m"]] if mailboxes else []
        return self.call([
            *boxes,
            ["Email/query", {"accountId": a, "filter": {"inMailbox": self.inbox},
                             "sort": [{"property": "receivedAt", "isAscending": False}],
                             "collapseThreads": True, "position": position, "limit": 50,
                             "calculateTotal": True}, "q"],
            ["Email/get", {"accountId": a, "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                           "properties": FIRST_SCREEN_PROPS}, "g"],
        ])  # fmt: skip

    def deep_page(self, position: int) -> list[Any]:
        return self.call([["Email/query", {"accountId": self.account, "filter": {"inMailbox": self.inbox},
                                           "sort": [{"property": "receivedAt", "isAscending": False}],
                                           "collapseThreads": True, "position": position, "limit": 50}, "q"]])

    def flip_flags(self, ids: list[str], on: bool) -> None:
        # a keyword no ingested message carries: every one of ``ids`` really changes (some are $flagged already)
        upd = {i: {"keywords/bench_mark": True if on else None} for i in ids}
        self.call([["Email/set", {"accountId": self.account, "update": upd}, "s"]])

    def state(self) -> str:
        return self.call([["Email/get", {"accountId": self.account, "ids": []}, "g"]])[0][1]["state"]


def timed(fn: Any, runs: int, warmup: int = 2, before: Any = None) -> list[float]:
    for _ in range(warmup):
        if before:
            before()
        fn()
    out = []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def show(name: str, samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    p50 = statistics.median(s)
    p99 = s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]
    print(f"  {name:44s} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms   (n={len(s)})")
    return {"p50": p50, "p99": p99}


def throughput(base: str, clients: int, seconds: float) -> float:
    workers = [Client(base) for _ in range(clients)]
    for w in workers:
        w.first_screen()
    stop = time.perf_counter() + seconds
    counts = [0] * clients
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            while time.perf_counter() < stop:
                workers[i].first_screen()
                counts[i] += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) / dt


def measure(base: str, n: int, runs: int) -> None:
    c = Client(base)
    first = c.first_screen()
    total = first[1][1]["total"]  # threads: the query collapses them
    print(f"  Inbox: {n:,} emails, {total:,} threads")
    show("first screen (warm)", timed(c.first_screen, runs))
    ids = [e["id"] for e in first[2][1]["list"]]
    toggle = [False]

    def change() -> None:  # one keyword change: a new Email state, so nothing cached per state helps
        toggle[0] = not toggle[0]
        c.flip_flags(ids[:1], toggle[0])

    show("first screen (cold: after a change)", timed(c.first_screen, max(5, runs // 3), before=change))
    show("  its Mailbox/get alone (warm)", timed(lambda: c.call([["Mailbox/get", {"accountId": c.account,
                                                                                  "ids": None}, "m"]]), runs))
    show("  its Email/query + Email/get alone (warm)", timed(lambda: c.first_screen(mailboxes=False), runs))
    show("  its Email/query + Email/get alone (cold)", timed(lambda: c.first_screen(mailboxes=False),
                                                             max(5, runs // 3), before=change))
    deep = min(50_000, total - 50)
    show(f"query at position {deep:,} (warm)", timed(lambda: c.deep_page(deep), runs))
    show(f"query at position {deep:,} (cold)", timed(lambda: c.deep_page(deep), max(5, runs // 3), before=change))

    # resync: 100 keyword changes, then Email/changes + Email/get of what changed
    page = c.call([["Email/query", {"accountId": c.account, "filter": {"inMailbox": c.inbox}, "limit": 100}, "q"]])
    hundred = page[0][1]["ids"]
    since = c.state()
    c.flip_flags(hundred, True)

    def resync() -> None:
        out = c.call([
            ["Email/changes", {"accountId": c.account, "sinceState": since}, "c"],
            ["Email/get", {"accountId": c.account, "#ids": {"resultOf": "c", "name": "Email/changes",
                                                            "path": "/updated"},
                           "properties": FIRST_SCREEN_PROPS}, "g"],
        ])  # fmt: skip
        changed = out[0][1]["updated"] + out[0][1]["created"]
        assert len(out[1][1]["list"]) == len(out[0][1]["updated"]) and len(changed) >= 90, (len(changed), out[0][1])

    show("resync: changes + get after 100 changes", timed(resync, runs))
    c.flip_flags(hundred, False)

    def text() -> None:
        flt = {"text": RARE_WORD}
        out = c.call([
            ["Email/query", {"accountId": c.account, "filter": flt,
                             "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 50}, "q"],
            ["SearchSnippet/get", {"accountId": c.account, "filter": flt,
                                   "#emailIds": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "s"],
        ])  # fmt: skip
        assert len(out[1][1]["list"]) == min(50, n // 100)

    show(f"text search '{RARE_WORD}' + 50 snippets", timed(text, runs))

    def sender() -> None:
        c.call([["Email/query", {"accountId": c.account, "filter": {"from": SENDER},
                                 "sort": [{"property": "receivedAt", "isAscending": False}], "limit": 50}, "q"]])

    show(f"from filter {SENDER}", timed(sender, runs))
    for k in (4, 16):
        rate = throughput(base, k, 8.0)
        print(f"  first screens/s, {k:2d} concurrent clients          {rate:8.1f} /s")

    # 100 keyword changes in one Email/set (what a client's "mark page read" sends)
    flagged = [False]

    def mark_page() -> None:
        flagged[0] = not flagged[0]
        c.flip_flags(hundred, flagged[0])

    show("Email/set: 100 keyword updates in one call", timed(mark_page, 5, warmup=1))

    # ingest by upload + Email/import, 100 messages per request
    fresh = messages(2000, seed=99)
    uploading = importing = 0.0
    for i in range(0, len(fresh), 100):
        blobs = []
        t0 = time.perf_counter()
        for raw, _ in fresh[i : i + 100]:
            r = c.http.post(f"/jmap/upload/{c.account}", content=raw, headers={"Content-Type": "message/rfc822"})
            r.raise_for_status()
            blobs.append(r.json()["blobId"])
        t1 = time.perf_counter()
        emails = {f"i{j}": {"blobId": b, "mailboxIds": {c.inbox: True}} for j, b in enumerate(blobs)}
        out = c.call([["Email/import", {"accountId": c.account, "emails": emails}, "i"]])
        importing += time.perf_counter() - t1
        uploading += t1 - t0
        assert len(out[0][1]["created"]) == len(blobs)
    n_new = len(fresh)
    print(f"  upload + Email/import (100 per request)         {n_new / (uploading + importing):8.1f} msg/s"
          f"   (uploads alone {n_new / uploading:,.0f}/s, Email/import alone {n_new / importing:,.0f}/s)")


def bench(tmp: Path, name: str, db: str | None, n: int, runs: int, sending: argparse.Namespace) -> None:
    print(f"{name}:")
    data = tmp / f"{name}-{uuid.uuid4().hex[:6]}"
    build(data, db, n)
    cfg = make_config(data, db, imap__listen=None, imap__imaps=None, lmtp__listen=None)
    proc = spawn_server(data, cfg, db)
    try:
        measure(cfg.public_url, n, runs)
    finally:
        proc.terminate()
        proc.wait(30)
    if sending.submissions:
        print(f"  sending: EmailSubmission/set to a local SMTP sink, {sending.submission_batch} per request")
        submission_bench.run_backend(tmp, db is not None, sending.submissions, sending.submission_batch,
                                     sending.dkim)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--submissions", type=int, default=500, help="messages sent for the sending figure (0: skip)")
    ap.add_argument("--submission-batch", type=int, default=50)
    ap.add_argument("--dkim", choices=["on", "off", "both"], default="on", help="sending with DKIM signing")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if not args.no_sqlite:
            bench(tmp, "sqlite", None, args.messages, args.runs, args)
        if args.postgres:
            schema = "bench_" + uuid.uuid4().hex[:8]
            admin = sa.create_engine(PG)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            try:
                bench(tmp, "postgresql", f"{PG}?options=-csearch_path%3D{schema}", args.messages, args.runs, args)
            finally:
                with admin.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                admin.dispose()


if __name__ == "__main__":
    main()
