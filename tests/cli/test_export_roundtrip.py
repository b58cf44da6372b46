"""`janusmail export` then `janusmail import` into a fresh account gives back the same mailboxes, bytes,
flags, keywords, \\Deleted, internal dates, roles and subscriptions, in both formats; the files are what
Maildir and mbox readers expect (Dovecot keyword files, info flags, mtimes; mboxrd quoting, Status headers)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from janusmail.cli.export import ExportError, export_account
from janusmail.cli.importer import import_path
from janusmail.cli.main import cli
from tests.cli.mailstate import MANY, seed, state
from tests.serverutil import janusmail_cmd


@pytest.mark.parametrize("fmt", ["maildir", "mbox"])
def test_export_then_import_restores_everything(store, account, tmp_path, fmt):  # noqa: ANN001
    seed(store, account.id)
    before = state(store, account.id)
    # what makes the comparison meaningful: every flag, \Deleted, >26 keywords in a mailbox, empty mailboxes
    flat = [m for box in before.values() for m in box["messages"]]
    for flag in ("$seen", "$answered", "$flagged", "$draft", "$forwarded", "nonjunk"):
        assert any(flag in kws for _, kws, _, _ in flat)
    assert any(deleted for _, _, deleted, _ in flat) and any(not deleted for _, _, deleted, _ in flat)
    assert {k for _, kws, _, _ in before[("Work", "Projects")]["messages"] for k in kws} >= set(MANY)
    assert before[("Empty",)] == {"subscribed": False, "messages": []}

    out = tmp_path / "export"
    report = export_account(store, account.id, account.address, out, fmt, show_progress=False)
    assert report.messages == len(flat) and report.mailboxes == len(before)

    if fmt == "maildir":
        projects = out / ".Work.Projects"
        assert (projects / "dovecot-keywords").read_text().startswith("0 ")
        assert (out / ".INBOX.Sub" / "cur").is_dir() and (out / ".dots\\2ein\\5cname" / "cur").is_dir()
        names = os.listdir(out / "cur")
        assert all(":2," in n for n in names) and any(n.endswith(",T") or "T" in n.split(":2,")[1] for n in names)
        inbox = {m[0]: m for m in before[("role", "inbox")]["messages"]}
        for name in names:  # the internal date is the file's mtime (and the name's time)
            file = out / "cur" / name
            raw, _, _, received = inbox[file.read_bytes()]
            assert int(file.stat().st_mtime) == received == int(name.split(".")[0])
    else:
        assert (out / "Work" / "Projects.mbox").is_file() and (out / "Work" / "Projects" / "2026.mbox").is_file()
        assert (out / "Empty.mbox").stat().st_size == 0 and (out / "INBOX" / "Sub.mbox").is_file()
        text = (out / "INBOX.mbox").read_bytes()
        assert b"\n>From here\n>>From there\n>>>From everywhere\n" in text and b"\nX-Keywords: " in text
        assert b"\nStatus: RO\n" in text and b"\nX-Status: " in text

    bob = store.accounts.create("bob@example.test", "x")
    imported = import_path(store, bob.id, out, show_progress=False)
    assert imported.imported == len(flat) and imported.failed_count == 0 and imported.skipped == 0
    assert state(store, bob.id) == before


def test_export_keeps_roles_when_names_differ_and_exports_one_subtree(store, account, tmp_path):  # noqa: ANN001
    seed(store, account.id, inbox=3)
    sent = store.mailboxes.by_path(account.id, ["Sent"])
    store.mailboxes.update(account.id, sent.id, name="Sent Items")
    before = state(store, account.id)
    export_account(store, account.id, account.address, tmp_path / "all", "mbox", show_progress=False)
    bob = store.accounts.create("bob@example.test", "x")
    import_path(store, bob.id, tmp_path / "all", show_progress=False)
    # "Sent Items" (role sent) went into Bob's Sent: the role's mailbox, whatever it is called
    assert state(store, bob.id) == before
    assert store.mailboxes.by_path(bob.id, ["Sent Items"]) is None

    export_account(store, account.id, account.address, tmp_path / "work", "maildir", "Work", show_progress=False)
    assert sorted(p.name for p in (tmp_path / "work").iterdir() if p.name.startswith(".")) == [
        ".Work", ".Work.Projects", ".Work.Projects.2026"]
    with pytest.raises(ExportError, match="no such mailbox"):
        export_account(store, account.id, account.address, tmp_path / "x", "maildir", "Nope", show_progress=False)
    with pytest.raises(ExportError, match="not an empty directory"):
        export_account(store, account.id, account.address, tmp_path / "work", "maildir", show_progress=False)


def test_export_and_import_commands(tmp_path):
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw")
    out = janusmail_cmd(data, "export", "a@example.test", str(tmp_path / "x"), "--format", "mbox", "--no-progress")
    assert out.stdout.startswith("exported 0 messages") and "6 mailboxes" in out.stdout and "messages/s" in out.stdout
    assert (tmp_path / "x" / "janusmail-export.json").is_file()
    out = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "x"), "--no-progress")
    assert "totals: imported 0, skipped 0" in out.stdout
    # refusals: a message and exit code 1, no traceback (in-process: each start of the command costs a second)
    runner = CliRunner()
    bad = runner.invoke(cli, ["--data", str(data), "export", "nobody@example.test", str(tmp_path / "y")])
    assert bad.exit_code == 1 and "no such account: nobody@example.test" in bad.output
    again = runner.invoke(cli, ["--data", str(data), "export", "a@example.test", str(tmp_path / "x")])
    assert again.exit_code == 1 and "not an empty directory" in again.output
    assert "--format [maildir|mbox]" in runner.invoke(cli, ["export", "--help"]).output
