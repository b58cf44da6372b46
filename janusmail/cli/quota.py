"""``janusmail quota``: an account's limits and usage (janusmail/store/quotas.py).

Limits are the administrator's: IMAP SETQUOTA is refused and JMAP has no way to set them (RFC 9425 leaves
administration out), so this is where they are set. Storage sizes take binary units (``1G`` = 1024**3 octets;
``K``, ``M``, ``G``, ``T``, or plain octets); ``none`` removes a limit. Usage counts every membership, as IMAP
sees it: a message in two mailboxes counts twice.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.cli.main import Ctx
    from janusmail.store.quotas import QuotaUsage

_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"(\d+)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
_NONE = ("none", "unlimited")


def parse_size(value: str) -> int | None:
    """``1G`` -> 1073741824, ``none`` -> None (no limit); ValueError for anything else."""
    text = value.strip()
    if text.lower() in _NONE:
        return None
    m = _SIZE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a size: {value!r} (e.g. 500M, 1G, or none)")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]


def parse_count(value: str) -> int | None:
    text = value.strip()
    if text.lower() in _NONE:
        return None
    if not text.isdigit():
        raise ValueError(f"not a number of messages: {value!r} (or none)")
    return int(text)


def human(octets: int) -> str:
    """1536 -> '1.5 KiB' (exact octets are shown beside it)."""
    size = float(octets)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def describe(usage: QuotaUsage) -> list[str]:
    """The lines ``quota show`` prints."""
    lines = []
    limit = usage.storage_limit
    used = f"{usage.storage_used} octets ({human(usage.storage_used)})"
    if limit is None:
        lines.append(f"storage:  {used}, no limit")
    else:
        pct = 100.0 * usage.storage_used / limit if limit else 100.0
        lines.append(f"storage:  {used} of {limit} ({human(limit)}), {pct:.1f}%")
    if usage.messages_limit is None:
        lines.append(f"messages: {usage.messages_used}, no limit")
    else:
        lim = usage.messages_limit
        pct = 100.0 * usage.messages_used / lim if lim else 100.0
        lines.append(f"messages: {usage.messages_used} of {lim}, {pct:.1f}%")
    return lines


@click.group()
def quota() -> None:
    """Storage and message limits per account (IMAP QUOTA, JMAP Quota); usage counts every mailbox copy."""


@quota.command("set")
@click.argument("address")
@click.option("--storage", default=None, metavar="SIZE", help="Storage limit: 500M, 1G, ... or none.")
@click.option("--messages", default=None, metavar="N", help="Message limit, or none.")
@click.pass_obj
def quota_set(c: Ctx, address: str, storage: str | None, messages: str | None) -> None:
    """Set or remove ADDRESS's limits (an option left out keeps its limit)."""
    if storage is None and messages is None:
        raise click.UsageError("give --storage and/or --messages")
    changes: dict[str, int | None] = {}
    try:
        if storage is not None:
            changes["storage"] = parse_size(storage)
        if messages is not None:
            changes["messages"] = parse_count(messages)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    acct = c.account(address)
    usage = c.store.quotas.set_limits(acct.id, **changes)
    for line in describe(usage):
        click.echo(line)


@quota.command("show")
@click.argument("address")
@click.pass_obj
def quota_show(c: Ctx, address: str) -> None:
    """ADDRESS's usage and limits."""
    for line in describe(c.store.quotas.get(c.account(address).id)):
        click.echo(line)
