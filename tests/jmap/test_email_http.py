"""Email end to end over HTTP against the real server (C's front): upload + import, the first screen, create and
download, parse, snippets, changes made on the store's IMAP side, and account isolation."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.jmap.test_email_get import RICH
from tests.jmap.test_front_harness import Jmap, principal, start_shared
from tests.mailgen import corpus, simple
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


def download(j, blob_id: str, name: str = "f", type_: str = "application/octet-stream") -> bytes:  # noqa: ANN001
    template = j.http.get("/jmap/session").json()["downloadUrl"]
    url = (template.replace("{accountId}", j.account_id).replace("{blobId}", blob_id)
           .replace("{name}", quote(name)).replace("{type}", quote(type_)))
    r = j.http.get(url)
    assert r.status_code == 200, r.text
    return r.content


def upload(j, data: bytes, type_: str = "message/rfc822") -> str:  # noqa: ANN001
    template = j.http.get("/jmap/session").json()["uploadUrl"]
    r = j.http.post(template.replace("{accountId}", j.account_id), content=data, headers={"Content-Type": type_})
    assert r.status_code == 201, r.text
    return r.json()["blobId"]


def test_upload_import_get_download_parse(alice):  # noqa: F811
    blob = upload(alice, RICH)
    inbox = alice.role("inbox")
    res = alice.call("Email/import", {"emails": {"i": {"blobId": blob, "mailboxIds": {inbox: True},
                                                       "keywords": {"$seen": True}}}})
    created = res["created"]["i"]
    e = alice.call("Email/get", {"ids": [created["id"]], "properties": ["subject", "attachments", "keywords",
                                                                         "bodyValues"],
                                 "fetchTextBodyValues": True})["list"][0]
    assert e["subject"] == "Hello ☃ world" and e["keywords"] == {"$seen": True}
    assert e["bodyValues"]["1.1"]["value"] == "Grüße, plain text."
    assert download(alice, created["blobId"]) == RICH
    pdf, msg = e["attachments"][1], e["attachments"][2]
    assert download(alice, pdf["blobId"], "report.pdf", "application/pdf") == b"%PDF-1.4\n"
    parsed = alice.call("Email/parse", {"blobIds": [msg["blobId"]]})["parsed"][msg["blobId"]]
    assert parsed["subject"] == "inner message"


def test_first_screen(alice):  # noqa: F811
    for raw in corpus(20):
        alice.deliver(raw)
    inbox = alice.role("inbox")
    out = alice.request([
        ["Mailbox/get", {"accountId": alice.account_id, "ids": None}, "m"],
        ["Email/query", {"accountId": alice.account_id, "filter": {"inMailbox": inbox},
                         "sort": [{"property": "receivedAt", "isAscending": False}], "collapseThreads": True,
                         "limit": 50, "calculateTotal": True}, "q"],
        ["Email/get", {"accountId": alice.account_id,
                       "#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["threadId", "mailboxIds", "keywords", "from", "to", "subject", "receivedAt",
                                      "size", "preview", "hasAttachment"]}, "g"],
    ])["methodResponses"]
    q, g = out[1][1], out[2][1]
    box = next(m for m in out[0][1]["list"] if m["id"] == inbox)
    assert q["total"] == box["totalThreads"] and len(q["ids"]) == q["total"]
    assert [e["id"] for e in g["list"]] == q["ids"]
    assert len({e["threadId"] for e in g["list"]}) == len(q["ids"])


def test_create_download_and_snippets(alice):  # noqa: F811
    drafts = alice.role("drafts")
    res = alice.call("Email/set", {"create": {"d": {
        "mailboxIds": {drafts: True}, "keywords": {"$draft": True},
        "subject": "quokka draft", "bodyValues": {"b": {"value": "a quokka & friends"}},
        "textBody": [{"partId": "b"}],
    }}})
    created = res["created"]["d"]
    raw = download(alice, created["blobId"], "draft.eml", "message/rfc822")
    assert len(raw) == created["size"] and b"Subject: quokka draft" in raw
    q = alice.call("Email/query", {"filter": {"text": "quokka"}})
    assert q["ids"] == [created["id"]]
    s = alice.call("SearchSnippet/get", {"filter": {"text": "quokka"}, "emailIds": q["ids"]})
    assert s["list"] == [{"emailId": created["id"], "subject": "<mark>quokka</mark> draft",
                          "preview": "a <mark>quokka</mark> &amp; friends"}]


def test_imap_side_changes_reach_jmap(alice, server):  # noqa: F811
    inbox = alice.role("inbox")
    d = alice.deliver(simple(1))
    state = alice.call("Email/get", {"ids": []})["state"]
    uid = d.uids[inbox]
    server.store.memberships.store_flags(alice.account_id, inbox, [(uid, uid)], "add", ["$seen", "$Forwarded"], None)
    ch = alice.call("Email/changes", {"sinceState": state})
    assert ch["updated"] == [d.email_id]
    e = alice.call("Email/get", {"ids": [d.email_id], "properties": ["keywords"]})["list"][0]
    assert e["keywords"] == {"$seen": True, "$forwarded": True}
    # and JMAP's change is IMAP's: \Seen cleared on the email row
    alice.call("Email/set", {"update": {d.email_id: {"keywords/$seen": None}}})
    with server.store.engine.connect() as conn:
        flags = conn.exec_driver_sql(f"SELECT flags FROM emails WHERE id = '{d.email_id}'").scalar()
    assert flags & 1 == 0


def test_account_isolation(alice, bob):  # noqa: F811
    mine = alice.deliver(simple(1, body="secret quokka"))
    assert bob.call("Email/get", {"ids": [mine.email_id]})["notFound"] == [mine.email_id]
    assert bob.call("Email/query", {"filter": {"text": "quokka"}})["ids"] == []
    res = bob.call("Email/get", {"accountId": alice.account_id, "ids": [mine.email_id]})
    assert res["error"] == "accountNotFound"
    res = bob.call("Email/set", {"destroy": [mine.email_id]})
    assert res["notDestroyed"][mine.email_id]["type"] == "notFound"
    res = bob.call("Email/import", {"emails": {"i": {"blobId": mine.blob_id, "mailboxIds": {bob.role("inbox"): True}}}})
    assert res["notCreated"]["i"]["properties"] == ["blobId"]  # another account's blob is unknown here
    assert alice.call("Email/get", {"ids": [mine.email_id], "properties": ["id"]})["list"]
