"""Generic /changes, /query and /queryChanges over the toy Note type (RFC 8620 §5.2, §5.5, §5.6)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janusmail.jmap.engine import Limits
from janusmail.jmap.engine.changes import parse_state

# -- /changes -------------------------------------------------------------------------------------------


async def changes(h: Any, since: str, max_changes: int | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"accountId": "A1", "sinceState": since}
    if max_changes is not None:
        args["maxChanges"] = max_changes
    return await h.ok("Note/changes", args)


async def state(h: Any) -> str:
    return (await h.ok("Note/get", {"accountId": "A1", "ids": []}))["state"]


async def test_changes_created_updated_destroyed(h: Any) -> None:
    a, b, c = await h.create_notes("a", "b", "c")
    s0 = await state(h)
    (d,) = await h.create_notes("d")
    await h.ok("Note/set", {"accountId": "A1", "update": {a: {"title": "A"}}, "destroy": [b]})
    res = await changes(h, s0)
    assert res["oldState"] == s0 and res["newState"] == await state(h)
    assert (res["created"], res["updated"], res["destroyed"]) == ([d], [a], [b])
    assert res["hasMoreChanges"] is False


async def test_changes_folding_within_a_window(h: Any) -> None:
    (a,) = await h.create_notes("a")
    s0 = await state(h)
    (tmp,) = await h.create_notes("tmp")  # created then destroyed: reported nowhere
    (new,) = await h.create_notes("new")  # created then updated: created
    await h.ok("Note/set", {"accountId": "A1", "update": {new: {"title": "x"}, a: {"title": "y"}}})
    await h.ok("Note/set", {"accountId": "A1", "destroy": [tmp, a]})  # a: updated then destroyed
    res = await changes(h, s0)
    assert (res["created"], res["updated"], res["destroyed"]) == ([new], [], [a])


async def test_changes_same_transaction_create_and_update(h: Any) -> None:
    s0 = await state(h)
    res = await h.ok(
        "Note/set", {"accountId": "A1", "create": {"k": {"title": "x"}}, "update": {"#k": {"title": "y"}}}
    )
    new = res["created"]["k"]["id"]
    assert res["updated"] == {new: None}
    assert (await changes(h, s0))["created"] == [new]


async def test_no_changes(h: Any) -> None:
    await h.create_notes("a")
    s = await state(h)
    res = await changes(h, s)
    assert res == {
        "accountId": "A1",
        "oldState": s,
        "newState": s,
        "hasMoreChanges": False,
        "created": [],
        "updated": [],
        "destroyed": [],
    }


async def test_changes_paging_across_transactions(h: Any) -> None:
    s0 = await state(h)
    ids = [(await h.create_notes(f"n{i}"))[0] for i in range(5)]
    pages, since = [], s0
    while True:
        res = await changes(h, since, 2)
        pages.append(res["created"])
        since = res["newState"]
        if not res["hasMoreChanges"]:
            break
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert since == await state(h)
    assert all(":" not in p for p in [since])


async def test_changes_paging_inside_one_transaction(h: Any) -> None:
    s0 = await state(h)
    ids = await h.create_notes(*[f"n{i}" for i in range(5)])  # one modseq, five log rows
    r1 = await changes(h, s0, 2)
    assert r1["created"] == ids[0:2] and r1["hasMoreChanges"] and ":" in r1["newState"]
    r2 = await changes(h, r1["newState"], 2)
    assert r2["created"] == ids[2:4] and r2["hasMoreChanges"]
    r3 = await changes(h, r2["newState"], 2)
    assert r3["created"] == ids[4:5] and not r3["hasMoreChanges"]
    assert r3["newState"] == await state(h)


async def test_changes_page_ending_on_a_transaction_boundary_uses_plain_state(h: Any) -> None:
    s0 = await state(h)
    await h.create_notes("a", "b")
    mid = await state(h)
    await h.create_notes("c")
    res = await changes(h, s0, 2)
    assert res["newState"] == mid and res["hasMoreChanges"]


@pytest.mark.parametrize("max_changes", [0, -1, "5", 1.5])
async def test_changes_bad_max_changes(h: Any, max_changes: Any) -> None:
    err = await h.error("Note/changes", {"accountId": "A1", "sinceState": "0", "maxChanges": max_changes})
    assert err == "invalidArguments"


@pytest.mark.parametrize("since", ["garbage", "-1", "01", "1:0", "99999", "1:x", ""])
async def test_changes_unknown_state(h: Any, since: str) -> None:
    await h.create_notes("a")
    assert await h.error("Note/changes", {"accountId": "A1", "sinceState": since}) == "cannotCalculateChanges"


async def test_changes_pruned_log(h: Any) -> None:
    await h.create_notes("a")
    await h.create_notes("b")
    h.store.account("A1").log_floor = 1
    assert await h.error("Note/changes", {"accountId": "A1", "sinceState": "0"}) == "cannotCalculateChanges"
    assert (await changes(h, "1"))["created"]


async def test_changes_missing_since_state(h: Any) -> None:
    assert await h.error("Note/changes", {"accountId": "A1"}) == "invalidArguments"
    assert await h.error("Note/changes", {"accountId": "A1", "sinceState": None}) == "invalidArguments"


async def test_server_cap_on_max_changes(make_harness: Any) -> None:
    h = make_harness(Limits(max_changes=3))
    await h.create_notes(*"abcde")
    res = await changes(h, "0")
    assert len(res["created"]) == 3 and res["hasMoreChanges"]


def test_parse_state() -> None:
    assert parse_state("0") == (1, 0)
    assert parse_state("42") == (43, 0)
    assert parse_state("43:7") == (43, 7)


# A random history of transactions, then paging through /changes with random maxChanges.
actions = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(1, 3)),
        st.tuples(st.just("update"), st.integers(0, 20)),
        st.tuples(st.just("destroy"), st.integers(0, 20)),
    ),
    min_size=1,
    max_size=4,
)


async def _apply(h: Any, txn: list[tuple[str, int]], serial: list[int]) -> None:
    live = sorted(h.store.account("A1").records)
    create, update, destroy = {}, {}, []
    for kind, n in txn:
        if kind == "create":
            for _ in range(n):
                serial[0] += 1
                create[f"k{serial[0]}"] = {"title": f"t{serial[0]}", "tags": {f"g{serial[0] % 3}": True}}
        elif live:
            target = live[n % len(live)]
            if kind == "update":
                serial[0] += 1
                update[target] = {"title": f"u{serial[0] % 4}", f"tags/g{serial[0] % 3}": True}
            else:
                destroy.append(target)
    await h.ok("Note/set", {"accountId": "A1", "create": create, "update": update, "destroy": destroy})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(actions, max_size=5), st.lists(actions, min_size=1, max_size=6), st.integers(1, 5))
def test_changes_paging_reconstructs_the_server(
    make_harness: Any, before: Any, after: Any, max_changes: int
) -> None:
    async def scenario() -> None:
        h = make_harness()
        serial = [0]
        for txn in before:
            await _apply(h, txn, serial)
        s0 = await state(h)
        snapshot = {k: dict(v) for k, v in h.store.account("A1").records.items()}
        for txn in after:
            await _apply(h, txn, serial)

        known, reported, since = set(snapshot), set(), s0
        for _ in range(200):
            res = await changes(h, since, max_changes)
            assert len(res["created"]) + len(res["updated"]) + len(res["destroyed"]) <= max_changes
            for i in res["created"]:
                assert i not in known  # never "created" after being known
                known.add(i)
            for i in res["updated"] + res["destroyed"]:
                assert i in known
            known.difference_update(res["destroyed"])
            reported.update(res["created"], res["updated"])
            since = res["newState"]
            if not res["hasMoreChanges"]:
                break
        records = h.store.account("A1").records
        assert known == set(records)
        assert since == await state(h)
        stale = {i for i, r in records.items() if snapshot.get(i) != r}
        assert stale <= reported  # everything that changed was reported for re-fetching

    asyncio.run(scenario())


# -- /query ---------------------------------------------------------------------------------------------


async def query(h: Any, **args: Any) -> dict[str, Any]:
    return await h.ok("Note/query", {"accountId": "A1", **args})


async def seed(h: Any) -> list[str]:
    """Five notes created in order; titles sort differently from creation order."""
    ids = []
    for title, tags, pinned in [
        ("delta", {"x": True}, False),
        ("alpha", {}, True),
        ("echo", {"x": True}, False),
        ("Bravo", {"y": True}, False),
        ("charlie", {"x": True, "y": True}, True),
    ]:
        ids += await h.create_notes(title, tags=tags, pinned=pinned)
    return ids


async def test_query_sort_and_default_order(h: Any) -> None:
    d, a, e, b, c = await seed(h)
    assert (await query(h))["ids"] == [d, a, e, b, c]  # no sort: creation order, stable
    assert (await query(h, sort=[{"property": "title"}]))["ids"] == [a, b, c, d, e]
    res = await query(h, sort=[{"property": "title", "isAscending": False, "collation": "i;unicode-casemap"}])
    assert res["ids"] == [e, d, c, b, a]
    assert res["position"] == 0 and res["canCalculateChanges"] is True
    assert res["queryState"] == await state(h)
    assert "total" not in res and res["limit"] == Limits().max_query_limit  # null limit is clamped, reported


async def test_query_filters(h: Any) -> None:
    d, a, e, b, c = await seed(h)
    assert (await query(h, filter={"hasTag": "x"}))["ids"] == [d, e, c]
    assert (await query(h, filter={"hasTag": "x", "pinned": True}))["ids"] == [c]  # conditions AND together
    f = {"operator": "OR", "conditions": [{"hasTag": "y"}, {"pinned": True}]}
    assert (await query(h, filter=f))["ids"] == [a, b, c]
    f = {"operator": "NOT", "conditions": [{"hasTag": "x"}, {"text": "alp"}]}
    assert (await query(h, filter=f))["ids"] == [b]
    f = {
        "operator": "AND",
        "conditions": [{"hasTag": "x"}, {"operator": "NOT", "conditions": [{"pinned": True}]}],
    }
    assert (await query(h, filter=f))["ids"] == [d, e]
    assert (await query(h, filter={"operator": "OR", "conditions": []}))["ids"] == []
    assert (await query(h, filter={"operator": "AND", "conditions": []}))["ids"] == [d, a, e, b, c]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"filter": {"colour": "red"}}, "unsupportedFilter"),
        ({"filter": {"operator": "AND", "conditions": [{"colour": "red"}]}}, "unsupportedFilter"),
        ({"filter": {"operator": "XOR", "conditions": []}}, "invalidArguments"),
        ({"filter": {"operator": "AND"}}, "invalidArguments"),
        ({"filter": {"operator": "AND", "conditions": [], "x": 1}}, "invalidArguments"),
        ({"filter": {"operator": "AND", "conditions": [5]}}, "invalidArguments"),
        ({"filter": {"hasTag": 5}}, "invalidArguments"),
        ({"filter": {"after": "yesterday"}}, "invalidArguments"),
        ({"filter": []}, "invalidArguments"),
        ({"sort": [{"property": "body"}]}, "unsupportedSort"),
        ({"sort": [{"property": "title", "collation": "i;klingon"}]}, "unsupportedSort"),
        ({"sort": [{"property": "title", "isAscending": "yes"}]}, "invalidArguments"),
        ({"sort": [{"isAscending": True}]}, "invalidArguments"),
        ({"sort": {"property": "title"}}, "invalidArguments"),
        ({"limit": -1}, "invalidArguments"),
        ({"position": "0"}, "invalidArguments"),
        ({"anchorOffset": 1.5, "anchor": "N1"}, "invalidArguments"),
        ({"calculateTotal": 1}, "invalidArguments"),
        ({"anchor": "Nnothere"}, "anchorNotFound"),
        ({"anchor": "#nothere"}, "anchorNotFound"),
    ],
)
async def test_query_errors(h: Any, args: dict[str, Any], error: str) -> None:
    await seed(h)
    assert await h.error("Note/query", {"accountId": "A1", **args}) == error


async def test_query_deeply_nested_filter_is_refused(h: Any) -> None:
    f: dict[str, Any] = {"pinned": True}
    for _ in range(100):
        f = {"operator": "NOT", "conditions": [f]}
    assert await h.error("Note/query", {"accountId": "A1", "filter": f}) == "invalidArguments"


async def test_query_position_limit_total(h: Any) -> None:
    ids = await seed(h)
    res = await query(h, position=1, limit=2, calculateTotal=True)
    assert res["ids"] == ids[1:3] and res["position"] == 1 and res["total"] == 5
    assert "limit" not in res  # the client's limit was honoured
    res = await query(h, position=-2)
    assert res["ids"] == ids[3:] and res["position"] == 3
    res = await query(h, position=-99, limit=1)
    assert res["ids"] == ids[:1] and res["position"] == 0
    res = await query(h, position=7, calculateTotal=True)
    assert res["ids"] == [] and res["position"] == 7 and res["total"] == 5  # past the end: not an error
    res = await query(h, limit=0)
    assert res["ids"] == []


async def test_query_limit_clamped(make_harness: Any) -> None:
    h = make_harness(Limits(max_query_limit=3))
    ids = await seed(h)
    res = await query(h, limit=10)
    assert res["ids"] == ids[:3] and res["limit"] == 3
    res = await query(h, limit=2)
    assert "limit" not in res


async def test_query_anchor(h: Any) -> None:
    ids = await seed(h)
    res = await query(h, anchor=ids[2], position=4, limit=2)  # position is ignored with an anchor
    assert res["ids"] == ids[2:4] and res["position"] == 2
    res = await query(h, anchor=ids[2], anchorOffset=-1)
    assert res["ids"] == ids[1:] and res["position"] == 1
    res = await query(h, anchor=ids[1], anchorOffset=-5)  # clamped to 0
    assert res["position"] == 0 and res["ids"] == ids
    res = await query(h, anchor=ids[3], anchorOffset=3)
    assert res["ids"] == [] and res["position"] == 6
    res = await query(h, anchorOffset=3)  # ignored without an anchor
    assert res["position"] == 0
    # The anchor is looked for after filtering: a filtered-out id is not found.
    assert await h.error("Note/query", {"accountId": "A1", "filter": {"hasTag": "y"}, "anchor": ids[0]}) == (
        "anchorNotFound"
    )


async def test_query_anchor_by_creation_reference(h: Any) -> None:
    await seed(h)
    out = await h.request(
        [
            ["Note/set", {"accountId": "A1", "create": {"k": {"title": "zulu"}}}, "0"],
            ["Note/query", {"accountId": "A1", "anchor": "#k", "sort": [{"property": "title"}]}, "1"],
        ]
    )
    assert out["methodResponses"][1][1]["position"] == 5


# -- /queryChanges ----------------------------------------------------------------------------------------


async def query_changes(h: Any, **args: Any) -> dict[str, Any]:
    return await h.ok("Note/queryChanges", {"accountId": "A1", **args})


def apply_query_changes(old: list[str], res: dict[str, Any]) -> list[str]:
    """The client algorithm of RFC 8620 §5.6: drop removed, then insert added by ascending index."""
    removed = set(res["removed"])
    out = [i for i in old if i not in removed]
    for item in res["added"]:
        out.insert(item["index"], item["id"])
    return out


async def test_query_changes_basic(h: Any) -> None:
    d, a, e, b, c = await seed(h)
    sort = [{"property": "title"}]
    first = await query(h, sort=sort)
    (f,) = await h.create_notes("alphabet")
    await h.ok("Note/set", {"accountId": "A1", "destroy": [e]})
    res = await query_changes(h, sort=sort, sinceQueryState=first["queryState"], calculateTotal=True)
    assert res["oldQueryState"] == first["queryState"]
    assert res["newQueryState"] == await state(h)
    assert e in res["removed"]
    assert {"id": f, "index": 1} in res["added"]
    assert res["total"] == 5
    assert apply_query_changes(first["ids"], res) == (await query(h, sort=sort))["ids"]


async def test_query_changes_mutable_sort_moves_items(h: Any) -> None:
    d, a, e, b, c = await seed(h)
    sort = [{"property": "title"}]
    first = await query(h, sort=sort)
    await h.ok("Note/set", {"accountId": "A1", "update": {a: {"title": "zz"}}})
    res = await query_changes(h, sort=sort, sinceQueryState=first["queryState"])
    assert res["removed"] == [a] and res["added"] == [{"id": a, "index": 4}]
    assert apply_query_changes(first["ids"], res) == (await query(h, sort=sort))["ids"]


async def test_query_changes_immutable_sort_with_up_to_id(h: Any) -> None:
    d, a, e, b, c = await seed(h)
    sort = [{"property": "created"}]
    first = await query(h, sort=sort)
    await h.ok("Note/set", {"accountId": "A1", "update": {a: {"title": "zz"}}})  # does not move anything
    x, y = await h.create_notes("x", "y")
    res = await query_changes(h, sort=sort, sinceQueryState=first["queryState"])
    assert res["removed"] == [] and res["added"] == [{"id": x, "index": 5}, {"id": y, "index": 6}]
    res = await query_changes(h, sort=sort, sinceQueryState=first["queryState"], upToId=x)
    assert res["added"] == [{"id": x, "index": 5}]  # beyond upToId is omitted


async def test_query_changes_errors(h: Any) -> None:
    await seed(h)
    first = await query(h)
    await h.create_notes("p", "q")
    args = {"accountId": "A1", "sinceQueryState": first["queryState"]}
    assert await h.error("Note/queryChanges", {**args, "maxChanges": 1}) == "tooManyChanges"
    assert (await query_changes(h, sinceQueryState=first["queryState"], maxChanges=2))["added"]
    assert await h.error("Note/queryChanges", {"accountId": "A1", "sinceQueryState": "junk"}) == (
        "cannotCalculateChanges"
    )
    assert await h.error("Note/queryChanges", {"accountId": "A1"}) == "invalidArguments"
    assert await h.error("Note/queryChanges", {**args, "maxChanges": -1}) == "invalidArguments"
    assert await h.error("Note/queryChanges", {**args, "filter": {"nope": 1}}) == "unsupportedFilter"
    assert await h.error("Note/queryChanges", {**args, "sort": [{"property": "nope"}]}) == "unsupportedSort"
    assert await h.error("Note/queryChanges", {**args, "upToId": "bad id"}) == "invalidArguments"


QUERIES = [
    ({}, True),
    ({"sort": [{"property": "title"}]}, True),
    ({"sort": [{"property": "created", "isAscending": False}]}, True),
    ({"filter": {"hasTag": "g1"}, "sort": [{"property": "title", "isAscending": False}]}, True),
    ({"filter": {"operator": "NOT", "conditions": [{"text": "u1"}]}}, True),
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(actions, max_size=4), st.lists(actions, min_size=1, max_size=5), st.sampled_from(QUERIES))
def test_query_changes_let_the_client_rebuild_the_results(
    make_harness: Any, before: Any, after: Any, q: tuple[dict[str, Any], bool]
) -> None:
    args, _ = q

    async def scenario() -> None:
        h = make_harness()
        serial = [0]
        for txn in before:
            await _apply(h, txn, serial)
        old = await query(h, **args)
        for txn in after:
            await _apply(h, txn, serial)
        res = await query_changes(h, sinceQueryState=old["queryState"], calculateTotal=True, **args)
        new = await query(h, **args, calculateTotal=True)
        assert apply_query_changes(old["ids"], res) == new["ids"]
        assert res["total"] == new["total"]
        assert [a["index"] for a in res["added"]] == sorted(a["index"] for a in res["added"])

    asyncio.run(scenario())
