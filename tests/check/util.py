"""Running `janusmail check` from tests: the real command line in this process, and its JSON read strictly."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from janusmail.cli.main import cli


def secret_file(tmp_path: Path, secret: str, name: str = "secret") -> str:
    path = tmp_path / name
    path.write_text(secret + "\n")
    return str(path)


def check(port: int, user: str, *args: str) -> Result:
    """The real command line, in this process (COLUMNS: a table wide enough not to wrap the details)."""
    return CliRunner().invoke(cli, ["check", "--imap", f"127.0.0.1:{port}", "--user", user, *args],
                              env={"COLUMNS": "250"})


def verdicts(result: Result) -> dict[str, dict]:
    body = json.loads(result.stdout)
    assert set(body) == {"ok", "checks"}
    assert all(set(c) == {"name", "ok", "detail"} for c in body["checks"])
    return {c["name"]: c for c in body["checks"]}


def failed(result: Result) -> set[str]:
    return {name for name, c in verdicts(result).items() if not c["ok"]}


def session_url(srv) -> str:  # noqa: ANN001
    return f"http://127.0.0.1:{srv.jmap_port}/.well-known/jmap"
