"""Shared harness for the JMAP front tests (no tests here): a real server on loopback, two accounts, and a
small JMAP client over httpx. Test modules import the fixtures they need from this module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import argon2
import httpx
import pytest

from janusmail.auth import make_credentials, passwords
from tests.serverutil import ServerThread, make_config

CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, MAIL]
PASSWORDS = {"alice@example.test": "alice-secret-1", "bob@example.test": "bob-secret-2"}


@dataclass
class Jmap:
    """One principal's view: an httpx client already authenticated, and its account id."""

    server: ServerThread
    http: httpx.Client
    account_id: str
    address: str

    def request(self, calls: list[list[Any]], using: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        r = self.http.post("/jmap/api", json={"using": using or USING, "methodCalls": calls, **extra})
        assert r.status_code == 200, r.text
        return r.json()

    def call(self, method: str, args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
        """Run one method (accountId defaults to ours) and return its single response's arguments; an
        ``error`` response comes back as ``{"error": type, ...}``."""
        body = {"accountId": self.account_id, **(args or {})}
        responses = self.request([[method, body, "c1"]], **kw)["methodResponses"]
        name, out, call_id = responses[0]
        assert call_id == "c1"
        if name == "error":
            return {"error": out["type"], **out}
        assert name == method, responses
        return out

    def mailboxes(self) -> dict[str, dict[str, Any]]:
        """name -> Mailbox for the top-level and nested mailboxes (names are unique in these tests)."""
        return {m["name"]: m for m in self.call("Mailbox/get", {"ids": None})["list"]}

    def role(self, role: str) -> str:
        return next(m["id"] for m in self.mailboxes().values() if m["role"] == role)

    def deliver(self, raw: bytes, mailbox: str | None = None, **kw: Any) -> Any:
        """Deliver through the store on the server's loop (so the notifier publishes on it)."""
        box = mailbox or self.role("inbox")
        store = self.server.store
        return self.server.run(store.deliver(self.account_id, raw, (box,), **kw))


def start_server(tmp_path: Any, db_url: str | None = None, **overrides: Any) -> ServerThread:
    cfg = make_config(tmp_path / "data", db_url, imap__listen=None, imap__imaps=None, **overrides)
    srv = ServerThread(cfg).start()
    for address, password in PASSWORDS.items():
        h, s = make_credentials(password)
        srv.store.accounts.create(address, h, s)
    return srv


def client_for(srv: ServerThread, address: str, password: str | None = None) -> Jmap:
    http = httpx.Client(base_url=srv.config.public_url, auth=(address, password or PASSWORDS[address]), timeout=30)
    account = srv.store.accounts.by_address(address)
    return Jmap(srv, http, account.id, address)


def start_shared(tmp_path_factory: pytest.TempPathFactory, db_url: str | None = None,
                 **overrides: Any) -> Iterator[ServerThread]:
    """Module-scoped fixture body: one server for a test module (per backend with ``module_db_url``), with
    cheap argon2 parameters while it runs (tests there make an account each: :func:`fresh_client`)."""
    prev = passwords.set_hasher(CHEAP)
    try:
        srv = start_server(tmp_path_factory.mktemp("shared"), db_url, **overrides)
        try:
            yield srv
        finally:
            srv.stop()
    finally:
        passwords.set_hasher(prev)


def principal(srv: ServerThread, name: str) -> Iterator[Jmap]:
    """Fixture body: :func:`fresh_client`, closed afterwards. A module sharing one server declares
    ``server`` with :func:`start_shared` (module scope) and ``alice``/``bob`` with this."""
    j = fresh_client(srv, name)
    try:
        yield j
    finally:
        j.http.close()


def fresh_client(srv: ServerThread, name: str = "user") -> Jmap:
    """A new account with a unique address on ``srv`` and its client: tests sharing one module-scoped server
    each take their own principals, so none sees another's mail, settings or subscriptions."""
    address = f"{name}-{uuid.uuid4().hex[:12]}@example.test"
    password = f"{name}-secret-{uuid.uuid4().hex[:8]}"
    srv.store.accounts.create(address, *make_credentials(password))
    return client_for(srv, address, password)


@pytest.fixture
def server(tmp_path):  # noqa: ANN001, ANN201
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def alice(server) -> Jmap:  # noqa: ANN001
    j = client_for(server, "alice@example.test")
    yield j
    j.http.close()


@pytest.fixture
def bob(server) -> Jmap:  # noqa: ANN001
    j = client_for(server, "bob@example.test")
    yield j
    j.http.close()
