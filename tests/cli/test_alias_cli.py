"""``janusmail alias add|list|remove``: an alias belongs to one account; clear refusals; both backends."""

from __future__ import annotations

from tests.serverutil import janusmail_cmd


def test_alias_commands(tmp_path, db_url):  # noqa: ANN001
    data = tmp_path / "d"

    def run(*args: str, ok: bool = True):  # noqa: ANN202
        out = janusmail_cmd(data, *args, db=db_url, check=False)
        assert "Traceback" not in out.stderr, out.stderr
        assert (out.returncode == 0) == ok, (args, out.returncode, out.stdout, out.stderr)
        return out

    run("user", "add", "a@example.test", "--password", "pw")
    run("user", "add", "b@example.test", "--password", "pw")
    assert run("alias", "add", "a@example.test", "Sales@Example.test").stdout.strip() == (
        "added sales@example.test -> a@example.test")
    assert "already an alias" in run("alias", "add", "a@example.test", "sales@example.test").stdout
    assert run("alias", "list", "a@example.test").stdout.split() == ["sales@example.test"]

    # Refusals: exit 1 with the reason (the store's contract test has the full table).
    refused = {
        ("b@example.test", "sales@example.test"): "alias of another account",
        ("b@example.test", "a@example.test"): "address of another account",
        ("b@example.test", "not an address"): "not an email address",
    }
    for (owner, value), why in refused.items():
        out = run("alias", "add", owner, value, ok=False)
        assert out.returncode == 1 and why in out.stderr, (value, out.stderr)
    out = run("alias", "remove", "b@example.test", "sales@example.test", ok=False)
    assert out.returncode == 1 and "not an alias of b@example.test" in out.stderr

    out = run("alias", "remove", "a@example.test", "SALES@example.test")
    assert "removed sales@example.test" in out.stdout
    assert run("alias", "list", "a@example.test").stdout == ""
