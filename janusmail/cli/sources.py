"""Reading mail to import: mbox files and Maildir trees, byte-exact.

The stored bytes must equal the input bytes, so we scan the files ourselves instead of going through a parser
that re-serialises: an mbox message is the bytes between its ``From `` separator line and the blank line that
precedes the next separator; a Maildir message is its file, unchanged. Maildir++ subfolders (``.Sub.Folder``)
and plain nested Maildirs become mailbox paths.
"""

from __future__ import annotations

import calendar
import mmap
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_tz
from pathlib import Path

MAILDIR_FLAGS = {"S": "$seen", "R": "$answered", "F": "$flagged", "D": "$draft"}


@dataclass
class SourceMessage:
    folder: list[str]  # mailbox path components relative to the import target ([] = the target itself)
    raw: bytes | None
    keywords: tuple[str, ...] = ()
    received_at: int | None = None
    error: str | None = None  # set when the message could not be read at all
    origin: str = ""


def _from_line_date(line: bytes) -> int | None:
    # "From sender@example.com Sat Jan  3 01:05:34 1996"
    parts = line.decode("latin-1").split(None, 2)
    if len(parts) < 3:
        return None
    try:
        t = time.strptime(" ".join(parts[2].split()[:5]), "%a %b %d %H:%M:%S %Y")
        return calendar.timegm(t)
    except ValueError:
        parsed = parsedate_tz(parts[2])
        if parsed:
            return int(calendar.timegm(parsed[:9]) - (parsed[9] or 0))
    return None


def iter_mbox(path: Path) -> Iterator[SourceMessage]:
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        data = mm  # slicing an mmap yields bytes; no exported buffers to leak
        starts: list[int] = []
        pos = 0
        if mm[:5] == b"From ":
            starts.append(0)
        while True:
            i = mm.find(b"\nFrom ", pos)
            if i < 0:
                break
            starts.append(i + 1)
            pos = i + 1
        if not starts:  # not an mbox: treat the whole file as one message
            yield SourceMessage([], mm[:], origin=str(path))
            return
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else size
            nl = mm.find(b"\n", start, end)
            if nl < 0:
                yield SourceMessage([], None, error="separator line without a message", origin=f"{path}#{n + 1}")
                continue
            from_line = bytes(data[start:nl])
            body_start = nl + 1
            body_end = end
            # Drop the single blank line that follows every message in an mbox (LF or CRLF files).
            if data[body_end - 2 : body_end] == b"\n\n":
                body_end -= 1
            elif data[body_end - 4 : body_end] == b"\r\n\r\n":
                body_end -= 2
            yield SourceMessage([], bytes(data[body_start:body_end]), received_at=_from_line_date(from_line),
                                origin=f"{path}#{n + 1}")


def _maildir_files(md: Path) -> Iterator[tuple[Path, str]]:
    for sub in ("cur", "new"):
        d = md / sub
        if d.is_dir():
            for name in sorted(os.listdir(d)):
                if not name.startswith("."):
                    yield d / name, sub


def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _maildir_messages(md: Path, folder: list[str]) -> Iterator[SourceMessage]:
    for file, _sub in _maildir_files(md):
        info = file.name.rsplit(":2,", 1)
        kws = tuple(dict.fromkeys(MAILDIR_FLAGS[c] for c in (info[1] if len(info) == 2 else "") if c in MAILDIR_FLAGS))
        try:
            raw = file.read_bytes()
            mtime = int(file.stat().st_mtime)
        except OSError as exc:
            yield SourceMessage(folder, None, error=f"unreadable: {exc.strerror}", origin=str(file))
            continue
        yield SourceMessage(folder, raw, kws, mtime, origin=str(file))


def iter_maildir(root: Path) -> Iterator[SourceMessage]:
    """The Maildir at ``root`` and its subfolders (Maildir++ ``.A.B`` and nested Maildirs)."""
    yield from _maildir_messages(root, [])
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.name in ("cur", "new", "tmp"):
            continue
        if entry.name.startswith(".") and is_maildir(entry):
            yield from _maildir_messages(entry, [p for p in entry.name[1:].split(".") if p])
        elif is_maildir(entry):
            for msg in iter_maildir(entry):
                msg.folder = [entry.name] + msg.folder
                yield msg


def iter_source(path: Path) -> Iterator[SourceMessage]:
    if is_maildir(path):
        yield from iter_maildir(path)
    elif path.is_file():
        yield from iter_mbox(path)
    else:
        raise FileNotFoundError(f"{path} is neither an mbox file nor a Maildir")


def count_messages(path: Path) -> int | None:
    """A cheap total for the progress bar (None if not cheaply known)."""
    if is_maildir(path):
        n = 0
        for dirpath, _dirs, files in os.walk(path):
            if os.path.basename(dirpath) in ("cur", "new"):
                n += sum(1 for f in files if not f.startswith("."))
        return n
    if path.is_file():
        with open(path, "rb") as fh:
            head = fh.read(5)
            if head != b"From ":
                return 1
            fh.seek(0)
            return 1 + sum(chunk.count(b"\nFrom ") for chunk in iter(lambda: fh.read(1 << 20), b""))
    return None
