"""Identity/get, /changes, /set (RFC 8621 §6) and the submission capability: real HTTP, both backends."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from janusmail.jmap import push
from tests.jmap.test_front_harness import CORE, MAIL, Jmap, client_for, start_server
from tests.jmap.test_front_push import reader_factory, wait_subscribed  # noqa: F401 - fixture

SUBMISSION = "urn:ietf:params:jmap:submission"
USING = [CORE, MAIL, SUBMISSION]


@pytest.fixture
def server(tmp_path, db_url):  # noqa: ANN001, ANN201
    srv = start_server(tmp_path, db_url)
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


def call(j: Jmap, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    return j.call(method, args, using=USING)


def test_session_advertises_submission_honestly(alice):  # noqa: F811
    session = alice.http.get("/jmap/session").json()
    assert session["capabilities"][SUBMISSION] == {}
    account = session["accounts"][alice.account_id]
    caps = account["accountCapabilities"][SUBMISSION]
    # FUTURERELEASE (RFC 4865 §3) with its two EHLO arguments: the longest hold in seconds and the latest
    # date-time a hold may reach, which is inside what the queue accepts (now + maxDelayedSend) and at most a
    # day behind it (the session changes daily, not per request). tests/jmap/test_email_submission.py holds
    # the queue to both numbers.
    assert set(caps) == {"maxDelayedSend", "submissionExtensions"} and caps["maxDelayedSend"] == 604800
    [(extension, (interval, latest))] = caps["submissionExtensions"].items()
    assert extension == "FUTURERELEASE" and interval == "604800"
    latest_at = dt.datetime.fromisoformat(latest.replace("Z", "+00:00")).timestamp()
    assert time.time() + 604800 - 86400 - 60 <= latest_at <= time.time() + 604800
    assert session["primaryAccounts"][SUBMISSION] == alice.account_id
    # The methods belong to the capability: without it in `using` they are unknown.
    out = alice.request([["Identity/get", {"accountId": alice.account_id}, "c1"]], using=[CORE, MAIL])
    assert out["methodResponses"][0][1]["type"] == "unknownMethod"


def test_every_account_has_its_own_identity(alice, bob):  # noqa: F811
    got = call(alice, "Identity/get", {"ids": None})
    assert got["state"] == "0"
    [own] = got["list"]
    assert own == {"id": own["id"], "name": "", "email": "alice@example.test", "replyTo": None, "bcc": None,
                   "textSignature": "", "htmlSignature": "", "mayDelete": False}
    assert call(bob, "Identity/get", {"ids": [own["id"]]})["notFound"] == [own["id"]]  # alice's, not bob's
    assert call(alice, "Identity/changes", {"sinceState": "0"})["created"] == []
    # It can be renamed and signed, but not deleted.
    patch = {"name": "Alice", "textSignature": "-- \nAlice",
             "email": "alice@example.test", "mayDelete": False}  # the last two unchanged: accepted
    out = call(alice, "Identity/set", {"update": {own["id"]: patch}})
    assert out["updated"] == {own["id"]: None}, out
    ch = call(alice, "Identity/changes", {"sinceState": "0"})
    assert (ch["updated"], ch["newState"]) == ([own["id"]], out["newState"])
    wanted = ["name", "textSignature", "mayDelete"]
    got = call(alice, "Identity/get", {"ids": [own["id"]], "properties": wanted})["list"]
    assert got == [{"id": own["id"], "name": "Alice", "textSignature": "-- \nAlice", "mayDelete": False}]
    out = call(alice, "Identity/set", {"destroy": [own["id"]]})
    assert out["notDestroyed"][own["id"]]["type"] == "forbidden"


def test_create_update_destroy_with_changes(server, alice, bob):  # noqa: F811
    before = call(alice, "Identity/get", {"ids": None})["state"]
    reply_to = [{"name": "Help desk", "email": "desk@example.test"}]
    out = call(alice, "Identity/set", {"create": {
        "mine": {"email": "alice@example.test", "name": "Alice at work", "replyTo": reply_to,
                 "bcc": [{"name": None, "email": "archive@example.test"}], "htmlSignature": "<p>A</p>"},
        "echo": {"email": "alice@example.test", "mayDelete": True},  # a server-set value at what it will be
        "foreign": {"email": "bob@example.test"},
        "nowhere": {"email": "someone@elsewhere.test"},
        "noemail": {"name": "x"},
        "server": {"email": "alice@example.test", "mayDelete": False},
        "id": {"email": "alice@example.test", "id": "Imine"},
    }})
    created = out["created"]["mine"]
    assert created["mayDelete"] is True and created["textSignature"] == ""
    assert "name" not in created  # the client's own value, not echoed
    assert "mayDelete" not in out["created"]["echo"]
    nc = {k: (v["type"], v.get("properties")) for k, v in out["notCreated"].items()}
    assert nc == {
        "foreign": ("forbiddenFrom", None),
        "nowhere": ("forbiddenFrom", None),
        "noemail": ("invalidProperties", ["email"]),
        "server": ("invalidProperties", ["mayDelete"]),
        "id": ("invalidProperties", ["id"]),
    }
    new_id, echo_id = created["id"], out["created"]["echo"]["id"]
    ch = call(alice, "Identity/changes", {"sinceState": before})
    assert (sorted(ch["created"]), ch["updated"], ch["destroyed"]) == (sorted([new_id, echo_id]), [], [])
    got = call(alice, "Identity/get", {"ids": [new_id]})["list"][0]
    assert got["replyTo"] == reply_to and got["bcc"] == [{"name": None, "email": "archive@example.test"}]

    mid = out["newState"]
    out = call(alice, "Identity/set", {"update": {
        new_id: {"name": "Alice (work)", "bcc": None},
        "Inosuchidentity": {"name": "x/y", "replyTo/0": {}},
    }})
    assert out["updated"] == {new_id: None}
    assert out["notUpdated"]["Inosuchidentity"]["type"] == "notFound"
    got = call(alice, "Identity/get", {"ids": [new_id], "properties": ["name", "bcc"]})["list"][0]
    assert (got["name"], got["bcc"]) == ("Alice (work)", None)
    out = call(alice, "Identity/set", {"update": {new_id: {"email": "x@example.test", "mayDelete": False}}})
    assert out["notUpdated"][new_id]["properties"] == ["email", "mayDelete"]
    out = call(alice, "Identity/set", {"update": {new_id: {"replyTo/0/name": "x"}}})
    assert out["notUpdated"][new_id]["type"] == "invalidPatch"
    assert call(bob, "Identity/set", {"update": {new_id: {"name": "mine now"}}}
                )["notUpdated"][new_id]["type"] == "notFound"
    assert call(bob, "Identity/set", {"destroy": [new_id]})["notDestroyed"][new_id]["type"] == "notFound"

    out = call(alice, "Identity/set", {"destroy": [new_id, echo_id]})
    assert sorted(out["destroyed"]) == sorted([new_id, echo_id])
    ch = call(alice, "Identity/changes", {"sinceState": mid})
    assert sorted(ch["destroyed"]) == sorted([new_id, echo_id])
    assert ch["created"] == [] and ch["updated"] == []
    assert call(alice, "Identity/changes", {"sinceState": before})["created"] == []  # created and gone
    assert len(call(alice, "Identity/get", {"ids": None})["list"]) == 1


BAD_VALUES = {
    "n1": ({"name": 7}, ["name"]),
    "n2": ({"name": "two\r\nlines"}, ["name"]),
    "r1": ({"replyTo": {"email": "a@b.test"}}, ["replyTo"]),
    "r2": ({"replyTo": [{"email": "not an address"}]}, ["replyTo/0/email"]),
    "b1": ({"bcc": [{"name": None, "email": "a@b.test", "x": 1}]}, ["bcc/0"]),
    "b2": ({"bcc": [{"name": 5, "email": "a@b.test"}]}, ["bcc/0/name"]),
    "t": ({"textSignature": ["no"]}, ["textSignature"]),
    "h": ({"htmlSignature": "x" * 100_001}, ["htmlSignature"]),
    "u": ({"colour": "red"}, ["colour"]),
}


def test_bad_values_are_invalid_properties(alice):  # noqa: F811
    create = {k: {"email": "alice@example.test", **props} for k, (props, _) in BAD_VALUES.items()}
    out = call(alice, "Identity/set", {"create": create})
    assert not out["created"]
    got = {k: (e["type"], e["properties"]) for k, e in out["notCreated"].items()}
    assert got == {k: ("invalidProperties", bad) for k, (_, bad) in BAD_VALUES.items()}


def test_aliases_allow_more_identities(server, alice, bob):  # noqa: F811
    store = server.store
    assert store.identities.add_alias(alice.account_id, "sales@example.test")
    out = call(alice, "Identity/set", {"create": {"s": {"email": "Sales@Example.test", "name": "Sales"}}})
    made = out["created"]["s"]
    assert made["email"] == "sales@example.test"  # stored as the account's address form
    assert call(bob, "Identity/set", {"create": {"s": {"email": "sales@example.test"}}}
                )["notCreated"]["s"]["type"] == "forbiddenFrom"
    state = call(alice, "Identity/get", {"ids": None})["state"]
    assert store.identities.remove_alias(alice.account_id, "sales@example.test")
    ch = call(alice, "Identity/changes", {"sinceState": state})
    assert ch["destroyed"] == [made["id"]]


def test_push_names_identity_changes(alice, reader_factory):  # noqa: F811
    """RFC 8621 §1.5: push covers every type, Identity included; a stream asking only for it hears it."""
    import orjson

    es = reader_factory(alice, "types=Identity&closeafter=state&ping=0")
    wait_subscribed(alice)
    own = call(alice, "Identity/get", {"ids": None})["list"][0]["id"]
    new_state = call(alice, "Identity/set", {"update": {own: {"name": "Alice"}}})["newState"]
    event, event_id, data = es.next()
    assert event == "state"
    assert orjson.loads(data)["changed"][alice.account_id] == {"Identity": new_state}
    assert event_id.split(".")[push.PUSH_TYPES.index("Identity")] == new_state
