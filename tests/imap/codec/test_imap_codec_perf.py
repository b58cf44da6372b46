"""Big inputs come out right: 100k FETCH lines, 1:* on a huge mailbox, an 8 MiB literal, a trickled 60 KB line.

How fast is measured by bench/codec.py (with generous bounds that catch an accidental O(n^2) scan); a
wall-clock bound here would fail on a busy machine rather than on slow code. What stays here is what the
code must compute, including the structural fact that makes 1:* cheap: it stays a range, never a list.
"""

from __future__ import annotations

from janusmail.imap.codec import CommandParser, SequenceSet
from janusmail.imap.codec.serializer import fetch_response


def test_serializing_100k_flag_lines() -> None:
    seen = ("\\Seen",)
    out = b"".join([fetch_response(n, (("UID", n), ("FLAGS", seen))) for n in range(1, 100_001)])
    assert out.count(b"\r\n") == 100_000 and out.endswith(b"* 100000 FETCH (UID 100000 FLAGS (\\Seen))\r\n")
    assert out.startswith(b"* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* 2 FETCH (UID 2 FLAGS (\\Seen))\r\n")


def test_parsing_uid_fetch_all_repeatedly() -> None:
    p = CommandParser()
    for _ in range(2000):
        (c,) = p.feed(b"a UID FETCH 1:* (FLAGS)\r\n")
    assert c.args.sequence.resolve(100_000).ranges == ((1, 100_000),)


def test_large_literal_in_chunks() -> None:
    body = b"x" * (8 * 1024 * 1024)
    p = CommandParser()
    events = p.feed(b"a APPEND INBOX {%d+}\r\n" % len(body))
    for i in range(0, len(body), 16384):
        events += p.feed(body[i : i + 16384])
    events += p.feed(b"\r\n")
    assert events[-1].args.messages[0].data == body


def test_slow_trickle_of_a_long_line() -> None:
    p = CommandParser()
    line = b"a SEARCH TEXT " + b"y" * 60_000 + b"\r\n"
    events = []
    for i in range(0, len(line), 10):
        events += p.feed(line[i : i + 10])
    assert len(events) == 1 and events[0].name == "SEARCH"


def test_resolving_star_does_not_expand() -> None:
    ns = SequenceSet.parse("1:*").resolve(4_000_000_000)
    assert ns.ranges == ((1, 4_000_000_000),) and len(ns) == 4_000_000_000
    assert 3_999_999_999 in ns and 4_000_000_001 not in ns
