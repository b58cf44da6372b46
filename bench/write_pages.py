"""Database pages each write of the stress loop dirties, by table and index (SQLite; issue 10).

Why: on SQLite every page a transaction changes is appended to the WAL (two ``pwrite`` calls per frame) and
synced at COMMIT, all while the one write lock is held; the logged-in stress profile is bound by that lock.
Its cmds/s move +-20% between runs on a shared machine, so a change that saves a page or two per write is lost
in the noise there. This count is exact and repeatable: the store (no server, no clients) runs each operation
of the loop alone, with the WAL emptied before it (``wal_checkpoint(TRUNCATE)``), then reads the page number
of every frame the operation appended and names the B-tree it belongs to (``dbstat``).

The operations, on an INBOX of ``--messages`` simple messages: STORE ``+FLAGS (\\Seen \\Deleted $StressN)``
of one message, EXPUNGE of one \\Deleted message, the same EXPUNGE again (nothing left to remove: the common
case when several sessions expunge one mailbox), APPEND of one message (``ingest_many``, as IMAP APPEND runs
it).

Run: .venv/bin/python bench/write_pages.py [--messages 2000] [--ops 20]
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import struct
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from janusmail.store.model import IngestItem  # noqa: E402
from janusmail.store.store import Store  # noqa: E402
from tests.mailgen import simple  # noqa: E402

WAL_HEADER = 32
FRAME_HEADER = 24


def wal_pages(wal: Path, page_size: int) -> list[int]:
    """Page numbers of the frames in the WAL file, in order (a frame header starts with its page number)."""
    if not wal.exists():
        return []
    data = wal.read_bytes()
    out = []
    for off in range(WAL_HEADER, len(data) - FRAME_HEADER - page_size + 1, FRAME_HEADER + page_size):
        out.append(struct.unpack(">I", data[off : off + 4])[0])
    return out


class PageCounter:
    """Runs one operation at a time with the WAL emptied before it; counts the frames it appended by B-tree."""

    def __init__(self, db: Path) -> None:
        self.db, self.wal = db, Path(f"{db}-wal")
        self.conn = sqlite3.connect(db, isolation_level=None)
        self.page_size = self.conn.execute("PRAGMA page_size").fetchone()[0]

    def _owners(self) -> dict[int, str]:
        return dict(self.conn.execute("SELECT pageno, name FROM dbstat"))

    def run(self, fn: Callable[[], object]) -> tuple[int, Counter[str]]:
        busy = self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            raise RuntimeError("could not empty the WAL (a reader held it)")
        fn()
        pages = wal_pages(self.wal, self.page_size)
        owners = self._owners()
        return len(pages), Counter(owners.get(p, "(free list / new)") for p in set(pages))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000, help="INBOX size before the operations")
    ap.add_argument("--ops", type=int, default=20, help="operations of each kind (medians and means over them)")
    args = ap.parse_args()
    rnd = random.Random(1)
    with tempfile.TemporaryDirectory() as d:
        store = Store.open(Path(d) / "data", None)
        try:
            a = store.accounts.create("pages@example.test", "pages password").id
            inbox = store.mailboxes.by_path(a, ["INBOX"]).id
            store.emails.ingest_many(a, [IngestItem(simple(n), (inbox,)) for n in range(args.messages)])
            counter = PageCounter(Path(d) / "data" / "janus.sqlite3")
            uids = rnd.sample(range(1, args.messages + 1), 2 * args.ops)
            ops: dict[str, list[Callable[[], object]]] = {
                "STORE": [(lambda u=u: store.memberships.store_flags(
                    a, inbox, [(u, u)], "add", ["$seen", f"$Stress{rnd.randint(0, 9)}"], True))
                    for u in uids[: args.ops]],
                "EXPUNGE": [(lambda u=u: store.memberships.expunge(a, inbox, [(u, u)])) for u in uids[args.ops :]],
                "EXPUNGE (nothing \\Deleted)": [(lambda u=u: store.memberships.expunge(a, inbox, [(u, u)]))
                                                for u in uids[args.ops :]],
                "APPEND": [(lambda n=n: store.emails.ingest_many(
                    a, [IngestItem(simple(10**6 + n), (inbox,), keywords=("$seen",))]))
                    for n in range(args.ops)],
            }
            # the messages EXPUNGE removes carry \\Deleted (not counted); the second EXPUNGE of each finds nothing
            store.memberships.store_flags(a, inbox, [(u, u) for u in sorted(uids[args.ops :])], "add", [], True)
            print(f"SQLite, INBOX of {args.messages:,} messages, {args.ops} operations of each kind: WAL frames "
                  "appended per operation, and the B-trees whose pages they are (mean pages per operation)")
            for name, fns in ops.items():
                frames: list[int] = []
                trees: Counter[str] = Counter()
                for fn in fns:
                    n, by_tree = counter.run(fn)
                    frames.append(n)
                    trees.update(by_tree)
                print(f"\n{name}: {statistics.mean(frames):.1f} frames (median {statistics.median(frames):g}), "
                      f"{sum(trees.values()) / len(fns):.1f} distinct pages")
                for tree, count in trees.most_common():
                    print(f"  {count / len(fns):5.2f}  {tree}")
        finally:
            store.close()


if __name__ == "__main__":
    main()
