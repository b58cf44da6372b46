"""Email/set, Email/changes, Email/import, Email/parse and Email/copy (RFC 8621 §4.3, §4.6-§4.9) on both
backends, including changes made on the IMAP side of the same store."""

from __future__ import annotations

import pytest

from janusmail.jmap.blobs import resolve_blob
from janusmail.jmap.engine import AccountAccess, StaticAccounts
from janusmail.store.schema import FLAG_DRAFT, FLAG_SEEN
from tests.jmap.test_email_get import RICH
from tests.jmap.test_email_harness import h  # noqa: F401
from tests.mailgen import corpus, simple


def upload(h, data: bytes, type_: str = "message/rfc822") -> str:  # noqa: ANN001, F811
    return h.store.blobs.upload(h.account_id, data, type_)[0]


def flags_of(h, email_id: str) -> int:  # noqa: ANN001, F811
    """The system flag bits IMAP reads for FLAGS."""
    with h.store.engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT flags FROM emails WHERE id = '{email_id}'").scalar()


async def create(h, obj: dict) -> dict:  # noqa: ANN001, F811
    res = await h.ok("Email/set", {"create": {"k1": obj}})
    return res


def draft(h, **extra) -> dict:  # noqa: ANN001, F811
    return {
        "mailboxIds": {h.boxes["drafts"]: True},
        "keywords": {"$draft": True, "$seen": True},
        "from": [{"name": "Alice Ä", "email": "alice@example.test"}],
        "to": [{"name": None, "email": "bob@example.test"}],
        "subject": "Grüße from the draft",
        "bodyValues": {"t": {"value": "Hello Bob,\nsee attached.\n"}, "h": {"value": "<p>Hello <b>Bob</b></p>"}},
        "textBody": [{"partId": "t", "type": "text/plain"}],
        "htmlBody": [{"partId": "h", "type": "text/html"}],
        **extra,
    }


# -- create ---------------------------------------------------------------------------------------------------


async def test_create_round_trip(h):  # noqa: F811
    pdf = upload(h, b"%PDF-1.4 not really\n", "application/pdf")
    obj = draft(h, attachments=[{"blobId": pdf, "type": "application/pdf", "name": "report.pdf"}],
                receivedAt="2030-01-02T03:04:05Z")
    res = await create(h, obj)
    created = res["created"]["k1"]
    assert set(created) == {"id", "blobId", "threadId", "size"}
    assert res["oldState"] != res["newState"]
    e = await h.one(created["id"], ["mailboxIds", "keywords", "from", "to", "subject", "receivedAt", "hasAttachment",
                                    "bodyValues", "textBody", "htmlBody", "attachments", "messageId", "sentAt", "size",
                                    "blobId", "threadId"],
                    fetchAllBodyValues=True)
    assert e["mailboxIds"] == {h.boxes["drafts"]: True}
    assert e["keywords"] == {"$draft": True, "$seen": True}
    assert e["from"] == obj["from"] and e["to"] == obj["to"] and e["subject"] == obj["subject"]
    assert e["receivedAt"] == "2030-01-02T03:04:05Z"
    assert e["hasAttachment"] is True
    assert e["bodyValues"][e["textBody"][0]["partId"]]["value"] == "Hello Bob,\nsee attached.\n"
    assert e["bodyValues"][e["htmlBody"][0]["partId"]]["value"] == "<p>Hello <b>Bob</b></p>"
    att = e["attachments"][0]
    assert att["name"] == "report.pdf" and att["type"] == "application/pdf"
    assert resolve_blob(h.store, h.account_id, att["blobId"]) == b"%PDF-1.4 not really\n"
    assert e["messageId"] and e["messageId"][0].endswith("@example.test") and e["sentAt"]
    assert (e["size"], e["blobId"], e["threadId"]) == (created["size"], created["blobId"], created["threadId"])
    raw = h.store.blobs.read(h.account_id, created["blobId"])
    assert len(raw) == created["size"]
    assert b"\r\nMessage-ID: <" in raw and b"\r\nDate: " in raw and b"MIME-Version: 1.0" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    # the IMAP view of the same email: \Seen and \Draft are the same bits
    row = flags_of(h, created["id"])
    assert row & FLAG_SEEN and row & FLAG_DRAFT


async def test_create_with_body_structure_and_headers(h):  # noqa: F811
    obj = {
        "mailboxIds": {h.inbox: True},
        "subject": "structured",
        "header:X-Mailer": " Janus test",
        "header:List-Unsubscribe:asURLs": ["mailto:u@example.test"],
        "messageId": ["custom-id@example.test"],
        "bodyValues": {"a": {"value": "plain"}, "b": {"value": "<i>html</i>"}},
        "bodyStructure": {"type": "multipart/alternative", "subParts": [
            {"partId": "a", "type": "text/plain"},
            {"partId": "b", "type": "text/html", "header:X-Part": " yes"},
        ]},
    }
    res = await create(h, obj)
    e = await h.one(res["created"]["k1"]["id"], ["bodyStructure", "header:X-Mailer", "messageId",
                                                 "header:List-Unsubscribe:asURLs"],
                    bodyProperties=["type", "header:X-Part"])
    assert e["header:X-Mailer"] == " Janus test"
    assert e["header:List-Unsubscribe:asURLs"] == ["mailto:u@example.test"]
    assert e["messageId"] == ["custom-id@example.test"]
    assert e["bodyStructure"]["type"] == "multipart/alternative"
    assert [p["type"] for p in e["bodyStructure"]["subParts"]] == ["text/plain", "text/html"]
    assert e["bodyStructure"]["subParts"][1]["header:X-Part"] == " yes"


async def test_create_references_created_mailbox_and_is_referable(h):  # noqa: F811
    out = await h.request([
        ["Mailbox/set", {"accountId": h.account_id, "create": {"mb": {"name": "Fresh"}}}, "0"],
        ["Email/set", {"accountId": h.account_id, "create": {"k1": draft(h, mailboxIds={"#mb": True})}}, "1"],
        ["Email/get", {"accountId": h.account_id, "ids": ["#k1"], "properties": ["mailboxIds"]}, "2"],
    ])
    mb = out["methodResponses"][0][1]["created"]["mb"]["id"]
    assert out["methodResponses"][2][1]["list"][0]["mailboxIds"] == {mb: True}


@pytest.mark.parametrize("change,err,prop", [
    ({"mailboxIds": None}, "invalidProperties", "mailboxIds"),
    ({"mailboxIds": {}}, "invalidProperties", "mailboxIds"),
    ({"mailboxIds": {"Fnope": True}}, "invalidProperties", "mailboxIds"),
    ({"keywords": {"$recent": True}}, "invalidProperties", "keywords"),
    ({"keywords": {"bad word": True}}, "invalidProperties", "keywords"),
    ({"keywords": {"$seen": False}}, "invalidProperties", "keywords"),
    ({"headers": [{"name": "X-A", "value": "b"}]}, "invalidProperties", "headers"),
    ({"header:Subject": " dup"}, "invalidProperties", "header:Subject"),
    ({"header:Content-Type": " text/plain"}, "invalidProperties", "header:Content-Type"),
    ({"header:Subject:asAddresses": []}, "invalidProperties", "header:Subject:asAddresses"),
    ({"id": "Mx"}, "invalidProperties", "id"),
    ({"size": 3}, "invalidProperties", "size"),
    ({"receivedAt": "yesterday"}, "invalidProperties", "receivedAt"),
    ({"bodyStructure": {"partId": "t"}}, "invalidProperties", "bodyStructure"),
    ({"textBody": [{"partId": "t"}, {"partId": "t"}]}, "invalidProperties", "textBody"),
    ({"textBody": [{"partId": "h", "type": "text/html"}]}, "invalidProperties", "textBody/0/type"),
    ({"htmlBody": [{"partId": "h", "type": "text/plain"}]}, "invalidProperties", "htmlBody/0/type"),
    ({"textBody": [{"partId": "t", "blobId": "Gx"}]}, "invalidProperties", "textBody/0/partId"),
    ({"textBody": [{"partId": "zz"}]}, "invalidProperties", "textBody/0/partId"),
    ({"textBody": [{"partId": "t", "charset": "latin1"}]}, "invalidProperties", "textBody/0/charset"),
    ({"textBody": [{"partId": "t", "size": 4}]}, "invalidProperties", "textBody/0/size"),
    ({"textBody": [{"partId": "t", "header:Content-Transfer-Encoding": " base64"}]}, "invalidProperties",
     "textBody/0/header:Content-Transfer-Encoding"),
    ({"textBody": [{"partId": "t", "headers": []}]}, "invalidProperties", "textBody/0/headers"),
    ({"bodyValues": {"t": {"value": "x", "isTruncated": True}}}, "invalidProperties", "bodyValues/t"),
    ({"from": [{"email": "bad\r\nx"}]}, "invalidProperties", "from"),
])
async def test_create_refusals(h, change, err, prop):  # noqa: F811
    obj = draft(h)
    for k, v in change.items():
        if v is None:
            obj.pop(k, None)
        else:
            obj[k] = v
    res = await h.ok("Email/set", {"create": {"k1": obj}})
    assert res["created"] is None
    e = res["notCreated"]["k1"]
    assert e["type"] == err and prop in e["properties"], e


async def test_create_blob_not_found(h):  # noqa: F811
    obj = draft(h, attachments=[{"blobId": "Gnosuchblob", "type": "image/png"},
                                {"blobId": "Gnosuchblob_1_2"}])
    res = await h.ok("Email/set", {"create": {"k1": obj}})
    e = res["notCreated"]["k1"]
    assert e["type"] == "blobNotFound" and sorted(e["notFound"]) == ["Gnosuchblob", "Gnosuchblob_1_2"]


async def test_creates_of_one_call_are_one_write_and_each_refused_alone(h):  # noqa: F811
    before = h.store.accounts.get(h.account_id).modseq
    objs = {"k1": draft(h, subject="one"), "k2": draft(h, mailboxIds={"Fnope": True}),
            "k3": draft(h, subject="three"), "k4": draft(h, attachments=[{"blobId": "Gnosuchblob", "type": "image/png"}])}
    out = await h.request([
        ["Email/set", {"accountId": h.account_id, "create": objs}, "0"],
        ["Email/get", {"accountId": h.account_id, "ids": ["#k3", "#k1"], "properties": ["subject"]}, "1"],
    ])
    res = out["methodResponses"][0][1]
    assert sorted(res["created"]) == ["k1", "k3"]
    assert res["notCreated"]["k2"]["type"] == "invalidProperties" and res["notCreated"]["k4"]["type"] == "blobNotFound"
    assert [e["subject"] for e in out["methodResponses"][1][1]["list"]] == ["three", "one"]  # creation ids recorded
    assert h.store.accounts.get(h.account_id).modseq == before + 1  # both stored by ONE write, not one each


async def test_create_with_part_blob_of_another_email(h):  # noqa: F811
    d = h.ingest(RICH)
    pdf = (await h.one(d.email_id, ["attachments"]))["attachments"][1]["blobId"]
    res = await create(h, draft(h, attachments=[{"blobId": pdf, "type": "application/pdf", "name": "again.pdf"}]))
    e = await h.one(res["created"]["k1"]["id"], ["attachments"])
    assert resolve_blob(h.store, h.account_id, e["attachments"][0]["blobId"]) == b"%PDF-1.4\n"


# -- update -----------------------------------------------------------------------------------------------------


async def test_keyword_patches(h):  # noqa: F811
    d = h.ingest(simple(1), keywords=("$answered",))
    eid = d.email_id
    res = await h.ok("Email/set", {"update": {eid: {"keywords/$seen": True, "keywords/$Forwarded": True}}})
    assert res["updated"] == {eid: None}
    assert (await h.one(eid, ["keywords"]))["keywords"] == {"$answered": True, "$seen": True, "$forwarded": True}
    await h.ok("Email/set", {"update": {eid: {"keywords/$answered": None}}})
    assert (await h.one(eid, ["keywords"]))["keywords"] == {"$seen": True, "$forwarded": True}
    await h.ok("Email/set", {"update": {eid: {"keywords": {"x": True, "$flagged": True}}}})
    assert (await h.one(eid, ["keywords"]))["keywords"] == {"x": True, "$flagged": True}
    # IMAP sees the same bits/keywords
    flags = flags_of(h, eid)
    assert flags == 4  # $flagged only


async def test_mailbox_patches(h):  # noqa: F811
    inbox, archive, trash = h.inbox, h.boxes["archive"], h.boxes["trash"]
    eid = h.ingest(simple(1)).email_id
    await h.ok("Email/set", {"update": {eid: {f"mailboxIds/{archive}": True}}})
    assert (await h.one(eid, ["mailboxIds"]))["mailboxIds"] == {inbox: True, archive: True}
    await h.ok("Email/set", {"update": {eid: {f"mailboxIds/{inbox}": None}}})
    assert (await h.one(eid, ["mailboxIds"]))["mailboxIds"] == {archive: True}
    await h.ok("Email/set", {"update": {eid: {"mailboxIds": {trash: True}}}})
    assert (await h.one(eid, ["mailboxIds"]))["mailboxIds"] == {trash: True}
    assert h.store.mailboxes.counts(h.account_id, [trash])[trash].total_emails == 1


@pytest.mark.parametrize("patch,err", [
    ({"mailboxIds": {}}, "invalidProperties"),
    ({"mailboxIds/INBOX": None}, "invalidProperties"),  # replaced below by the real inbox id
    ({"mailboxIds/Fnope": True}, "invalidProperties"),
    ({"keywords/$recent": True}, "invalidProperties"),
    ({"keywords/bad word": True}, "invalidProperties"),
    ({"keywords/$seen": False}, "invalidProperties"),
    ({"keywords": {"$seen": 1}}, "invalidProperties"),
    ({"keywords": {f"k{i}": True for i in range(201)}}, "tooManyKeywords"),
    ({"subject": "new"}, "invalidProperties"),
    ({"keywords/a/b": True}, "invalidPatch"),
    ({"nope": 1}, "invalidProperties"),
])
async def test_update_refusals(h, patch, err):  # noqa: F811
    eid = h.ingest(simple(1)).email_id
    patch = {k.replace("INBOX", h.inbox): v for k, v in patch.items()}
    res = await h.ok("Email/set", {"update": {eid: patch}})
    assert res["notUpdated"][eid]["type"] == err, res
    assert (await h.one(eid, ["keywords", "mailboxIds"])) == {"id": eid, "keywords": {}, "mailboxIds": {h.inbox: True}}


async def test_too_many_keywords_by_patch(h):  # noqa: F811
    eid = h.ingest(simple(1), keywords=tuple(f"k{i}" for i in range(200))).email_id
    res = await h.ok("Email/set", {"update": {eid: {"keywords/one-more": True}}})
    assert res["notUpdated"][eid]["type"] == "tooManyKeywords"


async def test_update_and_destroy_not_found(h):  # noqa: F811
    bob_box = next(m.id for m in h.store.mailboxes.list(h.bob.id) if m.role == "inbox")
    theirs = h.store.emails.ingest(h.bob.id, simple(1), (bob_box,)).email_id
    gone = h.ingest(simple(2))
    h.store.memberships.store_flags(h.account_id, h.inbox, [(gone.uids[h.inbox],) * 2], "add", [], True)
    res = await h.ok("Email/set", {"update": {theirs: {"keywords/$seen": True}, gone.email_id: {"keywords/x": True},
                                              "Mnope": {"keywords/x": True}}})
    assert set(res["notUpdated"]) == {theirs, gone.email_id, "Mnope"}
    assert all(v["type"] == "notFound" for v in res["notUpdated"].values())
    res = await h.ok("Email/set", {"destroy": [theirs, gone.email_id, "Mnope"]})
    assert set(res["notDestroyed"]) == {theirs, gone.email_id, "Mnope"}
    assert all(v["type"] == "notFound" for v in res["notDestroyed"].values())
    assert h.store.emails.raw(h.bob.id, theirs)  # untouched


async def test_destroy_and_if_in_state(h):  # noqa: F811
    d = h.ingest(simple(1))
    state = (await h.ok("Email/get", {"ids": []}))["state"]
    res = await h.call("Email/set", {"ifInState": "1", "destroy": [d.email_id]})
    assert res["error"] == "stateMismatch"
    res = await h.ok("Email/set", {"ifInState": state, "destroy": [d.email_id]})
    assert res["destroyed"] == [d.email_id] and res["oldState"] == state
    assert (await h.ok("Email/get", {"ids": [d.email_id]}))["notFound"] == [d.email_id]
    ch = await h.ok("Email/changes", {"sinceState": state})
    assert ch["destroyed"] == [d.email_id] and ch["newState"] == res["newState"]


# -- changes, including IMAP-side writes ---------------------------------------------------------------------------


async def test_changes_follow_imap_side_writes(h):  # noqa: F811
    archive = h.boxes["archive"]
    d = h.ingest(simple(1))
    uid = d.uids[h.inbox]
    state0 = (await h.ok("Email/get", {"ids": []}))["state"]
    h.store.memberships.store_flags(h.account_id, h.inbox, [(uid, uid)], "add", ["$seen"], None)  # IMAP STORE +FLAGS \Seen
    ch = await h.ok("Email/changes", {"sinceState": state0})
    assert ch["updated"] == [d.email_id] and ch["created"] == [] and ch["destroyed"] == []
    assert (await h.one(d.email_id, ["keywords"]))["keywords"] == {"$seen": True}
    state1 = ch["newState"]
    assert state1 == (await h.ok("Email/get", {"ids": []}))["state"]
    h.store.memberships.copy(h.account_id, h.inbox, [(uid, uid)], archive)  # IMAP COPY
    ch = await h.ok("Email/changes", {"sinceState": state1})
    assert ch["updated"] == [d.email_id]
    assert (await h.one(d.email_id, ["mailboxIds"]))["mailboxIds"] == {h.inbox: True, archive: True}
    state2 = ch["newState"]
    new = await h.deliver(simple(2))  # LMTP delivery
    ch = await h.ok("Email/changes", {"sinceState": state2})
    assert ch["created"] == [new.email_id]
    state3 = ch["newState"]
    for box in (h.inbox, archive):  # IMAP STORE \Deleted + EXPUNGE everywhere: the email is gone
        h.store.memberships.store_flags(h.account_id, box, [(1, 10)], "add", [], True)
        h.store.memberships.expunge(h.account_id, box)
    ch = await h.ok("Email/changes", {"sinceState": state3})
    assert set(ch["destroyed"]) == {d.email_id, new.email_id}
    # no change: same state back, nothing listed
    ch2 = await h.ok("Email/changes", {"sinceState": ch["newState"]})
    assert ch2["newState"] == ch["newState"] and not (ch2["created"] or ch2["updated"] or ch2["destroyed"])


async def test_changes_paging(h):  # noqa: F811
    state = (await h.ok("Email/get", {"ids": []}))["state"]
    ids = {h.ingest(simple(i)).email_id for i in range(5)}
    seen: set[str] = set()
    for _ in range(10):
        ch = await h.ok("Email/changes", {"sinceState": state, "maxChanges": 2})
        assert len(ch["created"]) <= 2
        seen |= set(ch["created"])
        state = ch["newState"]
        if not ch["hasMoreChanges"]:
            break
    assert seen == ids
    res = await h.call("Email/changes", {"sinceState": "bogus"})
    assert res["error"] == "cannotCalculateChanges"


# -- import ---------------------------------------------------------------------------------------------------------


async def test_import(h):  # noqa: F811
    raw = simple(1, subject="imported")
    blob = upload(h, raw)
    state = (await h.ok("Email/get", {"ids": []}))["state"]
    res = await h.ok("Email/import", {"ifInState": state, "emails": {
        "i1": {"blobId": blob, "mailboxIds": {h.boxes["archive"]: True}, "keywords": {"$seen": True, "Work": True},
               "receivedAt": "2031-05-06T07:08:09Z"},
    }})
    created = res["created"]["i1"]
    assert created["blobId"] == blob and created["size"] == len(raw) and res["oldState"] == state
    assert res["newState"] != state and res["notCreated"] is None
    e = await h.one(created["id"], ["subject", "mailboxIds", "keywords", "receivedAt", "threadId"])
    assert e["subject"] == "imported" and e["mailboxIds"] == {h.boxes["archive"]: True}
    assert e["keywords"] == {"$seen": True, "work": True} and e["receivedAt"] == "2031-05-06T07:08:09Z"
    assert e["threadId"] == created["threadId"]


async def test_import_many_and_refusals(h):  # noqa: F811
    blobs = [upload(h, r) for r in corpus(6)]
    garbage = upload(h, b"\x00\xff not a message at all", "application/octet-stream")
    emails = {f"i{i}": {"blobId": b, "mailboxIds": {h.inbox: True}} for i, b in enumerate(blobs)}
    emails["junk"] = {"blobId": garbage, "mailboxIds": {h.inbox: True}}  # any bytes are stored
    emails["nob"] = {"blobId": "Gnosuchblob", "mailboxIds": {h.inbox: True}}
    emails["nobox"] = {"blobId": blobs[0], "mailboxIds": {"Fnope": True}}
    emails["nomb"] = {"blobId": blobs[0], "mailboxIds": {}}
    emails["recent"] = {"blobId": blobs[0], "mailboxIds": {h.inbox: True}, "keywords": {"$recent": True}}
    emails["extra"] = {"blobId": blobs[0], "mailboxIds": {h.inbox: True}, "subject": "x"}
    res = await h.ok("Email/import", {"emails": emails})
    assert set(res["created"]) == {f"i{i}" for i in range(6)} | {"junk"}
    nc = res["notCreated"]
    assert (nc["nob"]["type"], nc["nob"]["properties"]) == ("invalidProperties", ["blobId"])
    assert {nc[k]["type"] for k in ("nobox", "nomb", "recent", "extra")} == {"invalidProperties"}
    q = await h.query({"inMailbox": h.inbox}, calculateTotal=True)
    assert q["total"] == 7
    res = await h.call("Email/import", {"ifInState": "0", "emails": {}})
    assert res["error"] == "stateMismatch"
    res = await h.call("Email/import", {"emails": []})
    assert res["error"] == "invalidArguments"


async def test_import_received_at_from_received_header(h):  # noqa: F811
    raw = (b"Received: from a by b; Tue, 03 Mar 2026 04:05:06 +0000\r\nReceived: from c by d; "
           b"Mon, 02 Mar 2026 00:00:00 +0000\r\nSubject: r\r\n\r\nx\r\n")
    res = await h.ok("Email/import", {"emails": {"i": {"blobId": upload(h, raw), "mailboxIds": {h.inbox: True}}}})
    e = await h.one(res["created"]["i"]["id"], ["receivedAt"])
    assert e["receivedAt"] == "2026-03-03T04:05:06Z"


async def test_import_of_an_attached_message(h):  # noqa: F811
    d = h.ingest(RICH)
    inner = (await h.one(d.email_id, ["attachments"]))["attachments"][2]["blobId"]
    res = await h.ok("Email/import", {"emails": {"i": {"blobId": inner, "mailboxIds": {h.inbox: True}}}})
    e = await h.one(res["created"]["i"]["id"], ["subject", "from"])
    assert e["subject"] == "inner message" and e["from"] == [{"name": None, "email": "inner@example.test"}]


# -- parse -----------------------------------------------------------------------------------------------------------


async def test_parse(h):  # noqa: F811
    blob = upload(h, RICH)
    d = h.ingest(RICH)
    inner = (await h.one(d.email_id, ["attachments"]))["attachments"][2]["blobId"]
    res = await h.ok("Email/parse", {"blobIds": [blob, inner, "Gnosuchblob"], "fetchTextBodyValues": True})
    assert res["notFound"] == ["Gnosuchblob"] and res["notParsable"] is None
    outer = res["parsed"][blob]
    assert outer["subject"] == "Hello ☃ world" and outer["hasAttachment"] is True
    assert "id" not in outer and "mailboxIds" not in outer  # not in the default properties
    assert outer["bodyValues"]["1.1"]["value"] == "Grüße, plain text."
    msg = res["parsed"][inner]
    assert msg["subject"] == "inner message" and msg["textBody"][0]["partId"] == "1"
    # every property may be asked for: the stored-email ones are null
    res = await h.ok("Email/parse", {"blobIds": [blob], "properties": ["id", "blobId", "threadId", "mailboxIds",
                                                                        "keywords", "receivedAt", "size", "attachments"]})
    p = res["parsed"][blob]
    assert p["id"] is None and p["mailboxIds"] is None and p["keywords"] is None and p["receivedAt"] is None
    assert p["blobId"] == blob and p["size"] == len(RICH)
    # a part of an uploaded (not stored) message is a readable blob too
    pdf = p["attachments"][1]["blobId"]
    again = await h.ok("Email/parse", {"blobIds": [pdf], "properties": ["size"]})
    assert again["notFound"] is None and again["parsed"][pdf]["size"] == len(b"%PDF-1.4\n")
    res = await h.call("Email/parse", {"blobIds": [blob], "properties": ["header:From:asDate"]})
    assert res["error"] == "invalidArguments"


async def test_parse_not_parsable(h):  # noqa: F811
    empty = upload(h, b"", "application/octet-stream")
    res = await h.ok("Email/parse", {"blobIds": [empty]})
    assert res["notParsable"] == [empty] and res["parsed"] is None


# -- copy ------------------------------------------------------------------------------------------------------------


async def test_copy_from_another_account_is_refused(h):  # noqa: F811
    res = await h.call("Email/copy", {"fromAccountId": h.bob.id, "create": {"c": {"id": "Mx",
                                                                                "mailboxIds": {h.inbox: True}}}})
    assert res["error"] == "fromAccountNotFound"


def _see_bobs_account(h) -> str:  # noqa: ANN001, F811
    """An account policy that lets alice's principal see bob's account too; bob's inbox id."""
    both = StaticAccounts({h.account_id: AccountAccess(), h.bob.id: AccountAccess()})
    orig = h.ctx_factory

    def factory(info):  # noqa: ANN001, ANN202
        ctx = orig(info)
        ctx.accounts = both
        return ctx

    h.ctx_factory = factory
    return next(m.id for m in h.store.mailboxes.list(h.bob.id) if m.role == "inbox")


async def test_copy_semantics_when_both_accounts_are_visible(h):  # noqa: F811
    """The copy itself, with an account policy that lets one principal see two accounts."""
    bob_box = _see_bobs_account(h)
    src = h.store.emails.ingest(h.bob.id, simple(1, subject="from bob"), (bob_box,), ("$seen",), 1_900_000_000)
    res = await h.ok("Email/copy", {"fromAccountId": h.bob.id, "onSuccessDestroyOriginal": True, "create": {
        "c1": {"id": src.email_id, "mailboxIds": {h.inbox: True}},
        "c2": {"id": src.email_id, "mailboxIds": {h.inbox: True}, "subject": "no"},
        "c3": {"id": "Mnope", "mailboxIds": {h.inbox: True}},
    }})
    new = res["created"]["c1"]
    assert new["id"] != src.email_id and set(new) == {"id", "blobId", "threadId", "size"}
    assert res["notCreated"]["c2"]["type"] == "invalidProperties"
    assert res["notCreated"]["c3"]["type"] == "notFound"
    e = await h.one(new["id"], ["subject", "keywords", "receivedAt", "mailboxIds"])
    assert e == {"id": new["id"], "subject": "from bob", "keywords": {"$seen": True},
                 "receivedAt": "2030-03-17T17:46:40Z", "mailboxIds": {h.inbox: True}}
    out = await h.request([["Email/get", {"accountId": h.bob.id, "ids": [src.email_id]}, "g"]])
    assert out["methodResponses"][0][1]["notFound"] == [src.email_id]  # destroyed by the implicit Email/set


async def test_copy_over_quota_is_refused_and_keeps_the_original(h):  # noqa: F811
    """Issue 12 item 7: Email/copy into a full account is the SetError ``overQuota``; nothing is stored there, and
    onSuccessDestroyOriginal leaves the original alone (the copy did not succeed)."""
    bob_box = _see_bobs_account(h)
    src = h.store.emails.ingest(h.bob.id, simple(1, subject="from bob"), (bob_box,))
    h.ingest(simple(2))
    h.store.quotas.set_limits(h.account_id, messages=1)  # alice is full
    res = await h.ok("Email/copy", {"fromAccountId": h.bob.id, "onSuccessDestroyOriginal": True, "create": {
        "c1": {"id": src.email_id, "mailboxIds": {h.inbox: True}}}})
    assert res["created"] is None and res["notCreated"]["c1"]["type"] == "overQuota", res
    assert h.store.quotas.get(h.account_id).messages_used == 1
    out = await h.request([["Email/get", {"accountId": h.bob.id, "ids": [src.email_id], "properties": ["id"]}, "g"]])
    assert out["methodResponses"][0][1]["list"] == [{"id": src.email_id}]


async def test_changes_report_emails_hidden_by_deleted_flag_as_destroyed(h):  # noqa: F811
    a, b = h.ingest(simple(1)), h.ingest(simple(2))
    state = (await h.ok("Email/get", {"ids": []}))["state"]
    h.store.memberships.store_flags(h.account_id, h.inbox, [(a.uids[h.inbox],) * 2], "add", [], True)  # only membership
    c = h.ingest(simple(3))
    h.store.memberships.store_flags(h.account_id, h.inbox, [(c.uids[h.inbox],) * 2], "add", [], True)  # born and hidden
    h.store.memberships.store_flags(h.account_id, h.inbox, [(b.uids[h.inbox],) * 2], "add", ["$seen"], None)
    ch = await h.ok("Email/changes", {"sinceState": state})
    assert ch["destroyed"] == [a.email_id] and ch["updated"] == [b.email_id] and ch["created"] == []
    assert (await h.ok("Email/get", {"ids": [a.email_id]}))["notFound"] == [a.email_id]
