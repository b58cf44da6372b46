"""Micro-benchmark of the IMAP codec hot paths (not collected by pytest; run it directly).

.venv/bin/python tests/imap/codec/bench_imap_codec.py
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable

from janusmail.imap.codec import CommandParser, SequenceSet
from janusmail.imap.codec.serializer import FetchRenderer, Raw, envelope, fetch_response

N = 100_000


def best_of(fn: Callable[[], object], repeat: int = 7) -> tuple[float, float]:
    """(best, median) CPU seconds: process time is steadier than wall time on a shared machine."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times), statistics.median(times)


def serialize_flags() -> bytes:
    seen = ("\\Seen",)
    return b"".join([fetch_response(n, (("UID", n), ("FLAGS", seen))) for n in range(1, N + 1)])


def serialize_flags_compiled() -> bytes:
    seen = ("\\Seen",)
    render = FetchRenderer(["UID", "FLAGS"])
    return b"".join([render(n, (n, seen)) for n in range(1, N + 1)])


def serialize_rich() -> bytes:
    when = dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    env = ["Mon, 4 Mar 2024 05:06:07 +0000", "Quarterly report", [["Ann Example", None, "ann", "example.com"]],
           [["Ann Example", None, "ann", "example.com"]], [["Ann Example", None, "ann", "example.com"]],
           [["Bob", None, "bob", "example.com"]], None, None, None, "<id@example.com>"]  # fmt: skip
    return b"".join(
        [
            fetch_response(
                n,
                (
                    ("UID", n),
                    ("FLAGS", ("\\Seen",)),
                    ("INTERNALDATE", when),
                    ("RFC822.SIZE", 4242),
                    ("ENVELOPE", env),
                ),
            )
            for n in range(1, N + 1)
        ]
    )


def serialize_rich_cached() -> bytes:
    """Same, with ENVELOPE pre-rendered once (as an ingest cache would hold it) and a compiled renderer."""
    when = dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    env = Raw(envelope(["Mon, 4 Mar 2024 05:06:07 +0000", "Quarterly report",
                        [["Ann Example", None, "ann", "example.com"]], None, None,
                        [["Bob", None, "bob", "example.com"]], None, None, None, "<id@example.com>"]))  # fmt: skip
    render = FetchRenderer(["UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"])
    return b"".join([render(n, (n, ("\\Seen",), when, 4242, env)) for n in range(1, N + 1)])


def parse_fetch() -> None:
    p = CommandParser()
    for _ in range(10_000):
        p.feed(b"a1 UID FETCH 1:* (FLAGS)\r\n")


def main() -> None:
    out = serialize_flags()
    assert out.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n") and out.count(b"\r\n") == N
    assert serialize_flags_compiled() == out
    for label, fn in [
        (f"serialize {N:,} '* n FETCH (UID n FLAGS (\\Seen))' with fetch_response", serialize_flags),
        (f"serialize {N:,} '* n FETCH (UID n FLAGS (\\Seen))' with FetchRenderer", serialize_flags_compiled),
        (f"serialize {N:,} FETCH (UID FLAGS INTERNALDATE RFC822.SIZE ENVELOPE)", serialize_rich),
        ("  same, ENVELOPE cached as Raw + FetchRenderer", serialize_rich_cached),
    ]:
        best, median = best_of(fn, 5)
        print(
            f"{label}: best {best * 1000:.1f} ms, median {median * 1000:.1f} ms ({best / N * 1e6:.2f} us/line)"
        )
    best, median = best_of(parse_fetch, 5)
    print(
        f"parse 10,000 'UID FETCH 1:* (FLAGS)': best {best * 1000:.1f} ms ({best / 10_000 * 1e6:.2f} us/command)"
    )
    best, _ = best_of(lambda: [SequenceSet.parse("1:*").resolve(N) for _ in range(10_000)], 5)
    print(f"resolve 10,000 x '1:*' against {N:,}: best {best * 1000:.1f} ms")


if __name__ == "__main__":
    main()
