"""The web admin over HTTP (httpx against the real server): who gets in (401/403/200, Basic and the login form),
CSRF refusals, every page, and that its actions reach the store and the live sessions as the CLI's do.

One server for the module (tests/imap/e2e_util.serve_shared); each test makes the accounts it needs.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import uuid
from collections.abc import Iterator

import httpx
import pytest

from janusmail.auth import app_passwords, passwords
from janusmail.auth.throttle import LoginThrottle
from janusmail.auth.tokens import issue_recorded
from tests.imap.e2e_util import PASSWORD, Raw, serve_shared
from tests.serverutil import ServerThread

HTML = {"Accept": "text/html"}


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


def _account(srv: ServerThread, *, admin: bool = False, password: str = PASSWORD) -> tuple[str, str]:
    address = f"a{uuid.uuid4().hex[:10]}@example.test"
    acct = srv.store.accounts.create(address, *passwords.make_credentials(password))
    if admin:
        srv.store.accounts.set_admin(acct.id, True)
    return address, acct.id


@pytest.fixture
def admin(srv: ServerThread) -> tuple[str, str]:
    return _account(srv, admin=True)


def _client(srv: ServerThread, auth: tuple[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{srv.jmap_port}", auth=auth, timeout=30,
                        follow_redirects=False)


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def _basic_token(c: httpx.Client) -> str:
    r = c.get("/admin/csrf")
    assert r.status_code == 200
    return r.text.strip()


# -- who gets in ------------------------------------------------------------------------------------------------

def test_basic_auth_statuses(srv: ServerThread, admin: tuple[str, str]) -> None:
    user, _ = _account(srv)
    with _client(srv) as c:
        r = c.get("/admin/")
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic ")
        r = c.get("/admin/", headers=HTML)  # a browser without credentials gets the login form, no dialog
        assert r.status_code == 401 and "www-authenticate" not in r.headers and 'action="/admin/login"' in r.text
        assert c.get("/admin/", auth=(admin[0], "wrong")).status_code == 401
        assert c.get("/admin/", auth=("nobody@example.test", PASSWORD)).status_code == 401
        assert c.get("/admin/", auth=(user, PASSWORD)).status_code == 403
        assert c.get("/admin/connections", auth=(user, PASSWORD)).status_code == 403
        r = c.get("/admin/", auth=(admin[0], PASSWORD))
        assert r.status_code == 200 and admin[0] in r.text and user in r.text
        r = c.get("/admin", auth=(admin[0], PASSWORD))
        assert r.status_code == 200 and admin[0] in r.text
        assert r.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in r.headers["content-security-policy"]
        # an app password (even one granted every protocol) never opens the admin
        _, secret = app_passwords.create(srv.store, admin[1], "laptop")
        assert c.get("/admin/", auth=(admin[0], secret)).status_code == 401
        # a bearer token neither
        token = srv.runtime.auth.tokens.issue(admin[1], ["imap", "jmap", "smtp"], 300)
        assert c.get("/admin/", headers={"Authorization": f"Bearer {token}"}).status_code == 401
        # a disabled admin is no admin
        srv.store.accounts.set_disabled(admin[1], True)
        assert c.get("/admin/", auth=(admin[0], PASSWORD)).status_code == 401


def test_post_without_csrf_token_is_refused(srv: ServerThread, admin: tuple[str, str]) -> None:
    address = f"n{uuid.uuid4().hex[:10]}@example.test"
    with _client(srv, (admin[0], PASSWORD)) as c:
        r = c.post("/admin/accounts", data={"address": address, "password": "pw-1"})
        assert r.status_code == 403 and "CSRF" in r.text
        r = c.post("/admin/accounts", data={"address": address, "password": "pw-1", "csrf_token": "forged"})
        assert r.status_code == 403
        assert srv.store.accounts.by_address(address) is None
        r = c.post("/admin/accounts", data={"address": address, "password": "pw-1"},
                   headers={"X-CSRF-Token": _basic_token(c)})
        assert r.status_code == 303
    assert srv.store.accounts.by_address(address) is not None


def test_login_form_session(srv: ServerThread, admin: tuple[str, str]) -> None:
    user, _ = _account(srv)
    with _client(srv) as c:
        page = c.get("/admin/login")
        assert page.status_code == 200
        token = _csrf(page.text)
        r = c.post("/admin/login", data={"address": admin[0], "password": PASSWORD})  # no token
        assert r.status_code == 403
        big = {"content-type": "application/x-www-form-urlencoded"}
        assert c.post("/admin/login", content=b"a=" + b"x" * 70_000, headers=big).status_code == 400
        assert c.post("/admin/login", files={"f": b"x"}).status_code == 400  # only our own (urlencoded) forms
        r = c.post("/admin/login", data={"address": admin[0], "password": "wrong", "csrf_token": token},
                   headers=HTML)
        assert r.status_code == 401 and "Wrong address or password" in r.text
        r = c.post("/admin/login", data={"address": user, "password": PASSWORD, "csrf_token": token}, headers=HTML)
        assert r.status_code == 403
        r = c.post("/admin/login", data={"address": admin[0], "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/admin/"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # http here
        page = c.get("/admin/", headers=HTML)
        assert page.status_code == 200 and f"{admin[0]}" in page.text
        # the token of the login form is worthless after login (the session got a new nonce)
        r = c.post("/admin/accounts", data={"address": "x@example.test", "password": "p", "csrf_token": token})
        assert r.status_code == 403
        # the session ends with its password, as IMAP sessions do
        srv.store.credentials.set_password(admin[1], *passwords.make_credentials("new password"))
        r = c.get("/admin/", headers=HTML)
        assert r.status_code == 401 and "password was changed" in r.text


def test_logout(srv: ServerThread, admin: tuple[str, str]) -> None:
    with _client(srv) as c:
        token = _csrf(c.get("/admin/login").text)
        assert c.post("/admin/login", data={"address": admin[0], "password": PASSWORD,
                                            "csrf_token": token}).status_code == 303
        page = c.get("/admin/")
        assert page.status_code == 200
        assert c.post("/admin/logout", data={"csrf_token": _csrf(page.text)}).status_code == 303
        assert c.get("/admin/").status_code == 401


def test_login_goes_through_the_shared_throttle(srv: ServerThread, admin: tuple[str, str]) -> None:
    auth = srv.runtime.auth
    before = auth.throttle

    async def no_sleep(seconds: float) -> None:
        await asyncio.sleep(0)

    auth.throttle = LoginThrottle(base=30.0, maximum=30.0, sleep=no_sleep)
    try:
        with _client(srv) as c:
            assert c.get("/admin/", auth=(admin[0], "wrong")).status_code == 401
            r = c.get("/admin/", auth=(admin[0], "wrong again"))
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
            token = _csrf(c.get("/admin/login").text)
            r = c.post("/admin/login", data={"address": admin[0], "password": "x", "csrf_token": token})
            assert r.status_code == 429
            # IMAP counts the same failures: the pair is refused there too
            with imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30) as m, pytest.raises(imaplib.IMAP4.error):
                m.login(admin[0], "wrong")
        view = auth.throttle.snapshot()
        assert any(p.account == admin[0] and p.failures >= 1 and p.retry_after > 0 for p in view.pairs)
        with _client(srv) as c:
            other, _ = _account(srv, admin=True)
            page = c.get("/admin/security", auth=(other, PASSWORD))
            assert page.status_code == 200 and admin[0] in page.text and "127.0.0.1" in page.text
    finally:
        auth.throttle = before


# -- pages and actions -------------------------------------------------------------------------------------------

def test_every_page_renders(srv: ServerThread, admin: tuple[str, str]) -> None:
    user, uid = _account(srv)
    srv.store.quotas.set_limits(uid, storage=10 * 1024 * 1024)
    with _client(srv, (admin[0], PASSWORD)) as c, imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30) as m:
        m.login(user, PASSWORD)
        for path, expect in (("/admin/", user), (f"/admin/accounts/{uid}", "10.0 MiB"),
                             ("/admin/connections", user), ("/admin/security", "Hashing gate"),
                             ("/admin/storage", user), ("/admin/jmapaccess", "JMAPACCESS explain")):
            r = c.get(path)
            assert r.status_code == 200, path
            assert expect in r.text, path
        assert c.get("/admin/accounts/A-nosuch").status_code == 404
        live = [x for x in srv.runtime.connections.snapshot() if x.address == user]
        assert len(live) == 1 and live[0].door == "imap" and live[0].method == "password"


def test_output_is_escaped(srv: ServerThread, admin: tuple[str, str]) -> None:
    address = f'<script>x{uuid.uuid4().hex[:6]}</script>"@example.test'
    with _client(srv, (admin[0], PASSWORD)) as c:
        r = c.post("/admin/accounts", data={"address": address, "password": "p", "csrf_token": _basic_token(c)})
        assert r.status_code == 303
        page = c.get("/admin/")
        assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_account_actions(srv: ServerThread, admin: tuple[str, str]) -> None:
    user, uid = _account(srv)
    with _client(srv, (admin[0], PASSWORD)) as c:
        token = _basic_token(c)

        def post(path: str, **data: str) -> httpx.Response:
            return c.post(f"/admin/accounts/{uid}/{path}", data={"csrf_token": token, **data})

        # quotas: set, keep one, clear
        assert post("quota", storage="2M", messages="50").status_code == 303
        usage = srv.store.quotas.get(uid)
        assert (usage.storage_limit, usage.messages_limit) == (2 * 1024 * 1024, 50)
        assert post("quota", messages="none").status_code == 303
        assert srv.store.quotas.get(uid).storage_limit == 2 * 1024 * 1024
        assert srv.store.quotas.get(uid).messages_limit is None
        assert post("quota", storage="lots").status_code == 400
        assert post("quota", clear="1").status_code == 303
        assert srv.store.quotas.get(uid).storage_limit is None
        # disable: the live IMAP session ends, new logins fail; enable: they work again
        with imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30) as m:
            m.login(user, PASSWORD)
            assert post("disable").status_code == 303
            with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
                m.noop()
                m.noop()
        with imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30) as m, pytest.raises(imaplib.IMAP4.error):
            m.login(user, PASSWORD)
        assert post("enable").status_code == 303
        with imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30) as m:
            m.login(user, PASSWORD)
        # password reset
        assert post("password", password="brand new").status_code == 303
        with imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30) as m:
            m.login(user, "brand new")
        # admin rights, JMAP switch
        assert post("admin-on").status_code == 303 and srv.store.accounts.is_admin(uid)
        assert post("admin-off").status_code == 303 and not srv.store.accounts.is_admin(uid)
        assert post("jmap-off").status_code == 303
        assert not srv.store.accounts.get(uid).jmap_enabled
        # one cannot lock oneself out
        r = c.post(f"/admin/accounts/{admin[1]}/disable", data={"csrf_token": token})
        assert r.status_code == 400 and not srv.store.credentials.login_account(account_id=admin[1]).disabled


def test_app_password_create_and_revoke_ends_its_imap_session(srv: ServerThread, admin: tuple[str, str]) -> None:
    user, uid = _account(srv)
    with _client(srv, (admin[0], PASSWORD)) as c:
        token = _basic_token(c)
        r = c.post(f"/admin/accounts/{uid}/app-passwords",
                   data={"csrf_token": token, "name": "phone", "proto_imap": "on"})
        assert r.status_code == 201
        secret = re.search(r'id="new-secret">([a-z0-9-]+)<', r.text).group(1)
        (ap,) = app_passwords.list_for(srv.store, uid)
        assert ap.protocols == frozenset({"imap"})
        with imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30) as m:
            m.login(user, secret)
            assert c.get(f"/admin/accounts/{uid}").text.count(ap.id) >= 2  # listed, and its live session
            r = c.post(f"/admin/accounts/{uid}/app-passwords/{ap.id}/revoke", data={"csrf_token": token})
            assert r.status_code == 303
            with pytest.raises((imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError)):
                m.noop()
                m.noop()
        r = c.post(f"/admin/accounts/{uid}/app-passwords/{ap.id}/revoke", data={"csrf_token": token})
        assert r.status_code == 404


def test_token_listed_and_revoked_ends_its_imap_sessions_and_jmap_refuses_it(srv: ServerThread,
                                                                              admin: tuple[str, str]) -> None:
    """A recorded token logs in over IMAP (XOAUTH2, idling; OAUTHBEARER, busy) and JMAP; the admin lists it and
    revokes it over plain HTTP: both IMAP sessions end with the token's reason, JMAP answers 401, and another
    token of the same account goes on working everywhere."""
    user, uid = _account(srv)
    tokens = srv.runtime.auth.tokens
    doomed = issue_recorded(srv.store, tokens, uid, ["imap", "jmap"], 3600, label="sync script")
    kept = issue_recorded(srv.store, tokens, uid, ["imap", "jmap"], 3600, label="other")
    idle = Raw(srv.imap_port)
    xoauth2 = base64.b64encode(f"user={user}\x01auth=Bearer {doomed.token}\x01\x01".encode()).decode()
    assert idle.cmd("a", f"AUTHENTICATE XOAUTH2 {xoauth2}")[-1].startswith(b"a OK")
    assert idle.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    idle.send(b"i IDLE\r\n")
    assert idle.line().startswith(b"+ ")
    busy = Raw(srv.imap_port)
    bearer = base64.b64encode(f"n,a={user},\x01auth=Bearer {doomed.token}\x01\x01".encode()).decode()
    assert busy.cmd("a", f"AUTHENTICATE OAUTHBEARER {bearer}")[-1].startswith(b"a OK")
    session_url = f"http://127.0.0.1:{srv.jmap_port}/.well-known/jmap"
    for tok in (doomed, kept):
        assert httpx.get(session_url, headers={"Authorization": f"Bearer {tok.token}"}, timeout=30).status_code == 200
    try:
        with _client(srv, (admin[0], PASSWORD)) as c:
            page = c.get(f"/admin/accounts/{uid}").text
            assert doomed.jti in page and "sync script" in page and kept.jti in page
            assert f"/tokens/{doomed.jti}/revoke" in page
            revoke = f"/admin/accounts/{uid}/tokens/{doomed.jti}/revoke"
            assert c.post(revoke).status_code == 403  # no CSRF token
            assert c.post(f"/admin/accounts/{admin[1]}/tokens/{doomed.jti}/revoke",
                          data={"csrf_token": _basic_token(c)}).status_code == 404  # not that account's
            r = c.post(revoke, data={"csrf_token": _basic_token(c)})
            assert r.status_code == 303 and r.headers["location"].endswith("msg=token-revoked")
            reason = b"* BYE [EXPIRED] This access token was revoked"
            idle.sock.settimeout(90)
            line = idle.line()
            while not line.startswith(b"* BYE"):  # (an IDLE session may see other updates first)
                line = idle.line()
            assert line == reason
            busy.send(b"n NOOP\r\n")
            busy.sock.settimeout(90)
            assert busy.line() == reason
            for closed in (idle, busy):  # and the server hangs up
                with pytest.raises(EOFError):
                    closed.line()
            refused = httpx.get(session_url, headers={"Authorization": f"Bearer {doomed.token}"}, timeout=30)
            assert refused.status_code == 401 and "revoked" in refused.headers["www-authenticate"]
            assert httpx.get(session_url, headers={"Authorization": f"Bearer {kept.token}"},
                             timeout=30).status_code == 200
            with pytest.raises(imaplib.IMAP4.error):
                with imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30) as m:
                    m.authenticate("XOAUTH2", lambda _: f"user={user}\x01auth=Bearer {doomed.token}\x01\x01")
            page = c.get(f"/admin/accounts/{uid}").text
            assert "revoked" in page and f"/tokens/{doomed.jti}/revoke" not in page
            assert f"/tokens/{kept.jti}/revoke" in page
            assert c.post(revoke, data={"csrf_token": _basic_token(c)}).status_code == 404  # once is enough
    finally:
        idle.close()
        busy.close()


@pytest.mark.parametrize(("query", "offered", "fact"), [
    ("kind=password", True, "JMAP accepts the account password over HTTP Basic"),
    ("kind=app_password&proto_imap=on", False, "the app password is not granted jmap"),
    ("kind=app_password&proto_imap=on&proto_jmap=on", True, "JMAP accepts app passwords"),
    ("kind=app_password&proto_jmap=on", False, "protocols: jmap"),
    ("kind=token&scope_imap=on&scope_jmap=on", True, "audience covers JMAP"),
    ("kind=token&scope_imap=on", False, "the token&#39;s scope lacks jmap"),
    ("kind=token&scope_jmap=on", False, "refused for IMAP"),
])
def test_jmapaccess_explain(srv: ServerThread, admin: tuple[str, str], query: str, offered: bool,
                            fact: str) -> None:
    _, uid = _account(srv)
    with _client(srv, (admin[0], PASSWORD)) as c:
        r = c.get(f"/admin/jmapaccess?account={uid}&{query}")
    assert r.status_code == 200
    verdict = "JMAPACCESS would be offered" if offered else "JMAPACCESS would not be offered"
    assert verdict in r.text and fact in r.text


def test_jmapaccess_explain_follows_policy_and_account(srv: ServerThread, admin: tuple[str, str]) -> None:
    import dataclasses

    _, uid = _account(srv)
    auth = srv.runtime.auth
    with _client(srv, (admin[0], PASSWORD)) as c:
        before = auth.policy
        auth.policy = dataclasses.replace(before, jmap_accepts_account_password=False)
        try:
            r = c.get(f"/admin/jmapaccess?account={uid}&kind=password")
        finally:
            auth.policy = before
        assert "would not be offered" in r.text and "[auth] jmap_accepts_account_password = false" in r.text
        srv.store.accounts.set_jmap_enabled(uid, False)
        r = c.get(f"/admin/jmapaccess?account={uid}&kind=password")
        assert "would not be offered" in r.text and "jmap_enabled = false" in r.text
