"""Logging in with real clients over real sockets: passwords, app passwords, tokens, every SASL mechanism,
STARTTLS and implicit TLS, failures and the failed-login delay."""

from __future__ import annotations

import asyncio
import base64
import imaplib
import ssl
import threading
import time
from collections.abc import Iterator

import aioimaplib
import imapclient
import pytest
import scramp

from janusmail.auth import app_passwords
from janusmail.auth.authenticator import LoginThrottle
from tests.imap.e2e_util import (
    ADDRESS,
    PASSWORD,
    Raw,
    Tenant,
    client_tls_context,
    login,
    serve_shared,
    use_cheap_argon2,
)
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


@pytest.fixture
def server(shared_server: ServerThread) -> Tenant:
    return Tenant(shared_server)


@pytest.fixture(scope="module")
def shared_pg_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def pg_server(shared_pg_server: ServerThread) -> Tenant:
    return Tenant(shared_pg_server)


def test_imaplib_password_login(server: Tenant) -> None:
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    assert b"IMAP4rev2" in m.welcome and b"[CAPABILITY" in m.welcome
    typ, data = m.login(server.address, server.password)
    assert typ == "OK" and data[0].startswith(b"[CAPABILITY IMAP4rev2 IMAP4rev1 ")
    typ, data = m.select("INBOX")
    assert typ == "OK"
    m.logout()


def test_login_on_postgres_too(pg_server: Tenant) -> None:
    m = login(pg_server)
    assert m.select("INBOX")[0] == "OK"
    assert m.create("Projects/2026")[0] == "OK"
    assert m.logout()[0] == "BYE"


def test_wrong_password_and_unknown_user(server: Tenant) -> None:
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(server.address, "nope")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("mallory@example.test", server.password)
    m.login(server.address, server.password)  # the same connection can still log in
    m.logout()


def test_failed_login_is_delayed(server: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    """The NO is held for exactly the throttle's verdict: the injected sleep records the delay and holds it
    until the test lets go, and the client has no answer meanwhile (events, no clock)."""
    slept: list[float] = []
    holding, release = threading.Event(), threading.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        holding.set()
        await asyncio.to_thread(release.wait, 30)

    monkeypatch.setattr(server.runtime.auth, "throttle", LoginThrottle(base=0.4, maximum=1.0, sleep=sleep))
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            m.login(server.address, "nope")
            outcome.append(None)
        except imaplib.IMAP4.error as exc:
            outcome.append(exc)

    th = threading.Thread(target=attempt, daemon=True)
    th.start()
    try:
        assert holding.wait(30), "the failed login never reached the throttle's pause"
        assert slept == [0.4]  # the delay is the throttle's verdict for a first failure
        assert outcome == [] and th.is_alive()  # no answer while the pause holds
    finally:
        release.set()
    th.join(30)
    assert len(outcome) == 1 and "AUTHENTICATIONFAILED" in str(outcome[0])
    m.logout()


def test_app_password(server: Tenant) -> None:
    _, secret = app_passwords.create(server.store, server.account.id, "phone", ["imap"])
    m = login(server, server.address, secret)
    assert m.select("INBOX")[0] == "OK"
    m.logout()
    _, jmap_only = app_passwords.create(server.store, server.account.id, "web", ["jmap"])
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        m.login(server.address, jmap_only)
    m.logout()


def test_imapclient_oauthbearer_and_xoauth2(server: Tenant) -> None:
    token = server.runtime.auth.tokens.issue(server.account.id, ["imap"])
    c = imapclient.IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=30)
    c.oauthbearer_login(server.address, token)
    assert c.select_folder("INBOX")[b"EXISTS"] == 0
    c.logout()
    c = imapclient.IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=30)
    c.oauth2_login(server.address, token)
    assert b"INBOX" in [f[2].encode() if isinstance(f[2], str) else f[2] for f in c.list_folders()]
    c.logout()


def test_oauthbearer_failure_json_challenge(server: Tenant) -> None:
    raw = Raw(server.imap_port)
    msg = f"n,a={server.address},\x01auth=Bearer not.a.token\x01\x01".encode()
    raw.send(b"a AUTHENTICATE OAUTHBEARER " + base64.b64encode(msg) + b"\r\n")
    line = raw.line()
    assert line.startswith(b"+ ")
    challenge = base64.b64decode(line[2:])
    assert b'"status"' in challenge and b"openid-configuration" in challenge
    raw.send(base64.b64encode(b"\x01") + b"\r\n")
    assert raw.line().startswith(b"a NO [AUTHENTICATIONFAILED]")
    # a token without the imap scope fails the same way
    token = server.runtime.auth.tokens.issue(server.account.id, ["jmap"])
    msg = f"n,,\x01auth=Bearer {token}\x01\x01".encode()
    raw.send(b"b AUTHENTICATE OAUTHBEARER " + base64.b64encode(msg) + b"\r\n")
    assert raw.line().startswith(b"+ ")
    raw.send(b"AQ==\r\n")
    assert raw.line().startswith(b"b NO")
    raw.close()


def _authenticate(m: imaplib.IMAP4, mech: str, responses: list[bytes]) -> tuple[str, list[bytes], list[bytes]]:
    """imaplib.authenticate with a scripted list of client responses; records the server's challenges."""
    seen: list[bytes] = []
    answers = iter(responses)

    def step(challenge: bytes) -> bytes:
        seen.append(challenge)
        return next(answers)

    typ, data = m.authenticate(mech, step)
    return typ, data, seen


def test_imaplib_authenticate_plain_and_login(server: Tenant) -> None:
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    typ, data, seen = _authenticate(m, "PLAIN", [f"\0{server.address}\0{server.password}".encode()])
    assert typ == "OK" and seen == [b""] and b"[CAPABILITY " in data[0]
    m.logout()
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    typ, data, seen = _authenticate(m, "LOGIN", [server.address.encode(), server.password.encode()])
    assert typ == "OK" and seen == [b"Username:", b"Password:"]
    m.logout()


def test_scram_sha256_with_scramp(server: Tenant) -> None:
    client = scramp.ScramClient(["SCRAM-SHA-256"], server.address, server.password)
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    state = {"n": 0}

    def step(challenge: bytes) -> bytes:
        state["n"] += 1
        if state["n"] == 1:
            return client.get_client_first().encode()
        if state["n"] == 2:
            client.set_server_first(challenge.decode())
            return client.get_client_final().encode()
        client.set_server_final(challenge.decode())  # the server proves it knew the secret
        return b""

    typ, data = m.authenticate("SCRAM-SHA-256", step)
    assert typ == "OK" and state["n"] == 3
    m.logout()
    # a wrong password fails at the proof
    bad = scramp.ScramClient(["SCRAM-SHA-256"], server.address, "wrong")
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    state["n"] = 0

    def bad_step(challenge: bytes) -> bytes:
        state["n"] += 1
        if state["n"] == 1:
            return bad.get_client_first().encode()
        bad.set_server_first(challenge.decode())
        return bad.get_client_final().encode()

    with pytest.raises(imaplib.IMAP4.error):
        m.authenticate("SCRAM-SHA-256", bad_step)
    m.logout()


def test_sasl_ir_plain_raw(server: Tenant) -> None:
    raw = Raw(server.imap_port)
    ir = base64.b64encode(f"\0{server.address}\0{server.password}".encode()).decode()
    out = raw.cmd("a", f"AUTHENTICATE PLAIN {ir}")
    assert out[-1].startswith(b"a OK [CAPABILITY IMAP4rev2")
    raw.close()


def test_starttls_then_login(server: Tenant) -> None:
    m = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    assert "STARTTLS" in m.capabilities
    m.starttls(client_tls_context(server))
    assert "STARTTLS" not in m.capabilities
    m.login(server.address, server.password)
    assert m.select("INBOX")[0] == "OK"
    m.logout()


def test_starttls_discards_injected_plaintext(server: Tenant) -> None:
    raw = Raw(server.imap_port)
    raw.send(b"a STARTTLS\r\nb CAPABILITY\r\n")
    assert raw.line() == b"a OK Begin TLS negotiation now"
    ctx = client_tls_context(server)
    raw.sock = ctx.wrap_socket(raw.sock)
    out = raw.cmd("c", "NOOP")
    assert out == [b"c OK NOOP completed"]  # b CAPABILITY was dropped, not run inside TLS
    assert raw.cmd("d", "STARTTLS")[-1].startswith(b"d BAD")
    raw.close()


def test_implicit_tls(server: Tenant) -> None:
    m = imaplib.IMAP4_SSL("127.0.0.1", server.imaps_port, ssl_context=client_tls_context(server), timeout=30)
    assert "STARTTLS" not in m.capabilities and "AUTH=PLAIN" in m.capabilities
    m.login(server.address, server.password)
    m.logout()
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    c = imapclient.IMAPClient("127.0.0.1", port=server.imaps_port, ssl=True, ssl_context=insecure, timeout=30)
    c.login(server.address, server.password)
    c.logout()


def test_self_signed_certificate_is_reused(server: Tenant) -> None:
    from janusmail.imap import tls

    pem = server.config.data_dir / "tls" / tls.SELF_SIGNED_PEM
    before = pem.read_bytes()
    assert tls.ensure_self_signed(server.config.data_dir) == pem
    assert pem.read_bytes() == before
    assert (pem.stat().st_mode & 0o777) == 0o600


async def test_aioimaplib_session(server: Tenant) -> None:
    client = aioimaplib.IMAP4(host="127.0.0.1", port=server.imap_port, timeout=30)
    await client.wait_hello_from_server()
    resp = await client.login(server.address, server.password)
    assert resp.result == "OK"
    resp = await client.select("INBOX")
    assert resp.result == "OK"
    resp = await client.create("aio/folder")
    assert resp.result == "OK"
    resp = await client.list('""', "*")
    assert any(b"aio/folder" in line for line in resp.lines)
    resp = await client.logout()
    assert resp.result == "OK"
    await asyncio.sleep(0)


def test_connection_cap_per_account(tmp_path) -> None:  # noqa: ANN001
    from tests.imap.e2e_util import start_server

    srv = start_server(tmp_path, imap__max_connections_per_account=2)
    try:
        a, b = login(srv), login(srv)
        m = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30)
        with pytest.raises(imaplib.IMAP4.error, match="LIMIT"):
            m.login(ADDRESS, PASSWORD)
        a.logout()
        # The slot frees when the server has closed a's connection: retry until then (an event, not a nap).
        deadline = time.monotonic() + 30
        while True:
            try:
                m.login(ADDRESS, PASSWORD)
                break
            except imaplib.IMAP4.error as exc:
                assert "LIMIT" in str(exc) and time.monotonic() < deadline, exc
                time.sleep(0.02)
        for c in (b, m):
            c.logout()
    finally:
        srv.stop()


def test_connection_cap_per_ip(tmp_path) -> None:  # noqa: ANN001
    from tests.imap.e2e_util import start_server

    srv = start_server(tmp_path, imap__max_connections_per_ip=2)
    try:
        a, b = Raw(srv.imap_port), Raw(srv.imap_port)
        c = Raw(srv.imap_port)
        assert c.greeting.startswith(b"* BYE")
        for r in (a, b, c):
            r.close()
    finally:
        srv.stop()


def test_login_timeout(tmp_path) -> None:  # noqa: ANN001
    from tests.imap.e2e_util import start_server

    srv = start_server(tmp_path, imap__login_timeout=1)
    try:
        raw = Raw(srv.imap_port)
        raw.sock.settimeout(60)  # the 1 s timer fires on the server's schedule; how late is not the question
        assert raw.line().startswith(b"* BYE Autologout")
        raw.close()
    finally:
        srv.stop()
