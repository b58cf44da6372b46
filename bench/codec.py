"""Parser and serializer speed: the wall-clock checks that used to sit in the test suite.

A test that asserts a time fails on a busy machine, not on slow code, so the tests keep only what the code
must compute and the times live here. Each line prints the measured time (best of a few rounds) next to a
generous bound that an accidental O(n^2) scan or a per-message expansion would blow through; the exit code
is non-zero when one is exceeded, so `make bench` notices.

Run: .venv/bin/python bench/codec.py
"""

from __future__ import annotations

import email
import email.policy
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from janusmail.imap.codec import CommandParser, SequenceSet  # noqa: E402
from janusmail.imap.codec.serializer import fetch_response  # noqa: E402
from janusmail.mime.parse import parse_message  # noqa: E402
from janusmail.mime.subject import base_subject  # noqa: E402
from tests.mime.mime_samples import typical_message  # noqa: E402


def best(fn: Callable[[], object], rounds: int = 3) -> float:
    out = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def serialize_100k_flag_lines() -> None:
    seen = ("\\Seen",)
    b"".join([fetch_response(n, (("UID", n), ("FLAGS", seen))) for n in range(1, 100_001)])


def parse_uid_fetch_2000_times() -> None:
    p = CommandParser()
    for _ in range(2000):
        p.feed(b"a UID FETCH 1:* (FLAGS)\r\n")


def literal_8mib_in_16kib_chunks() -> None:
    body = b"x" * (8 * 1024 * 1024)
    p = CommandParser()
    p.feed(b"a APPEND INBOX {%d+}\r\n" % len(body))
    for i in range(0, len(body), 16384):
        p.feed(body[i : i + 16384])
    p.feed(b"\r\n")


def trickle_60kb_line_10_bytes_at_a_time() -> None:
    p = CommandParser()
    line = b"a SEARCH TEXT " + b"y" * 60_000 + b"\r\n"
    for i in range(0, len(line), 10):
        p.feed(line[i : i + 10])


def resolve_star_10k_times() -> None:
    for _ in range(10_000):
        SequenceSet.parse("1:*").resolve(4_000_000_000)


def resolve_one_to_star_on_100k_1000_times() -> None:
    for _ in range(1000):
        assert 99_999 in SequenceSet.parse("1:*").resolve(100_000)


def base_subject_hostile() -> None:
    base_subject("[x]" * 50000)
    base_subject("Re: " * 50000 + "x")
    base_subject("(fwd)" * 50000)


CHECKS: list[tuple[str, Callable[[], None], float]] = [
    ("serialize 100k FETCH FLAGS lines", serialize_100k_flag_lines, 3.0),
    ("parse UID FETCH 1:* x2000", parse_uid_fetch_2000_times, 2.0),
    ("8 MiB literal in 16 KiB chunks", literal_8mib_in_16kib_chunks, 3.0),
    ("60 KB line trickled 10 bytes at a time", trickle_60kb_line_10_bytes_at_a_time, 3.0),
    ("resolve 1:* on 4e9 x10k", resolve_star_10k_times, 2.0),
    ("resolve 1:* on 100k x1000", resolve_one_to_star_on_100k_1000_times, 1.0),
    ("base_subject on 150k-char hostile subjects", base_subject_hostile, 2.0),
]


def parse_vs_stdlib(n: int = 200) -> tuple[float, float]:
    """parse_message runs for every message at ingest: keep it in the league of the stdlib's compat32 split
    (which decodes nothing); a ratio is steadier than an absolute time."""
    raw = typical_message()

    def ours() -> None:
        for _ in range(n):
            parse_message(raw)

    def stdlib() -> None:
        for _ in range(n):
            email.message_from_bytes(raw, policy=email.policy.compat32)

    return best(ours, 5) / n, best(stdlib, 5) / n


def main() -> int:
    failed = 0
    for name, fn, bound in CHECKS:
        took = best(fn)
        ok = took < bound
        failed += not ok
        print(f"{'ok  ' if ok else 'SLOW'} {name:45s} {took * 1000:9.1f} ms  (bound {bound * 1000:,.0f} ms)")
    ours, stdlib = parse_vs_stdlib()
    ok = ours < 3 * stdlib
    failed += not ok
    print(f"{'ok  ' if ok else 'SLOW'} {'parse_message vs stdlib compat32 split':45s} {ours * 1e6:9.1f} us  "
          f"(stdlib {stdlib * 1e6:.1f} us, bound 3x)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
