"""VacationResponse (RFC 8621 §8) over the real server and httpx: the singleton's /get and /set, its state,
the singleton refusals and the property checks, and the capability in the Session. One server for the module;
each test makes its own account, so the tests need no order."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from janusmail.auth import make_credentials
from janusmail.jmap import push
from tests.jmap.test_front_harness import CORE, MAIL, Jmap, start_server
from tests.jmap.test_front_push import reader_factory, wait_subscribed  # noqa: F401 - fixture
from tests.serverutil import ServerThread

VACATION = "urn:ietf:params:jmap:vacationresponse"
USING = [CORE, MAIL, VACATION]
_serial = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    srv = start_server(tmp_path_factory.mktemp("vacation"))
    yield srv
    srv.stop()


def _account(server: ServerThread) -> Jmap:
    address, password = f"v{next(_serial)}@example.test", "vacation-secret-1"
    h, s = make_credentials(password)
    acct = server.store.accounts.create(address, h, s)
    http = httpx.Client(base_url=server.config.public_url, auth=(address, password), timeout=30)
    return Jmap(server, http, acct.id, address)


@pytest.fixture
def j(server: ServerThread) -> Iterator[Jmap]:
    """A fresh account (its own state, its own singleton) and its client."""
    client = _account(server)
    yield client
    client.http.close()


@pytest.fixture(scope="module")
def untouched(server: ServerThread) -> Iterator[Jmap]:
    """One account for the refusals, which change nothing."""
    client = _account(server)
    yield client
    client.http.close()


def vget(j: Jmap, **args: Any) -> dict[str, Any]:
    return j.call("VacationResponse/get", args, using=USING)


def vset(j: Jmap, **args: Any) -> dict[str, Any]:
    return j.call("VacationResponse/set", args, using=USING)


DEFAULT = {"id": "singleton", "isEnabled": False, "fromDate": None, "toDate": None, "subject": None,
           "textBody": None, "htmlBody": None}


def test_session_lists_the_capability(j: Jmap) -> None:
    session = j.http.get("/jmap/session").json()
    assert session["capabilities"][VACATION] == {}
    assert session["accounts"][j.account_id]["accountCapabilities"][VACATION] == {}
    assert session["primaryAccounts"][VACATION] == j.account_id


def test_get_the_default_singleton(j: Jmap) -> None:
    out = vget(j, ids=None)
    assert out["list"] == [DEFAULT] and out["notFound"] == [] and out["state"] == "0"
    out = vget(j, ids=["singleton", "other"], properties=["isEnabled"])
    assert out["list"] == [{"id": "singleton", "isEnabled": False}] and out["notFound"] == ["other"]
    assert vget(j, ids=["nope"])["list"] == []
    # without the capability the methods do not exist
    assert j.call("VacationResponse/get", {"ids": None}, using=[CORE, MAIL])["error"] == "unknownMethod"


def test_update_moves_the_state_and_persists(j: Jmap) -> None:
    before = vget(j, ids=None)["state"]
    patch = {"isEnabled": True, "fromDate": "2026-01-01T00:00:00Z", "toDate": "2030-01-31T12:30:00Z",
             "subject": "Out of office", "textBody": "Back soon.", "htmlBody": "<p>Back <b>soon</b>.</p>"}
    out = vset(j, ifInState=before, update={"singleton": patch})
    assert out["updated"] == {"singleton": None}, out
    assert out["oldState"] == before and out["newState"] != before
    got = vget(j, ids=["singleton"])
    assert got["state"] == out["newState"]
    assert got["list"] == [{"id": "singleton", **patch}]
    # a partial update keeps the rest; null clears; echoing the id is allowed
    out = vset(j, update={"singleton": {"id": "singleton", "toDate": None, "htmlBody": None}})
    assert out["updated"] == {"singleton": None}
    rec = vget(j, ids=None)["list"][0]
    assert (rec["toDate"], rec["htmlBody"], rec["subject"], rec["isEnabled"]) == (None, None, "Out of office", True)
    # a stale ifInState is refused as a whole
    assert vset(j, ifInState=before, update={"singleton": {"isEnabled": False}})["error"] == "stateMismatch"


def test_singleton_semantics(j: Jmap) -> None:
    state = vget(j, ids=None)["state"]
    out = vset(j, create={"k1": {"isEnabled": True}}, destroy=["singleton"], update={"other": {"isEnabled": True}})
    assert out["notCreated"]["k1"]["type"] == "singleton"
    assert out["notDestroyed"]["singleton"]["type"] == "singleton"
    assert out["notUpdated"]["other"]["type"] == "notFound"
    assert out["newState"] == state  # nothing changed
    assert vget(j, ids=None)["list"] == [DEFAULT]


@pytest.mark.parametrize(("patch", "prop"), [
    ({"isEnabled": "yes"}, "isEnabled"),
    ({"isEnabled": None}, "isEnabled"),
    ({"fromDate": "2026-01-01T00:00:00+01:00"}, "fromDate"),
    ({"toDate": "tomorrow"}, "toDate"),
    ({"subject": 42}, "subject"),
    ({"subject": "two\r\nlines"}, "subject"),
    ({"textBody": ["x"]}, "textBody"),
    ({"htmlBody": "x" * 1_000_001}, "htmlBody"),
    ({"id": "other"}, "id"),
    ({"noSuchProperty": 1}, "noSuchProperty"),
])
def test_invalid_properties(untouched: Jmap, patch: dict[str, Any], prop: str) -> None:
    out = vset(untouched, update={"singleton": patch})
    err = out["notUpdated"]["singleton"]
    assert err["type"] == "invalidProperties" and prop in err["properties"], err
    assert vget(untouched, ids=None)["list"] == [DEFAULT]


def test_patch_inside_a_property_is_refused(j: Jmap) -> None:
    out = vset(j, update={"singleton": {"subject/x": "y"}})
    assert out["notUpdated"]["singleton"]["type"] in ("invalidPatch", "invalidProperties")


def test_push_names_vacation_response_changes(j: Jmap, reader_factory) -> None:  # noqa: ANN001, F811
    """A stream asking only for VacationResponse hears its update, and the event id carries its state."""
    import orjson

    es = reader_factory(j, "types=VacationResponse&closeafter=state&ping=0")
    wait_subscribed(j)
    new_state = vset(j, update={"singleton": {"isEnabled": True}})["newState"]
    event, event_id, data = es.next()
    assert event == "state"
    assert orjson.loads(data)["changed"][j.account_id] == {"VacationResponse": new_state}
    assert event_id.split(".")[push.PUSH_TYPES.index("VacationResponse")] == new_state
