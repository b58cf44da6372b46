"""`janusmail check` against Janus (one shared server, an account per test), good and broken: every verdict
the right one, with the detail that says why, and the exit status that scripts rely on.

Broken servers are made from the good one: a credential JMAP refuses (an app password limited to IMAP, a token
without the jmap scope), an IMAP door that advertises JMAP for any credential (its predicate patched), and ids
that differ (a proxy rewriting EMAILID/MAILBOXID on the way to the checker)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from janusmail.auth import app_passwords
from janusmail.check import rfc8474, rfc9698, runner, writes
from janusmail.check.model import Credential
from janusmail.cli.main import cli
from tests.check.proxy import RewritingProxy
from tests.check.util import check, failed, secret_file, session_url, verdicts
from tests.cli.mailstate import seed, state
from tests.imap.e2e_util import Tenant, serve_shared
from tests.serverutil import free_port

ALL_CHECKS = [rfc9698.PREAUTH, rfc9698.FAILED_LOGIN, rfc9698.AFTER_LOGIN, rfc9698.GETJMAPACCESS,
              rfc9698.GETJMAPACCESS_ARGS, rfc9698.SESSION, *rfc8474.CROSS_CHECKS]


@pytest.fixture(scope="module")
def server(tmp_path_factory):  # noqa: ANN001, ANN201
    yield from serve_shared(tmp_path_factory)


@pytest.fixture
def tenant(server):  # noqa: ANN001, ANN201
    """An account with nested folders, keywords, \\Deleted messages and threads (tests/cli/mailstate.py)."""
    t = Tenant(server)
    seed(server.store, t.account.id, inbox=25)
    return t


# -- a good server --------------------------------------------------------------------------------------------


def test_good_server_every_check_holds(tenant, tmp_path):  # noqa: ANN001
    store, acct = tenant.store, tenant.account.id
    before, modseq = state(store, acct), store.changes.highest_modseq(acct)
    result = check(tenant.imap_port, tenant.address, "--password-file", secret_file(tmp_path, tenant.password),
                   "--json")
    assert result.exit_code == 0, result.output
    # read-only without --write: no write of any kind through either door (the account's modseq did not move)
    assert store.changes.highest_modseq(acct) == modseq and state(store, acct) == before
    body = json.loads(result.stdout)
    assert body["ok"] is True
    assert [c["name"] for c in body["checks"]] == ALL_CHECKS
    assert all(c["ok"] is True and isinstance(c["detail"], str) and c["detail"] for c in body["checks"])
    got = verdicts(result)
    assert tenant.server.config.session_url in got[rfc9698.GETJMAPACCESS]["detail"]
    assert f"mail account {tenant.account.id}" in got[rfc9698.SESSION]["detail"]
    # 20 of INBOX's 31 messages are sampled, and all 19 of the other 11 mailboxes.
    assert "39 messages sampled in 12 mailboxes" in got[rfc8474.EMAIL_IDS]["detail"]
    assert "\\Deleted ones are rightly not visible" in got[rfc8474.EMAIL_IDS]["detail"]


def test_table_with_a_bearer_token_over_tls(tenant, tmp_path):  # noqa: ANN001
    token = tenant.runtime.auth.tokens.issue(tenant.account.id, ["imap", "jmap"], 600)
    crt = Path(tenant.config.data_dir) / "tls" / "selfsigned.crt"  # the server's generated certificate
    result = check(tenant.imaps_port, tenant.address, "--token-file", secret_file(tmp_path, token), "--tls",
                   "--ca-file", str(crt), "--sample", "3")
    assert result.exit_code == 0, result.output
    assert "HTTP Bearer with the bearer token" in result.output
    assert f"All {len(ALL_CHECKS)} checks hold." in result.output


def test_starttls_upgrades_the_plain_port(tenant, tmp_path):  # noqa: ANN001
    crt = Path(tenant.config.data_dir) / "tls" / "selfsigned.crt"
    password = secret_file(tmp_path, tenant.password)
    result = check(tenant.imap_port, tenant.address, "--password-file", password, "--starttls", "--ca-file",
                   str(crt), "--sample", "2", "--json")
    assert result.exit_code == 0, result.output
    assert verdicts(result)[rfc9698.PREAUTH]["ok"]
    # TLS really was negotiated on the plain port: without the certificate's CA, the same run cannot check
    untrusted = check(tenant.imap_port, tenant.address, "--password-file", password, "--starttls")
    assert untrusted.exit_code == 2 and "certificate not trusted" in untrusted.output, untrusted.output


def test_write_round_trip_leaves_every_flag_as_it_was(tenant):  # noqa: ANN001
    store, acct = tenant.store, tenant.account.id
    before = state(store, acct)
    progress: list[tuple[int, int, str, int]] = []
    cred = Credential(tenant.address, tenant.password)
    report = runner.run(runner.Options("127.0.0.1", tenant.imap_port, cred, sample=40, write=True),
                        lambda *a: progress.append(a))
    assert report.ok, report.failed
    got = {c.name: c for c in report.checks}
    assert [c.name for c in report.checks] == [*ALL_CHECKS, *writes.WRITE_CHECKS]
    # INBOX's first message is \Deleted (invisible over JMAP), so the second one is changed: it was not flagged.
    assert got[writes.IMAP_TO_JMAP].detail.startswith("\\Flagged set on INBOX UID 2 ")
    assert got[writes.JMAP_TO_IMAP].detail.startswith("$flagged cleared on Email ")
    assert state(store, acct) == before  # flags, keywords, \Deleted, everywhere: as they were
    assert progress[-1][:2] == (len(store.mailboxes.list(acct)),) * 2


def test_write_round_trip_on_a_flagged_message(server, tmp_path):  # noqa: ANN001
    tenant = Tenant(server)
    store, acct = server.store, tenant.account.id
    inbox = store.mailboxes.by_path(acct, ["INBOX"])
    store.emails.ingest(acct, b"Subject: flagged\r\n\r\nx\r\n", (inbox.id,), ("$flagged", "$seen", "Work-Tag"))
    before = state(store, acct)
    result = check(tenant.imap_port, tenant.address, "--password-file", secret_file(tmp_path, tenant.password),
                   "--write", "--json")
    assert result.exit_code == 0, result.output
    got = verdicts(result)
    assert got[writes.IMAP_TO_JMAP]["detail"].startswith("\\Flagged cleared on INBOX UID 1 ")
    assert "$flagged set on Email" in got[writes.JMAP_TO_IMAP]["detail"]
    assert "(\\Flagged \\Seen Work-Tag)" in got[writes.RESTORED]["detail"]
    assert state(store, acct) == before


# -- JMAP refuses the credential ------------------------------------------------------------------------------


def test_app_password_limited_to_imap(tenant, tmp_path):  # noqa: ANN001
    _, imap_only = app_passwords.create(tenant.store, tenant.account.id, "old-phone", "imap")
    result = check(tenant.imap_port, tenant.address, "--password-file", secret_file(tmp_path, imap_only), "--json",
                   "--jmap", session_url(tenant))
    assert result.exit_code == 1
    got = verdicts(result)
    detail = got[rfc9698.AFTER_LOGIN]["detail"]
    assert not got[rfc9698.AFTER_LOGIN]["ok"]
    assert "not listed after a login with a password" in detail
    assert "refuses this password too (HTTP 401), so the silence is consistent" in detail
    # The server is consistent: GETJMAPACCESS is BAD, and nothing before or after a failed login.
    assert got[rfc9698.GETJMAPACCESS]["ok"] and got[rfc9698.PREAUTH]["ok"] and got[rfc9698.FAILED_LOGIN]["ok"]
    assert failed(result) == {rfc9698.AFTER_LOGIN, rfc9698.SESSION, *rfc8474.CROSS_CHECKS}
    assert "--jmap" in got[rfc8474.EMAIL_IDS]["detail"] and "did not open either" in got[rfc8474.EMAIL_IDS]["detail"]


def test_token_without_jmap_scope(tenant, tmp_path):  # noqa: ANN001
    token = tenant.runtime.auth.tokens.issue(tenant.account.id, ["imap"], 600)
    result = check(tenant.imap_port, tenant.address, "--token-file", secret_file(tmp_path, token), "--json")
    assert result.exit_code == 1
    got = verdicts(result)
    assert "not listed after a login with a bearer token" in got[rfc9698.AFTER_LOGIN]["detail"]
    assert "a token without JMAP scope" in got[rfc9698.AFTER_LOGIN]["detail"]
    assert "give --jmap URL" in got[rfc8474.MAILBOX_IDS]["detail"]
    assert got[rfc9698.FAILED_LOGIN]["ok"], got[rfc9698.FAILED_LOGIN]  # a wrong token was refused too


def test_advertised_for_a_credential_jmap_refuses(tenant, tmp_path, monkeypatch):  # noqa: ANN001
    """A broken IMAP door that lists JMAPACCESS for any login: the session check names the refused kind."""
    _, imap_only = app_passwords.create(tenant.store, tenant.account.id, "scanner", "imap")
    monkeypatch.setattr(tenant.runtime.auth, "jmap_access_ok", lambda result: True)
    result = check(tenant.imap_port, tenant.address, "--password-file", secret_file(tmp_path, imap_only), "--json")
    assert result.exit_code == 1
    got = verdicts(result)
    assert got[rfc9698.AFTER_LOGIN]["ok"] and got[rfc9698.GETJMAPACCESS]["ok"]
    detail = got[rfc9698.SESSION]["detail"]
    assert not got[rfc9698.SESSION]["ok"]
    assert "refused the same password over HTTP Basic (HTTP 401" in detail
    assert "The advertisement was wrong" in detail


# -- ids that differ --------------------------------------------------------------------------------------------


def test_rewritten_ids_fail_the_rfc8474_checks(tenant, tmp_path):  # noqa: ANN001
    pattern = re.compile(rb"\b(EMAILID|MAILBOXID) \(([A-Za-z0-9_-]+)\)")

    def broken(line: bytes) -> bytes:
        return pattern.sub(rb"\1 (\2x)", line)

    with RewritingProxy(tenant.imap_port, broken) as proxy:
        result = check(proxy.port, tenant.address, "--password-file", secret_file(tmp_path, tenant.password),
                       "--json")
    assert result.exit_code == 1, result.output
    got = verdicts(result)
    assert failed(result) == set(rfc8474.CROSS_CHECKS)
    assert all(got[name]["ok"] for name in ALL_CHECKS[:6])  # RFC 9698 itself holds through the proxy
    assert "is no JMAP Mailbox id" in got[rfc8474.MAILBOX_IDS]["detail"]
    assert "is no JMAP Email" in got[rfc8474.EMAIL_IDS]["detail"]
    assert "no sampled message could be paired" in got[rfc8474.KEYWORDS]["detail"]


# -- cannot check: exit status 2, a message, no traceback ----------------------------------------------------------


def test_errors_are_messages_with_exit_status_2(tenant, tmp_path):  # noqa: ANN001
    good = secret_file(tmp_path, tenant.password)
    cases = [
        (check(free_port(), tenant.address, "--password-file", good), "cannot connect to 127.0.0.1:"),
        (check(tenant.imap_port, tenant.address, "--password-file", secret_file(tmp_path, "wrong", "w")),
         f"refused the login of {tenant.address} with a password"),
        (check(tenant.imaps_port, tenant.address, "--password-file", good, "--tls"), "certificate not trusted"),
        (check(tenant.imap_port, tenant.address, "--password-file", good, "--token-file", good), "exactly one of"),
        (check(tenant.imap_port, tenant.address), "exactly one of"),
        (check(tenant.imap_port, tenant.address, "--password-file", str(tmp_path / "missing")), "cannot read"),
        (CliRunner().invoke(cli, ["check", "--imap", "nowhere", "--user", "u", "--password-file", good]),
         "HOST:PORT"),
    ]
    for result, message in cases:
        assert result.exit_code == 2, (message, result.output)
        assert message in result.output, result.output
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
