"""RFC 9698 JMAPACCESS over real sockets: the capability and GETJMAPACCESS follow one predicate (would JMAP
accept the credentials this session used?), for passwords, app passwords, tokens and SCRAM, in IMAP4rev1 and
after ENABLE IMAP4rev2; never before authentication or after a failed login; the draft -04 response codes only
behind their setting."""

from __future__ import annotations

import base64
import imaplib
import re
from collections.abc import Iterator
from pathlib import Path

import imapclient
import pytest
import scramp

from janusmail.auth import app_passwords
from tests.imap.e2e_util import ADDRESS, PASSWORD, Raw, start_server, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[ServerThread]:
    s = start_server(tmp_path / "basic-on")
    yield s
    s.stop()


@pytest.fixture
def srv_nobasic(tmp_path: Path) -> Iterator[ServerThread]:
    s = start_server(tmp_path / "basic-off", auth__jmap_accepts_basic=False)
    yield s
    s.stop()


def caps(line: bytes) -> list[str]:
    m = re.search(rb"CAPABILITY ([^\]]*)", line)
    assert m, line
    return m.group(1).decode().split()


def getjmapaccess(m: imaplib.IMAP4) -> tuple[str, list[bytes]]:
    typ, dat = m._simple_command("GETJMAPACCESS")
    return m._untagged_response(typ, dat, "JMAPACCESS")


def url_of(srv: ServerThread) -> str:
    return srv.config.session_url


def assert_has_jmapaccess(raw: Raw, srv: ServerThread, login_line: bytes) -> None:
    assert login_line.startswith(b"a OK [CAPABILITY ") and "JMAPACCESS" in caps(login_line)
    assert "OBJECTID" in caps(login_line)  # RFC 9698 §3: JMAPACCESS requires OBJECTID
    out = raw.cmd("b", "CAPABILITY")
    assert "JMAPACCESS" in caps(out[0])
    out = raw.cmd("c", "GETJMAPACCESS")
    assert out == [f'* JMAPACCESS "{url_of(srv)}"'.encode(), b"c OK GETJMAPACCESS completed"]
    raw.cmd("d", "ENABLE IMAP4rev2")
    assert "JMAPACCESS" in caps(raw.cmd("e", "CAPABILITY")[0])
    raw.cmd("f", "SELECT INBOX")
    out = raw.cmd("g", "GETJMAPACCESS")  # selected state too
    assert out[0] == f'* JMAPACCESS "{url_of(srv)}"'.encode()


def assert_no_jmapaccess(raw: Raw, login_line: bytes) -> None:
    assert login_line.startswith(b"a OK [CAPABILITY ") and "JMAPACCESS" not in caps(login_line)
    assert b"DEBUGGING" not in login_line
    assert "JMAPACCESS" not in caps(raw.cmd("b", "CAPABILITY")[0])
    assert raw.cmd("c", "GETJMAPACCESS")[-1].startswith(b"c BAD")
    raw.cmd("d", "ENABLE IMAP4rev2")
    assert "JMAPACCESS" not in caps(raw.cmd("e", "CAPABILITY")[0])
    assert raw.cmd("f", "GETJMAPACCESS")[-1].startswith(b"f BAD")


def raw_login(srv: ServerThread, secret: str) -> tuple[Raw, list[bytes]]:
    raw = Raw(srv.imap_port)
    out = raw.cmd("a", f'LOGIN {ADDRESS} "{secret}"')
    return raw, out


# -- before authentication ------------------------------------------------------------------------------------


def test_nothing_before_auth_or_after_failed_login(srv: ServerThread) -> None:
    raw = Raw(srv.imap_port)
    assert b"JMAPACCESS" not in raw.greeting
    assert "JMAPACCESS" not in caps(raw.cmd("a", "CAPABILITY")[0])
    assert raw.cmd("b", "GETJMAPACCESS")[-1].startswith(b"b BAD")
    out = raw.cmd("c", f'LOGIN {ADDRESS} "wrong"')
    assert out == [b"c NO [AUTHENTICATIONFAILED] Authentication failed"]
    assert "JMAPACCESS" not in caps(raw.cmd("d", "CAPABILITY")[0])
    assert raw.cmd("e", "GETJMAPACCESS")[-1].startswith(b"e BAD")
    raw.close()


def test_bare_jmapaccess_command_is_bad(srv: ServerThread) -> None:
    raw, out = raw_login(srv, PASSWORD)
    assert raw.cmd("b", "JMAPACCESS")[-1].startswith(b"b BAD")
    raw.close()


# -- passwords ------------------------------------------------------------------------------------------------


def test_password_with_basic_on(srv: ServerThread) -> None:
    raw, out = raw_login(srv, PASSWORD)
    assert len(out) == 1  # nothing untagged: the capability list is in the tagged OK
    assert_has_jmapaccess(raw, srv, out[-1])
    raw.close()


def test_password_with_basic_off(srv_nobasic: ServerThread) -> None:
    raw, out = raw_login(srv_nobasic, PASSWORD)
    assert len(out) == 1
    assert_no_jmapaccess(raw, out[-1])
    raw.close()


def test_authenticate_plain_tagged_ok_lists_it(srv: ServerThread, srv_nobasic: ServerThread) -> None:
    ir = base64.b64encode(f"\0{ADDRESS}\0{PASSWORD}".encode()).decode()
    for server, expected in ((srv, True), (srv_nobasic, False)):
        raw = Raw(server.imap_port)
        out = raw.cmd("a", f"AUTHENTICATE PLAIN {ir}")
        assert ("JMAPACCESS" in caps(out[-1])) is expected
        raw.close()


def test_scram_counts_as_password(srv: ServerThread, srv_nobasic: ServerThread) -> None:
    for server, expected in ((srv, True), (srv_nobasic, False)):
        client = scramp.ScramClient(["SCRAM-SHA-256"], ADDRESS, PASSWORD)
        m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
        n = {"i": 0}

        def step(challenge: bytes, client: scramp.ScramClient = client, n: dict = n) -> bytes:
            n["i"] += 1
            if n["i"] == 1:
                return client.get_client_first().encode()
            if n["i"] == 2:
                client.set_server_first(challenge.decode())
                return client.get_client_final().encode()
            client.set_server_final(challenge.decode())
            return b""

        typ, data = m.authenticate("SCRAM-SHA-256", step)
        assert typ == "OK"
        assert ("JMAPACCESS" in caps(data[0])) is expected
        typ, dat = getjmapaccess(m) if expected else ("skip", [])
        if expected:
            assert dat == [f'"{url_of(server)}"'.encode()]
        m.logout()


def test_account_with_jmap_disabled_loses_it_at_once(srv: ServerThread) -> None:
    raw, out = raw_login(srv, PASSWORD)
    assert "JMAPACCESS" in caps(out[-1])
    srv.store.accounts.set_jmap_enabled(srv.account.id, False)
    assert "JMAPACCESS" not in caps(raw.cmd("b", "CAPABILITY")[0])  # re-evaluated for every list sent
    assert raw.cmd("c", "GETJMAPACCESS")[-1].startswith(b"c BAD")
    raw.close()


# -- app passwords --------------------------------------------------------------------------------------------


def test_app_password_with_and_without_jmap(srv: ServerThread) -> None:
    ap, both = app_passwords.create(srv.store, srv.account.id, "laptop", ["imap", "jmap"])
    _, imap_only = app_passwords.create(srv.store, srv.account.id, "phone", ["imap"])
    raw, out = raw_login(srv, both)
    assert_has_jmapaccess(raw, srv, out[-1])
    # revoking the app password ends the live session at its next command: it never lists JMAPACCESS again
    app_passwords.revoke(srv.store, srv.account.id, ap.id)
    raw.send(b"h CAPABILITY\r\n")
    assert raw.line() == b"* BYE [EXPIRED] This app password was revoked"
    with pytest.raises(EOFError):
        raw.line()
    raw.close()
    raw, out = raw_login(srv, imap_only)
    assert_no_jmapaccess(raw, out[-1])
    raw.close()


def test_app_password_with_jmap_but_basic_off(srv_nobasic: ServerThread) -> None:
    _, both = app_passwords.create(srv_nobasic.store, srv_nobasic.account.id, "laptop", ["imap", "jmap"])
    raw, out = raw_login(srv_nobasic, both)
    assert_no_jmapaccess(raw, out[-1])
    raw.close()


# -- tokens -------------------------------------------------------------------------------------------------


def test_token_with_and_without_jmap_scope(srv: ServerThread) -> None:
    tokens = srv.runtime.auth.tokens
    for scopes, expected in ((["imap", "jmap"], True), (["imap"], False)):
        token = tokens.issue(srv.account.id, scopes)
        c = imapclient.IMAPClient("127.0.0.1", port=srv.imap_port, ssl=False, timeout=30)
        resp = c.oauthbearer_login(ADDRESS, token)[0]
        assert ("JMAPACCESS" in caps(resp)) is expected
        assert (b"JMAPACCESS" in c.capabilities()) is expected
        if expected:
            untagged = c._raw_command_untagged(b"GETJMAPACCESS", [], response_name="JMAPACCESS", uid=False)
            assert untagged == [f'"{url_of(srv)}"'.encode()]
        c.logout()
        c = imapclient.IMAPClient("127.0.0.1", port=srv.imap_port, ssl=False, timeout=30)
        resp = c.oauth2_login(ADDRESS, token)[0]  # XOAUTH2: same answer
        assert ("JMAPACCESS" in caps(resp)) is expected
        c.logout()


def test_token_with_jmap_scope_but_bearer_off(tmp_path: Path) -> None:
    s = start_server(tmp_path, auth__jmap_accepts_bearer=False)
    try:
        token = s.runtime.auth.tokens.issue(s.account.id, ["imap", "jmap"])
        c = imapclient.IMAPClient("127.0.0.1", port=s.imap_port, ssl=False, timeout=30)
        resp = c.oauthbearer_login(ADDRESS, token)[0]
        assert "JMAPACCESS" not in caps(resp)
        c.logout()
    finally:
        s.stop()


# -- the URL --------------------------------------------------------------------------------------------------


def test_url_is_a_quoted_string_with_escapes(tmp_path: Path) -> None:
    s = start_server(tmp_path)
    try:
        s.runtime.config.public_url = 'https://example.test/.s/[jmap]"q\\b'
        m = imaplib.IMAP4("127.0.0.1", s.imap_port, timeout=30)
        m.login(ADDRESS, PASSWORD)
        typ, dat = getjmapaccess(m)
        assert typ == "OK"
        assert dat == [b'"https://example.test/.s/[jmap]\\"q\\\\b/.well-known/jmap"']
        m.logout()
    finally:
        s.stop()


# -- draft -04 compatibility ----------------------------------------------------------------------------------


def test_draft_codes_off_by_default(srv: ServerThread, srv_nobasic: ServerThread) -> None:
    for server in (srv, srv_nobasic):
        raw, out = raw_login(server, PASSWORD)
        joined = b"\n".join(out)
        assert b"[JMAPACCESS" not in joined and b"DEBUGGING" not in joined
        raw.close()


def test_draft_codes_on_when_predicate_holds(tmp_path: Path) -> None:
    s = start_server(tmp_path, imap__jmapaccess_draft_response_code=True)
    try:
        raw, out = raw_login(s, PASSWORD)
        assert len(out) == 2
        assert out[0].startswith(b"* CAPABILITY IMAP4rev2 ") and "JMAPACCESS" in out[0].decode().split()
        assert out[1] == f'a OK [JMAPACCESS "{url_of(s)}"] Logged in'.encode()
        assert b"DEBUGGING" not in b"".join(out)
        raw.close()
    finally:
        s.stop()


def test_draft_codes_on_when_predicate_fails(tmp_path: Path) -> None:
    s = start_server(tmp_path, imap__jmapaccess_draft_response_code=True, auth__jmap_accepts_basic=False)
    try:
        raw, out = raw_login(s, PASSWORD)
        assert len(out) == 2
        assert re.fullmatch(rb'\* OK \[DEBUGGING "[^"@]+"\] .*', out[0]), out[0]
        assert ADDRESS.encode() not in out[0] and PASSWORD.encode() not in out[0]
        assert out[1].startswith(b"a OK [CAPABILITY ") and "JMAPACCESS" not in caps(out[1])
        assert raw.cmd("b", "GETJMAPACCESS")[-1].startswith(b"b BAD")
        raw.close()
        # a failed login still says nothing
        raw = Raw(s.imap_port)
        out = raw.cmd("a", f'LOGIN {ADDRESS} "wrong"')
        assert out == [b"a NO [AUTHENTICATIONFAILED] Authentication failed"]
        raw.close()
    finally:
        s.stop()
