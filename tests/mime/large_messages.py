"""Large test messages written straight to a file (never whole in memory), with the facts a parse must report,
plus a tracemalloc probe. Shared by the MIME and store memory tests.

The facts are arithmetic on the generator's blocks; ``tests/mime/test_mime_large.py`` checks them against
the reference computation (decode the part, count its lines) on a small message from the same generator, so
the 60 MiB cases can be checked without decoding 60 MiB in the test.
"""

from __future__ import annotations

import base64
import mmap
import random
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MiB = 1 << 20
LINES_PER_BLOCK = 1024

_PAYLOAD = random.Random(8).randbytes(57 * LINES_PER_BLOCK)
B64_BLOCK = b"".join(base64.b64encode(_PAYLOAD[i : i + 57]) + b"\r\n" for i in range(0, len(_PAYLOAD), 57))
TEXT_LINE = b"The quick brown fox jumps over the lazy dog, 0123456789 and then some more words.\r\n"
TEXT_BLOCK = TEXT_LINE * LINES_PER_BLOCK

B64_HEAD = (
    b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: a big attachment\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n"
    b"--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the attachment.\r\n"
    b"--BB\r\nContent-Type: application/octet-stream; name=\"data.bin\"\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n"
)
B64_TAIL = b"--BB--\r\n"
TEXT_HEAD = b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: a big text\r\n\r\n"


@dataclass(frozen=True)
class Facts:
    """What parse_message must say about the big part of a generated message."""

    length: int  # octets of the whole message
    section: str  # the big part's section
    size: int  # encoded octets of its body (IMAP size)
    decoded: int  # octets after transfer decoding (JMAP size)
    lines: int | None  # IMAP line count (text parts only)


def write_base64_attachment(path: Path, blocks: int) -> Facts:
    """multipart/mixed: a short text part, then an application/octet-stream part in base64 of `blocks` blocks."""
    with open(path, "wb") as f:
        f.write(B64_HEAD)
        for _ in range(blocks):
            f.write(B64_BLOCK)
        f.write(B64_TAIL)
    encoded = blocks * len(B64_BLOCK)
    # the CRLF before the closing delimiter belongs to the delimiter (RFC 2046)
    return Facts(len(B64_HEAD) + encoded + len(B64_TAIL), "2", encoded - 2, blocks * len(_PAYLOAD), None)


def write_7bit_text(path: Path, blocks: int) -> Facts:
    """A single-part text/plain message of `blocks` blocks of plain 7bit lines."""
    with open(path, "wb") as f:
        f.write(TEXT_HEAD)
        for _ in range(blocks):
            f.write(TEXT_BLOCK)
    body = blocks * len(TEXT_BLOCK)
    return Facts(len(TEXT_HEAD) + body, "1", body, body, blocks * LINES_PER_BLOCK)


def blocks_for(kind: str, octets: int) -> int:
    return octets // len(B64_BLOCK if kind == "base64" else TEXT_BLOCK)


WRITERS = {"base64": write_base64_attachment, "7bit": write_7bit_text}


@contextmanager
def mapped(path: Path) -> Iterator[mmap.mmap]:
    """The file as a read-only map: what a spooled APPEND or upload hands to the store."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        yield mm


@contextmanager
def traced_peak() -> Iterator[dict[str, int]]:
    """Peak Python allocation (octets, above what was allocated on entry) inside the block, as box["peak"].

    tracemalloc sees every allocation through Python's allocators and nothing of a file map, so the number
    is the parse's own cost beyond its input, independent of timing."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    box: dict[str, int] = {}
    try:
        yield box
    finally:
        box["peak"] = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()
