"""The Session resource, authentication and the issuer documents, over real HTTP."""

from __future__ import annotations

import base64
import time

import httpx
import jmapc
import pytest

from tests.jmap.test_front_harness import (  # noqa: F401 - fixtures
    CORE,
    MAIL,
    PASSWORDS,
    alice,
    bob,
    client_for,
    server,
    start_server,
)


def test_session_shape_and_templates(alice):  # noqa: F811
    r = alice.http.get("/.well-known/jmap")
    assert r.status_code == 200
    assert "no-store" in r.headers["cache-control"]
    s = r.json()
    core = s["capabilities"][CORE]
    assert core == {
        "maxSizeUpload": 50_000_000,
        "maxConcurrentUpload": 4,
        "maxSizeRequest": 10_000_000,
        "maxConcurrentRequests": 6,
        "maxCallsInRequest": 16,
        "maxObjectsInGet": 500,
        "maxObjectsInSet": 500,
        "collationAlgorithms": ["i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap"],
    }
    assert s["capabilities"][MAIL] == {}
    assert list(s["accounts"]) == [alice.account_id]
    account = s["accounts"][alice.account_id]
    assert account["name"] == alice.address and account["isPersonal"] and not account["isReadOnly"]
    mail = account["accountCapabilities"][MAIL]
    assert mail["maxMailboxesPerEmail"] is None and mail["maxMailboxDepth"] is None
    assert mail["maxSizeMailboxName"] == 255 and mail["mayCreateTopLevelMailbox"] is True
    assert "receivedAt" in mail["emailQuerySortOptions"]
    assert s["primaryAccounts"] == {MAIL: alice.account_id, "urn:ietf:params:jmap:submission": alice.account_id,
                                    "urn:ietf:params:jmap:quota": alice.account_id,
                                    "urn:ietf:params:jmap:vacationresponse": alice.account_id}
    assert s["username"] == alice.address
    base = alice.server.config.public_url
    assert s["apiUrl"] == base + "/jmap/api"
    assert s["uploadUrl"] == base + "/jmap/upload/{accountId}"
    for var in ("{accountId}", "{blobId}", "{name}", "{type}"):
        assert var in s["downloadUrl"]
    assert s["downloadUrl"].startswith(base + "/jmap/download/")
    for var in ("{types}", "{closeafter}", "{ping}"):
        assert var in s["eventSourceUrl"]
    # Same state for the same session, at both addresses.
    again = alice.http.get("/jmap/session").json()
    assert again == s


def test_session_url_is_the_jmapaccess_url(alice):  # noqa: F811
    """RFC 9698 advertises config.session_url; it must answer the session itself for the same credentials."""
    url = alice.server.config.session_url
    r = httpx.get(url, auth=(alice.address, PASSWORDS[alice.address]))
    assert r.status_code == 200
    assert r.json()["username"] == alice.address


def test_sessions_differ_per_user(alice, bob):  # noqa: F811
    a = alice.http.get("/.well-known/jmap").json()
    b = bob.http.get("/.well-known/jmap").json()
    assert list(a["accounts"]) == [alice.account_id] and list(b["accounts"]) == [bob.account_id]
    assert a["state"] != b["state"]


def test_401_without_credentials_leaks_nothing(server):  # noqa: F811
    base = server.config.public_url
    for method, path in [("GET", "/.well-known/jmap"), ("GET", "/jmap/session"), ("POST", "/jmap/api"),
                         ("POST", "/jmap/upload/Axxxx"), ("GET", "/jmap/download/Axxxx/Gxxxx/f.txt"),
                         ("GET", "/jmap/eventsource?types=*&closeafter=no&ping=0")]:
        r = httpx.request(method, base + path)
        assert r.status_code == 401, path
        challenges = r.headers.get_list("www-authenticate")
        assert any(c.startswith("Basic ") for c in challenges)
        assert any(c.startswith("Bearer ") for c in challenges)
        assert "example.test" not in r.text and "accounts" not in r.text


def test_401_with_bad_password_and_unknown_user(server):  # noqa: F811
    base = server.config.public_url
    for auth in [("alice@example.test", "wrong"), ("nobody@example.test", "whatever")]:
        r = httpx.get(base + "/.well-known/jmap", auth=auth, timeout=30)
        assert r.status_code == 401
        assert r.headers.get_list("www-authenticate")
    # The right password still gets in after the failures (the backoff delays, never locks out).
    r = httpx.get(base + "/.well-known/jmap", auth=("alice@example.test", PASSWORDS["alice@example.test"]),
                  timeout=30)
    assert r.status_code == 200
    # Malformed Basic, unknown scheme.
    for header in ["Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest abc"]:
        r = httpx.get(base + "/.well-known/jmap", headers={"Authorization": header}, timeout=30)
        assert r.status_code == 401


def test_bearer_token_accepted_and_bad_token_challenged(server):  # noqa: F811
    base = server.config.public_url
    account = server.store.accounts.by_address("alice@example.test")
    token = server.runtime.auth.tokens.issue(account.id, ["jmap"])
    r = httpx.get(base + "/.well-known/jmap", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert list(r.json()["accounts"]) == [account.id]
    r = httpx.post(base + "/jmap/api", headers={"Authorization": f"Bearer {token}"},
                   json={"using": [CORE], "methodCalls": [["Core/echo", {"x": 1}, "0"]]})
    assert r.json()["methodResponses"] == [["Core/echo", {"x": 1}, "0"]]
    # A token without the jmap scope, and garbage, are refused with an RFC 6750 error in the challenge.
    imap_only = server.runtime.auth.tokens.issue(account.id, ["imap"])
    for bad in [imap_only, token[:-4] + "AAAA", "not.a.token"]:
        r = httpx.get(base + "/.well-known/jmap", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
        bearer = [c for c in r.headers.get_list("www-authenticate") if c.startswith("Bearer")]
        assert bearer and "error=" in bearer[0]


def test_expired_token_refused(server, monkeypatch):  # noqa: F811
    account = server.store.accounts.by_address("alice@example.test")
    tokens = server.runtime.auth.tokens
    with monkeypatch.context() as m:  # issued an hour ago for a minute: expired now, without waiting
        m.setattr(tokens, "_clock", lambda: time.time() - 3600)
        token = tokens.issue(account.id, ["jmap"], ttl=60)
    r = httpx.get(server.config.public_url + "/.well-known/jmap", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_jmap_disabled_account_refused(server):  # noqa: F811
    account = server.store.accounts.by_address("alice@example.test")
    server.store.accounts.set_jmap_enabled(account.id, False)
    r = httpx.get(server.config.public_url + "/.well-known/jmap", auth=("alice@example.test", PASSWORDS[
        "alice@example.test"]), timeout=30)
    assert r.status_code == 401


def test_jwks_and_openid_configuration(server):  # noqa: F811
    base = server.config.public_url
    jwks = httpx.get(base + "/.well-known/jwks.json")
    assert jwks.status_code == 200
    keys = jwks.json()["keys"]
    assert keys and keys[0]["kty"] == "EC" and "d" not in keys[0]
    conf = httpx.get(base + "/.well-known/openid-configuration").json()
    assert conf["issuer"] == base and conf["jwks_uri"] == base + "/.well-known/jwks.json"
    # The issuer's own documents are where OAUTHBEARER failures point.
    assert server.runtime.auth.tokens.openid_configuration_url == base + "/.well-known/openid-configuration"


def test_public_url_with_path_prefix(tmp_path):
    srv = start_server(tmp_path)
    srv.stop()
    # A second server whose public URL has a path: every URL carries it, and both forms of path work.
    from tests.serverutil import free_port

    port = free_port()
    srv = start_server(tmp_path / "p", jmap__listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}/mail/")
    try:
        auth = ("alice@example.test", PASSWORDS["alice@example.test"])
        s = httpx.get(f"http://127.0.0.1:{port}/mail/.well-known/jmap", auth=auth).json()
        assert s["apiUrl"] == f"http://127.0.0.1:{port}/mail/jmap/api"
        assert httpx.get(f"http://127.0.0.1:{port}/.well-known/jmap", auth=auth).json() == s
        r = httpx.post(s["apiUrl"], auth=auth, json={"using": [CORE], "methodCalls": [["Core/echo", {}, "a"]]})
        assert r.json()["methodResponses"] == [["Core/echo", {}, "a"]]
    finally:
        srv.stop()


class _HttpJmapc(jmapc.Client):
    """jmapc insists on https://host; point its session fetch at our loopback http server."""

    def __init__(self, base: str, **kw) -> None:  # noqa: ANN003
        super().__init__(base.split("://", 1)[1], **kw)
        self._base = base

    @property
    def jmap_session(self):  # noqa: ANN201
        if not hasattr(self, "_session_cache"):
            from jmapc.session import Session

            r = self.requests_session.get(self._base + "/.well-known/jmap", timeout=30)
            r.raise_for_status()
            self._session_cache = Session.from_dict(r.json())
        return self._session_cache


@pytest.mark.parametrize("use_token", [False, True])
def test_jmapc_client(server, use_token):  # noqa: F811
    from jmapc.auth import BearerAuth
    from jmapc.methods import CoreEcho, MailboxGet

    account = server.store.accounts.by_address("alice@example.test")
    if use_token:
        auth = BearerAuth(server.runtime.auth.tokens.issue(account.id, ["jmap"]))
    else:
        auth = ("alice@example.test", PASSWORDS["alice@example.test"])
    client = _HttpJmapc(server.config.public_url, auth=auth)
    assert client.account_id == account.id
    echo = client.request(CoreEcho(data={"hello": "world"}))
    assert echo.data == {"hello": "world"}
    boxes = client.request(MailboxGet(ids=None))
    assert {m.role for m in boxes.data} >= {"inbox", "drafts", "sent", "trash", "junk", "archive"}
    inbox = next(m for m in boxes.data if m.role == "inbox")
    assert inbox.name == "INBOX"


def test_pg_backend_session_and_mailboxes(tmp_path, pg_url):
    srv = start_server(tmp_path, pg_url)
    try:
        j = client_for(srv, "alice@example.test")
        assert j.http.get("/.well-known/jmap").status_code == 200
        names = set(j.mailboxes())
        assert {"INBOX", "Drafts", "Sent", "Archive", "Junk", "Trash"} <= names
    finally:
        srv.stop()


def test_remembered_basic_credential_still_ends_with_its_credential(server, monkeypatch):  # noqa: F811
    """An accepted Basic header is answered from memory (janusmail/auth/http_memo.py: no login thread, no
    database read) only while no credential changed: a password change, JMAP switched off, or disabling the
    account refuses the very next request, and the new password gets in."""
    from janusmail.auth import passwords

    store, auth = server.store, server.runtime.auth
    if store.credential_signal.read() is None:
        pytest.skip("no shared credential counter on this backend: nothing is remembered")
    address = "memo@example.test"
    account = store.accounts.create(address, *passwords.make_credentials("first password"))
    url = server.config.public_url + "/.well-known/jmap"
    checked: list[str] = []
    real = auth.http_authenticate

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        checked.append("x")
        return real(*args, **kwargs)

    monkeypatch.setattr(auth, "http_authenticate", counting)

    def status(password: str) -> int:
        return httpx.get(url, auth=(address, password), timeout=30).status_code

    assert [status("first password") for _ in range(3)] == [200, 200, 200]
    assert len(checked) == 1  # the two later requests were answered from memory
    store.credentials.set_password(account.id, *passwords.make_credentials("second password"))
    assert status("first password") == 401
    assert status("second password") == 200 and status("second password") == 200
    n = len(checked)
    store.accounts.set_jmap_enabled(account.id, False)
    assert status("second password") == 401 and len(checked) == n + 1
    store.accounts.set_jmap_enabled(account.id, True)
    assert status("second password") == 200
    store.accounts.set_disabled(account.id, True)
    assert status("second password") == 401
    store.accounts.set_disabled(account.id, False)
    assert status("second password") == 200
    assert status("wrong password") == 401  # a header never accepted is always checked
