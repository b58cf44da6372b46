"""Bulk import: batches of messages into the store, with a rich progress bar and a messages/s summary.

Parsing (CPU) happens outside the write transaction; each batch is one transaction and one directory-fsync
pass, which is what makes thousands of messages per second possible while every message stays durable.
Malformed messages are stored as they are (the MIME layer never refuses one); a message that cannot be read
at all is counted with its reason, never dropped silently.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from janusmail.store.model import IngestItem, StoreError
from janusmail.store.store import Store

from .sources import count_messages, iter_source

BATCH = 500


@dataclass
class ImportReport:
    imported: int = 0
    failed: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    mailboxes_created: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.imported / self.seconds if self.seconds > 0 else 0.0


def resolve_path(store: Store, account_id: str, path: tuple[str, ...], cache: dict, report: ImportReport) -> str:
    """Mailbox id for a path, creating missing mailboxes (and their parents) on the way."""
    if path in cache:
        return cache[path]
    mailbox = store.mailbox_by_path(account_id, list(path))
    if mailbox is None:
        parent_id = resolve_path(store, account_id, path[:-1], cache, report) if len(path) > 1 else None
        mailbox = store.create_mailbox(account_id, path[-1], parent_id)
        report.mailboxes_created.append("/".join(path))
    cache[path] = mailbox.id
    return mailbox.id


def target_path(base: list[str], folder: list[str]) -> tuple[str, ...]:
    """Where a source folder lands: the root into ``base``; subfolders under it, or top-level when the base
    is INBOX (Maildir++ subfolders of INBOX are top-level folders in IMAP)."""
    if not folder:
        return tuple(base)
    if [p.upper() for p in base] == ["INBOX"]:
        return tuple(folder)
    return tuple(base + folder)


def import_path(store: Store, account_id: str, path: Path, mailbox: str = "INBOX", *, show_progress: bool = True,
                batch_size: int = BATCH) -> ImportReport:
    report = ImportReport()
    base = [p for p in mailbox.split("/") if p]
    cache: dict[tuple[str, ...], str] = {}
    total = count_messages(path)
    start = time.perf_counter()
    batch: list[IngestItem] = []

    def flush() -> None:
        if not batch:
            return
        prepared = []
        for item in batch:
            try:
                prepared.append(store.prepare(item))
            except StoreError as exc:
                report.failed[f"refused: {type(exc).__name__}"] += 1
        store.ingest_many(account_id, [p.item for p in prepared], prepared)
        report.imported += len(prepared)
        batch.clear()

    with Progress(TextColumn("[bold]importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[rate]}"), disable=not show_progress) as progress:
        task = progress.add_task("import", total=total, rate="")
        for msg in iter_source(path):
            if msg.raw is None:
                report.failed[msg.error or "unreadable"] += 1
                progress.advance(task)
                continue
            box = resolve_path(store, account_id, target_path(base, msg.folder), cache, report)
            batch.append(IngestItem(msg.raw, (box,), msg.keywords, msg.received_at))
            if len(batch) >= batch_size:
                n = len(batch)
                flush()
                elapsed = time.perf_counter() - start
                progress.update(task, advance=n, rate=f"{report.imported / elapsed:,.0f} msg/s")
        n = len(batch)
        flush()
        progress.update(task, advance=n)
    report.seconds = time.perf_counter() - start
    store.refresh_statistics()
    return report
