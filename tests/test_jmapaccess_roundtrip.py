"""RFC 9698 end to end: what IMAP advertises is true over JMAP, with the very same credentials.

For each kind of credential, an IMAP login is followed by GETJMAPACCESS and a GET of the advertised session URL
with the same credential: when JMAPACCESS is listed the session opens for the same user; when it is not, JMAP
really refuses that credential. Also the client helper (janusmail.client.JmapBridge) and its example.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import imapclient
import pytest

from janusmail.auth import app_passwords
from janusmail.client import JmapBridge, get_jmap_access_url
from tests.imap.e2e_util import ADDRESS, PASSWORD, login, start_server, use_cheap_argon2
from tests.mailgen import simple

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)
MAIL = "urn:ietf:params:jmap:mail"


@pytest.fixture
def srv(tmp_path):  # noqa: ANN001, ANN201
    s = start_server(tmp_path / "a")
    yield s
    s.stop()


def advertised(client: imapclient.IMAPClient) -> str | None:
    if b"JMAPACCESS" not in client.capabilities():
        return None
    return get_jmap_access_url(client)


def session(url: str, **auth) -> httpx.Response:  # noqa: ANN003
    return httpx.get(url, timeout=30, follow_redirects=True, **auth)


def check_same_user(resp: httpx.Response, srv) -> None:  # noqa: ANN001
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["username"] == ADDRESS
    assert body["primaryAccounts"][MAIL] == srv.account.id


def imap_client(srv) -> imapclient.IMAPClient:  # noqa: ANN001
    return imapclient.IMAPClient("127.0.0.1", port=srv.imap_port, ssl=False, timeout=30)


def test_password_opens_the_advertised_session(srv):
    c = imap_client(srv)
    c.login(ADDRESS, PASSWORD)
    url = advertised(c)
    assert url == srv.config.session_url
    check_same_user(session(url, auth=(ADDRESS, PASSWORD)), srv)
    assert session(url, auth=(ADDRESS, "wrong")).status_code == 401
    assert session(url).status_code == 401
    c.logout()


def test_app_passwords_follow_their_protocols(srv):
    _, both = app_passwords.create(srv.store, srv.account.id, "laptop", "imap,jmap")
    _, imap_only = app_passwords.create(srv.store, srv.account.id, "phone", "imap")
    c = imap_client(srv)
    c.login(ADDRESS, both)
    url = advertised(c)
    check_same_user(session(url, auth=(ADDRESS, both)), srv)
    c.logout()
    c = imap_client(srv)
    c.login(ADDRESS, imap_only)
    assert advertised(c) is None
    assert session(srv.config.session_url, auth=(ADDRESS, imap_only)).status_code == 401  # the "no" is true
    c.logout()


def test_tokens_follow_scope_expiry_and_audience(srv, monkeypatch):
    tokens = srv.runtime.auth.tokens
    good = tokens.issue(srv.account.id, ["imap", "jmap"], 600)
    c = imap_client(srv)
    c.oauthbearer_login(ADDRESS, good)
    url = advertised(c)
    check_same_user(session(url, headers={"Authorization": f"Bearer {good}"}), srv)
    c.logout()

    imap_only = tokens.issue(srv.account.id, ["imap"], 600)
    c = imap_client(srv)
    c.oauthbearer_login(ADDRESS, imap_only)
    assert advertised(c) is None
    assert session(srv.config.session_url, headers={"Authorization": f"Bearer {imap_only}"}).status_code == 401
    c.logout()

    with monkeypatch.context() as m:  # a token issued an hour ago for a minute: expired now, without waiting
        m.setattr(tokens, "_clock", lambda: time.time() - 3600)
        short = tokens.issue(srv.account.id, ["imap", "jmap"], 60)
    with pytest.raises(imapclient.exceptions.LoginError):
        imap_client(srv).oauthbearer_login(ADDRESS, short)
    assert session(srv.config.session_url, headers={"Authorization": f"Bearer {short}"}).status_code == 401

    foreign = tokens.issue(srv.account.id, ["imap", "jmap"], 600, audience="someone-else")
    with pytest.raises(imapclient.exceptions.LoginError):
        imap_client(srv).oauthbearer_login(ADDRESS, foreign)
    assert session(srv.config.session_url, headers={"Authorization": f"Bearer {foreign}"}).status_code == 401


def test_basic_off_means_no_jmapaccess_and_no_jmap_with_the_password(tmp_path):
    s = start_server(tmp_path / "b", auth__jmap_accepts_basic=False)
    try:
        c = imap_client(s)
        c.login(ADDRESS, PASSWORD)
        assert advertised(c) is None
        assert session(s.config.session_url, auth=(ADDRESS, PASSWORD)).status_code == 401
        c.logout()
    finally:
        s.stop()


def test_bridge_maps_imap_uids_to_jmap_emails(srv):
    inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])
    d1 = srv.store.emails.ingest(srv.account.id, simple(1, subject="quarterly invoice"), (inbox.id,))
    d2 = srv.store.emails.ingest(srv.account.id, simple(2, subject="lunch"), (inbox.id,))
    m = login(srv)
    with JmapBridge.from_imap(m, username=ADDRESS, password=PASSWORD) as bridge:
        assert bridge.account_id == srv.account.id
        assert bridge.mailbox_id(m, "INBOX") == inbox.id
        m.select("INBOX", readonly=True)
        ids = bridge.email_ids(m, [1, 2])
        assert ids == {1: d1.email_id, 2: d2.email_id}
        snippets = bridge.call("SearchSnippet/get", {"filter": {"text": "invoice"}, "emailIds": list(ids.values())})
        by_id = {s["emailId"]: s for s in snippets["list"]}
        assert "<mark>" in (by_id[d1.email_id]["subject"] or "")
        assert by_id[d2.email_id]["subject"] is None
    m.logout()
    # imapclient connections work too; and no bridge when JMAP would refuse the credentials.
    _, imap_only = app_passwords.create(srv.store, srv.account.id, "old-phone", "imap")
    c = imap_client(srv)
    c.login(ADDRESS, imap_only)
    assert JmapBridge.from_imap(c, username=ADDRESS, password=imap_only) is None
    c.logout()


def test_example_script_runs(srv):
    inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])
    srv.store.emails.ingest(srv.account.id, simple(1, subject="Janus example"), (inbox.id,))
    example = Path(__file__).resolve().parents[1] / "examples" / "jmap_from_imap.py"
    out = subprocess.run([sys.executable, str(example), "127.0.0.1", str(srv.imap_port), ADDRESS, PASSWORD, "Janus"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "JMAP session:" in out.stdout and "<mark>Janus</mark>" in out.stdout
