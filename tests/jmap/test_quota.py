"""JMAP Quota (RFC 9425) over real HTTP, on SQLite and PostgreSQL: the session capability, Quota/get, /changes,
/query and /queryChanges on the limits the administrator set and the usage the store keeps (the numbers IMAP
GETQUOTA reports), and the ``overQuota`` SetError of Email/import and Email/set create (issue 12 item 7)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.jmap.test_front_harness import CORE, MAIL, Jmap, principal, start_shared
from tests.mailgen import simple
from tests.serverutil import ServerThread

QUOTA = "urn:ietf:params:jmap:quota"
USING = [CORE, MAIL, QUOTA]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    """One server per backend for the module; each test's Alice is an account of its own (limits are per
    account)."""
    yield from start_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def alice(server: ServerThread) -> Iterator[Jmap]:
    yield from principal(server, "alice")


def call(j: Jmap, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return j.call(method, args, using=USING)


def test_session_lists_the_quota_capability(alice) -> None:  # noqa: ANN001
    session = alice.http.get("/jmap/session").json()
    assert session["capabilities"][QUOTA] == {}
    assert session["accounts"][alice.account_id]["accountCapabilities"][QUOTA] == {}
    assert session["primaryAccounts"][QUOTA] == alice.account_id
    out = alice.request([["Quota/get", {"accountId": alice.account_id}, "c1"]], using=[CORE, MAIL])
    assert out["methodResponses"][0][1]["type"] == "unknownMethod"  # the methods belong to the capability


def test_get_and_changes_follow_limits_and_usage(server, alice) -> None:  # noqa: ANN001
    store = server.store
    empty = call(alice, "Quota/get", {"ids": None})
    assert empty["list"] == []  # no limit, no Quota (hardLimit is mandatory)
    store.quotas.set_limits(alice.account_id, storage=10**6, messages=50)
    got = call(alice, "Quota/get", {"ids": None})
    assert got["state"] != empty["state"]
    by_id = {q["id"]: q for q in got["list"]}
    assert by_id["storage"] == {"id": "storage", "resourceType": "octets", "used": 0, "hardLimit": 10**6,
                                "scope": "account", "name": "Mail storage", "types": ["Mail"], "warnLimit": None,
                                "softLimit": None, "description": None}
    assert (by_id["messages"]["resourceType"], by_id["messages"]["hardLimit"]) == ("count", 50)
    changes = call(alice, "Quota/changes", {"sinceState": empty["state"]})
    assert sorted(changes["created"]) == ["messages", "storage"] and changes["newState"] == got["state"]
    raw = simple(1)
    alice.deliver(raw)
    later = call(alice, "Quota/get", {"ids": ["storage", "messages", "nope"], "properties": ["used"]})
    assert {q["id"]: q["used"] for q in later["list"]} == {"storage": len(raw), "messages": 1}
    assert later["notFound"] == ["nope"]
    changes = call(alice, "Quota/changes", {"sinceState": got["state"]})
    assert sorted(changes["updated"]) == ["messages", "storage"] and changes["newState"] == later["state"]
    store.quotas.set_limits(alice.account_id, storage=None)
    changes = call(alice, "Quota/changes", {"sinceState": later["state"]})
    assert changes["destroyed"] == ["storage"]


def test_query_and_query_changes(server, alice) -> None:  # noqa: ANN001
    server.store.quotas.set_limits(alice.account_id, storage=10**6, messages=50)
    q = call(alice, "Quota/query", {"filter": {"resourceType": "octets"}})
    assert q["ids"] == ["storage"]
    q = call(alice, "Quota/query", {"filter": {"type": "Mail", "scope": ["account"]}, "calculateTotal": True,
                                    "sort": [{"property": "name", "isAscending": False}]})
    assert q["ids"] == ["storage", "messages"] and q["total"] == 2
    assert call(alice, "Quota/query", {"filter": {"name": "MESSAGES"}})["ids"] == ["messages"]
    assert call(alice, "Quota/query", {"filter": {"nope": 1}})["error"] == "unsupportedFilter"
    assert call(alice, "Quota/query", {"sort": [{"property": "hardLimit"}]})["error"] == "unsupportedSort"
    alice.deliver(simple(2))
    qc = call(alice, "Quota/queryChanges", {"filter": {"type": "Mail"}, "sinceQueryState": q["queryState"]})
    assert sorted(qc["removed"]) == ["messages", "storage"]
    assert sorted((a["id"], a["index"]) for a in qc["added"]) == [("messages", 0), ("storage", 1)]
    assert call(alice, "Quota/queryChanges", {"sinceQueryState": "x"})["error"] == "cannotCalculateChanges"


def test_over_quota_on_import_and_create(server, alice) -> None:  # noqa: ANN001
    store = server.store
    inbox = alice.role("inbox")
    store.quotas.set_limits(alice.account_id, messages=1)
    blobs = [store.blobs.upload(alice.account_id, simple(i), "message/rfc822")[0] for i in (1, 2)]
    out = call(alice, "Email/import", {"emails": {
        f"k{i}": {"blobId": b, "mailboxIds": {inbox: True}} for i, b in enumerate(blobs)}})
    assert list(out["created"]) == ["k0"]  # the first fits, the second would not
    assert out["notCreated"]["k1"]["type"] == "overQuota"
    created = call(alice, "Email/set", {"create": {"c1": {
        "mailboxIds": {inbox: True}, "subject": "hi", "bodyValues": {"b": {"value": "x"}},
        "textBody": [{"partId": "b", "type": "text/plain"}]}}})
    assert created["notCreated"]["c1"]["type"] == "overQuota"
    assert store.quotas.get(alice.account_id).messages_used == 1
    assert len(call(alice, "Email/query", {})["ids"]) == 1


def test_over_quota_on_update_adding_a_mailbox(server, alice) -> None:  # noqa: ANN001
    inbox, archive = alice.role("inbox"), alice.role("archive")
    email_id = alice.deliver(simple(1)).email_id
    server.store.quotas.set_limits(alice.account_id, messages=1)
    out = call(alice, "Email/set", {"update": {email_id: {f"mailboxIds/{archive}": True}}})
    assert out["notUpdated"][email_id]["type"] == "overQuota"
    out = call(alice, "Email/set", {"update": {email_id: {"mailboxIds": {archive: True}}}})  # a move
    assert out["updated"] == {email_id: None}
    assert server.store.quotas.get(alice.account_id).messages_used == 1
    assert inbox != archive
