"""The generic /get, /set and /copy over the toy Note type (RFC 8620 §5.1, §5.3, §5.4)."""

from __future__ import annotations

from typing import Any

import pytest

from janusmail.jmap.engine import Limits
from janusmail.jmap.engine.standard import _creation_waves

# -- /get ---------------------------------------------------------------------------------------------


async def test_get_all_with_default_properties(h: Any) -> None:
    ids = await h.create_notes("one", "two", body="hello")
    res = await h.ok("Note/get", {"accountId": "A1", "ids": None})
    assert sorted(r["id"] for r in res["list"]) == sorted(ids)
    assert all("body" not in r and "title" in r for r in res["list"])  # body is not a default property
    assert res["notFound"] == []
    assert res["state"] == str(h.store.account("A1").modseq)
    assert res["accountId"] == "A1"


async def test_get_properties_ids_duplicates_and_not_found(h: Any) -> None:
    (a,) = await h.create_notes("one", body="hello")
    res = await h.ok("Note/get", {"accountId": "A1", "ids": [a, "Nmissing", a], "properties": ["body"]})
    assert res["list"] == [{"id": a, "body": "hello"}]  # id always returned, duplicate once
    assert res["notFound"] == ["Nmissing"]


async def test_get_extra_argument(h: Any) -> None:
    (a,) = await h.create_notes("one", body="hello world")
    res = await h.ok("Note/get", {"accountId": "A1", "ids": [a], "properties": ["body"], "bodyMaxLength": 5})
    assert res["list"][0]["body"] == "hello"
    assert (
        await h.error("Note/get", {"accountId": "A1", "ids": [a], "bodyMaxLength": -1}) == "invalidArguments"
    )


@pytest.mark.parametrize(
    "args",
    [
        {"accountId": "A1", "properties": ["nope"]},
        {"accountId": "A1", "properties": "title"},
        {"accountId": "A1", "ids": "N1"},
        {"accountId": "A1", "ids": ["bad id"]},
        {"accountId": "A1", "unknownArg": 1},
        {"ids": None},
        {"accountId": 5},
        {"accountId": None},
    ],
)
async def test_get_invalid_arguments(h: Any, args: dict[str, Any]) -> None:
    assert await h.error("Note/get", args) == "invalidArguments"


async def test_get_account_errors(h: Any) -> None:
    assert await h.error("Note/get", {"accountId": "Zzz"}) == "accountNotFound"
    assert await h.error("Note/get", {"accountId": "NS"}) == "accountNotSupportedByMethod"
    assert (await h.ok("Note/get", {"accountId": "RO"}))["list"] == []  # reading a read-only account is fine


async def test_get_request_too_large(make_harness: Any) -> None:
    h = make_harness(Limits(max_objects_in_get=2))
    await h.create_notes("a", "b", "c")
    assert await h.error("Note/get", {"accountId": "A1", "ids": ["N1", "N2", "N3"]}) == "requestTooLarge"
    assert await h.error("Note/get", {"accountId": "A1", "ids": None}) == "requestTooLarge"
    assert len((await h.ok("Note/get", {"accountId": "A1", "ids": ["N0001x", "N0002x"]}))["list"]) == 2


async def test_get_by_creation_reference(h: Any) -> None:
    out = await h.request(
        [
            ["Note/set", {"accountId": "A1", "create": {"k1": {"title": "t"}}}, "0"],
            ["Note/get", {"accountId": "A1", "ids": ["#k1", "#nope"], "properties": ["title"]}, "1"],
        ]
    )
    get = out["methodResponses"][1][1]
    assert get["list"] == [{"id": out["methodResponses"][0][1]["created"]["k1"]["id"], "title": "t"}]
    assert get["notFound"] == ["#nope"]


# -- /set: create --------------------------------------------------------------------------------------


async def test_create_returns_server_set_and_defaults(h: Any) -> None:
    res = await h.ok("Note/set", {"accountId": "A1", "create": {"k1": {"title": "t", "body": "abc"}}})
    created = res["created"]["k1"]
    assert set(created) == {"id", "created", "size", "tags", "pinned", "parentId"}
    assert created["size"] == 3 and created["pinned"] is False
    assert created["created"].endswith("Z")
    for key in ("updated", "destroyed", "notCreated", "notUpdated", "notDestroyed"):
        assert res[key] is None
    assert res["oldState"] != res["newState"]
    assert res["newState"] == str(h.store.account("A1").modseq)


@pytest.mark.parametrize(
    ("obj", "error", "properties"),
    [
        ({}, "invalidProperties", ["title"]),
        ({"title": 5}, "invalidProperties", ["title"]),
        ({"title": "t", "tags": {"x": False}}, "invalidProperties", ["tags"]),
        ({"title": "t", "id": "Nx"}, "invalidProperties", ["id"]),  # server-set
        ({"title": "t", "size": 1}, "invalidProperties", ["size"]),
        ({"title": "t", "colour": "red"}, "invalidProperties", ["colour"]),  # unknown
        ({"title": "t", "parentId": "Nnothere"}, "invalidProperties", ["parentId"]),
        ({"title": "t", "body": "x" * 2000}, "tooLarge", None),
        ("not an object", "invalidProperties", None),
    ],
)
async def test_create_errors(h: Any, obj: Any, error: str, properties: list[str] | None) -> None:
    res = await h.ok("Note/set", {"accountId": "A1", "create": {"k1": obj}})
    assert res["created"] is None
    err = res["notCreated"]["k1"]
    assert err["type"] == error
    if properties is not None:
        assert err["properties"] == properties


async def test_over_quota(h: Any) -> None:
    h.notes.quota = 2
    res = await h.ok(
        "Note/set",
        {"accountId": "A1", "create": {"a": {"title": "1"}, "b": {"title": "2"}, "c": {"title": "3"}}},
    )
    assert sorted(res["created"]) == ["a", "b"]
    assert res["notCreated"] == {"c": {"type": "overQuota"}}


async def test_creates_are_ordered_by_their_references(h: Any) -> None:
    # "child" comes first in the map but references "parent", created in the same call.
    res = await h.ok(
        "Note/set",
        {
            "accountId": "A1",
            "create": {"child": {"title": "c", "parentId": "#parent"}, "parent": {"title": "p"}},
        },
    )
    assert res["notCreated"] is None
    parent = res["created"]["parent"]["id"]
    child = h.store.account("A1").records[res["created"]["child"]["id"]]
    assert child["parentId"] == parent


def test_creates_that_do_not_refer_to_each_other_share_a_wave() -> None:
    """A wave is what ``TypeAdapter.create_many`` gets at once (Email's: one store write): each create comes after
    the ones it names, and a create naming one of the current wave starts the next."""
    create = {"child": {"parentId": "#parent"}, "parent": {}, "other": {"x": "#unknown"},
              "grandchild": {"tags": ["#child"]}}
    assert _creation_waves(create) == [["parent"], ["child", "other"], ["grandchild"]]
    assert _creation_waves({"a": {}, "b": {}, "c": {}}) == [["a", "b", "c"]]


async def test_reference_cycle_fails_cleanly(h: Any) -> None:
    res = await h.ok(
        "Note/set",
        {
            "accountId": "A1",
            "create": {"a": {"title": "a", "parentId": "#b"}, "b": {"title": "b", "parentId": "#a"}},
        },
    )
    # Whichever runs first cannot resolve its parent, so the other's parent never exists either.
    assert res["created"] is None
    assert {e["properties"][0] for e in res["notCreated"].values()} == {"parentId"}


async def test_created_ids_across_calls_and_in_response(h: Any) -> None:
    out = await h.request(
        [
            ["Note/set", {"accountId": "A1", "create": {"k1": {"title": "first"}}}, "0"],
            [
                "Note/set",
                {
                    "accountId": "A1",
                    "create": {"k2": {"title": "second", "parentId": "#k1"}},
                    "update": {"#k1": {"title": "renamed"}},
                },
                "1",
            ],
            ["Note/set", {"accountId": "A1", "destroy": ["#k2"]}, "2"],
        ],
        created_ids={"k0": "Nold"},
    )
    r0, r1, r2 = (r[1] for r in out["methodResponses"])
    k1, k2 = r0["created"]["k1"]["id"], r1["created"]["k2"]["id"]
    assert out["createdIds"] == {"k0": "Nold", "k1": k1, "k2": k2}
    assert r1["updated"] == {k1: None}
    assert r2["destroyed"] == [k2]
    assert h.store.account("A1").records[k1]["title"] == "renamed"


# -- /set: update and destroy --------------------------------------------------------------------------


async def test_update_patch_semantics(h: Any) -> None:
    (a,) = await h.create_notes("t", tags={"x": True, "y": True}, body="ab")
    res = await h.ok(
        "Note/set",
        {"accountId": "A1", "update": {a: {"tags/z": True, "tags/x": None, "body": "abcd", "pinned": None}}},
    )
    assert res["updated"] == {a: {"size": 4}}  # the server-set property that changed
    rec = h.store.account("A1").records[a]
    assert rec["tags"] == {"y": True, "z": True} and rec["body"] == "abcd" and rec["pinned"] is False
    res = await h.ok("Note/set", {"accountId": "A1", "update": {a: {"title": "u"}}})
    assert res["updated"] == {a: None}


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ({"tags": {}, "tags/x": True}, "invalidPatch"),
        ({"title/x": "y"}, "invalidPatch"),
        ({"nope/x": 1}, "invalidProperties"),
        ({"colour": "red"}, "invalidProperties"),
        ({"size": 99}, "invalidProperties"),
        ({"title": ""}, "invalidProperties"),
        ("not an object", "invalidPatch"),
    ],
)
async def test_update_errors(h: Any, patch: Any, error: str) -> None:
    (a,) = await h.create_notes("t")
    before = dict(h.store.account("A1").records[a])
    res = await h.ok("Note/set", {"accountId": "A1", "update": {a: patch}})
    assert res["notUpdated"][a]["type"] == error
    assert h.store.account("A1").records[a] == before


async def test_update_server_set_unchanged_is_allowed(h: Any) -> None:
    (a,) = await h.create_notes("t", body="abc")
    res = await h.ok("Note/set", {"accountId": "A1", "update": {a: {"size": 3, "title": "x"}}})
    assert res["updated"] == {a: None}


async def test_update_not_found_will_destroy_and_destroy_errors(h: Any) -> None:
    a, b = await h.create_notes("a", "b")
    (pinned,) = await h.create_notes("p", pinned=True)
    res = await h.ok(
        "Note/set",
        {
            "accountId": "A1",
            "update": {"Nother": {"title": "x"}, a: {"title": "x"}, "#nope": {"title": "y"}},
            "destroy": [a, b, b, pinned, "Nnothere"],
        },
    )
    assert res["notUpdated"] == {
        "Nother": {"type": "notFound"},
        a: {"type": "willDestroy", "description": "the record is destroyed by this same call"},
        "#nope": {"type": "notFound", "description": "no record was created with that creation id"},
    }
    assert res["destroyed"] == [a, b]
    assert res["notDestroyed"][pinned]["type"] == "forbidden"
    assert res["notDestroyed"]["Nnothere"] == {"type": "notFound"}


async def test_if_in_state(h: Any) -> None:
    await h.create_notes("a")
    state = (await h.ok("Note/get", {"accountId": "A1", "ids": []}))["state"]
    assert await h.error(
        "Note/set", {"accountId": "A1", "ifInState": "999", "create": {"k": {"title": "x"}}}
    ) == ("stateMismatch")
    assert len(h.store.account("A1").records) == 1  # nothing changed
    res = await h.ok("Note/set", {"accountId": "A1", "ifInState": state, "create": {"k": {"title": "x"}}})
    assert res["oldState"] == state and res["created"]


async def test_one_set_is_one_state_change(h: Any) -> None:
    old = h.store.account("A1").modseq
    await h.create_notes("a", "b", "c")
    assert h.store.account("A1").modseq == old + 1


async def test_set_request_too_large_and_argument_errors(make_harness: Any) -> None:
    h = make_harness(Limits(max_objects_in_set=2))
    args = {"accountId": "A1", "create": {"a": {"title": "a"}, "b": {"title": "b"}}, "destroy": ["Nx"]}
    assert await h.error("Note/set", args) == "requestTooLarge"
    assert h.store.account("A1").records == {}
    for bad in (
        {"accountId": "A1", "create": []},
        {"accountId": "A1", "create": {"bad key": {"title": "x"}}},
        {"accountId": "A1", "update": {"bad key": {}}},
        {"accountId": "A1", "destroy": "Nx"},
        {"accountId": "A1", "destroy": [1]},
        {"accountId": "A1", "ifInState": 5},
    ):
        assert await h.error("Note/set", bad) == "invalidArguments", bad


async def test_set_read_only_account(h: Any) -> None:
    assert (
        await h.error("Note/set", {"accountId": "RO", "create": {"k": {"title": "x"}}}) == "accountReadOnly"
    )


async def test_unexpected_exception_rolls_back_and_is_server_fail(h: Any, monkeypatch: Any) -> None:
    await h.create_notes("keep")
    before = (h.store.account("A1").modseq, dict(h.store.account("A1").records))
    original = h.notes.create
    calls = 0

    async def flaky(call: Any, creation_id: str, obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("disk on fire")
        return await original(call, creation_id, obj)

    monkeypatch.setattr(h.notes, "create", flaky)
    out = await h.request(
        [["Note/set", {"accountId": "A1", "create": {"a": {"title": "a"}, "b": {"title": "b"}}}, "0"]]
    )
    assert out["methodResponses"] == [["error", {"type": "serverFail"}, "0"]]
    assert "a" not in h.store.account("A1").records
    assert (h.store.account("A1").modseq, h.store.account("A1").records) == before
    assert "createdIds" not in out


async def test_singleton_type(h: Any) -> None:
    res = await h.ok(
        "Prefs/set",
        {
            "accountId": "A1",
            "create": {"k": {"theme": "x"}},
            "update": {"singleton": {"theme": "dark"}},
            "destroy": ["singleton"],
        },
    )
    assert res["notCreated"]["k"]["type"] == "singleton"
    assert res["notDestroyed"]["singleton"]["type"] == "singleton"
    assert res["notUpdated"]["singleton"]["type"] == "willDestroy"
    res = await h.ok("Prefs/set", {"accountId": "A1", "update": {"singleton": {"theme": "dark"}}})
    assert res["updated"] == {"singleton": None}
    assert (await h.ok("Prefs/get", {"accountId": "A1", "ids": None}))["list"] == [
        {"id": "singleton", "theme": "dark"}
    ]


# -- /copy ---------------------------------------------------------------------------------------------


async def test_copy_between_accounts(h: Any) -> None:
    (src,) = await h.create_notes("orig", body="text")
    out = await h.request(
        [
            [
                "Note/copy",
                {"fromAccountId": "A1", "accountId": "A2", "create": {"c1": {"id": src, "title": "copied"}}},
                "0",
            ],
            ["Note/get", {"accountId": "A2", "ids": ["#c1"], "properties": ["title", "body"]}, "1"],
        ],
        created_ids={},
    )
    copy_res, get_res = out["methodResponses"][0][1], out["methodResponses"][1][1]
    new_id = copy_res["created"]["c1"]["id"]
    assert copy_res["fromAccountId"] == "A1" and copy_res["accountId"] == "A2"
    assert copy_res["notCreated"] is None and copy_res["oldState"] != copy_res["newState"]
    assert get_res["list"] == [{"id": new_id, "title": "copied", "body": "text"}]
    assert out["createdIds"] == {"c1": new_id}
    assert src in h.store.account("A1").records  # not destroyed without onSuccessDestroyOriginal


async def test_copy_with_destroy_original_emits_implicit_set(h: Any) -> None:
    a, b = await h.create_notes("a", "b")
    out = await h.request(
        [
            [
                "Note/copy",
                {
                    "fromAccountId": "A1",
                    "accountId": "A2",
                    "onSuccessDestroyOriginal": True,
                    "create": {"c1": {"id": a}, "c2": {"id": "Nnothere"}},
                },
                "0",
            ]
        ]
    )
    (name1, copy_res, id1), (name2, set_res, id2) = out["methodResponses"]
    assert (name1, name2, id1, id2) == ("Note/copy", "Note/set", "0", "0")
    assert copy_res["notCreated"]["c2"]["type"] == "notFound"
    assert set_res["accountId"] == "A1" and set_res["destroyed"] == [a]
    assert b in h.store.account("A1").records and a not in h.store.account("A1").records


async def test_copy_destroy_from_if_in_state_mismatch(h: Any) -> None:
    (a,) = await h.create_notes("a")
    out = await h.request(
        [
            [
                "Note/copy",
                {
                    "fromAccountId": "A1",
                    "accountId": "A2",
                    "onSuccessDestroyOriginal": True,
                    "destroyFromIfInState": "999",
                    "create": {"c1": {"id": a}},
                },
                "0",
            ]
        ]
    )
    assert out["methodResponses"][1] == ["error", {"type": "stateMismatch"}, "0"]
    assert a in h.store.account("A1").records


async def test_copy_already_exists(h: Any) -> None:
    (a,) = await h.create_notes("a")
    first = await h.ok("Note/copy", {"fromAccountId": "A1", "accountId": "A2", "create": {"c1": {"id": a}}})
    again = await h.ok("Note/copy", {"fromAccountId": "A1", "accountId": "A2", "create": {"c1": {"id": a}}})
    assert again["notCreated"]["c1"] == {"type": "alreadyExists", "existingId": first["created"]["c1"]["id"]}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"fromAccountId": "A1", "accountId": "A1", "create": {}}, "invalidArguments"),
        ({"fromAccountId": "Zzz", "accountId": "A2", "create": {}}, "fromAccountNotFound"),
        ({"fromAccountId": "NS", "accountId": "A2", "create": {}}, "fromAccountNotSupportedByMethod"),
        ({"fromAccountId": "A1", "accountId": "RO", "create": {}}, "accountReadOnly"),
        ({"fromAccountId": "A1", "accountId": "A2", "create": {}, "ifFromInState": "999"}, "stateMismatch"),
        ({"fromAccountId": "A1", "accountId": "A2", "create": {}, "ifInState": "999"}, "stateMismatch"),
        ({"fromAccountId": "A1", "accountId": "A2"}, "invalidArguments"),
        ({"accountId": "A2", "create": {}}, "invalidArguments"),
    ],
)
async def test_copy_method_errors(h: Any, args: dict[str, Any], error: str) -> None:
    await h.create_notes("a")
    assert await h.error("Note/copy", args) == error


async def test_copy_record_errors(h: Any) -> None:
    (a,) = await h.create_notes("a")
    res = await h.ok(
        "Note/copy",
        {
            "fromAccountId": "A1",
            "accountId": "A2",
            "create": {"x": {"title": "no id"}, "y": {"id": a, "size": 5}, "z": "nope"},
        },
    )
    assert res["notCreated"]["x"]["properties"] == ["id"]
    assert res["notCreated"]["y"]["properties"] == ["size"]
    assert res["notCreated"]["z"]["type"] == "invalidProperties"
