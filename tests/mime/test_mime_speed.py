"""parse_message runs for every message at ingest: keep it in the stdlib parser's league.

A ratio against ``email.message_from_bytes`` (compat32, which only splits the message and
decodes nothing) is robust to a noisy machine where absolute numbers are not.
"""

from __future__ import annotations

import email
import email.policy
import time

from janusmail.mime.parse import parse_message
from tests.mime.mime_samples import typical_message


def _best(fn, raw: bytes, n: int = 200, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn(raw)
        best = min(best, (time.perf_counter() - t) / n)
    return best


def test_parse_speed_is_comparable_to_stdlib_split():
    raw = typical_message()
    ours = _best(parse_message, raw)
    stdlib = _best(lambda r: email.message_from_bytes(r, policy=email.policy.compat32), raw)
    print(
        f"parse_message: {1 / ours:.0f} msg/s ({ours * 1e6:.0f} us); stdlib compat32 split: {1 / stdlib:.0f} msg/s"
    )
    assert ours < 3 * stdlib
