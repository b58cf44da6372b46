"""Mailbox/get /set /changes /query /queryChanges (RFC 8621 §2) against the real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.jmap.test_front_harness import Jmap, client_for, principal, start_server, start_shared
from tests.mailgen import simple
from tests.serverutil import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server for the module; each test's principals are accounts of its own."""
    yield from start_shared(tmp_path_factory)


@pytest.fixture
def alice(server: ServerThread) -> Iterator[Jmap]:
    yield from principal(server, "alice")


@pytest.fixture
def bob(server: ServerThread) -> Iterator[Jmap]:
    yield from principal(server, "bob")

COUNTS = ["totalEmails", "unreadEmails", "totalThreads", "unreadThreads"]


def _create(j, **boxes) -> dict:  # noqa: ANN001
    out = j.call("Mailbox/set", {"create": boxes})
    assert not out["notCreated"], out["notCreated"]
    return {k: v["id"] for k, v in out["created"].items()}


# -- get ----------------------------------------------------------------------------------------------------


def test_get_defaults(alice):  # noqa: F811
    out = alice.call("Mailbox/get", {"ids": None})
    boxes = {m["name"]: m for m in out["list"]}
    assert set(boxes) == {"INBOX", "Drafts", "Sent", "Archive", "Junk", "Trash"}
    inbox = boxes["INBOX"]
    assert inbox["role"] == "inbox" and inbox["parentId"] is None and inbox["isSubscribed"] is True
    assert all(inbox[c] == 0 for c in COUNTS)
    assert inbox["myRights"]["mayDelete"] is True and len(inbox["myRights"]) == 9
    assert {m["role"] for m in out["list"]} == {"inbox", "drafts", "sent", "archive", "junk", "trash"}
    assert out["state"].isdigit() and out["notFound"] == []


def test_get_properties_and_not_found(alice):  # noqa: F811
    inbox = alice.role("inbox")
    out = alice.call("Mailbox/get", {"ids": [inbox, "Fnope", inbox], "properties": ["name"]})
    assert out["list"] == [{"id": inbox, "name": "INBOX"}]
    assert out["notFound"] == ["Fnope"]
    assert alice.call("Mailbox/get", {"properties": ["nope"]})["error"] == "invalidArguments"


def test_counts_after_delivery(alice):  # noqa: F811
    inbox = alice.role("inbox")
    alice.deliver(simple(1))
    alice.deliver(simple(2, in_reply_to="msg1@example.test", subject="Re: Message number 1"))
    alice.deliver(simple(3), keywords=("$seen",))
    box = alice.call("Mailbox/get", {"ids": [inbox]})["list"][0]
    assert (box["totalEmails"], box["unreadEmails"]) == (3, 2)
    assert (box["totalThreads"], box["unreadThreads"]) == (2, 1)


# -- set ----------------------------------------------------------------------------------------------------


def test_create_rename_move_destroy(alice):  # noqa: F811
    out = alice.call("Mailbox/set", {"create": {
        "p": {"name": "Projects", "sortOrder": 5},
        "c": {"name": "Janus", "parentId": "#p", "isSubscribed": False},
    }})
    created = out["created"]
    assert set(created) == {"p", "c"}
    # Server-set and defaulted properties come back; what the client gave does not need to.
    assert created["p"]["totalEmails"] == 0 and created["p"]["myRights"]["mayRename"] is True
    assert created["p"]["parentId"] is None and created["p"]["role"] is None
    assert "isSubscribed" in created["p"] and "name" not in created["p"]
    assert created["c"]["parentId"] == created["p"]["id"]
    p, c = created["p"]["id"], created["c"]["id"]
    assert out["oldState"] != out["newState"]
    boxes = alice.mailboxes()
    assert boxes["Janus"]["parentId"] == p and boxes["Janus"]["isSubscribed"] is False
    assert boxes["Projects"]["sortOrder"] == 5

    out = alice.call("Mailbox/set", {"update": {c: {"name": "Janus Mail", "parentId": None, "sortOrder": 9}}})
    assert out["updated"] == {c: None}
    boxes = alice.mailboxes()
    assert boxes["Janus Mail"]["id"] == c and boxes["Janus Mail"]["parentId"] is None  # id kept on rename+move

    out = alice.call("Mailbox/set", {"destroy": [p, c]})
    assert sorted(out["destroyed"]) == sorted([p, c])
    assert "Projects" not in alice.mailboxes()


def test_set_errors(alice):  # noqa: F811
    inbox = alice.role("inbox")
    trash = alice.role("trash")
    out = alice.call("Mailbox/set", {"create": {
        "slash": {"name": "a/b"},
        "empty": {"name": ""},
        "noname": {"parentId": None},
        "dup": {"name": "Drafts"},
        "inbox2": {"name": "inbox"},
        "role": {"name": "X", "role": "trash"},
        "badrole": {"name": "Y", "role": "Not-A-Role"},
        "server": {"name": "Z", "totalEmails": 3},
        "unknown": {"name": "W", "colour": "red"},
        "parent": {"name": "V", "parentId": "Fnosuchparent"},
        "ref": {"name": "U", "parentId": "#nothing"},
        "order": {"name": "T", "sortOrder": -1},
        "long": {"name": "x" * 256},
    }})
    errors = {k: (v["type"], v.get("properties")) for k, v in out["notCreated"].items()}
    assert not out["created"]
    assert errors == {
        "slash": ("invalidProperties", ["name"]),
        "empty": ("invalidProperties", ["name"]),
        "noname": ("invalidProperties", ["name"]),
        "dup": ("invalidProperties", ["name"]),
        "inbox2": ("invalidProperties", ["name"]),
        "role": ("invalidProperties", ["role"]),
        "badrole": ("invalidProperties", ["role"]),
        "server": ("invalidProperties", ["totalEmails"]),
        "unknown": ("invalidProperties", ["colour"]),
        "parent": ("invalidProperties", ["parentId"]),
        "ref": ("invalidProperties", ["parentId"]),
        "order": ("invalidProperties", ["sortOrder"]),
        "long": ("invalidProperties", ["name"]),
    }
    ids = _create(alice, a={"name": "A"}, b={"name": "B", "parentId": "#a"})
    out = alice.call("Mailbox/set", {"update": {
        ids["a"]: {"parentId": ids["b"]},  # a loop
        ids["b"]: {"name": "Drafts", "parentId": None},  # sibling clash
        inbox: {"role": None},
        trash: {"role": "inbox"},
        "Fmissing": {"name": "Q"},
    }})
    nu = out["notUpdated"]
    assert (nu[ids["a"]]["type"], nu[ids["a"]]["properties"]) == ("invalidProperties", ["parentId"])
    assert nu[ids["b"]]["properties"] == ["name"]
    assert nu[inbox]["properties"] == ["role"] and nu[trash]["properties"] == ["role"]
    assert nu["Fmissing"]["type"] == "notFound"
    # Server-set properties may be "updated" to their current value only.
    out = alice.call("Mailbox/set", {"update": {ids["a"]: {"totalEmails": 0, "myRights/mayDelete": False}}})
    assert out["notUpdated"][ids["a"]]["type"] == "invalidProperties"
    out = alice.call("Mailbox/set", {"update": {ids["a"]: {"totalEmails": 0, "unreadThreads": 0}}})
    assert out["updated"] == {ids["a"]: None}
    out = alice.call("Mailbox/set", {"update": {ids["a"]: {"totalEmails": 7}}})
    assert out["notUpdated"][ids["a"]]["properties"] == ["totalEmails"]
    # Destroy errors.
    out = alice.call("Mailbox/set", {"destroy": [ids["a"], inbox, "Fmissing"]})
    nd = out["notDestroyed"]
    assert nd[ids["a"]]["type"] == "mailboxHasChild"
    assert nd[inbox]["type"] == "forbidden"
    assert nd["Fmissing"]["type"] == "notFound"
    # ifInState
    out = alice.call("Mailbox/set", {"ifInState": "1", "create": {"x": {"name": "X"}}})
    assert out["error"] == "stateMismatch"
    assert alice.call("Mailbox/set", {"onDestroyRemoveEmails": "yes"})["error"] == "invalidArguments"


def test_role_changes(alice):  # noqa: F811
    ids = _create(alice, a={"name": "Notes"})
    archive = alice.role("archive")
    out = alice.call("Mailbox/set", {"update": {archive: {"role": None}, ids["a"]: {"role": "archive"}}})
    assert not out["notUpdated"]
    boxes = alice.mailboxes()
    assert boxes["Notes"]["role"] == "archive" and boxes["Archive"]["role"] is None


def test_destroy_with_emails(alice):  # noqa: F811
    ids = _create(alice, box={"name": "Stuff"})
    inbox = alice.role("inbox")
    only_here = alice.deliver(simple(1), ids["box"])
    both = alice.server.run(alice.server.store.deliver(alice.account_id, simple(2), (ids["box"], inbox)))
    out = alice.call("Mailbox/set", {"destroy": [ids["box"]]})
    assert out["notDestroyed"][ids["box"]]["type"] == "mailboxHasEmail"
    out = alice.call("Mailbox/set", {"destroy": [ids["box"]], "onDestroyRemoveEmails": True})
    assert out["destroyed"] == [ids["box"]]
    store = alice.server.store
    gone = {e.object_id for e in store.changes.since(alice.account_id, "Email", 0) if e.op == "d"}
    assert only_here.email_id in gone and both.email_id not in gone
    box = alice.call("Mailbox/get", {"ids": [inbox]})["list"][0]
    assert box["totalEmails"] == 1


def test_destroy_subtree_in_one_call(alice):  # noqa: F811
    ids = _create(alice, a={"name": "A"}, b={"name": "B", "parentId": "#a"}, c={"name": "C", "parentId": "#b"})
    out = alice.call("Mailbox/set", {"destroy": [ids["a"], ids["b"], ids["c"]]})
    assert sorted(out["destroyed"]) == sorted(ids.values()) and not out["notDestroyed"]


# -- changes ------------------------------------------------------------------------------------------------


def test_changes(alice):  # noqa: F811
    s0 = alice.call("Mailbox/get", {"ids": []})["state"]
    ids = _create(alice, a={"name": "A"})
    ch = alice.call("Mailbox/changes", {"sinceState": s0})
    assert ch["created"] == [ids["a"]] and ch["updated"] == [] and ch["destroyed"] == []
    assert ch["updatedProperties"] is None and ch["hasMoreChanges"] is False
    s1 = ch["newState"]
    assert s1 == alice.call("Mailbox/get", {"ids": []})["state"]

    alice.call("Mailbox/set", {"update": {ids["a"]: {"name": "A2"}}})
    ch = alice.call("Mailbox/changes", {"sinceState": s1})
    assert ch["updated"] == [ids["a"]] and ch["updatedProperties"] is None
    s2 = ch["newState"]

    # A delivery changes only counts: updatedProperties names them.
    alice.deliver(simple(1), ids["a"])
    ch = alice.call("Mailbox/changes", {"sinceState": s2})
    assert ch["updated"] == [ids["a"]]
    assert sorted(ch["updatedProperties"]) == sorted(COUNTS)
    s3 = ch["newState"]

    # Counts plus a rename in the same window: no longer "only counts".
    alice.deliver(simple(2), ids["a"])
    alice.call("Mailbox/set", {"update": {ids["a"]: {"sortOrder": 3}}})
    ch = alice.call("Mailbox/changes", {"sinceState": s3})
    assert ch["updated"] == [ids["a"]] and ch["updatedProperties"] is None

    alice.call("Mailbox/set", {"destroy": [ids["a"]], "onDestroyRemoveEmails": True})
    ch = alice.call("Mailbox/changes", {"sinceState": s1})
    assert ch["destroyed"] == [ids["a"]] and ch["updated"] == [] and ch["created"] == []
    # Created and destroyed inside the window: not reported at all.
    ch = alice.call("Mailbox/changes", {"sinceState": s0})
    assert ids["a"] not in ch["created"] + ch["updated"] + ch["destroyed"]

    for bad in ["garbage", "999999", "-1"]:
        assert alice.call("Mailbox/changes", {"sinceState": bad})["error"] == "cannotCalculateChanges"
    assert alice.call("Mailbox/changes", {"sinceState": s0, "maxChanges": 0})["error"] == "invalidArguments"


def test_changes_paging(alice):  # noqa: F811
    s0 = alice.call("Mailbox/get", {"ids": []})["state"]
    made = _create(alice, **{f"m{i}": {"name": f"Box {i}"} for i in range(5)})
    seen: list[str] = []
    state = s0
    for _ in range(10):
        ch = alice.call("Mailbox/changes", {"sinceState": state, "maxChanges": 2})
        assert len(ch["created"]) + len(ch["updated"]) + len(ch["destroyed"]) <= 2
        seen += ch["created"]
        state = ch["newState"]
        if not ch["hasMoreChanges"]:
            break
    assert sorted(seen) == sorted(made.values())


# -- query --------------------------------------------------------------------------------------------------


def test_query_filters_and_sorts(alice):  # noqa: F811
    ids = _create(
        alice,
        w={"name": "Work", "sortOrder": 10},
        wa={"name": "alpha", "parentId": "#w", "sortOrder": 2},
        wb={"name": "Beta", "parentId": "#w", "sortOrder": 1, "isSubscribed": False},
        z={"name": "zeta", "sortOrder": 0},
    )
    q = lambda **a: alice.call("Mailbox/query", a)  # noqa: E731
    assert set(q(filter={"parentId": ids["w"]})["ids"]) == {ids["wa"], ids["wb"]}
    assert q(filter={"role": "inbox"})["ids"] == [alice.role("inbox")]
    assert set(q(filter={"hasAnyRole": True})["ids"]) == {
        alice.role(r) for r in ("inbox", "drafts", "sent", "archive", "junk", "trash")}
    assert set(q(filter={"role": None, "parentId": None})["ids"]) == {ids["w"], ids["z"]}
    assert set(q(filter={"name": "ETA"})["ids"]) == {ids["wb"], ids["z"]}  # substring, case-insensitive
    assert q(filter={"isSubscribed": False})["ids"] == [ids["wb"]]
    assert set(q(filter={"operator": "NOT", "conditions": [{"hasAnyRole": True}]})["ids"]) == set(ids.values())
    mine = {"operator": "AND", "conditions": [{"hasAnyRole": False}]}
    assert q(filter=mine, sort=[{"property": "name"}])["ids"] == [ids["wa"], ids["wb"], ids["w"], ids["z"]]
    assert q(filter=mine, sort=[{"property": "name", "collation": "i;octet"}])["ids"] == [
        ids["wb"], ids["w"], ids["wa"], ids["z"]]
    assert q(filter=mine, sort=[{"property": "name", "isAscending": False}])["ids"] == [
        ids["z"], ids["w"], ids["wb"], ids["wa"]]
    assert q(filter=mine, sort=[{"property": "sortOrder"}, {"property": "name"}])["ids"] == [
        ids["z"], ids["wb"], ids["wa"], ids["w"]]
    # sortAsTree: parents before their children, siblings sorted.
    tree = q(filter=mine, sort=[{"property": "name"}], sortAsTree=True)["ids"]
    assert tree == [ids["w"], ids["wa"], ids["wb"], ids["z"]]
    # filterAsTree: a match whose parent does not match is dropped.
    out = q(filter={"hasAnyRole": False, "isSubscribed": True}, filterAsTree=True, sort=[{"property": "name"}])
    assert out["ids"] == [ids["wa"], ids["w"], ids["z"]]
    out = q(filter={"name": "a"}, filterAsTree=True)  # "alpha", "Beta" are under "Work" (no "a"): dropped
    assert ids["wa"] not in out["ids"] and ids["wb"] not in out["ids"]
    # Windowing and totals.
    out = q(filter=mine, sort=[{"property": "name"}], position=1, limit=2, calculateTotal=True)
    assert out["ids"] == [ids["wb"], ids["w"]] and out["position"] == 1 and out["total"] == 4
    out = q(filter=mine, sort=[{"property": "name"}], anchor=ids["w"], anchorOffset=-1, limit=2)
    assert out["ids"] == [ids["wb"], ids["w"]]
    assert out["canCalculateChanges"] is True
    # Errors.
    assert q(filter={"colour": "red"})["error"] == "unsupportedFilter"
    assert q(sort=[{"property": "totalEmails"}])["error"] == "unsupportedSort"
    assert q(sort=[{"property": "name", "collation": "i;klingon"}])["error"] == "unsupportedSort"
    assert q(filter={"isSubscribed": "yes"})["error"] == "invalidArguments"
    assert q(sortAsTree="yes")["error"] == "invalidArguments"
    assert q(anchor="Fnope")["error"] == "anchorNotFound"


def test_query_changes(alice):  # noqa: F811
    sort = [{"property": "name"}]
    flt = {"hasAnyRole": False}
    first = alice.call("Mailbox/query", {"filter": flt, "sort": sort})
    assert first["ids"] == []
    ids = _create(alice, b={"name": "B"}, d={"name": "D"})
    qc = alice.call("Mailbox/queryChanges", {"filter": flt, "sort": sort, "sinceQueryState": first["queryState"],
                                             "calculateTotal": True})
    assert qc["oldQueryState"] == first["queryState"]
    assert qc["added"] == [{"id": ids["b"], "index": 0}, {"id": ids["d"], "index": 1}] and qc["total"] == 2
    # Applying the changes to the old list gives the new list.
    second = alice.call("Mailbox/query", {"filter": flt, "sort": sort})
    assert qc["newQueryState"] == second["queryState"]
    ids.update(_create(alice, a={"name": "A"}))
    alice.call("Mailbox/set", {"update": {ids["d"]: {"name": "0-first"}}})
    alice.deliver(simple(1), ids["b"])  # counts only: no effect on the results
    qc = alice.call("Mailbox/queryChanges", {"filter": flt, "sort": sort, "sinceQueryState": second["queryState"]})
    result = [i for i in second["ids"] if i not in qc["removed"]]
    for item in qc["added"]:
        result.insert(item["index"], item["id"])
    assert result == alice.call("Mailbox/query", {"filter": flt, "sort": sort})["ids"]
    assert ids["b"] not in qc["removed"]
    assert alice.call("Mailbox/queryChanges", {"sinceQueryState": "x"})["error"] == "cannotCalculateChanges"
    assert alice.call("Mailbox/queryChanges", {"sinceQueryState": "99999"})["error"] == "cannotCalculateChanges"
    out = alice.call("Mailbox/queryChanges", {"sinceQueryState": first["queryState"], "maxChanges": 1})
    assert out["error"] == "tooManyChanges"


def test_query_changes_tree_moves_children(alice):  # noqa: F811
    sort = [{"property": "name"}]
    ids = _create(alice, p={"name": "P"}, c={"name": "child", "parentId": "#p"}, q={"name": "Q"})
    args = {"filter": {"hasAnyRole": False}, "sort": sort, "sortAsTree": True}
    before = alice.call("Mailbox/query", args)
    assert before["ids"] == [ids["p"], ids["c"], ids["q"]]
    alice.call("Mailbox/set", {"update": {ids["p"]: {"name": "Z"}}})
    qc = alice.call("Mailbox/queryChanges", {**args, "sinceQueryState": before["queryState"]})
    result = [i for i in before["ids"] if i not in qc["removed"]]
    for item in qc["added"]:
        result.insert(item["index"], item["id"])
    assert result == alice.call("Mailbox/query", args)["ids"] == [ids["q"], ids["p"], ids["c"]]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_mailbox_round_trip_both_backends(tmp_path, db_url):
    srv = start_server(tmp_path, db_url)
    try:
        j = client_for(srv, "alice@example.test")
        s0 = j.call("Mailbox/get", {"ids": []})["state"]
        ids = _create(j, a={"name": "Ünïcödé"}, b={"name": "Kid", "parentId": "#a"})
        j.deliver(simple(1), ids["b"])
        boxes = j.mailboxes()
        assert boxes["Kid"]["totalEmails"] == 1 and boxes["Kid"]["parentId"] == ids["a"]
        ch = j.call("Mailbox/changes", {"sinceState": s0})
        assert sorted(ch["created"]) == sorted(ids.values())
        out = j.call("Mailbox/set", {"destroy": [ids["a"], ids["b"]], "onDestroyRemoveEmails": True})
        assert sorted(out["destroyed"]) == sorted(ids.values())
    finally:
        srv.stop()
