"""The request shapes of RFC 8621's own examples (§4.2 Email/get, §4.4.3 the query/get/Thread/get chain,
§4.6 Email/set, §5 SearchSnippet), run against our data on both backends."""

from __future__ import annotations

from tests.jmap.test_email_harness import h  # noqa: F401
from tests.mailgen import simple

PARTY = b"""From: Joe Bloggs <joe@example.com>
To: party@lists.example.com
Subject: Dinner on Thursday?
List-Post: <mailto:partytime@lists.example.com>
Message-ID: <party1@example.com>
Date: Tue, 01 Sep 2026 10:30:00 +0000
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b"

--b
Content-Type: text/plain; charset=utf-8

Hello, are you coming on Thursday? We will have a feast.
--b
Content-Type: text/html; charset=utf-8

<html><body><p>Hello, are you coming on <b>Thursday</b>? We will have a feast with """.replace(b"\n", b"\r\n") + (
    b"x" * 400) + b"</p></body></html>\r\n--b--\r\n"


async def test_rfc_4_2_email_get(h):  # noqa: F811
    d = h.ingest(PARTY)
    res = await h.ok("Email/get", {
        "ids": [d.email_id, "Mf123u457"],
        "properties": ["threadId", "mailboxIds", "from", "subject", "receivedAt", "header:List-POST:asURLs",
                       "htmlBody", "bodyValues"],
        "bodyProperties": ["partId", "blobId", "size", "type"],
        "fetchHTMLBodyValues": True,
        "maxBodyValueBytes": 256,
    })
    assert res["notFound"] == ["Mf123u457"]
    e = res["list"][0]
    assert set(e) == {"id", "threadId", "mailboxIds", "from", "subject", "receivedAt", "header:List-POST:asURLs",
                      "htmlBody", "bodyValues"}
    assert e["from"] == [{"name": "Joe Bloggs", "email": "joe@example.com"}]
    assert e["header:List-POST:asURLs"] == ["mailto:partytime@lists.example.com"]
    assert e["htmlBody"] == [{"partId": "2", "blobId": f"{d.blob_id}_2", "size": e["htmlBody"][0]["size"],
                              "type": "text/html"}]
    value = e["bodyValues"]["2"]
    assert value["isTruncated"] is True and value["isEncodingProblem"] is False
    assert value["value"].startswith("<html><body><p>Hello") and len(value["value"].encode()) <= 256


async def test_rfc_4_4_3_query_thread_chain(h):  # noqa: F811
    for i in range(5):
        h.ingest(simple(i, subject="chain", msgid=f"c{i}@x", references=["c0@x"] if i else None),
                 keywords=("$seen",) if i % 2 else (), received_at=1_800_000_000 + i)
    h.ingest(simple(9, subject="alone"), received_at=1_800_000_100)
    a = h.account_id
    out = await h.request([
        ["Email/query", {"accountId": a, "filter": {"inMailbox": h.inbox},
                         "sort": [{"isAscending": False, "property": "receivedAt"}], "collapseThreads": True,
                         "position": 0, "limit": 20, "calculateTotal": True}, "0"],
        ["Email/get", {"accountId": a, "#ids": {"resultOf": "0", "name": "Email/query", "path": "/ids"},
                       "properties": ["threadId"]}, "1"],
        ["Thread/get", {"accountId": a, "#ids": {"resultOf": "1", "name": "Email/get",
                                                 "path": "/list/*/threadId"}}, "2"],
        ["Email/get", {"accountId": a, "#ids": {"resultOf": "2", "name": "Thread/get", "path": "/list/*/emailIds"},
                       "properties": ["threadId", "mailboxIds", "keywords", "hasAttachment", "from", "subject",
                                      "receivedAt", "size", "preview"]}, "3"],
    ])
    names = [r[0] for r in out["methodResponses"]]
    assert names == ["Email/query", "Email/get", "Thread/get", "Email/get"], out
    q = out["methodResponses"][0][1]
    assert q["total"] == 2 and len(q["ids"]) == 2 and q["position"] == 0
    threads = out["methodResponses"][2][1]["list"]
    assert sorted(len(t["emailIds"]) for t in threads) == [1, 5]
    emails = out["methodResponses"][3][1]["list"]
    assert len(emails) == 6 and all(e["mailboxIds"] == {h.inbox: True} for e in emails)


async def test_rfc_4_6_email_set(h):  # noqa: F811
    drafts = h.boxes["drafts"]
    res = await h.ok("Email/set", {"create": {"k192": {
        "mailboxIds": {drafts: True},
        "keywords": {"$draft": True},
        "from": [{"name": "Joe Bloggs", "email": "joe@example.com"}],
        "subject": "World domination",
        "receivedAt": "2018-07-10T01:03:11Z",
        "sentAt": "2018-07-10T11:03:11+10:00",
        "bodyValues": {"1": {"value": "I have the most brilliant plan."}},
        "textBody": [{"partId": "1", "type": "text/plain"}],
        "htmlBody": None,
    }}})
    eid = res["created"]["k192"]["id"]
    e = await h.one(eid, ["sentAt", "receivedAt", "keywords", "subject"])
    assert e["sentAt"] == "2018-07-10T11:03:11+10:00" and e["receivedAt"] == "2018-07-10T01:03:11Z"
    # §4.6's update examples: mark read, move out of drafts
    archive = h.boxes["archive"]
    res = await h.ok("Email/set", {"update": {eid: {"keywords/$seen": True, f"mailboxIds/{drafts}": None,
                                                    f"mailboxIds/{archive}": True}}})
    assert res["updated"] == {eid: None}
    e = await h.one(eid, ["keywords", "mailboxIds"])
    assert e["keywords"] == {"$draft": True, "$seen": True} and e["mailboxIds"] == {archive: True}
    res = await h.ok("Email/set", {"destroy": [eid]})
    assert res["destroyed"] == [eid]


async def test_html_body_part_type_defaults_to_html(h):  # noqa: F811
    res = await h.ok("Email/set", {"create": {"k": {
        "mailboxIds": {h.inbox: True},
        "bodyValues": {"h": {"value": "<p>hi</p>"}},
        "htmlBody": [{"partId": "h"}],
    }}})
    e = await h.one(res["created"]["k"]["id"], ["htmlBody"], bodyProperties=["type"])
    assert e["htmlBody"] == [{"type": "text/html"}]
