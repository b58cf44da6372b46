"""`janusmail migrate` from a second Janus server (the source, started here, spoken to over IMAP by
imapclient): everything copied with flags, keywords, \\Deleted, internal dates, the tree, subscriptions and
special-use roles; a run cut by a lost connection resumes exactly; a later run copies only what is new; a
mailbox whose UIDVALIDITY changed is copied again without duplicates; the command's refusals are messages."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from imapclient.exceptions import IMAPClientAbortError

from janusmail.cli import imap_source
from janusmail.cli.imap_source import ImapSource, SourceError
from janusmail.cli.main import cli
from janusmail.cli.migrate import migrate_account
from janusmail.store.model import IngestItem
from janusmail.store.store import Store
from tests.cli.mailstate import seed, state
from tests.imap.e2e_util import Tenant, serve_shared
from tests.serverutil import free_port, janusmail_cmd


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # noqa: ANN001, ANN201
    yield from serve_shared(tmp_path_factory)


@pytest.fixture
def source(server):  # noqa: ANN001, ANN201
    """A fresh account on the source server, seeded, its Sent renamed (the role must still find Sent here)."""
    tenant = Tenant(server)
    store = server.store
    seed(store, tenant.account.id)
    sent = store.mailboxes.by_path(tenant.account.id, ["Sent"])
    store.mailboxes.update(tenant.account.id, sent.id, name="Sent Messages")
    return tenant


@pytest.fixture
def target(tmp_path):  # noqa: ANN001, ANN201
    store = Store.open(tmp_path / "target")
    try:
        yield store, store.accounts.create("bob@example.test", "x")
    finally:
        store.close()


def connect(tenant: Tenant) -> ImapSource:
    return ImapSource("127.0.0.1", tenant.imap_port, tenant.address, tenant.password)


def run(tenant: Tenant, store: Store, account_id: str, **kw):  # noqa: ANN003, ANN201
    src = connect(tenant)
    try:
        return migrate_account(store, account_id, src, show_progress=False, **kw)
    finally:
        src.close()


def test_interrupted_resumed_incremental_and_renumbered(source, target, monkeypatch):  # noqa: ANN001
    store, bob = target
    src_store, src_id = source.store, source.account.id
    wanted = state(src_store, src_id)
    total = sum(len(b["messages"]) for b in wanted.values())

    # The connection drops at the third UID FETCH: two batches of INBOX (listed first) are stored, with their mark.
    real_fetch = ImapSource.fetch
    calls = []

    def flaky(self, uids):  # noqa: ANN001, ANN202
        calls.append(uids)
        if len(calls) == 3:
            raise IMAPClientAbortError("socket error: connection reset")
        return real_fetch(self, uids)

    monkeypatch.setattr(imap_source.ImapSource, "fetch", flaky)
    with pytest.raises(SourceError, match="connection reset"):
        run(source, store, bob.id, batch_size=10)
    monkeypatch.undo()
    inbox = store.mailboxes.by_path(bob.id, ["INBOX"])
    assert store.mailboxes.recount(bob.id)[inbox.id].messages == 20
    src_key = connect(source)
    key = src_key.key
    src_key.close()
    assert store.migration_progress.positions(bob.id, key)["INBOX"].last_uid == 20

    report = run(source, store, bob.id, batch_size=10)
    assert (report.copied, report.skipped, report.failed_count) == (total - 20, 0, 0)
    assert state(store, bob.id) == wanted
    assert store.mailboxes.by_path(bob.id, ["Sent Messages"]) is None  # the source's \Sent went into Sent
    assert not store.mailboxes.by_path(bob.id, ["Empty"]).subscribed

    # Incremental: only the new messages.
    src_inbox = src_store.mailboxes.by_path(src_id, ["INBOX"]).id
    src_work = src_store.mailboxes.by_path(src_id, ["Work"]).id
    src_store.emails.ingest_many(src_id, [
        IngestItem(b"Subject: new %d\r\n\r\nnew\r\n" % i, (src_inbox if i < 3 else src_work,), ("$seen",),
                   1_700_000_000 + i) for i in range(4)])
    report = run(source, store, bob.id)
    assert (report.copied, report.skipped, report.failed_count) == (4, 0, 0)
    assert state(store, bob.id) == state(src_store, src_id)

    # The source renumbers a mailbox (new UIDVALIDITY): it is copied again, what is already here skipped.
    year = src_store.mailboxes.by_path(src_id, ["Work", "Projects", "2026"])
    old = state(src_store, src_id)[("Work", "Projects", "2026")]["messages"]
    src_store.mailboxes.destroy(src_id, year.id, remove_emails=True)
    renumbered = src_store.mailboxes.create(src_id, "2026", year.parent_id)
    items = [IngestItem(raw, (renumbered.id,), kws, when, deleted) for raw, kws, deleted, when in old]
    src_store.emails.ingest_many(src_id, [*items, IngestItem(b"Subject: after\n\nx\n", (renumbered.id,))])
    report = run(source, store, bob.id)
    assert report.restarted == ["Work/Projects/2026"]
    assert (report.copied, report.skipped, report.failed_count) == (1, len(old), 0)
    assert state(store, bob.id) == state(src_store, src_id)
    assert run(source, store, bob.id).copied == 0


def test_migrate_command_limit_summary_and_refusals(source, tmp_path):  # noqa: ANN001
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "carol@example.test", "--password", "pw")
    pw = tmp_path / "pw"
    pw.write_text(source.password + "\n")
    args = ["migrate", "carol@example.test", "--from-imap", f"127.0.0.1:{source.imap_port}",
            "--from-user", source.address, "--password-file", str(pw), "--no-progress"]
    first = janusmail_cmd(data, *args, "--limit", "30")
    assert "stopped at --limit" in first.stdout
    assert "copied 30, skipped 0, failed 0" in first.stdout and "messages/s" in first.stdout

    runner = CliRunner()
    with_bar = [a for a in args if a != "--no-progress"]  # the progress bar's last state is printed off a terminal
    rest = runner.invoke(cli, ["--data", str(data), *with_bar], env={"COLUMNS": "200"})
    total = sum(len(b["messages"]) for b in state(source.store, source.account.id).values())
    assert rest.exit_code == 0, rest.output
    assert f"copied {total - 30}, skipped 0, failed 0" in rest.output and "migrated 12 mailboxes" in rest.output
    assert "migrating" in rest.output and f"{total - 30}/{total - 30}" in rest.output

    def refused(*extra: str, address: str = "carol@example.test") -> str:
        res = runner.invoke(cli, ["--data", str(data), "migrate", address, "--password-file", str(pw), *extra])
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
        return res.output

    assert "no such account: nobody@example.test" in refused(
        "--from-imap", f"127.0.0.1:{source.imap_port}", "--from-user", source.address, address="nobody@example.test")
    pw.write_text("wrong password\n")
    assert f"refused the login of {source.address}" in refused(
        "--from-imap", f"127.0.0.1:{source.imap_port}", "--from-user", source.address)
    port = free_port()  # nothing listens there
    out = refused("--from-imap", f"127.0.0.1:{port}", "--from-user", source.address)
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in out
    assert "--from-imap HOST:PORT" in runner.invoke(cli, ["migrate", "--help"]).output


def test_tls_source_verified_against_its_certificate(server):  # noqa: ANN001
    tenant = Tenant(server)
    crt = str(server.config.data_dir / "tls" / "selfsigned.crt")
    src = ImapSource("127.0.0.1", server.imaps_port, tenant.address, tenant.password, tls=True, cafile=crt)
    try:
        assert [b.path for b in src.mailboxes()][0] == ["INBOX"]
    finally:
        src.close()
    with pytest.raises(SourceError, match="TLS with 127.0.0.1:.* failed"):  # not trusted without --ca-file
        ImapSource("127.0.0.1", server.imaps_port, tenant.address, tenant.password, tls=True)
