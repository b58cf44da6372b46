"""The command-line side of the web admin: ``user add --admin``, ``user admin --on/--off``, ``user disable`` and
``user enable`` (in-process through click's runner: the store calls are what is tested, not process start)."""

from __future__ import annotations

from click.testing import CliRunner

from janusmail.cli.main import cli
from janusmail.store.store import Store


def run(data, *args: str, code: int = 0) -> str:  # noqa: ANN001
    result = CliRunner().invoke(cli, ["--data", str(data), *args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_admin_and_disable_commands(tmp_path) -> None:  # noqa: ANN001
    data = tmp_path / "d"
    assert "as an administrator" in run(data, "user", "add", "root@example.test", "--password", "pw", "--admin")
    run(data, "user", "add", "ann@example.test", "--password", "pw")
    listing = run(data, "user", "list")
    assert any(line.startswith("root@example.test\t") and line.endswith("\tadmin") for line in listing.splitlines())
    run(data, "user", "admin", "ann@example.test", "--on")
    run(data, "user", "admin", "root@example.test", "--off")
    run(data, "user", "disable", "ann@example.test")
    assert "Missing option" in run(data, "user", "admin", "ann@example.test", code=2)
    assert "no such account" in run(data, "user", "disable", "nobody@example.test", code=1)
    store = Store.open(data)
    try:
        ann, root = (store.accounts.by_address(a).id for a in ("ann@example.test", "root@example.test"))
        assert not store.accounts.is_admin(root)
        assert not store.accounts.is_admin(ann)  # an admin, but disabled: no admin
        assert store.credentials.login_account(account_id=ann).disabled
    finally:
        store.close()
    run(data, "user", "enable", "ann@example.test")
    assert "disabled" not in run(data, "user", "list")
    store = Store.open(data)
    try:
        assert store.accounts.is_admin(store.accounts.by_address("ann@example.test").id)
    finally:
        store.close()
