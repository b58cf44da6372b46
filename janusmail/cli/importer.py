"""Bulk import: batches of messages into the store, with a rich progress bar and a messages/s summary.

Parsing (CPU) happens outside the write transaction; each batch is one transaction and one directory-fsync
pass, which is what makes thousands of messages per second possible while every message stays durable.
Malformed messages are stored as they are (the MIME layer never refuses one); a message that cannot be read
at all, or that the store refuses, is counted with its reason, never dropped silently, and the import goes on.

An export of ``janusmail export`` (its ``janusmail-export.json``) is restored whole: every mailbox it lists is
created, empty ones too, and a mailbox with a special-use role goes into the target's mailbox of that role (or
gets the role, when no mailbox has it yet); importing it elsewhere than INBOX (``--mailbox``) keeps the tree
under that mailbox and gives no roles.

Resuming: an import can be killed at any moment and simply run again. Messages whose exact bytes (SHA-256) are
already live in their target mailbox are skipped, looked up once per batch, so the re-run costs a hash and
one query per 500 skipped messages, not a parse.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from janusmail.store.ingest import Prepared
from janusmail.store.model import IngestItem, StorageUnavailable
from janusmail.store.store import Store

from .export_format import Manifest
from .sources import count_messages, iter_source

BATCH = 500


#: How many failed messages the report names individually (the rest are only counted by reason).
FAILURE_EXAMPLES = 20


@dataclass
class ImportReport:
    imported: int = 0
    skipped: int = 0  # already in their target mailbox (same bytes): a re-run resumes instead of duplicating
    failed: Counter = field(default_factory=Counter)  # reason -> count
    failures: list[tuple[str, str]] = field(default_factory=list)  # (where in the source, reason), the first few
    seconds: float = 0.0
    mailboxes_created: list[str] = field(default_factory=list)

    @property
    def failed_count(self) -> int:
        return sum(self.failed.values())

    @property
    def rate(self) -> float:
        return self.imported / self.seconds if self.seconds > 0 else 0.0

    def fail(self, origin: str, reason: str) -> None:
        self.failed[reason] += 1
        if len(self.failures) < FAILURE_EXAMPLES:
            self.failures.append((origin, reason))


def resolve_path(store: Store, account_id: str, path: tuple[str, ...], cache: dict, report: ImportReport) -> str:
    """Mailbox id for a path, creating missing mailboxes (and their parents) on the way."""
    if path in cache:
        return cache[path]
    mailbox = store.mailboxes.by_path(account_id, list(path))
    if mailbox is None:
        parent_id = resolve_path(store, account_id, path[:-1], cache, report) if len(path) > 1 else None
        mailbox = store.mailboxes.create(account_id, path[-1], parent_id)
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


def restore_tree(store: Store, account_id: str, manifest: Manifest, base: list[str], cache: dict,
                 report: ImportReport) -> None:
    """Create the mailboxes an export lists (parents first), with their subscriptions, and give them roles.

    At the top (``base`` INBOX) a mailbox with a role lands in the target's mailbox of that role whatever its
    name (an export's "Sent Items" into this account's Sent), so that special-use survives where the names
    differ; elsewhere roles are not given (they belong to the top of an account)."""
    at_top = [p.upper() for p in base] == ["INBOX"]
    holders = {b.role: b for b in store.mailboxes.list(account_id) if b.role} if at_top else {}
    for entry in sorted(manifest.mailboxes, key=lambda e: len(e.path)):
        path = target_path(base, entry.path)
        role = entry.role if at_top else None
        if role and role in holders:
            cache[path] = holders[role].id
            continue
        created = len(report.mailboxes_created)
        mailbox_id = resolve_path(store, account_id, path, cache, report)
        if not entry.subscribed and report.mailboxes_created[created:][-1:] == ["/".join(path)]:
            store.mailboxes.update(account_id, mailbox_id, subscribed=False)  # made here: as it was exported
        if role:
            current = store.mailboxes.get(account_id, mailbox_id)
            if current is not None and current.role is None:
                holders[role] = store.mailboxes.update(account_id, mailbox_id, role=role)


def import_path(store: Store, account_id: str, path: Path, mailbox: str = "INBOX", *, show_progress: bool = True,
                batch_size: int = BATCH, allow_duplicates: bool = False,
                report: ImportReport | None = None) -> ImportReport:
    """Import ``path`` into ``mailbox``; safe to run again after an interruption.

    Unless ``allow_duplicates``, a message whose exact bytes already sit (not \\Deleted) in its target mailbox
    is skipped, so a killed import resumes where it stopped: every batch is one transaction, so what a killed
    run left behind is whole batches, and the re-run skips exactly those. Duplicates within the source itself
    collapse the same way (the second copy finds the first already there). The lookup is one query per batch.
    Pass ``report`` to keep the counts of a run that is interrupted (KeyboardInterrupt) part way.
    """
    report = report if report is not None else ImportReport()
    base = [p for p in mailbox.split("/") if p]
    cache: dict[tuple[str, ...], str] = {}
    manifest = Manifest.read(path)
    if manifest is not None:
        restore_tree(store, account_id, manifest, base, cache, report)
    total = count_messages(path)
    start = time.perf_counter()
    batch: list[tuple[str, IngestItem]] = []  # (origin, item)

    def ingest(prepared: list[tuple[str, Prepared]]) -> None:
        """One transaction for the batch; if it is refused, each message alone, so one bad message fails alone.
        StorageUnavailable (disk full, I/O error) is never a per-message failure: it ends the import."""
        if not prepared:
            return
        try:
            store.emails.ingest_many(account_id, [p.item for _, p in prepared], [p for _, p in prepared])
            report.imported += len(prepared)
            return
        except StorageUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any refusal of one message must not stop the import
            if len(prepared) == 1:
                report.fail(prepared[0][0], f"not stored: {_reason(exc)}")
                return
        for one in prepared:
            ingest([one])

    def flush() -> None:
        if not batch:
            return
        todo = batch
        if not allow_duplicates:
            digests = [(hashlib.sha256(item.raw).hexdigest(), item.mailbox_ids[0]) for _, item in batch]
            present = store.emails.digests_present(account_id, [d for d, _ in digests], {b for _, b in digests})
            todo = []
            for (origin, item), key in zip(batch, digests, strict=True):
                if key in present:
                    report.skipped += 1
                else:
                    present.add(key)  # a second copy later in this batch is a duplicate too
                    todo.append((origin, item))
        prepared: list[tuple[str, Prepared]] = []
        for origin, item in todo:
            try:
                prepared.append((origin, store.emails.prepare(item)))
            except Exception as exc:  # noqa: BLE001 - counted with its reason; the import goes on
                report.fail(origin, f"refused: {_reason(exc)}")
        ingest(prepared)
        batch.clear()

    try:
        with Progress(TextColumn("[bold]importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      TextColumn("{task.fields[rate]}"), disable=not show_progress) as progress:
            task = progress.add_task("import", total=total, rate="")
            for msg in iter_source(path, manifest):
                if msg.raw is None:
                    report.fail(msg.origin, msg.error or "unreadable")
                    progress.advance(task)
                    continue
                box = resolve_path(store, account_id, target_path(base, msg.folder), cache, report)
                batch.append((msg.origin, IngestItem(msg.raw, (box,), msg.keywords, msg.received_at, msg.deleted)))
                if len(batch) >= batch_size:
                    n = len(batch)
                    flush()
                    elapsed = time.perf_counter() - start
                    progress.update(task, advance=n, rate=f"{report.imported / elapsed:,.0f} msg/s")
            n = len(batch)
            flush()
            progress.update(task, advance=n)
    finally:
        report.seconds = time.perf_counter() - start
    if report.imported:
        store.refresh_statistics()
    return report


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
