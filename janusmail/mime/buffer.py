"""Scanning a message that is not a ``bytes`` object (a spool file's ``mmap``, a ``memoryview``) without
copying it.

Why: a 60 MiB APPEND or upload reaches the store as a read-only map of its spool file. ``bytes(raw)`` would
put all of it on the heap again, once per message being stored, which is exactly the memory an attacker
with a few large uploads wants us to spend. The scanner in ``structure`` needs only a handful of ``bytes``
methods (``find``, ``startswith``, ``count``, indexing, short slices) plus the buffer itself for its regexes;
:class:`ByteSource` supplies those over any buffer. ``bytes`` and ``bytearray`` are used as they are.

Slices of a ``ByteSource`` are ``bytes`` copies, as with ``bytes`` itself: callers slice header blocks and
bounded windows, never a whole large body.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

#: Window for counting and other chunked work over a buffer: large enough that the per-call overhead
#: vanishes, small enough that its temporary copy does not matter.
CHUNK = 1 << 20


@lru_cache(maxsize=64)
def _literal(sub: bytes) -> re.Pattern[bytes]:
    return re.compile(re.escape(sub))


class ByteSource:
    """The read-only ``bytes`` methods the MIME scanner uses, over a buffer that is not ``bytes``.

    ``buf`` is what regexes should scan (an ``mmap`` or a byte-format ``memoryview``)."""

    __slots__ = ("buf", "find", "_n")

    def __init__(self, buf: Any) -> None:
        self.buf = buf
        self._n = len(buf)
        native = getattr(buf, "find", None)  # mmap.find is C speed; memoryview has none
        self.find = native if native is not None else self._find

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key: int | slice) -> Any:
        v = self.buf[key]
        return bytes(v) if isinstance(v, memoryview) else v

    def _find(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        m = _literal(bytes(sub)).search(self.buf, start, self._n if end is None else end)
        return -1 if m is None else m.start()

    def startswith(self, prefix: bytes, start: int = 0, end: int | None = None) -> bool:
        stop = self._n if end is None else min(end, self._n)
        k = start + len(prefix)
        return k <= stop and self.buf[start:k] == prefix

    def count(self, sub: bytes, start: int = 0, end: int | None = None) -> int:
        """Occurrences of a single byte in [start, end), a window at a time."""
        if len(sub) != 1:
            raise ValueError("ByteSource.count counts single bytes only")
        stop = self._n if end is None else min(end, self._n)
        n = 0
        for i in range(max(start, 0), stop, CHUNK):
            n += bytes(self.buf[i : min(i + CHUNK, stop)]).count(sub)
        return n


def regex_target(raw: Any) -> Any:
    """What a compiled bytes regex should scan for `raw` (bytes or a ByteSource)."""
    return raw.buf if type(raw) is ByteSource else raw


@contextmanager
def scannable(raw: Any) -> Iterator[Any]:
    """`raw` as something the scanner can use without copying it: ``bytes``/``bytearray`` as they are, an
    ``mmap`` or any other buffer wrapped in a :class:`ByteSource`.

    A map is pinned by a ``memoryview`` for the duration, so a spool that closes its map while the store
    still parses it (the client went away) gets ``BufferError`` and leaves the unmapping to the GC, instead
    of the parse failing half way. Views made here are released on exit, so the caller can close the map
    afterwards. Only a buffer that is not C-contiguous is copied."""
    if isinstance(raw, (bytes, bytearray)):
        yield raw
        return
    if isinstance(raw, mmap.mmap):
        pin = memoryview(raw)
        try:
            yield ByteSource(raw)  # the map itself: its find() is C speed, its slices are bytes
        finally:
            pin.release()
        return
    try:
        view = memoryview(raw).cast("B")
    except TypeError:  # not contiguous: no cheap view exists
        yield bytes(raw)
        return
    try:
        yield ByteSource(view)
    finally:
        view.release()


#: What the scanner accepts as the message: ``bytes``/``bytearray``, or a ByteSource over anything else.
Raw = bytes | bytearray | ByteSource
