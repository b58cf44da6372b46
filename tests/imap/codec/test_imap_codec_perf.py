"""Coarse performance guards: generous bounds that still catch an accidental O(n^2) or per-message
expansion (the measured numbers are in bench_imap_codec.py)."""

from __future__ import annotations

import time

from janusmail.imap.codec import CommandParser, SequenceSet
from janusmail.imap.codec.serializer import fetch_response


def test_serializing_100k_flag_lines_is_cheap() -> None:
    seen = ("\\Seen",)
    start = time.perf_counter()
    out = b"".join([fetch_response(n, (("UID", n), ("FLAGS", seen))) for n in range(1, 100_001)])
    elapsed = time.perf_counter() - start
    assert out.count(b"\r\n") == 100_000 and out.endswith(b"* 100000 FETCH (UID 100000 FLAGS (\\Seen))\r\n")
    assert elapsed < 3.0, f"{elapsed:.2f}s for 100k FETCH lines (expected ~0.1s)"


def test_parsing_uid_fetch_all_is_cheap() -> None:
    p = CommandParser()
    start = time.perf_counter()
    for _ in range(2000):
        (c,) = p.feed(b"a UID FETCH 1:* (FLAGS)\r\n")
    elapsed = time.perf_counter() - start
    assert c.args.sequence.resolve(100_000).ranges == ((1, 100_000),)
    assert elapsed < 2.0, f"{elapsed:.2f}s for 2000 parses (expected ~0.02s)"


def test_large_literal_is_linear() -> None:
    body = b"x" * (8 * 1024 * 1024)
    p = CommandParser()
    start = time.perf_counter()
    events = p.feed(b"a APPEND INBOX {%d+}\r\n" % len(body))
    for i in range(0, len(body), 16384):
        events += p.feed(body[i : i + 16384])
    events += p.feed(b"\r\n")
    elapsed = time.perf_counter() - start
    assert events[-1].args.messages[0].data == body
    assert elapsed < 3.0, f"{elapsed:.2f}s to read an 8 MiB literal in 16 KiB chunks"


def test_slow_trickle_of_a_long_line_is_linear() -> None:
    p = CommandParser()
    line = b"a SEARCH TEXT " + b"y" * 60_000 + b"\r\n"
    start = time.perf_counter()
    events = []
    for i in range(0, len(line), 10):
        events += p.feed(line[i : i + 10])
    elapsed = time.perf_counter() - start
    assert len(events) == 1 and events[0].name == "SEARCH"
    assert elapsed < 3.0, f"{elapsed:.2f}s to trickle a 60 KB line (rescanning from the start is quadratic)"


def test_resolving_star_does_not_expand() -> None:
    start = time.perf_counter()
    for _ in range(10_000):
        SequenceSet.parse("1:*").resolve(4_000_000_000)
    assert time.perf_counter() - start < 2.0
