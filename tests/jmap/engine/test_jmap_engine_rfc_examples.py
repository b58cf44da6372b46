"""RFC 8620 examples run end to end through bytes: parse, dispatch, generic methods, serialise."""

from __future__ import annotations

from typing import Any

import orjson

REQUEST = b"""{
  "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
  "methodCalls": [
    ["Email/query", {
      "accountId": "A1",
      "filter": { "inMailbox": "Finbox" },
      "sort": [{ "property": "receivedAt", "isAscending": false }],
      "collapseThreads": true,
      "position": 0,
      "limit": 10,
      "calculateTotal": true
    }, "t0"],
    ["Email/get", {
      "accountId": "A1",
      "#ids": { "resultOf": "t0", "name": "Email/query", "path": "/ids" },
      "properties": ["threadId"]
    }, "t1"],
    ["Thread/get", {
      "accountId": "A1",
      "#ids": { "resultOf": "t1", "name": "Email/get", "path": "/list/*/threadId" }
    }, "t2"],
    ["Email/get", {
      "accountId": "A1",
      "#ids": { "resultOf": "t2", "name": "Thread/get", "path": "/list/*/emailIds" },
      "properties": ["from", "receivedAt", "subject"]
    }, "t3"]
  ]
}"""


async def test_result_reference_chain_section_3_7(h: Any) -> None:
    out = orjson.loads(await h.engine.handle(REQUEST, h.ctx_factory, session_state="75128aab4b1b"))
    assert out["sessionState"] == "75128aab4b1b"
    (n0, q, c0), (n1, g1, c1), (n2, t, c2), (n3, g3, c3) = out["methodResponses"]
    assert (n0, n1, n2, n3) == ("Email/query", "Email/get", "Thread/get", "Email/get")
    assert (c0, c1, c2, c3) == ("t0", "t1", "t2", "t3")
    assert q["ids"] == ["Mf3", "Mf2"] and q["total"] == 2 and q["position"] == 0
    assert "limit" not in q
    assert g1["list"] == [{"id": "Mf3", "threadId": "Ta"}, {"id": "Mf2", "threadId": "Tb"}]
    assert t["list"] == [{"id": "Ta", "emailIds": ["Mf1", "Mf3"]}, {"id": "Tb", "emailIds": ["Mf2"]}]
    assert [e["id"] for e in g3["list"]] == ["Mf1", "Mf3", "Mf2"]
    assert set(g3["list"][0]) == {"id", "from", "receivedAt", "subject"}
    assert g3["notFound"] == []


async def test_echo_example_section_4(h: Any) -> None:
    body = b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{"hello":true,"high":5},"b3ff"]]}'
    out = orjson.loads(await h.engine.handle(body, h.ctx_factory))
    assert out["methodResponses"] == [["Core/echo", {"hello": True, "high": 5}, "b3ff"]]


async def test_mail_methods_need_the_mail_capability(h: Any) -> None:
    body = b'{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Email/get",{"accountId":"A1"},"c"]]}'
    out = orjson.loads(await h.engine.handle(body, h.ctx_factory))
    assert out["methodResponses"] == [["error", {"type": "unknownMethod"}, "c"]]


async def test_creation_ids_section_5_3(h: Any) -> None:
    """A create, a reference to it in a later call, and createdIds echoed with every creation."""
    body = orjson.dumps(
        {
            "using": ["urn:ietf:params:jmap:core", "urn:example:notes"],
            "methodCalls": [
                ["Note/set", {"accountId": "A1", "create": {"k1490": {"title": "parent"}}}, "0"],
                [
                    "Note/set",
                    {"accountId": "A1", "create": {"k1491": {"title": "child", "parentId": "#k1490"}}},
                    "1",
                ],
                ["Note/get", {"accountId": "A1", "ids": ["#k1491"], "properties": ["parentId"]}, "2"],
            ],
            "createdIds": {},
        }
    )
    out = orjson.loads(await h.engine.handle(body, h.ctx_factory))
    parent = out["methodResponses"][0][1]["created"]["k1490"]["id"]
    child = out["methodResponses"][1][1]["created"]["k1491"]["id"]
    assert out["methodResponses"][2][1]["list"] == [{"id": child, "parentId": parent}]
    assert out["createdIds"] == {"k1490": parent, "k1491": child}
