"""Shared parts of the SMTP submission tests: a certificate made here with ``cryptography`` (configured as the
server's ``[tls] cert``, trusted by the clients with full verification), a PostgreSQL schema that lives as long
as a module's server, the accounts, and smtplib helpers."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import smtplib
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from janusmail.auth import passwords
from tests.conftest import PG_BASE, require_pg
from tests.imap.e2e_util import CHEAP, no_delay
from tests.serverutil import ServerThread, free_port, make_config

ALICE = "alice@example.test"
BOB = "bob@example.test"
FULL = "full@example.test"
PASSWORD = "correct horse battery staple"


def make_certificate(directory: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A self-signed server certificate for ``hosts`` (IP addresses or names): (cert PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "janus submission test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def client_context(cert: Path) -> ssl.SSLContext:
    """Full verification (chain and host name) against the test's certificate."""
    return ssl.create_default_context(cafile=str(cert))


def module_db(backend: str) -> Iterator[str | None]:
    """None for SQLite; for PostgreSQL a URL whose search_path is a private schema living as long as the
    module's server (the shared ``pg_url`` fixture is per test)."""
    if backend == "sqlite":
        yield None
        return
    require_pg()
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def start(tmp: Path, db: str | None, cert: tuple[Path, Path], *, host: str = "127.0.0.1", **overrides: Any
          ) -> ServerThread:
    """The whole server with both submission listeners on ``host`` and the accounts of the tests."""
    cfg = make_config(tmp / "data", db, imap__listen=None, imap__imaps=None,
                      submission__listen=f"{host}:{free_port_on(host)}",
                      submission__listen_tls=f"{host}:{free_port_on(host)}",
                      tls__cert=str(cert[0]), tls__key=str(cert[1]), **overrides)
    srv = ServerThread(cfg).start()
    no_delay(srv.runtime.auth)
    for address in (ALICE, BOB, FULL):
        srv.store.accounts.create(address, *passwords.make_credentials(PASSWORD))
    return srv


def cheap_argon2() -> Iterator[None]:
    """Real argon2id with tiny parameters for a whole module (its server outlives any one test):
    ``_cheap = pytest.fixture(scope="module", autouse=True)(cheap_argon2)``."""
    prev = passwords.set_hasher(CHEAP)
    yield
    passwords.set_hasher(prev)


def free_port_on(host: str) -> int:
    if host == "127.0.0.1":
        return free_port()
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def bound(srv: ServerThread, name: str) -> tuple[str, int]:
    host, port = srv.runtime.bound[name]
    return host, port


def starttls_client(srv: ServerThread, cert: Path) -> smtplib.SMTP:
    host, port = bound(srv, "submission")
    c = smtplib.SMTP(host, port, timeout=30)
    c.ehlo("client.test")
    c.starttls(context=client_context(cert))
    c.ehlo("client.test")
    return c


def tls_client(srv: ServerThread, cert: Path) -> smtplib.SMTP_SSL:
    host, port = bound(srv, "submissions")
    c = smtplib.SMTP_SSL(host, port, timeout=30, context=client_context(cert))
    c.ehlo("client.test")
    return c


def message(sender: str, to: list[str], *, bcc: list[str] | None = None, subject: str = "Hello",
            body: str = "Hi there.\r\n") -> bytes:
    head = [f"From: {sender}", f"To: {', '.join(to)}"]
    if bcc:
        head.append(f"Bcc: {', '.join(bcc)}")
    head += [f"Subject: {subject}", f"Message-ID: <{uuid.uuid4().hex}@example.test>",
             "Date: Sun, 06 Dec 2026 08:00:00 +0000", "Content-Type: text/plain; charset=utf-8"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def oauthbearer(address: str, token: str) -> Any:
    """smtplib authobject for OAUTHBEARER (RFC 7628): the client message, then a lone 0x01 after an error."""
    def answer(challenge: bytes | None = None) -> str:
        return "\x01" if challenge else f"n,a={address},\x01auth=Bearer {token}\x01\x01"
    return answer


def xoauth2(address: str, token: str) -> Any:
    def answer(challenge: bytes | None = None) -> str:
        return "" if challenge else f"user={address}\x01auth=Bearer {token}\x01\x01"
    return answer


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
