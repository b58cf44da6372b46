"""``janusmail quota set|show``: limits in binary units, ``none`` removes, clean refusals; both backends. The
limit set here is the one IMAP and JMAP enforce (read back through the store)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.cli.quota import parse_count, parse_size
from janusmail.store.store import Store
from tests.fuzzing import examples
from tests.serverutil import janusmail_cmd


def test_quota_commands(tmp_path, db_url):  # noqa: ANN001
    data = tmp_path / "d"

    def run(*args: str, ok: bool = True):  # noqa: ANN202
        out = janusmail_cmd(data, *args, db=db_url, check=False)
        assert "Traceback" not in out.stderr, out.stderr
        assert (out.returncode == 0) == ok, (args, out.returncode, out.stdout, out.stderr)
        return out

    run("user", "add", "a@example.test", "--password", "pw")
    assert run("quota", "show", "a@example.test").stdout.splitlines() == [
        "storage:  0 octets (0 B), no limit", "messages: 0, no limit"]
    out = run("quota", "set", "a@example.test", "--storage", "1G", "--messages", "100000")
    assert "of 1073741824 (1.0 GiB)" in out.stdout and "messages: 0 of 100000" in out.stdout
    run("quota", "set", "a@example.test", "--storage", "none")
    assert run("quota", "show", "a@example.test").stdout.splitlines() == [
        "storage:  0 octets (0 B), no limit", "messages: 0 of 100000, 0.0%"]
    store = Store.open(data, db_url)
    try:
        acct = store.accounts.by_address("a@example.test")
        usage = store.quotas.get(acct.id)
        assert (usage.storage_limit, usage.messages_limit) == (None, 100000)
    finally:
        store.close()
    # Refusals: a usage error (exit 2) or an unknown account (exit 1), never a traceback.
    assert run("quota", "set", "a@example.test", ok=False).returncode == 2
    assert run("quota", "set", "a@example.test", "--storage", "12 parsecs", ok=False).returncode == 2
    assert run("quota", "set", "a@example.test", "--messages", "-3", ok=False).returncode == 2
    out = run("quota", "show", "nobody@example.test", ok=False)
    assert out.returncode == 1 and "no such account" in out.stderr


@pytest.mark.parametrize(("text", "octets"), [("1G", 1024**3), ("500m", 500 * 1024**2), ("10KiB", 10240),
                                              ("123", 123), (" 2 T ", 2 * 1024**4), ("none", None)])
def test_parse_size(text: str, octets: int | None) -> None:
    assert parse_size(text) == octets


@given(st.text(max_size=20))
@settings(max_examples=examples(300))
def test_parse_size_and_count_never_crash(text: str) -> None:
    for parse in (parse_size, parse_count):
        try:
            value = parse(text)
        except ValueError:
            continue
        assert value is None or (type(value) is int and value >= 0)
