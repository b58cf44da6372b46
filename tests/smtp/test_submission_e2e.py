"""SMTP submission end to end, on SQLite and PostgreSQL: smtplib over STARTTLS and implicit TLS (a certificate
made by the test, verified by the client), each SASL mechanism through the shared auth (account password, app
passwords with and without ``smtp``, tokens from the server's issuer with and without the ``smtp`` scope), the
sender checks, the size and quota limits, and the whole way out: the message reaches an aiosmtpd sink configured
as ``[outbound] relay`` (without its Bcc field, to every envelope recipient), and JMAP (httpx) shows the
EmailSubmission and the Email filed in Sent. One server per backend for the whole module."""

from __future__ import annotations

import base64
import email
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import scramp

from janusmail.auth import app_passwords
from janusmail.store.notifier import ChangeEvent
from tests.jmap.test_email_submission import Sink
from tests.jmap.test_front_harness import CORE, MAIL, Jmap, client_for
from tests.procmem import wait_for
from tests.serverutil import ServerThread
from tests.smtp.submission_util import (
    ALICE,
    BOB,
    FULL,
    PASSWORD,
    b64,
    bound,
    cheap_argon2,
    make_certificate,
    message,
    module_db,
    oauthbearer,
    start,
    starttls_client,
    tls_client,
    xoauth2,
)

SUBMISSION = "urn:ietf:params:jmap:submission"
USING = [CORE, MAIL, SUBMISSION]
MAX_SIZE = 512 * 1024

_cheap = pytest.fixture(scope="module", autouse=True)(cheap_argon2)


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("cert"), ["localhost", "127.0.0.1"])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sink: Sink,
           cert: tuple[Path, Path]) -> Iterator[ServerThread]:
    for db in module_db(request.param):
        # a small size limit and spool threshold: the big-message cases stay cheap and still go through files
        srv = start(tmp_path_factory.mktemp(request.param), db, cert, lmtp__max_message_size=MAX_SIZE,
                    spool__threshold=16 * 1024, outbound__relay=f"smtp://127.0.0.1:{sink.port}",
                    outbound__retry_base=1)
        srv.store.identities.add_alias(srv.store.accounts.by_address(ALICE).id, "sales@example.test")
        srv.store.quotas.set_limits(srv.store.accounts.by_address(FULL).id, storage=100)
        try:
            yield srv
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def alice_jmap(server: ServerThread) -> Iterator[Jmap]:
    j = client_for(server, ALICE, PASSWORD)
    yield j
    j.http.close()


def _account_id(server: ServerThread, address: str) -> str:
    return server.store.accounts.by_address(address).id


def _sink_got(sink: Sink, subject: str) -> tuple[str, list[str], bytes]:
    def found() -> list[Any]:
        return [m for m in sink.received() if f"Subject: {subject}".encode() in m[2]]

    wait_for(lambda: bool(found()), f"the relay to receive {subject!r}")
    return found()[0]


# -- the whole way: STARTTLS, PLAIN, Bcc, relay, JMAP ---------------------------------------------------------


def test_starttls_plain_relay_and_jmap(server: ServerThread, sink: Sink, alice_jmap: Jmap, backend_tag: str) -> None:
    subject = f"whole way {backend_tag}"
    raw = message(ALICE, ["carol@remote.test"], bcc=["dave@remote.test"], subject=subject)
    alice_id = _account_id(server, ALICE)
    commits: list[ChangeEvent] = []
    server.store.notifier.on_commit.append(commits.append)  # what wakes this process's sender (Outbound)
    try:
        with starttls_client(server, Path(server.config.tls.cert or "")) as c:
            assert "PLAIN" in c.esmtp_features["auth"] and "XOAUTH2" in c.esmtp_features["auth"]
            c.login(ALICE, PASSWORD)  # smtplib picks PLAIN-class mechanisms from the AUTH line
            refused = c.sendmail(ALICE, ["carol@remote.test", "dave@remote.test"], raw)
            assert refused == {}
            # the 250 came after the commit, and ONE commit holds the Sent copy and the submission
            assert any(ev.account_id == alice_id and {"Email", "EmailSubmission"} <= ev.kinds for ev in commits)
    finally:
        server.store.notifier.on_commit.remove(commits.append)
    mail_from, rcpts, data = _sink_got(sink, subject)
    assert mail_from == ALICE and sorted(rcpts) == ["carol@remote.test", "dave@remote.test"]
    assert b"\nBcc:" not in data and b"dave@remote.test" not in data  # the relay's copy has no Bcc field
    # JMAP: one EmailSubmission with the SMTP envelope, its Email in Sent, seen, bytes as received (Bcc kept)
    email_ids = alice_jmap.call("Email/query", {"filter": {"subject": subject}})["ids"]
    assert len(email_ids) == 1
    sub_ids = alice_jmap.call("EmailSubmission/query", {"filter": {"emailIds": email_ids}}, using=USING)["ids"]
    assert len(sub_ids) == 1
    sub = alice_jmap.call("EmailSubmission/get", {"ids": sub_ids}, using=USING)["list"][0]
    assert sub["envelope"]["mailFrom"]["email"] == ALICE
    assert [r["email"] for r in sub["envelope"]["rcptTo"]] == ["carol@remote.test", "dave@remote.test"]
    identities = alice_jmap.call("Identity/get", {"ids": None}, using=USING)["list"]
    assert sub["identityId"] == next(i["id"] for i in identities if i["email"] == ALICE)
    got = alice_jmap.call("Email/get", {"ids": [sub["emailId"]],
                                        "properties": ["mailboxIds", "keywords", "bcc", "blobId"]})["list"][0]
    assert got["mailboxIds"] == {alice_jmap.role("sent"): True} and got["keywords"] == {"$seen": True}
    assert got["bcc"] == [{"name": None, "email": "dave@remote.test"}]

    def delivered() -> bool:
        mine = alice_jmap.call("EmailSubmission/get", {"ids": sub_ids}, using=USING)["list"][0]
        return all(d["delivered"] == "yes" for d in mine["deliveryStatus"].values())

    wait_for(delivered, "deliveryStatus to say delivered")


@pytest.fixture(scope="module")
def backend_tag(server: ServerThread) -> str:
    return "pg" if server.config.db else "sqlite"


def test_implicit_tls_login_to_local_recipient(server: ServerThread, backend_tag: str) -> None:
    subject = f"implicit {backend_tag}"
    with tls_client(server, Path(server.config.tls.cert or "")) as c:
        code, _ = c.docmd("AUTH", "LOGIN")
        assert code == 334
        assert c.docmd(b64(ALICE))[0] == 334
        assert c.docmd(b64(PASSWORD))[0] == 235
        c.sendmail(ALICE, [BOB], message(ALICE, [BOB], subject=subject))
    bob = client_for(server, BOB, PASSWORD)
    try:
        def arrived() -> bool:
            ids = bob.call("Email/query", {"filter": {"subject": subject}})["ids"]
            return bool(ids)
        wait_for(arrived, "bob to receive the message in his Inbox")
    finally:
        bob.http.close()


# -- SASL mechanisms and credentials ------------------------------------------------------------------------


#: Every SASL mechanism the submission server offers after TLS, each proven below with smtplib's own ``auth``.
MECHANISMS = ["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-256"]


def scram_sha256(address: str, password: str) -> Any:
    """smtplib authobject for SCRAM-SHA-256 (RFC 7677): client-first, client-final, then an empty answer to
    the server-final challenge once it proved it knows the password (scramp raises otherwise)."""
    client = scramp.ScramClient(["SCRAM-SHA-256"], address, password)
    steps = iter(["first", "final", "verify"])

    def answer(challenge: bytes | None = None) -> str:
        step = next(steps)
        if step == "first":
            return client.get_client_first()
        if step == "final":
            client.set_server_first((challenge or b"").decode())
            return client.get_client_final()
        client.set_server_final((challenge or b"").decode())
        return ""

    return answer


def test_each_offered_mechanism_submits_through_smtplib(server: ServerThread, sink: Sink, backend_tag: str) -> None:
    """smtplib ``auth()`` with every mechanism EHLO lists (and the list is exactly these), then a message that
    must reach the relay: the mechanism really authenticated a sender, not only answered 235."""
    tokens = server.runtime.auth.tokens
    for mechanism in MECHANISMS:
        subject = f"sasl {mechanism} {backend_tag}"
        with starttls_client(server, Path(server.config.tls.cert or "")) as c:
            assert sorted(c.esmtp_features["auth"].split()) == sorted(MECHANISMS)
            c.user, c.password = ALICE, PASSWORD  # what smtplib's auth_plain / auth_login answer with
            token = tokens.issue(_account_id(server, ALICE), ["smtp"])
            authobject = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login, "XOAUTH2": xoauth2(ALICE, token),
                          "OAUTHBEARER": oauthbearer(ALICE, token),
                          "SCRAM-SHA-256": scram_sha256(ALICE, PASSWORD)}[mechanism]
            assert c.auth(mechanism, authobject)[0] == 235, mechanism
            assert c.sendmail(ALICE, ["carol@remote.test"], message(ALICE, ["carol@remote.test"], subject=subject)
                              ) == {}
        mail_from, rcpts, _ = _sink_got(sink, subject)
        assert (mail_from, rcpts) == (ALICE, ["carol@remote.test"])


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
def test_bearer_tokens(server: ServerThread, mechanism: str) -> None:
    tokens = server.runtime.auth.tokens
    good = tokens.issue(_account_id(server, ALICE), ["smtp"])
    imap_only = tokens.issue(_account_id(server, ALICE), ["imap"])
    make = xoauth2 if mechanism == "XOAUTH2" else oauthbearer
    with starttls_client(server, Path(server.config.tls.cert or "")) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            c.auth(mechanism, make(ALICE, imap_only))
        assert err.value.smtp_code == 535
        assert c.auth(mechanism, make(ALICE, good))[0] == 235
        c.sendmail(ALICE, [BOB], message(ALICE, [BOB], subject=f"token {mechanism}"))


def test_scram_sha256_with_server_final(server: ServerThread) -> None:
    """SCRAM's server-final message comes as a last 334 challenge, answered empty, then 235 (RFC 4954 §4)."""
    client = scramp.ScramClient(["SCRAM-SHA-256"], ALICE, PASSWORD)
    with starttls_client(server, Path(server.config.tls.cert or "")) as c:
        code, text = c.docmd("AUTH", "SCRAM-SHA-256 " + b64(client.get_client_first()))
        assert code == 334
        client.set_server_first(base64.b64decode(text).decode())
        code, text = c.docmd(b64(client.get_client_final()))
        assert code == 334
        client.set_server_final(base64.b64decode(text).decode())  # raises unless the server knew the secret
        assert c.docmd("")[0] == 235
        assert c.mail(ALICE)[0] == 250


def test_app_passwords_need_the_smtp_protocol(server: ServerThread) -> None:
    account = _account_id(server, ALICE)
    _, smtp_secret = app_passwords.create(server.store, account, f"mailer-{server.config.db is None}", ["smtp"])
    _, imap_secret = app_passwords.create(server.store, account, f"reader-{server.config.db is None}", ["imap"])
    with starttls_client(server, Path(server.config.tls.cert or "")) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login(ALICE, imap_secret)
        c.login(ALICE, smtp_secret)
        c.sendmail(ALICE, [BOB], message(ALICE, [BOB], subject="app password"))
        # revoked while the connection is open: the next transaction needs a new AUTH
        assert app_passwords.revoke(server.store, account, f"mailer-{server.config.db is None}")
        code, text = c.mail(ALICE)
        assert code == 530 and b"revoked" in text
        assert c.docmd("RCPT", f"TO:<{BOB}>")[0] == 530
        c.login(ALICE, PASSWORD)
        assert c.mail(ALICE)[0] == 250


def test_wrong_password_and_unknown_mechanism(server: ServerThread) -> None:
    with starttls_client(server, Path(server.config.tls.cert or "")) as c:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            c.login(ALICE, "not the password")
        assert c.docmd("AUTH", "CRAM-MD5")[0] == 504
        assert c.docmd("AUTH", "PLAIN !!!notbase64")[0] == 501
        code, _ = c.docmd("AUTH", "PLAIN")
        assert code == 334
        assert c.docmd("*")[0] == 501  # cancelled
        assert c.mail(ALICE)[0] == 530  # still no AUTH: no mail transaction


# -- sender checks, limits --------------------------------------------------------------------------------------


def test_sender_checks(server: ServerThread) -> None:
    with starttls_client(server, Path(server.config.tls.cert or "")) as c:
        c.login(ALICE, PASSWORD)
        code, text = c.mail(BOB)  # someone else's address as MAIL FROM
        assert code == 553 and b"5.7.1" in text
        c.rset()
        with pytest.raises(smtplib.SMTPDataError) as err:  # envelope fine, From: someone else
            c.sendmail(ALICE, ["carol@remote.test"], message(BOB, ["carol@remote.test"]))
        assert err.value.smtp_code == 550 and b"5.7.1" in err.value.smtp_error
        # an alias the account owns is fine, in the envelope and in From:
        c.sendmail("sales@example.test", [BOB], message("Sales <sales@example.test>", [BOB], subject="alias"))


def test_size_limit_and_big_message(server: ServerThread, alice_jmap: Jmap) -> None:
    with starttls_client(server, Path(server.config.tls.cert or "")) as c:
        c.login(ALICE, PASSWORD)
        assert c.esmtp_features["size"] == str(MAX_SIZE)
        line = "x" * 76 + "\r\n"
        big = message(ALICE, [BOB], subject="too big", body=line * (MAX_SIZE // len(line) + 10))
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:  # announced with SIZE: refused at MAIL
            c.sendmail(ALICE, [BOB], big)
        assert refused.value.smtp_code == 552
        assert c.mail(ALICE)[0] == 250 and c.rcpt(BOB)[0] == 250  # not announced: read, then refused
        code, text = c.data(big)
        assert code == 552 and b"5.3.4" in text
        # well above the spool threshold (a file, mapped for the store) and under the limit: stored intact
        body = "".join(f".{i:06d} " + "y" * 60 + "\r\n" for i in range(4000))  # leading dots: unstuffing
        fine = message(ALICE, [BOB], subject="spooled", body=body)
        c.sendmail(ALICE, [BOB], fine)
    spooler = server.runtime.spooler
    wait_for(lambda: spooler.budget.used == 0 and spooler.gate.used == 0, "the spool budget to be given back")
    ids = alice_jmap.call("Email/query", {"filter": {"subject": "spooled", "inMailbox": alice_jmap.role("sent")}}
                          )["ids"]
    assert len(ids) == 1
    blob = alice_jmap.call("Email/get", {"ids": ids, "properties": ["blobId", "size"]})["list"][0]
    assert blob["size"] == len(fine)
    raw = alice_jmap.http.get(f"/jmap/download/{alice_jmap.account_id}/{blob['blobId']}/m.eml").content
    assert raw == fine
    assert email.message_from_bytes(raw)["Subject"] == "spooled"


def test_over_quota(server: ServerThread) -> None:
    with starttls_client(server, Path(server.config.tls.cert or "")) as c:
        c.login(FULL, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as err:
            c.sendmail(FULL, [BOB], message(FULL, [BOB], subject="over quota"))
        assert err.value.smtp_code == 552 and b"5.2.2" in err.value.smtp_error


def test_plaintext_on_loopback_is_allowed(server: ServerThread) -> None:
    """127.0.0.1 is loopback: the default policy lets local tools authenticate without TLS."""
    host, port = bound(server, "submission")
    with smtplib.SMTP(host, port, timeout=30) as c:
        c.ehlo("client.test")
        assert "starttls" in c.esmtp_features and "PLAIN" in c.esmtp_features["auth"]
        c.login(ALICE, PASSWORD)
        c.sendmail(ALICE, [BOB], message(ALICE, [BOB], subject="loopback plain"))


def test_raw_wire_robustness(server: ServerThread, alice_jmap: Jmap) -> None:
    """Overlong SASL and DATA lines get clear replies and the session goes on; a bare-LF dot never ends DATA
    (SMTP smuggling); the message is stored exactly as sent, dot-unstuffed."""
    host, port = bound(server, "submission")
    with socket.create_connection((host, port), timeout=30) as sock:
        f = sock.makefile("rwb")

        def reply() -> bytes:
            lines = [f.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(f.readline())
            return b"".join(lines)

        def send(data: bytes) -> bytes:
            f.write(data)
            f.flush()
            return reply()

        assert reply().startswith(b"220 ")
        assert send(b"EHLO raw.test\r\n").startswith(b"250")
        assert send(b"AUTH PLAIN\r\n").startswith(b"334 ")
        assert send(b"A" * 20000 + b"\r\n").startswith(b"500 5.5.6")
        assert send(b"NOOP\r\n").startswith(b"250")
        assert send(b"AUTH PLAIN " + b64(f"\0{ALICE}\0{PASSWORD}").encode() + b"\r\n").startswith(b"235")
        assert send(f"MAIL FROM:<{ALICE}>\r\n".encode()).startswith(b"250")
        assert send(f"RCPT TO:<{BOB}>\r\n".encode()).startswith(b"250")
        assert send(b"DATA\r\n").startswith(b"354")
        head = message(ALICE, [BOB], subject="smuggling", body="").rstrip(b"\r\n") + b"\r\n\r\n"
        body = b"first\n.\nMAIL FROM:<x@evil.test>\r\n..dotted\r\n"
        assert send(head + body + b".\r\n").startswith(b"250 2.0.0")
        assert send(b"MAIL FROM:<" + ALICE.encode() + b">\r\n").startswith(b"250")
        assert send(f"RCPT TO:<{BOB}>\r\n".encode()).startswith(b"250")
        assert send(b"DATA\r\n").startswith(b"354")
        long_line = b"z" * 20000 + b"\r\n"
        assert send(head + long_line + b".\r\n").startswith(b"500 5.5.2")
        assert send(b"QUIT\r\n").startswith(b"221")
    ids = alice_jmap.call("Email/query", {"filter": {"subject": "smuggling"}})["ids"]
    assert len(ids) == 1
    blob = alice_jmap.call("Email/get", {"ids": ids, "properties": ["blobId"]})["list"][0]["blobId"]
    raw = alice_jmap.http.get(f"/jmap/download/{alice_jmap.account_id}/{blob}/m.eml").content
    assert raw == head + b"first\n.\nMAIL FROM:<x@evil.test>\r\n.dotted\r\n"
