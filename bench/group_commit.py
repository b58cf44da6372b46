"""Group commit benchmark: concurrent writers on the store's writer queue, with and without sharing commits.

N client threads (default 8) share one 2,000-message mailbox per account and loop the writes of the IMAP
mixed workload: STORE of a flag on one message, APPEND (``Store.deliver``'s path: ``ingest_many``), EXPUNGE
of what they marked \\Deleted, and a JMAP-style Email/set of 20 keyword changes. Each call goes through
``writer_calls.run``, the same queue ``Store.call`` uses. Two modes, alternated ``--rounds`` times in one run
so a busy machine affects both alike: ``alone`` (``groupcommit.MAX_GROUP = 1``: one transaction and one
commit per call, as before group commit) and ``grouped`` (the default). Prints calls/s, commits per call and
p50/p99 latency per kind, then the medians over the rounds.

Run: .venv/bin/python bench/group_commit.py [--clients 8] [--seconds 5] [--rounds 3] [--accounts 2] [--pg URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from janusmail.store import groupcommit, writer_calls  # noqa: E402
from janusmail.store.emails import EmailUpdate  # noqa: E402
from janusmail.store.model import IngestItem  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.mailgen import simple  # noqa: E402


def build(store: Store, accounts: int, n: int) -> list[tuple[str, str, list[str]]]:
    out = []
    for a in range(accounts):
        acct = store.accounts.create(f"bench{a}@example.test", None)
        inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
        assert inbox is not None
        ids: list[str] = []
        for i in range(0, n, 500):
            done = store.emails.ingest_many(acct.id, [IngestItem(simple(j), (inbox.id,)) for j in range(i, min(n, i + 500))])
            ids += [d.email_id for d in done]
        out.append((acct.id, inbox.id, ids))
    return out


def run(store: Store, boxes: list[tuple[str, str, list[str]]], clients: int, seconds: float) -> dict:
    lat: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()
    stop = time.perf_counter() + seconds
    commits = [0]

    def count(_conn: object) -> None:
        commits[0] += 1

    sa.event.listen(store.engine, "commit", count)

    def client(c: int) -> None:
        rnd = random.Random(c)
        account, inbox, ids = boxes[c % len(boxes)]
        mine: list[tuple[str, float]] = []
        n = 0
        while time.perf_counter() < stop:
            n += 1
            t0 = time.perf_counter()
            if n % 10 == 0:
                writer_calls.run(store, store.emails.ingest_many, account,
                                 [IngestItem(simple(rnd.randrange(10**6)), (inbox,))])
                kind = "APPEND"
            elif n % 10 == 5:
                writer_calls.run(store, store.memberships.expunge, account, inbox)
                kind = "EXPUNGE"
            elif n % 10 == 7:
                some = rnd.sample(ids, 20)
                writer_calls.run(store, store.visible_emails.apply, account,
                                 {e: EmailUpdate(add_keywords=[f"k{n % 3}"]) for e in some}, [])
                kind = "Email/set 20"
            else:
                uid = rnd.randrange(1, 1500)
                deleted = True if n % 10 == 3 else None
                writer_calls.run(store, store.memberships.store_flags, account, inbox, [(uid, uid)],
                                 rnd.choice(("add", "remove")), ["$seen"], deleted)
                kind = "STORE"
            mine.append((kind, time.perf_counter() - t0))
        with lock:
            for kind, dt in mine:
                lat[kind].append(dt)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.perf_counter() - t0
    sa.event.remove(store.engine, "commit", count)
    calls = sum(len(v) for v in lat.values())
    out = {"calls/s": calls / took, "calls per commit": calls / max(1, commits[0])}
    for kind, v in sorted(lat.items()):
        v.sort()
        out[f"{kind} p50 ms"] = 1000 * v[len(v) // 2]
        out[f"{kind} p99 ms"] = 1000 * v[min(len(v) - 1, int(len(v) * 0.99))]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--accounts", type=int, default=2)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--pg", default=None, help="PostgreSQL URL (default: SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        if args.pg:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from imap import pg_schema  # the same private-schema helper as the IMAP benchmark

            url = pg_schema(args.pg)
        else:
            url = None
        store = Store.open(Path(d) / "data", url)
        try:
            boxes = build(store, args.accounts, args.messages)
            results: dict[str, list[dict]] = defaultdict(list)
            default = groupcommit.MAX_GROUP
            for r in range(args.rounds):
                for mode, size in (("alone", 1), ("grouped", default)):
                    groupcommit.MAX_GROUP = size
                    res = run(store, boxes, args.clients, args.seconds)
                    results[mode].append(res)
                    print(f"round {r + 1} {mode:8} " + "  ".join(f"{k} {v:.1f}" for k, v in res.items()), flush=True)
            groupcommit.MAX_GROUP = default
            print(f"\nmedians over {args.rounds} rounds ({args.clients} clients, {args.accounts} accounts, "
                  f"{'PostgreSQL' if args.pg else 'SQLite'}):")
            keys = sorted({k for rs in results.values() for res in rs for k in res})
            print(f"  {'':22} {'alone':>10} {'grouped':>10}")
            for k in keys:
                cols = [statistics.median(res[k] for res in results[m] if k in res) for m in ("alone", "grouped")]
                print(f"  {k:22} {cols[0]:10.1f} {cols[1]:10.1f}")
        finally:
            store.close()


if __name__ == "__main__":
    main()
