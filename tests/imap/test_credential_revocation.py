"""Sessions end with their credential (README, "Sessions end with their credential"), end to end.

A real server (every listener, on SQLite and on PostgreSQL) with IMAP sessions logged in several ways; the
credential is then revoked, replaced or left to expire *from another process* (the ``janusmail`` CLI), which
is how an operator does it and the hard case: the server hears of it only through the store (a poll of the
credential epoch on SQLite, LISTEN/NOTIFY on PostgreSQL). Sessions using the dead credential get
``* BYE [EXPIRED] <reason>`` at their next command, IDLE ones without sending anything; the others go on; JMAP
refuses the dead credential too. Waits are for the server's answer, with generous socket deadlines.
"""

from __future__ import annotations

import base64
import imaplib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from janusmail.auth import app_passwords
from tests.imap.e2e_util import ADDRESS, PASSWORD, Raw, login, start_server, use_cheap_argon2
from tests.serverutil import ServerThread, janusmail_cmd

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)
DEADLINE = 90.0  # seconds a waiting read may block before the test fails (the promise is "within seconds")
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def srv(tmp_path: Path, db_url: str | None) -> Iterator[ServerThread]:
    # IDLE's periodic re-check is pushed out of reach: only the credential event (SQLite: the watcher's poll
    # of another process's change; PostgreSQL: NOTIFY) or the token's own expiry timer can end an IDLE here.
    s = start_server(tmp_path, db_url, imap__idle_poll_interval=3600.0)
    s.db = db_url  # type: ignore[attr-defined]
    yield s
    s.stop()


def cli(srv: ServerThread, *args: str, input: str | None = None) -> str:
    return janusmail_cmd(srv.config.data_dir, *args, db=srv.db, input=input).stdout  # type: ignore[attr-defined]


def raw_login(srv: ServerThread, secret: str) -> Raw:
    raw = Raw(srv.imap_port)
    assert raw.cmd("a", f'LOGIN {ADDRESS} "{secret}"')[-1].startswith(b"a OK")
    return raw


def raw_bearer(srv: ServerThread, token: str) -> Raw:
    raw = Raw(srv.imap_port)
    ir = base64.b64encode(f"n,a={ADDRESS},\x01auth=Bearer {token}\x01\x01".encode()).decode()
    out = raw.cmd("a", f"AUTHENTICATE OAUTHBEARER {ir}")
    assert out[-1].startswith(b"a OK"), out
    return raw


def start_idle(raw: Raw, select: bool = True) -> None:
    if select:
        assert raw.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+ ")


def expect_bye(raw: Raw, reason: bytes) -> None:
    """The next line is the BYE (an IDLE session may first see other untagged updates), then the server hangs up."""
    raw.sock.settimeout(DEADLINE)
    line = raw.line()
    while not line.startswith(b"* BYE"):
        assert line.startswith(b"* ") and not line.startswith(b"* OK"), line
        line = raw.line()
    assert line == b"* BYE [EXPIRED] " + reason
    with pytest.raises(EOFError):
        raw.line()
    raw.close()


def jmap_status(srv: ServerThread, **auth: object) -> int:
    url = srv.config.session_url
    assert url
    return httpx.get(url, timeout=30, **auth).status_code  # type: ignore[arg-type]


def test_revoked_app_password_ends_its_sessions_and_no_others(srv: ServerThread) -> None:
    _, laptop = app_passwords.create(srv.store, srv.account.id, "laptop", "imap,jmap")
    _, phone = app_passwords.create(srv.store, srv.account.id, "phone", "imap,jmap")
    idle = raw_login(srv, laptop)
    start_idle(idle)
    busy = login(srv, ADDRESS, laptop)
    busy.select("INBOX")
    other_app = login(srv, ADDRESS, phone)
    with_password = login(srv, ADDRESS, PASSWORD)
    assert jmap_status(srv, auth=(ADDRESS, laptop)) == 200

    assert "revoked laptop" in cli(srv, "app-password", "revoke", ADDRESS, "laptop")

    expect_bye(idle, b"This app password was revoked")  # IDLE: told without sending anything
    with pytest.raises(imaplib.IMAP4.abort, match="This app password was revoked"):
        busy.noop()  # the next command of a non-IDLE session, even a harmless NOOP
    # The same fact everywhere: JMAP and new IMAP logins refuse the app password.
    assert jmap_status(srv, auth=(ADDRESS, laptop)) == 401
    with pytest.raises(imaplib.IMAP4.error):
        login(srv, ADDRESS, laptop)
    # Sessions with other credentials of the account go on, JMAPACCESS included.
    for m in (other_app, with_password):
        assert m.noop()[0] == "OK"
        assert "JMAPACCESS" in m.capability()[1][0].decode().split()
    # A token issued and revoked by the CLI (store.tokens): its IDLE session ends, JMAP refuses it (the event
    # that woke the session has refreshed the server's revoked set first), the other sessions go on.
    issued = cli(srv, "token", "issue", ADDRESS, "--label", "script", "--ttl", "1h").splitlines()
    jti, token = issued[0].split()[1], issued[-1]
    assert f"{jti}\tscript\timap,jmap\t" in cli(srv, "token", "list", ADDRESS)
    with_token = raw_bearer(srv, token)
    start_idle(with_token)
    assert jmap_status(srv, headers={"Authorization": f"Bearer {token}"}) == 200
    assert f"revoked {jti}" in cli(srv, "token", "revoke", jti)
    expect_bye(with_token, b"This access token was revoked")
    assert jmap_status(srv, headers={"Authorization": f"Bearer {token}"}) == 401
    for m in (other_app, with_password):
        assert m.noop()[0] == "OK"
        m.logout()


def test_password_change_ends_old_password_sessions_and_jmapaccess(srv: ServerThread) -> None:
    _, app = app_passwords.create(srv.store, srv.account.id, "laptop", "imap,jmap")
    idle = raw_login(srv, PASSWORD)
    start_idle(idle, select=False)  # IDLE in authenticated state too
    old = raw_login(srv, PASSWORD)
    assert "JMAPACCESS" in old.cmd("c", "CAPABILITY")[0].decode().split()
    app_session = login(srv, ADDRESS, app)

    assert "password changed" in cli(srv, "user", "passwd", ADDRESS, "--password", "-", input=NEW_PASSWORD + "\n")

    expect_bye(idle, b"Your password was changed; log in again with the new one")
    # The old-password session never lists JMAPACCESS (nor answers GETJMAPACCESS) again: its next command,
    # whichever it is, ends it.
    old.send(b"d GETJMAPACCESS\r\n")
    expect_bye(old, b"Your password was changed; log in again with the new one")
    assert jmap_status(srv, auth=(ADDRESS, PASSWORD)) == 401
    assert jmap_status(srv, auth=(ADDRESS, NEW_PASSWORD)) == 200
    fresh = raw_login(srv, NEW_PASSWORD)
    assert "JMAPACCESS" in fresh.cmd("c", "CAPABILITY")[0].decode().split()
    assert fresh.cmd("d", "GETJMAPACCESS")[0].startswith(b'* JMAPACCESS "')
    fresh.close()
    # An app password is its own credential: a password change leaves its sessions alone.
    assert app_session.noop()[0] == "OK"
    app_session.logout()


def test_expired_token_ends_its_sessions(srv: ServerThread) -> None:
    tokens = srv.runtime.auth.tokens
    # A token that lives a few seconds; on a machine so busy that it expires before the login completes, try
    # again with a longer life (the test is about what happens *after* expiry, whenever that is).
    ttl = 3
    while True:
        token = tokens.issue(srv.account.id, ["imap", "jmap"], ttl)
        expires_at = time.time() + ttl
        try:
            idle, busy = raw_bearer(srv, token), raw_bearer(srv, token)
            assert "JMAPACCESS" in busy.cmd("c", "CAPABILITY")[0].decode().split()
            start_idle(idle)
            break
        except (AssertionError, EOFError):
            assert ttl < 100, "could not log in with a fresh token"
            ttl *= 3
    expect_bye(idle, b"Your access token expired; log in again with a new one")
    assert time.time() >= expires_at - 1  # not before its time (the server's clock decides, to the second)
    busy.send(b"d NOOP\r\n")
    expect_bye(busy, b"Your access token expired; log in again with a new one")
    assert jmap_status(srv, headers={"Authorization": f"Bearer {token}"}) == 401


def test_deleted_account_sessions_end(srv: ServerThread) -> None:
    idle = raw_login(srv, PASSWORD)
    start_idle(idle)
    m = login(srv)
    m.select("INBOX")
    cli(srv, "user", "delete", ADDRESS, "--yes")
    expect_bye(idle, b"This account no longer exists")
    with pytest.raises(imaplib.IMAP4.abort, match="This account no longer exists"):
        m.noop()
