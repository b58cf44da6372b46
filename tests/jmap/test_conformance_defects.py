"""Defects a third-party JMAP conformance suite found (issue 12), each through the real HTTP front.

1. A download answers exactly the Content-Type the client asked for (RFC 8620 §6.2), no added charset.
2. Email/import of an unknown blobId is ``invalidProperties ["blobId"]`` (RFC 8621 §4.8).
3. Mailbox/set accepts server-set properties sent back at their current values and names the member that
   differs (``myRights/mayReadItems``) when one is not (RFC 8620 §5.3).
4. A patch on an unknown Email id is ``notFound``, whatever the patch (``keywords/~1/x``).
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from tests.jmap.test_front_harness import Jmap, principal, start_shared
from tests.mailgen import simple
from tests.serverutil import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server for the module; each test's principals are accounts of its own."""
    yield from start_shared(tmp_path_factory)


@pytest.fixture
def alice(server: ServerThread) -> Iterator[Jmap]:
    yield from principal(server, "alice")


def _upload(j, data: bytes, type_: str = "application/octet-stream") -> str:  # noqa: ANN001
    r = j.http.post(f"/jmap/upload/{j.account_id}", content=data, headers={"Content-Type": type_})
    assert r.status_code == 201, r.text
    return r.json()["blobId"]


def test_download_content_type_is_exactly_the_requested_one(alice):  # noqa: F811
    blob = _upload(alice, b"caf\xe9")
    for asked in ["text/plain", "text/html", "text/plain; charset=iso-8859-1", "application/json"]:
        r = alice.http.get(f"/jmap/download/{alice.account_id}/{blob}/x?type={quote(asked)}")
        assert r.status_code == 200 and r.content == b"caf\xe9"
        assert r.headers["content-type"] == asked


def test_download_of_a_big_text_blob_streams_with_the_requested_type(alice):  # noqa: F811
    blob = _upload(alice, b"x" * 1_300_000)  # past the front's 1 MiB chunk: the streaming response
    r = alice.http.get(f"/jmap/download/{alice.account_id}/{blob}/x?type=text/plain")
    assert r.status_code == 200 and len(r.content) == 1_300_000
    assert r.headers["content-type"] == "text/plain"


def test_import_of_an_unknown_blob_is_invalid_properties_blob_id(alice):  # noqa: F811
    inbox = alice.role("inbox")
    good = _upload(alice, simple(1), "message/rfc822")
    res = alice.call("Email/import", {"emails": {
        "nob": {"blobId": "Gnosuchblob", "mailboxIds": {inbox: True}},
        "ok": {"blobId": good, "mailboxIds": {inbox: True}},
    }})
    assert set(res["created"]) == {"ok"}
    err = res["notCreated"]["nob"]
    assert (err["type"], err["properties"]) == ("invalidProperties", ["blobId"])


def test_mailbox_set_accepts_server_set_properties_at_their_current_values(alice):  # noqa: F811
    inbox = alice.role("inbox")
    alice.deliver(simple(1))
    # A whole Mailbox as /get returned it, sent back: the counts and myRights are unchanged, so accepted.
    record = alice.call("Mailbox/get", {"ids": [inbox]})["list"][0]
    assert record["totalEmails"] == 1
    whole = {k: v for k, v in record.items() if k != "id"}
    out = alice.call("Mailbox/set", {"update": {inbox: whole}})
    assert out["updated"] == {inbox: None}, out
    out = alice.call("Mailbox/set", {"update": {inbox: {"myRights/mayReadItems": True, "totalEmails": 1}}})
    assert out["updated"] == {inbox: None}, out
    # A create may echo what a new mailbox gets: zero counts and all rights.
    fresh = {**whole, "name": "Fresh", "role": None, "totalEmails": 0, "unreadEmails": 0,
             "totalThreads": 0, "unreadThreads": 0}
    out = alice.call("Mailbox/set", {"create": {"f": fresh}})
    assert set(out["created"]) == {"f"}, out
    assert "myRights" not in out["created"]["f"]  # the client's value was the server's: nothing to report


def test_mailbox_set_names_the_server_set_member_that_differs(alice):  # noqa: F811
    inbox = alice.role("inbox")
    record = alice.call("Mailbox/get", {"ids": [inbox]})["list"][0]
    rights = {**record["myRights"], "mayReadItems": False}
    out = alice.call("Mailbox/set", {
        "create": {"c": {"name": "C", "myRights": rights, "totalEmails": 0}},
        "update": {inbox: {"myRights": rights}},
    })
    assert out["notCreated"]["c"]["type"] == "invalidProperties"
    assert out["notCreated"]["c"]["properties"] == ["myRights/mayReadItems"]
    assert out["notUpdated"][inbox]["properties"] == ["myRights/mayReadItems"]
    out = alice.call("Mailbox/set", {"update": {inbox: {"myRights/mayReadItems": False, "unreadEmails": 5}}})
    assert out["notUpdated"][inbox]["properties"] == ["myRights/mayReadItems", "unreadEmails"]
    out = alice.call("Mailbox/set", {"update": {inbox: {"myRights/mayFly": True}}})
    assert out["notUpdated"][inbox]["properties"] == ["myRights/mayFly"]
    out = alice.call("Mailbox/set", {"create": {"c": {"name": "C", "myRights": {"mayReadItems": True}}}})
    assert out["notCreated"]["c"]["type"] == "invalidProperties"
    assert "myRights/mayDelete" in out["notCreated"]["c"]["properties"]
    out = alice.call("Mailbox/set", {"create": {"c": {"name": "C", "id": "Fmine"}}})
    assert out["notCreated"]["c"]["properties"] == ["id"]


def test_patching_an_unknown_email_is_not_found_whatever_the_patch(alice):  # noqa: F811
    known = alice.deliver(simple(1)).email_id
    out = alice.call("Email/set", {"update": {
        "Mnosuchemail": {"keywords/~1/x": True},
        "Mnosuchother": {"subject": "x"},
        known: {"keywords/~1/x": True},
    }})
    nu = out["notUpdated"]
    assert nu["Mnosuchemail"]["type"] == "notFound"
    assert nu["Mnosuchother"]["type"] == "notFound"
    assert nu[known]["type"] == "invalidPatch"  # the patch really is bad for an email that exists
