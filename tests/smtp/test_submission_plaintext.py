"""No AUTH and no mail without TLS off loopback. The decision is a function of the policy, the TLS state and the
peer (unit-tested below for every case); end to end, the server listens on a non-loopback address of this
machine (``hostname -I``) and a client connecting to it is a real non-loopback peer: no AUTH offered or
accepted and no MAIL before STARTTLS, everything after. Skipped, with the reason, on a machine without such an
address. Storage plays no part here: SQLite only."""

from __future__ import annotations

import ipaddress
import shutil
import smtplib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from janusmail.auth.policy import AuthPolicy
from janusmail.smtp.submission import plaintext_ok
from tests.serverutil import ServerThread
from tests.smtp.submission_util import (
    ALICE,
    BOB,
    PASSWORD,
    b64,
    bound,
    cheap_argon2,
    client_context,
    make_certificate,
    message,
    start,
)

_cheap = pytest.fixture(scope="module", autouse=True)(cheap_argon2)


@pytest.mark.parametrize(("rule", "tls", "peer", "expected"), [
    ("loopback", True, "192.0.2.7", True),  # TLS: always
    ("loopback", False, "127.0.0.1", True),
    ("loopback", False, "127.8.9.10", True),
    ("loopback", False, "::1", True),
    ("loopback", False, "::ffff:127.0.0.1", True),  # IPv4-mapped loopback
    ("loopback", False, "192.0.2.7", False),
    ("loopback", False, "::ffff:192.0.2.7", False),
    ("loopback", False, "fd00::2", False),
    ("loopback", False, None, False),  # unknown peer: not loopback
    ("loopback", False, "localhost", False),  # a peer is an address, never a name
    ("never", False, "127.0.0.1", False),
    ("never", True, "192.0.2.7", True),
    ("always", False, "192.0.2.7", True),
])
def test_plaintext_decision(rule: str, tls: bool, peer: str | None, expected: bool) -> None:
    assert plaintext_ok(AuthPolicy(smtp_plaintext_without_tls=rule), tls, peer) is expected  # type: ignore[arg-type]


def test_config_sets_the_smtp_policy(tmp_path: Path) -> None:
    """``[submission] plaintext_auth`` and ``[auth] smtp_accepts_*`` reach the one policy every door reads."""
    from janusmail.auth.factory import policy_from_config
    from janusmail.config import load

    (tmp_path / "janusmail.toml").write_text(
        '[submission]\nlisten = "127.0.0.1:0"\nplaintext_auth = "never"\n'
        "[auth]\nsmtp_accepts_account_password = false\n")
    cfg = load(tmp_path)
    cfg.check()
    policy = policy_from_config(cfg)
    assert policy.smtp_plaintext_without_tls == "never" and not policy.allows("password", "smtp")
    assert policy.allows("app_password", "smtp") and policy.allows("password", "imap")
    assert not plaintext_ok(policy, False, "127.0.0.1")
    cfg.submission.plaintext_auth = "sometimes"
    with pytest.raises(ValueError, match="submission.plaintext_auth"):
        cfg.check()


def _non_loopback_ipv4() -> str | None:
    """An IPv4 address of this machine that is not loopback and can be bound, from ``hostname -I``."""
    if shutil.which("hostname") is None:
        return None
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for word in out.split():
        try:
            addr = ipaddress.ip_address(word)
        except ValueError:
            continue
        if addr.version != 4 or addr.is_loopback:
            continue
        with socket.socket() as s:
            try:
                s.bind((word, 0))
            except OSError:
                continue
        return word
    return None


@pytest.fixture(scope="module")
def host() -> str:
    found = _non_loopback_ipv4()
    if found is None:
        pytest.skip("this machine has no non-loopback IPv4 address (hostname -I) to listen on")
    return found


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory, host: str) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("cert"), [host])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, host: str, cert: tuple[Path, Path]) -> Iterator[ServerThread]:
    srv = start(tmp_path_factory.mktemp("data"), None, cert, host=host)
    try:
        yield srv
    finally:
        srv.stop()


def _plain(server: ServerThread) -> smtplib.SMTP:
    host, port = bound(server, "submission")
    c = smtplib.SMTP(host, port, timeout=30, source_address=(host, 0))  # the peer is this non-loopback address
    c.ehlo("client.test")
    return c


def test_nothing_secret_before_starttls(server: ServerThread) -> None:
    with _plain(server) as c:
        assert c.has_extn("starttls")
        assert not c.has_extn("auth")  # no mechanism at all: no mail transaction could follow
        for mechanism in ("PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-256"):
            code, text = c.docmd("AUTH", f"{mechanism} {b64(chr(0) + ALICE + chr(0) + PASSWORD)}")
            assert code == 538 and b"5.7.11" in text, (mechanism, code, text)
        code, text = c.mail(ALICE)
        assert code == 530 and b"STARTTLS" in text
        assert c.docmd("RCPT", f"TO:<{BOB}>")[0] == 530
        assert c.docmd("DATA")[0] == 530


def test_everything_after_starttls(server: ServerThread, cert: tuple[Path, Path]) -> None:
    with _plain(server) as c:
        c.starttls(context=client_context(cert[0]))
        c.ehlo("client.test")
        assert "PLAIN" in c.esmtp_features["auth"]
        c.login(ALICE, PASSWORD)
        assert c.sendmail(ALICE, [BOB], message(ALICE, [BOB], subject="after starttls")) == {}


def test_implicit_tls_off_loopback(server: ServerThread, cert: tuple[Path, Path]) -> None:
    host, port = bound(server, "submissions")
    with smtplib.SMTP_SSL(host, port, timeout=30, context=client_context(cert[0]), source_address=(host, 0)) as c:
        c.ehlo("client.test")
        assert not c.has_extn("starttls") and "XOAUTH2" in c.esmtp_features["auth"]
        c.login(ALICE, PASSWORD)
        c.sendmail(ALICE, [BOB], message(ALICE, [BOB], subject="implicit tls"))
