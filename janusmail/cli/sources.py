"""Reading mail to import: mbox files, directories of mbox files and Maildir trees, byte-exact.

The stored bytes must equal the input bytes, so we scan the files ourselves instead of going through a parser
that re-serialises: an mbox message is the bytes between its ``From `` separator line and the blank line that
precedes the next separator; a Maildir message is its file, unchanged. Maildir++ subfolders (``.Sub.Folder``)
and plain nested Maildirs become mailbox paths, as do the files (``Work.mbox``) and directories (``Work/``) of
an mbox tree. Maildir info flags (``:2,DFRST`` and keyword letters mapped by ``dovecot-keywords``) become
flags and keywords, ``T`` IMAP's \\Deleted.

An export of ``janusmail export`` (a directory with ``janusmail-export.json``, see export_format.py) is read
with its own rules: its mbox files are mboxrd with flag headers that the export added, which are taken off
again (and the ``>From `` quoting undone), so the stored bytes are the exported ones.
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

from .export_format import (
    MANIFEST,
    MBOX_SUFFIX,
    Manifest,
    parse_maildir_info,
    parse_mbox_entry,
    read_keyword_letters,
    unescape_name,
)


@dataclass
class SourceMessage:
    folder: list[str]  # mailbox path components relative to the import target ([] = the target itself)
    raw: bytes | None
    keywords: tuple[str, ...] = ()
    received_at: int | None = None
    error: str | None = None  # set when the message could not be read at all
    origin: str = ""
    deleted: bool = False  # IMAP's \\Deleted (Maildir ``T``, the export's ``X-Status: D``)


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


def iter_mbox(path: Path, folder: list[str] | None = None, *, export: bool = False) -> Iterator[SourceMessage]:
    """The messages of an mbox file. ``export``: the file is one of ``janusmail export`` (mboxrd with the
    export's flag headers), read back to the exact exported bytes with their flags."""
    folder = folder or []
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
            yield SourceMessage(folder, mm[:], origin=str(path))
            return
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else size
            nl = mm.find(b"\n", start, end)
            if nl < 0:
                yield SourceMessage(folder, None, error="separator line without a message",
                                    origin=f"{path}#{n + 1}")
                continue
            from_line = bytes(data[start:nl])
            body_start = nl + 1
            body_end = end
            if export:
                yield _export_entry(path, n, folder, from_line, bytes(data[body_start:body_end]))
                continue
            # Drop the single blank line that follows every message in an mbox (LF or CRLF files).
            if data[body_end - 2 : body_end] == b"\n\n":
                body_end -= 1
            elif data[body_end - 4 : body_end] == b"\r\n\r\n":
                body_end -= 2
            yield SourceMessage(folder, bytes(data[body_start:body_end]), received_at=_from_line_date(from_line),
                                origin=f"{path}#{n + 1}")


def _export_entry(path: Path, n: int, folder: list[str], from_line: bytes, content: bytes) -> SourceMessage:
    origin = f"{path}#{n + 1}"
    if content.endswith(b"\n"):  # the one blank line the export writes after every message
        content = content[:-1]
    parsed = parse_mbox_entry(content)
    if parsed is None:
        return SourceMessage(folder, None, error="not an entry of janusmail export (no flag headers)", origin=origin)
    raw, kws, deleted = parsed
    return SourceMessage(folder, raw, kws, _from_line_date(from_line), origin=origin, deleted=deleted)


def iter_mbox_tree(root: Path, prefix: list[str] | None = None, *, export: bool = False) -> Iterator[SourceMessage]:
    """A directory of mbox files: ``Name.mbox`` (or any mbox file) is mailbox ``Name``, a directory ``Name/``
    holds its children. Files that are not mbox files (no ``From `` at the start) are not mail and are left."""
    prefix = prefix or []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith(".") or entry.name == MANIFEST:
            continue
        if entry.is_dir():
            yield from iter_mbox_tree(entry, [*prefix, unescape_name(entry.name)], export=export)
        elif entry.is_file() and _is_mbox_file(entry):
            name = entry.name[: -len(MBOX_SUFFIX)] if entry.name.endswith(MBOX_SUFFIX) else entry.name
            yield from iter_mbox(entry, [*prefix, unescape_name(name)], export=export)


def _is_mbox_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(5)
    except OSError:
        return False
    return head in (b"From ", b"")


def _maildir_files(md: Path) -> Iterator[tuple[Path, str]]:
    for sub in ("cur", "new"):
        d = md / sub
        if d.is_dir():
            for name in sorted(os.listdir(d)):
                if not name.startswith("."):
                    yield d / name, sub


def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def _maildir_messages(md: Path, folder: list[str],
                      extra: dict[str, list[str]] | None = None) -> Iterator[SourceMessage]:
    """``extra``: keywords beyond the folder's letters, by ``<folder>/cur/<name>`` (an export's manifest)."""
    letters = read_keyword_letters(md)
    for file, sub in _maildir_files(md):
        base, _, info = file.name.partition(":2,")
        kws, deleted = parse_maildir_info(info, letters)
        if extra:
            more = extra.get(f"{md.name if folder else ''}/{sub}/{base}".lstrip("/"))
            if more:
                kws = tuple(dict.fromkeys((*kws, *more)))
        try:
            raw = file.read_bytes()
            mtime = int(file.stat().st_mtime)
        except OSError as exc:
            yield SourceMessage(folder, None, error=f"unreadable: {exc.strerror}", origin=str(file))
            continue
        yield SourceMessage(folder, raw, kws, mtime, origin=str(file), deleted=deleted)


def iter_maildir(root: Path, extra: dict[str, list[str]] | None = None) -> Iterator[SourceMessage]:
    """The Maildir at ``root`` and its subfolders (Maildir++ ``.A.B`` and nested Maildirs)."""
    yield from _maildir_messages(root, [], extra)
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.name in ("cur", "new", "tmp"):
            continue
        if entry.name.startswith(".") and is_maildir(entry):
            yield from _maildir_messages(entry, [unescape_name(p) for p in entry.name[1:].split(".") if p], extra)
        elif is_maildir(entry):
            for msg in iter_maildir(entry):
                msg.folder = [unescape_name(entry.name)] + msg.folder
                yield msg


def iter_source(path: Path, manifest: Manifest | None = None) -> Iterator[SourceMessage]:
    """Every message under ``path``; ``manifest`` (``Manifest.read(path)``): read it as that export."""
    if is_maildir(path):
        yield from iter_maildir(path, manifest.extra_keywords if manifest else None)
    elif path.is_file():
        yield from iter_mbox(path)
    elif path.is_dir():
        yield from iter_mbox_tree(path, export=manifest is not None and manifest.format == "mbox")
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
        return _count_mbox(path)
    if path.is_dir():
        n = 0
        for dirpath, dirs, files in os.walk(path):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for f in files:
                file = Path(dirpath, f)
                if not f.startswith(".") and f != MANIFEST and _is_mbox_file(file):
                    n += _count_mbox(file)
        return n
    return None


def _count_mbox(path: Path) -> int:
    with open(path, "rb") as fh:
        head = fh.read(5)
        if head != b"From ":
            return 1 if head else 0
        fh.seek(0)
        return 1 + sum(chunk.count(b"\nFrom ") for chunk in iter(lambda: fh.read(1 << 20), b""))
