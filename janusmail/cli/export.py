"""``janusmail export``: an account's mailboxes to a Maildir++ tree or to mbox files, for backup or for another
server, and back with ``janusmail import`` (the layout is export_format.py's, shared with the importer).

Everything goes through the store's read views: the mailbox tree (``store.mailboxes``), each mailbox's UID list
(``store.messages.mailbox_snapshot``), its rows in UID order with keywords and blob locations, 500 at a time
(``store.messages.fetch_rows``), and the bytes (``store.blobs``). Messages are written as they are read, so
memory stays bounded by one batch whatever the account's size.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from janusmail.store.keywords import bits_to_keywords
from janusmail.store.mailbox_rows import DELETED, EMAIL_ID, FLAGS, RECEIVED, UID
from janusmail.store.mailboxes import paths as mailbox_paths
from janusmail.store.model import Mailbox
from janusmail.store.store import Store

from .export_format import (
    MAILDIR_LETTERS,
    MailboxEntry,
    Manifest,
    maildir_folder,
    maildir_info,
    mbox_entry,
    mbox_file,
    write_keyword_letters,
)

FORMATS = ("maildir", "mbox")
BATCH = 500


class ExportError(Exception):
    """A refusal the command line shows as a message (no traceback): a bad target, an unknown mailbox."""


@dataclass
class ExportReport:
    mailboxes: int = 0
    messages: int = 0
    octets: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Message:
    uid: int
    raw: bytes
    keywords: list[str]  # system ones as $seen...; others in their display spelling
    deleted: bool
    received_at: int


def imap_paths(boxes: list[Mailbox]) -> dict[str, list[str]]:
    """Mailbox id -> path as IMAP names it: the inbox and its children under ``INBOX`` whatever JMAP calls it."""
    out = mailbox_paths(boxes)
    inbox = next((b.id for b in boxes if b.role == "inbox"), None)
    if inbox is not None:
        inbox_name = out[inbox][0]
        for path in out.values():
            if path and path[0] == inbox_name:
                path[0] = "INBOX"
    return out


def _selected(boxes: list[Mailbox], paths: dict[str, list[str]], mailbox: str | None) -> list[Mailbox]:
    """The mailboxes to export: all, or ``mailbox`` and the mailboxes under it; parents before children."""
    chosen = boxes
    if mailbox:
        want = [p for p in mailbox.split("/") if p]
        if want and want[0].upper() == "INBOX":
            want[0] = "INBOX"
        chosen = [b for b in boxes if paths[b.id][: len(want)] == want]
        if not any(paths[b.id] == want for b in chosen):
            raise ExportError(f"no such mailbox: {mailbox}")
    return sorted(chosen, key=lambda b: (len(paths[b.id]), paths[b.id]))


def _check_target(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ExportError(f"{dest} exists and is not an empty directory (an export never mixes with other files)")
    dest.mkdir(parents=True, exist_ok=True)


def _messages(store: Store, account_id: str, box: Mailbox) -> tuple[list[str], Callable[[], object]]:
    """(keywords in use in the mailbox, an iterator factory over its messages in UID order, batch by batch)."""
    snap = store.messages.mailbox_snapshot(account_id, box.id)
    if snap is None:
        return [], lambda: iter(())
    uids = list(snap.uids)

    def gen():  # noqa: ANN202 - a generator of _Message
        for i in range(0, len(uids), BATCH):
            chunk = uids[i : i + BATCH]
            fr = store.messages.fetch_rows(box.id, [(chunk[0], chunk[-1])], keywords=True, blob=True)
            for row in fr.rows:
                kws = bits_to_keywords(row[FLAGS]) + list(fr.keywords.get(row[EMAIL_ID], ()))
                raw = store.blobs.read_location(fr.locations[row[EMAIL_ID]])
                yield _Message(int(row[UID]), raw, kws, bool(row[DELETED]), int(row[RECEIVED]))

    return list(snap.keywords), gen


def _write_maildir(root: Path, path: list[str], keywords: list[str], messages, manifest: Manifest,  # noqa: ANN001
                   report: ExportReport, advance: Callable[[], None]) -> None:
    folder = maildir_folder(path)
    md = root / folder if folder else root
    for sub in ("cur", "new", "tmp"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    if folder:
        (md / "maildirfolder").touch()  # Maildir++: this is a folder, not a root
    named = keywords[:MAILDIR_LETTERS]
    if named:
        write_keyword_letters(md, named)
    letters = {kw.lower(): chr(ord("a") + i) for i, kw in enumerate(named)}
    cur = str(md / "cur")
    for msg in messages():
        info, extra = maildir_info(msg.keywords, msg.deleted, letters)
        base = f"{msg.received_at}.J{msg.uid}.janusmail"
        # Straight into cur/ (no tmp/ and rename, as a delivery would do): the export is a new directory that
        # nobody reads before it is complete (its manifest comes last), and it halves the cost per file.
        fd = os.open(f"{cur}/{base}:2,{info}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(msg.raw)
            while view:
                view = view[os.write(fd, view):]
            os.utime(fd, (msg.received_at, msg.received_at))  # the internal date, as Maildir readers take it
        finally:
            os.close(fd)
        if extra:
            manifest.extra_keywords[f"{folder}/cur/{base}".lstrip("/")] = extra
        report.messages += 1
        report.octets += len(msg.raw)
        advance()


def _write_mbox(root: Path, path: list[str], messages, report: ExportReport,  # noqa: ANN001
                advance: Callable[[], None]) -> None:
    file = root / mbox_file(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb", buffering=1 << 20) as fh:
        for msg in messages():
            fh.write(mbox_entry(msg.raw, msg.keywords, msg.deleted, msg.received_at))
            report.messages += 1
            report.octets += len(msg.raw)
            advance()


def export_account(store: Store, account_id: str, address: str, dest: Path, fmt: str = "maildir",
                   mailbox: str | None = None, *, show_progress: bool = True) -> ExportReport:
    """Write the account's mailboxes (or ``mailbox`` and those under it) to ``dest``, which must be new or
    empty. The manifest is written last: an export without one was interrupted."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r} (maildir or mbox)")
    boxes = store.mailboxes.list(account_id)
    paths = imap_paths(boxes)
    chosen = _selected(boxes, paths, mailbox)
    _check_target(dest)
    counts = store.mailboxes.counts(account_id, [b.id for b in chosen])
    total = sum(c.messages for c in counts.values())
    manifest = Manifest(fmt, [MailboxEntry(paths[b.id], b.role, b.subscribed) for b in chosen], account=address)
    report = ExportReport()
    start = time.perf_counter()
    if fmt == "maildir":
        for sub in ("cur", "new", "tmp"):  # the root is INBOX, and what makes the tree a Maildir
            (dest / sub).mkdir(exist_ok=True)
    try:
        with Progress(TextColumn("[bold]exporting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      TextColumn("{task.fields[rate]}"), disable=not show_progress) as progress:
            task = progress.add_task("export", total=total, rate="")

            def advance() -> None:
                progress.advance(task)
                if report.messages % BATCH == 0:
                    elapsed = time.perf_counter() - start
                    progress.update(task, rate=f"{report.messages / elapsed:,.0f} msg/s" if elapsed else "")

            for box in chosen:
                keywords, messages = _messages(store, account_id, box)
                if fmt == "maildir":
                    _write_maildir(dest, paths[box.id], keywords, messages, manifest, report, advance)
                else:
                    _write_mbox(dest, paths[box.id], messages, report, advance)
                report.mailboxes += 1
    finally:
        report.seconds = time.perf_counter() - start
    manifest.write(dest)
    return report
