"""Mailbox/set and the inbox (issue 9): the store refuses, in the write's own transaction, to destroy the inbox,
drop its role or move it under another mailbox (IMAP's INBOX is a top-level name); the door only names the
refusal (RFC 8621 §2.5 SetErrors). The inbox may still be renamed and reordered. SQLite and PostgreSQL."""

from __future__ import annotations

from tests.jmap.test_front_harness import alice, server  # noqa: F401 - fixtures
from tests.mailgen import simple


def test_the_inbox_stays_where_imap_needs_it(alice):  # noqa: F811
    inbox, archive = alice.role("inbox"), alice.role("archive")
    alice.deliver(simple(1))
    state = alice.call("Mailbox/get", {"ids": []})["state"]
    out = alice.call("Mailbox/set", {"update": {inbox: {"parentId": archive}}})
    err = out["notUpdated"][inbox]
    assert (err["type"], err["properties"]) == ("invalidProperties", ["parentId"])
    out = alice.call("Mailbox/set", {"update": {inbox: {"role": None, "name": "Old"}}})
    err = out["notUpdated"][inbox]
    assert (err["type"], err["properties"]) == ("invalidProperties", ["role"])
    out = alice.call("Mailbox/set", {"destroy": [inbox], "onDestroyRemoveEmails": True})
    assert out["notDestroyed"][inbox]["type"] == "forbidden"
    assert out["newState"] == state  # nothing was written
    record = alice.call("Mailbox/get", {"ids": [inbox]})["list"][0]
    assert (record["name"], record["role"], record["parentId"], record["totalEmails"]) == ("INBOX", "inbox",
                                                                                         None, 1)
    out = alice.call("Mailbox/set", {"update": {inbox: {"name": "Posteingang", "sortOrder": 5, "role": "inbox"}}})
    assert out["updated"] == {inbox: None}, out
    record = alice.call("Mailbox/get", {"ids": [inbox]})["list"][0]
    assert (record["name"], record["role"], record["sortOrder"]) == ("Posteingang", "inbox", 5)
