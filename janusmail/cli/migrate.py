"""``janusmail migrate``: copy every mailbox of an account on another IMAP server into a Janus account.

What is kept: the bytes (``BODY.PEEK[]``), flags and keywords, ``\\Deleted``, the internal date, the mailbox
tree (with the source's subscriptions, for the mailboxes created here), and special-use roles: a source
mailbox with a role (RFC 6154 ``\\Sent``...) goes into this account's mailbox of that role whatever the names
(the source's "Sent Items" into Sent), or gets the role when no mailbox here has it. Mailboxes are created as
needed; nothing on the source changes (EXAMINE, PEEK).

Resumable and incremental: per source mailbox the store keeps (UIDVALIDITY, highest UID done), moved in the
same transaction as the batch it covers (``store.migration_progress``), so a run stopped anywhere (Ctrl-C, a
dropped connection, ``--limit``) goes on from the last committed batch when run again, and a later run copies
only what arrived since. A mailbox whose UIDVALIDITY changed is copied again from the start, skipping messages
whose bytes the target mailbox already holds. Flag changes made on the source after a message was copied are
not carried over (a migration, not a sync).

Speed: the source is read in batches (one UID FETCH of ``batch_size`` UIDs), the next batch fetched on a
thread while the current one is parsed and stored, and every batch is stored by the bulk ingest path in one
transaction (one sync), never message by message.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import click
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from janusmail.store.migration_progress import Position
from janusmail.store.model import IngestItem, StorageUnavailable, StoreError
from janusmail.store.store import Store

from .imap_source import ImapSource, SourceError, SourceMailbox, SourceMessage
from .importer import FAILURE_EXAMPLES, resolve_path

BATCH = 200


@dataclass
class MigrateReport:
    mailboxes: int = 0
    copied: int = 0
    skipped: int = 0  # already copied (a restarted mailbox), or expunged on the source during the run
    failed: Counter = field(default_factory=Counter)  # reason -> count
    failures: list[tuple[str, str]] = field(default_factory=list)  # (mailbox and uid, reason), the first few
    dropped_keywords: int = 0  # source keywords the store cannot keep (not valid keyword atoms)
    restarted: list[str] = field(default_factory=list)  # mailboxes whose UIDVALIDITY changed since the last run
    mailboxes_created: list[str] = field(default_factory=list)
    limited: bool = False  # stopped by --limit with more to copy
    seconds: float = 0.0

    @property
    def failed_count(self) -> int:
        return sum(self.failed.values())

    @property
    def rate(self) -> float:
        return self.copied / self.seconds if self.seconds > 0 else 0.0

    def fail(self, origin: str, reason: str) -> None:
        self.failed[reason] += 1
        if len(self.failures) < FAILURE_EXAMPLES:
            self.failures.append((origin, reason))


@dataclass
class _Plan:
    box: SourceMailbox
    target_id: str
    uidvalidity: int
    uids: list[int]
    restarted: bool


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _targets(store: Store, account_id: str, boxes: list[SourceMailbox], report: MigrateReport) -> dict[str, str]:
    """Source mailbox name -> target mailbox id, creating mailboxes and giving roles (see the module docstring)."""
    holders = {b.role: b.id for b in store.mailboxes.list(account_id) if b.role}
    cache: dict[tuple[str, ...], str] = {}
    out: dict[str, str] = {}
    for box in sorted(boxes, key=lambda b: len(b.path)):
        if box.role and box.role in holders:
            out[box.name] = holders[box.role]
            continue
        try:
            created = len(report.mailboxes_created)
            mailbox_id = resolve_path(store, account_id, tuple(box.path), cache, report)  # type: ignore[arg-type]
            if not box.subscribed and report.mailboxes_created[created:][-1:] == ["/".join(box.path)]:
                store.mailboxes.update(account_id, mailbox_id, subscribed=False)  # made here: as on the source
            if box.role:
                current = store.mailboxes.get(account_id, mailbox_id)
                if current is not None and current.role is None:
                    store.mailboxes.update(account_id, mailbox_id, role=box.role)
                    holders[box.role] = mailbox_id
        except StorageUnavailable:
            raise
        except StoreError as exc:  # a name the store refuses: that mailbox fails, the others go on
            report.fail(box.name, f"mailbox not created: {_reason(exc)}")
            continue
        out[box.name] = mailbox_id
    return out


def _plan(store: Store, account_id: str, source: ImapSource, targets: dict[str, str], boxes: list[SourceMailbox],
          limit: int | None, report: MigrateReport) -> list[_Plan]:
    """What this run copies, per mailbox: the UIDs above the mark (all, after a UIDVALIDITY change)."""
    positions = store.migration_progress.positions(account_id, source.key)
    plans: list[_Plan] = []
    budget = limit
    for box in boxes:
        if box.name not in targets:
            continue
        pos = positions.get(box.name)
        after = pos.last_uid if pos is not None else 0
        try:
            uidvalidity, uids = source.examine(box.name, after)
            restarted = pos is not None and pos.uidvalidity != uidvalidity
            if restarted:
                uidvalidity, uids = source.examine(box.name, 0)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:  # the source refuses this one mailbox (NO): the others go on
            report.fail(box.name, f"cannot open on the source: {_reason(exc)}")
            continue
        if restarted:
            report.restarted.append(box.name)
        if budget is not None:
            if len(uids) > budget:
                uids, report.limited = uids[:budget], True
            budget -= len(uids)
        if not uids and (pos is None or restarted):  # remember the UIDVALIDITY even of an empty mailbox
            store.migration_progress.ingest_batch(account_id, source.key, box.name, Position(uidvalidity, 0), [])
        plans.append(_Plan(box, targets[box.name], uidvalidity, uids, restarted))
    return plans


def _store_batch(store: Store, account_id: str, source_key: str, plan: _Plan, chunk: list[int],
                 fetched: dict[int, SourceMessage], report: MigrateReport) -> None:
    name = plan.box.name
    items: list[tuple[int, IngestItem]] = []
    for uid in chunk:
        msg = fetched.get(uid)
        if msg is None:  # expunged on the source since the search
            report.skipped += 1
            continue
        report.dropped_keywords += len(msg.dropped_keywords)
        items.append((uid, IngestItem(msg.raw, (plan.target_id,), msg.keywords, msg.internal_date, msg.deleted)))
    if plan.restarted and items:  # copied by an earlier run under the old UIDVALIDITY: do not copy again
        digests = [hashlib.sha256(item.raw).hexdigest() for _, item in items]
        present = store.migration_progress.digests_in(account_id, plan.target_id, digests)
        kept = []
        for (uid, item), digest in zip(items, digests, strict=True):
            if digest in present:
                report.skipped += 1
            else:
                present.add(digest)
                kept.append((uid, item))
        items = kept
    prepared = []
    for uid, item in items:
        try:
            prepared.append((uid, store.emails.prepare(item)))
        except StorageUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - counted with its reason; the migration goes on
            report.fail(f"{name} UID {uid}", f"refused: {_reason(exc)}")
    mark = Position(plan.uidvalidity, chunk[-1])
    try:
        store.migration_progress.ingest_batch(account_id, source_key, name, mark, [p for _, p in prepared])
        report.copied += len(prepared)
        return
    except StorageUnavailable:
        raise
    except StoreError:  # one message refused the batch (e.g. over quota): each alone, so it fails alone
        pass
    for uid, p in prepared:
        try:
            store.migration_progress.ingest_batch(account_id, source_key, name, Position(plan.uidvalidity, uid), [p])
            report.copied += 1
        except StorageUnavailable:
            raise
        except StoreError as exc:
            report.fail(f"{name} UID {uid}", f"not stored: {_reason(exc)}")
    store.migration_progress.ingest_batch(account_id, source_key, name, mark, [])


def migrate_account(store: Store, account_id: str, source: ImapSource, *, batch_size: int = BATCH,
                    limit: int | None = None, show_progress: bool = True,
                    report: MigrateReport | None = None) -> MigrateReport:
    """Copy what is new on ``source`` into the account (see the module docstring). Pass ``report`` to keep
    the counts of a run that stops part way (a lost connection raises SourceError, Ctrl-C KeyboardInterrupt)."""
    report = report if report is not None else MigrateReport()
    start = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate-fetch")
    current = "the mailbox list"
    try:
        boxes = source.mailboxes()
        targets = _targets(store, account_id, boxes, report)
        plans = _plan(store, account_id, source, targets, boxes, limit, report)
        with Progress(TextColumn("[bold]migrating"), TextColumn("{task.fields[mailbox]}"), BarColumn(),
                      MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[rate]}"),
                      disable=not show_progress) as progress:
            task = progress.add_task("migrate", total=sum(len(p.uids) for p in plans), mailbox="", rate="")
            for plan in plans:
                current = plan.box.name
                report.mailboxes += 1
                if not plan.uids:
                    continue
                progress.update(task, mailbox=current)
                uidvalidity, _ = source.examine(current, plan.uids[-1])
                if uidvalidity != plan.uidvalidity:
                    report.fail(current, "UIDVALIDITY changed during the run (run again)")
                    continue
                chunks = [plan.uids[i : i + batch_size] for i in range(0, len(plan.uids), batch_size)]
                pending: Future = pool.submit(source.fetch, chunks[0])
                for n, chunk in enumerate(chunks):
                    fetched = pending.result()
                    if n + 1 < len(chunks):
                        pending = pool.submit(source.fetch, chunks[n + 1])  # the source works while we store
                    _store_batch(store, account_id, source.key, plan, chunk, fetched, report)
                    elapsed = time.perf_counter() - start
                    progress.update(task, advance=len(chunk), rate=f"{report.copied / elapsed:,.0f} msg/s")
    except (OSError, IMAPClientError) as exc:
        raise SourceError(f"the source failed while reading {current}: {_reason(exc)}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        report.seconds = time.perf_counter() - start
        if report.copied:
            store.refresh_statistics()
    return report


def echo_report(report: MigrateReport, source: str) -> None:
    """What the command prints: what was created or restarted, the failures, then the summary line."""
    for name in report.mailboxes_created:
        click.echo(f"created mailbox {name}")
    for name in report.restarted:
        click.echo(f"{name}: UIDVALIDITY changed on the source, copied again (messages already here skipped)")
    if report.dropped_keywords:
        click.echo(f"{report.dropped_keywords} source keywords were not valid keywords here and were left out")
    if report.failed:
        click.echo(f"{report.failed_count} failed:")
        for reason, n in report.failed.most_common():
            click.echo(f"  {n}\t{reason}")
        for origin, reason in report.failures:
            click.echo(f"  failed: {origin}: {reason}")
    if report.limited:
        click.echo("stopped at --limit: run again to copy the rest")
    click.echo(f"migrated {report.mailboxes} mailboxes from {source}: copied {report.copied}, "
               f"skipped {report.skipped}, failed {report.failed_count} in {report.seconds:.2f} s "
               f"({report.rate:,.0f} messages/s)")
