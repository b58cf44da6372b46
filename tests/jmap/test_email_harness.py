"""Shared harness for the Email/SearchSnippet tests (no tests here): the real engine with every JMAP type
registered, a JmapContext per call for a fake principal, on the ``store`` fixture (SQLite and PostgreSQL).
Test modules import the ``h`` fixture from here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from janusmail.jmap.context import JmapContext
from janusmail.jmap.engine import Engine
from janusmail.jmap.types import register_all

CORE = "urn:ietf:params:jmap:core"
MAIL = "urn:ietf:params:jmap:mail"
USING = [CORE, MAIL]


@dataclass(frozen=True)
class Principal:
    account_id: str
    address: str


class Harness:
    """One principal (alice) on a store that also holds bob's account."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.engine = Engine(capabilities=[MAIL])
        register_all(self.engine)
        self.alice = store.accounts.create("alice@example.test", "x")
        self.bob = store.accounts.create("bob@example.test", "x")
        self.account_id = self.alice.id
        self.principal = Principal(self.alice.id, self.alice.address)
        self.boxes = {m.role or m.name: m.id for m in store.mailboxes.list(self.account_id)}
        self.inbox = self.boxes["inbox"]

    def ctx_factory(self, info: Any) -> JmapContext:
        return JmapContext(info, store=self.store, rt=None, principal=self.principal)  # type: ignore[arg-type]

    async def request(self, calls: list[list[Any]], **extra: Any) -> dict[str, Any]:
        return await self.engine.run({"using": USING, "methodCalls": calls, **extra}, self.ctx_factory)

    async def call(self, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One method call (accountId defaults to alice's); an error comes back as {"error": type, ...}."""
        body = {"accountId": self.account_id, **(args or {})}
        out = await self.request([[method, body, "c1"]])
        name, res, _ = out["methodResponses"][0]
        if name == "error":
            return {"error": res["type"], **res}
        assert name == method, out
        return res

    async def ok(self, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        res = await self.call(method, args)
        assert "error" not in res, res
        return res

    async def get(self, ids: list[str], properties: list[str] | None = None, **extra: Any) -> list[dict[str, Any]]:
        args: dict[str, Any] = {"ids": ids, **extra}
        if properties is not None:
            args["properties"] = properties
        return (await self.ok("Email/get", args))["list"]

    async def one(self, email_id: str, properties: list[str] | None = None, **extra: Any) -> dict[str, Any]:
        found = await self.get([email_id], properties, **extra)
        assert len(found) == 1, found
        return found[0]

    async def deliver(self, raw: bytes, mailbox: str | None = None, keywords: tuple[str, ...] = (),
                      received_at: int | None = None) -> Any:
        box = mailbox or self.inbox
        return await self.store.deliver(self.account_id, raw, (box,), keywords, received_at)

    def ingest(self, raw: bytes, mailboxes: tuple[str, ...] | None = None, keywords: tuple[str, ...] = (),
               received_at: int | None = None) -> Any:
        return self.store.emails.ingest(self.account_id, raw, mailboxes or (self.inbox,), keywords, received_at)

    async def query(self, flt: Any = None, sort: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
        args: dict[str, Any] = {**extra}
        if flt is not None:
            args["filter"] = flt
        if sort is not None:
            args["sort"] = sort
        return await self.ok("Email/query", args)

    async def ids(self, flt: Any = None, sort: list[dict[str, Any]] | None = None, **extra: Any) -> list[str]:
        return (await self.query(flt, sort, **extra))["ids"]


@pytest.fixture
def h(store: Any) -> Harness:
    return Harness(store)
