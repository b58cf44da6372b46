"""Email/get (RFC 8621 §4.2) through the engine on both backends: metadata, keywords shared with IMAP flags,
visibility of \\Deleted memberships, every header form, the body structure, body values and part blobs."""

from __future__ import annotations

import orjson
import pytest

from janusmail.jmap.blobs import resolve_blob
from janusmail.jmap.types.email.props import DEFAULT_BODY_PROPERTIES, DEFAULT_PROPERTIES
from tests.jmap.test_email_harness import h  # noqa: F401
from tests.mailgen import corpus, simple

RICH = b"""From: =?UTF-8?Q?J=C3=B6rg?= <jorg@example.test>, "Ann, B." <ann@example.test>
Sender: sec@example.test
Reply-To: replies@example.test
To: Team: bob@example.test, carol@example.test;, dave@example.test
Cc: cc@example.test
Bcc: hidden@example.test
Subject: =?UTF-8?B?SGVsbG8g4piD?= world
Date: Tue, 01 Sep 2026 10:30:00 -0700
Message-ID: <rich@example.test>
In-Reply-To: <parent@example.test>
References: <root@example.test>
 <parent@example.test>
List-Unsubscribe: <mailto:unsub@example.test>, <https://example.test/u>
X-Custom: hello
X-Custom: again
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Gr=C3=BC=C3=9Fe, plain text.
--alt
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html; charset=utf-8

<html><body><p>Hello <b>HTML</b> &amp; more</p><img src="cid:img1@x"></body></html>
--rel
Content-Type: image/png
Content-ID: <img1@x>
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--rel--
--alt--
--outer
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename="report.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer
Content-Type: message/rfc822

From: inner@example.test
Subject: inner message

inner body
--outer--
""".replace(b"\n", b"\r\n")


def rich(h):  # noqa: ANN001, ANN201, F811
    return h.ingest(RICH, keywords=("$seen", "$Forwarded", "Custom"), received_at=1_700_000_000)


# -- metadata and keywords ------------------------------------------------------------------------------------


async def test_metadata(h):  # noqa: F811
    d = rich(h)
    e = await h.one(d.email_id, ["id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt",
                                 "hasAttachment", "preview"])
    assert e["id"] == d.email_id and e["blobId"] == d.blob_id and e["threadId"] == d.thread_id
    assert e["mailboxIds"] == {h.inbox: True}
    assert e["keywords"] == {"$seen": True, "$forwarded": True, "custom": True}
    assert e["size"] == len(RICH) == d.size
    assert e["receivedAt"] == "2023-11-14T22:13:20Z"
    assert e["hasAttachment"] is True
    assert e["preview"].startswith("Grüße, plain text.")


async def test_default_properties_and_body_properties(h):  # noqa: F811
    d = rich(h)
    res = await h.ok("Email/get", {"ids": [d.email_id]})
    e = res["list"][0]
    assert set(e) == set(DEFAULT_PROPERTIES)
    assert e["bodyValues"] == {}
    assert all(set(p) == set(DEFAULT_BODY_PROPERTIES) for p in e["textBody"] + e["attachments"])
    assert res["notFound"] == [] and res["state"].isdigit()


async def test_imap_flags_are_keywords(h):  # noqa: F811
    d = rich(h)
    uid = d.uids[h.inbox]
    h.store.memberships.store_flags(h.account_id, h.inbox, [(uid, uid)], "add", ["$flagged", "$Junk"], None)
    h.store.memberships.store_flags(h.account_id, h.inbox, [(uid, uid)], "remove", ["$seen"], None)
    e = await h.one(d.email_id, ["keywords"])
    assert e["keywords"] == {"$forwarded": True, "custom": True, "$flagged": True, "$junk": True}


async def test_deleted_memberships_are_invisible(h):  # noqa: F811
    d = rich(h)
    uid = d.uids[h.inbox]
    h.store.memberships.copy(h.account_id, h.inbox, [(uid, uid)], h.boxes["archive"])
    assert (await h.one(d.email_id, ["mailboxIds"]))["mailboxIds"] == {h.inbox: True, h.boxes["archive"]: True}
    h.store.memberships.store_flags(h.account_id, h.inbox, [(uid, uid)], "add", [], True)
    assert (await h.one(d.email_id, ["mailboxIds"]))["mailboxIds"] == {h.boxes["archive"]: True}
    h.store.memberships.store_flags(h.account_id, h.boxes["archive"], [(1, 1)], "add", [], True)
    res = await h.ok("Email/get", {"ids": [d.email_id], "properties": ["id"]})
    assert res["list"] == [] and res["notFound"] == [d.email_id]


async def test_not_found_and_account_isolation(h):  # noqa: F811
    d = rich(h)
    bob_box = next(m.id for m in h.store.mailboxes.list(h.bob.id) if m.role == "inbox")
    theirs = h.store.emails.ingest(h.bob.id, simple(1), (bob_box,))
    res = await h.ok("Email/get", {"ids": [d.email_id, theirs.email_id, "Mnonexistent", d.email_id],
                                   "properties": ["id"]})
    assert [e["id"] for e in res["list"]] == [d.email_id]
    assert res["notFound"] == [theirs.email_id, "Mnonexistent"]
    # another account's id cannot be named at all
    res = await h.call("Email/get", {"accountId": h.bob.id, "ids": [theirs.email_id]})
    assert res["error"] == "accountNotFound"


async def test_ids_null_lists_small_accounts(h):  # noqa: F811
    ds = [h.ingest(simple(i)) for i in range(3)]
    res = await h.ok("Email/get", {"ids": None, "properties": ["id"]})
    assert sorted(e["id"] for e in res["list"]) == sorted(d.email_id for d in ds)


async def test_bad_arguments(h):  # noqa: F811
    d = rich(h)
    for args in (
        {"properties": ["nope"]},
        {"properties": ["header:Subject:asAddresses"]},
        {"properties": ["header:From:asDate"]},
        {"properties": ["header:X-Foo:asBogus"]},
        {"properties": ["header:"]},
        {"properties": ["header:Subject:asText:all:extra"]},
        {"bodyProperties": ["nope"]},
        {"bodyProperties": "partId"},
        {"fetchTextBodyValues": "yes"},
        {"maxBodyValueBytes": -1},
        {"maxBodyValueBytes": 1.5},
    ):
        res = await h.call("Email/get", {"ids": [d.email_id], **args})
        assert res["error"] == "invalidArguments", args


# -- header fields --------------------------------------------------------------------------------------------


async def test_shortcut_headers(h):  # noqa: F811
    e = await h.one(rich(h).email_id, ["messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc",
                                       "replyTo", "subject", "sentAt"])
    assert e["messageId"] == ["rich@example.test"]
    assert e["inReplyTo"] == ["parent@example.test"]
    assert e["references"] == ["root@example.test", "parent@example.test"]
    assert e["sender"] == [{"name": None, "email": "sec@example.test"}]
    assert e["from"] == [{"name": "Jörg", "email": "jorg@example.test"}, {"name": "Ann, B.", "email": "ann@example.test"}]
    assert [a["email"] for a in e["to"]] == ["bob@example.test", "carol@example.test", "dave@example.test"]
    assert e["cc"] == [{"name": None, "email": "cc@example.test"}]
    assert e["bcc"] == [{"name": None, "email": "hidden@example.test"}]
    assert e["replyTo"] == [{"name": None, "email": "replies@example.test"}]
    assert e["subject"] == "Hello ☃ world"
    assert e["sentAt"] == "2026-09-01T10:30:00-07:00"


async def test_absent_headers_are_null(h):  # noqa: F811
    d = h.ingest(b"Subject: only this\r\n\r\nbody\r\n")
    e = await h.one(d.email_id, ["messageId", "inReplyTo", "references", "from", "to", "sender", "sentAt",
                                 "header:X-None", "header:X-None:all", "header:From:asAddresses:all"])
    assert e["messageId"] is None and e["inReplyTo"] is None and e["references"] is None
    assert e["from"] is None and e["to"] is None and e["sender"] is None and e["sentAt"] is None
    assert e["header:X-None"] is None and e["header:X-None:all"] == []
    assert e["header:From:asAddresses:all"] == []


async def test_header_forms(h):  # noqa: F811
    props = [
        "headers",
        "header:Subject",
        "header:subject:asText",
        "header:From:asAddresses",
        "header:To:asGroupedAddresses",
        "header:X-Custom",
        "header:X-Custom:all",
        "header:x-custom:asText:all",
        "header:X-Custom:asDate",
        "header:List-Unsubscribe:asURLs",
        "header:Date:asDate",
        "header:References:asMessageIds",
        "header:Message-ID:asMessageIds:all",
    ]
    e = await h.one(rich(h).email_id, props)
    assert set(e) == {"id", *props}  # names come back exactly as asked
    assert e["headers"][0] == {"name": "From", "value": ' =?UTF-8?Q?J=C3=B6rg?= <jorg@example.test>, "Ann, B." <ann@example.test>'}
    assert [x["name"] for x in e["headers"]].count("X-Custom") == 2 and len(e["headers"]) == 16
    assert e["header:Subject"] == " =?UTF-8?B?SGVsbG8g4piD?= world"
    assert e["header:subject:asText"] == "Hello ☃ world"
    assert e["header:From:asAddresses"][0] == {"name": "Jörg", "email": "jorg@example.test"}
    assert e["header:To:asGroupedAddresses"] == [
        {"name": "Team", "addresses": [{"name": None, "email": "bob@example.test"},
                                       {"name": None, "email": "carol@example.test"}]},
        {"name": None, "addresses": [{"name": None, "email": "dave@example.test"}]},
    ]
    assert e["header:X-Custom"] == " again"
    assert e["header:X-Custom:all"] == [" hello", " again"]
    assert e["header:x-custom:asText:all"] == ["hello", "again"]
    assert e["header:X-Custom:asDate"] is None
    assert e["header:List-Unsubscribe:asURLs"] == ["mailto:unsub@example.test", "https://example.test/u"]
    assert e["header:Date:asDate"] == "2026-09-01T10:30:00-07:00"
    assert e["header:References:asMessageIds"] == ["root@example.test", "parent@example.test"]
    assert e["header:Message-ID:asMessageIds:all"] == [["rich@example.test"]]


# -- body structure and values ------------------------------------------------------------------------------------


async def test_body_structure_and_lists(h):  # noqa: F811
    e = await h.one(rich(h).email_id, ["bodyStructure", "textBody", "htmlBody", "attachments"],
                    bodyProperties=["partId", "type", "subParts", "name", "cid", "disposition", "size"])
    root = e["bodyStructure"]
    assert root["type"] == "multipart/mixed" and root["partId"] is None
    alt, pdf, msg = root["subParts"]
    assert alt["type"] == "multipart/alternative"
    assert [p["type"] for p in alt["subParts"]] == ["text/plain", "multipart/related"]
    html, img = alt["subParts"][1]["subParts"]
    assert html["partId"] == "1.2.1" and img["cid"] == "img1@x" and img["subParts"] is None
    assert pdf == {"partId": "2", "type": "application/pdf", "subParts": None, "name": "report.pdf", "cid": None,
                   "disposition": "attachment", "size": 9}
    assert msg["type"] == "message/rfc822" and msg["subParts"] is None  # not descended into
    assert [p["partId"] for p in e["textBody"]] == ["1.1"]
    assert [p["partId"] for p in e["htmlBody"]] == ["1.2.1"]
    assert [p["partId"] for p in e["attachments"]] == ["1.2.2", "2", "3"]


async def test_body_values(h):  # noqa: F811
    d = rich(h)
    e = await h.one(d.email_id, ["bodyValues"], fetchTextBodyValues=True)
    assert e["bodyValues"] == {"1.1": {"value": "Grüße, plain text.", "isEncodingProblem": False, "isTruncated": False}}
    e = await h.one(d.email_id, ["bodyValues"], fetchHTMLBodyValues=True)
    assert list(e["bodyValues"]) == ["1.2.1"] and e["bodyValues"]["1.2.1"]["value"].startswith("<html><body><p>Hello")
    e = await h.one(d.email_id, ["bodyValues"], fetchAllBodyValues=True)
    assert sorted(e["bodyValues"]) == ["1.1", "1.2.1"]  # text/* parts only


async def test_max_body_value_bytes(h):  # noqa: F811
    d = rich(h)
    e = await h.one(d.email_id, ["bodyValues"], fetchAllBodyValues=True, maxBodyValueBytes=5)
    assert e["bodyValues"]["1.1"] == {"value": "Grü", "isEncodingProblem": False, "isTruncated": True}
    # never inside an HTML tag
    e = await h.one(d.email_id, ["bodyValues"], fetchHTMLBodyValues=True, maxBodyValueBytes=13)
    assert e["bodyValues"]["1.2.1"] == {"value": "<html><body>", "isEncodingProblem": False, "isTruncated": True}
    e = await h.one(d.email_id, ["bodyValues"], fetchTextBodyValues=True, maxBodyValueBytes=1000)
    assert e["bodyValues"]["1.1"]["isTruncated"] is False


async def test_encoding_problem(h):  # noqa: F811
    raw = (b"Subject: bad\r\nContent-Type: text/plain; charset=x-unknown-42\r\nContent-Transfer-Encoding: base64\r\n"
           b"\r\n!!!not base64@@@\r\n")
    e = await h.one(h.ingest(raw).email_id, ["bodyValues", "textBody"], fetchTextBodyValues=True)
    value = e["bodyValues"][e["textBody"][0]["partId"]]
    assert value["isEncodingProblem"] is True


async def test_part_headers_and_header_forms_on_parts(h):  # noqa: F811
    e = await h.one(rich(h).email_id, ["attachments"],
                    bodyProperties=["partId", "headers", "header:Content-Type", "header:Content-Disposition:asRaw",
                                    "header:X-Nope:all"])
    pdf = e["attachments"][1]
    assert pdf["headers"] == [
        {"name": "Content-Type", "value": ' application/pdf; name="report.pdf"'},
        {"name": "Content-Disposition", "value": ' attachment; filename="report.pdf"'},
        {"name": "Content-Transfer-Encoding", "value": " base64"},
    ]
    assert pdf["header:Content-Type"] == ' application/pdf; name="report.pdf"'
    assert pdf["header:Content-Disposition:asRaw"] == ' attachment; filename="report.pdf"'
    assert pdf["header:X-Nope:all"] == []


async def test_single_part_root_headers_are_the_message_headers(h):  # noqa: F811
    d = h.ingest(simple(7))
    e = await h.one(d.email_id, ["bodyStructure"], bodyProperties=["partId", "headers", "type", "charset"])
    assert e["bodyStructure"]["partId"] == "1" and e["bodyStructure"]["type"] == "text/plain"
    assert e["bodyStructure"]["charset"] == "utf-8"
    assert [x["name"] for x in e["bodyStructure"]["headers"]][:2] == ["From", "To"]


async def test_part_blob_ids_download_decoded_bytes(h):  # noqa: F811
    d = rich(h)
    e = await h.one(d.email_id, ["attachments", "textBody"], bodyProperties=["partId", "blobId", "size"])
    pdf = e["attachments"][1]
    data = resolve_blob(h.store, h.account_id, pdf["blobId"])
    assert data == b"%PDF-1.4\n" and pdf["size"] == len(data)
    text = resolve_blob(h.store, h.account_id, e["textBody"][0]["blobId"])
    assert text.decode() == "Grüße, plain text."
    # the attached message's blob is the message itself
    inner = resolve_blob(h.store, h.account_id, e["attachments"][2]["blobId"])
    assert inner.startswith(b"From: inner@example.test")
    # not someone else's
    assert resolve_blob(h.store, h.bob.id, pdf["blobId"]) is None


@pytest.mark.parametrize("n", [63])
async def test_whole_corpus_with_every_property(h, n):  # noqa: F811
    raws = corpus(n)
    ids = [h.ingest(r, received_at=1_700_000_000 + i).email_id for i, r in enumerate(raws)]
    props = sorted(DEFAULT_PROPERTIES | {"headers", "bodyStructure", "header:Subject:asText", "header:From:asAddresses",
                                         "header:Date:asDate:all"})
    res = await h.ok("Email/get", {"ids": ids, "properties": props, "fetchAllBodyValues": True,
                                   "maxBodyValueBytes": 64,
                                   "bodyProperties": ["partId", "blobId", "headers", "type", "subParts"]})
    assert [e["id"] for e in res["list"]] == ids
    orjson.dumps(res)
    for e, raw in zip(res["list"], raws, strict=True):
        assert e["size"] == len(raw)
        for pid, value in e["bodyValues"].items():
            assert len(value["value"].encode()) <= 64, pid
        for p in e["textBody"]:
            assert p["partId"] is not None
