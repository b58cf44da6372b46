"""The report for people (a rich table) and for scripts (JSON of the documented shape)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .model import Report

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console


def as_json(report: Report) -> str:
    """``{"ok": bool, "checks": [{"name": str, "ok": bool, "detail": str}, ...]}``, nothing else."""
    return json.dumps(report.as_json(), indent=2, ensure_ascii=False)


def print_table(report: Report, console: Console, title: str) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_lines=False, expand=False)
    table.add_column("Check", max_width=32)
    table.add_column("Result", justify="center", no_wrap=True)
    table.add_column("Detail")
    for check in report.checks:
        verdict = Text("ok", style="bold green") if check.ok else Text("FAIL", style="bold red")
        table.add_row(check.name, verdict, check.detail)
    console.print(table)
    failed = len(report.failed)
    if report.ok:
        console.print(f"[bold green]All {len(report.checks)} checks hold.[/]")
    else:
        console.print(f"[bold red]{failed} of {len(report.checks)} checks failed.[/]")
