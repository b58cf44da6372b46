"""Shared helpers for the IMAP session and end-to-end tests (engineer A's): a real server, accounts, a
sans-IO harness for :class:`ImapSession`, and a tiny raw-socket client for exact wire checks."""

from __future__ import annotations

import imaplib
import socket
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import argon2
import pytest

from janusmail.auth import passwords
from janusmail.auth.authenticator import LoginThrottle
from janusmail.auth.factory import build_authenticator
from janusmail.config import Config
from janusmail.imap.session import ImapSession
from janusmail.runtime import Runtime
from janusmail.store.store import Store
from tests.serverutil import ServerThread, make_config

ADDRESS = "alice@example.test"
PASSWORD = "correct horse battery staple"
CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

imaplib.Commands.setdefault("GETJMAPACCESS", ("AUTH", "SELECTED"))
imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))
imaplib.Commands.setdefault("ENABLE", ("AUTH", "SELECTED"))


def use_cheap_argon2() -> Iterator[None]:
    """Real argon2id with tiny parameters; test modules install it as an autouse fixture:
    ``cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)``."""
    prev = passwords.set_hasher(CHEAP)
    yield
    passwords.set_hasher(prev)


def no_delay(auth: Any) -> None:
    """Failed logins answer at once in tests (the real delay is tested separately)."""
    auth.throttle = LoginThrottle(base=0.0, maximum=0.0)


def start_server(tmp: Path, db: str | None = None, **overrides: Any) -> ServerThread:
    srv = ServerThread(make_config(tmp / "data", db, **overrides)).start()
    no_delay(srv.runtime.auth)
    srv.account = srv.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))  # type: ignore[attr-defined]
    srv.address, srv.password = ADDRESS, PASSWORD  # type: ignore[attr-defined] # as a Tenant has them
    return srv


def serve(tmp: Path, db: str | None = None, **overrides: Any) -> Iterator[ServerThread]:
    """Fixture body: a started server with Alice's account, stopped afterwards. Test modules declare
    ``def server(tmp_path): yield from serve(tmp_path)`` (and ``pg_server`` with the ``db_url`` fixture,
    which runs the test on SQLite and on PostgreSQL)."""
    srv = start_server(tmp, db, **overrides)
    try:
        yield srv
    finally:
        srv.stop()


def serve_shared(tmp_path_factory: pytest.TempPathFactory, db: str | None = None,
                 **overrides: Any) -> Iterator[ServerThread]:
    """Module-scoped fixture body: one server for a whole test module (per backend with ``module_db_url``),
    with cheap argon2 for as long as it runs. Starting a server per test cost more than the tests; each test
    takes a :class:`Tenant` (an account of its own) instead, so tests stay independent of each other."""
    prev = passwords.set_hasher(CHEAP)
    try:
        yield from serve(tmp_path_factory.mktemp("shared"), db, **overrides)
    finally:
        passwords.set_hasher(prev)


class Tenant:
    """One test's view of a shared server: everything the server has, but ``account``/``address``/``password``
    are a fresh account's, made for this test (so no test sees another's mail, mailboxes or settings)."""

    def __init__(self, srv: ServerThread, password: str = PASSWORD) -> None:
        self.server = srv
        self.address = f"u{uuid.uuid4().hex[:12]}@example.test"
        self.password = password
        self.account = srv.store.accounts.create(self.address, *passwords.make_credentials(password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)


def login(srv: ServerThread, user: str | None = None, password: str | None = None) -> imaplib.IMAP4:
    """Log in as ``user`` (default: the server's account, or the :class:`Tenant`'s)."""
    m = imaplib.IMAP4("127.0.0.1", srv.imap_port, timeout=30)
    m.login(user or getattr(srv, "address", ADDRESS), password or getattr(srv, "password", PASSWORD))
    return m


def client_tls_context(srv: ServerThread) -> ssl.SSLContext:
    """A client context that trusts the server's generated self-signed certificate."""
    crt = Path(srv.config.data_dir) / "tls" / "selfsigned.crt"
    ctx = ssl.create_default_context(cafile=str(crt))
    ctx.check_hostname = False  # the certificate names localhost and 127.0.0.1; we connect by IP either way
    return ctx


def untagged(m: imaplib.IMAP4, name: str) -> list[bytes]:
    return [d for d in m.untagged_responses.pop(name, []) if d is not None]


class Raw:
    """A line-oriented raw client: send exact bytes, read until the tagged answer."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock: socket.socket = tls.wrap_socket(sock) if tls else sock
        self.buf = b""
        self.greeting = self.line()

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def cmd(self, tag: str, text: str | bytes) -> list[bytes]:
        raw = text.encode() if isinstance(text, str) else text
        self.send(tag.encode() + b" " + raw + b"\r\n")
        return self.until(tag)

    def until(self, tag: str) -> list[bytes]:
        out = []
        while True:
            line = self.line()
            out.append(line)
            if line.startswith(tag.encode() + b" "):
                return out

    def close(self) -> None:
        self.sock.close()


# -- sans-IO harness -----------------------------------------------------------------------------------------


class Harness:
    """Drive an :class:`ImapSession` directly: bytes in, bytes out, no sockets."""

    def __init__(self, rt: Runtime, *, peer: str = "192.0.2.7", tls: bool = False, starttls: bool = False) -> None:
        self.session = ImapSession(rt, peer=peer, tls_active=tls, tls_context=object() if starttls else None)
        self.session.greeting()
        self.greeting = self.session.take_output()

    async def send(self, data: bytes | str) -> bytes:
        raw = data.encode() if isinstance(data, str) else data
        if not raw.endswith(b"\n"):
            raw += b"\r\n"
        await self.session.feed(raw)
        return self.session.take_output()

    async def close(self) -> None:
        await self.session.close()


def make_runtime(tmp: Path, db: str | None = None, **overrides: Any) -> Runtime:
    config: Config = make_config(tmp / "data", db, **overrides)
    store = Store.open(config.data_dir, config.db)
    auth = build_authenticator(config, store)
    no_delay(auth)
    return Runtime(config, store, auth)
