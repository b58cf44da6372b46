"""Email/import (RFC 8621 §4.8) over ``store.emails.ingest_each``: the store answers each import (stored, or the
StoreError that refused it) and the door only names the SetError. The good imports of one call share one
transaction; a batch the store refuses as a whole is retried one by one. SQLite and PostgreSQL."""

from __future__ import annotations

from tests.ingest_threads import on_writer_lane, record_ingest_threads
from tests.jmap.test_email_harness import h  # noqa: F401
from tests.mailgen import simple


def upload(h, data: bytes) -> str:  # noqa: ANN001, F811
    return h.store.blobs.upload(h.account_id, data, "message/rfc822")[0]


async def test_each_import_gets_its_own_answer_and_the_good_ones_one_transaction(h):  # noqa: F811
    small, big = upload(h, simple(1)), upload(h, simple(2, body="x" * 5000))
    h.store.max_message_size = 1000
    before = h.store.changes.highest_modseq(h.account_id)
    res = await h.ok("Email/import", {"emails": {
        "a": {"blobId": small, "mailboxIds": {h.inbox: True}},
        "b": {"blobId": small, "mailboxIds": {h.boxes["archive"]: True}, "keywords": {"$seen": True}},
        "big": {"blobId": big, "mailboxIds": {h.inbox: True}},
        "nobox": {"blobId": small, "mailboxIds": {"Fnope": True}},
        "nob": {"blobId": "Gnosuchblob", "mailboxIds": {h.inbox: True}},
    }})
    assert set(res["created"]) == {"a", "b"}
    nc = res["notCreated"]
    assert (nc["big"]["type"], nc["big"]["maxSize"]) == ("tooLarge", 1000)
    assert (nc["nobox"]["type"], nc["nobox"]["properties"]) == ("invalidProperties", ["mailboxIds"])
    assert (nc["nob"]["type"], nc["nob"]["properties"]) == ("invalidProperties", ["blobId"])
    assert h.store.changes.highest_modseq(h.account_id) == before + 1  # both stored in one transaction


async def test_a_batch_refused_as_a_whole_is_retried_one_by_one(h, monkeypatch):  # noqa: F811
    blob = upload(h, simple(1))
    gone = h.store.mailboxes.create(h.account_id, "Gone")
    # The store's check sees the mailbox; it is destroyed before the batch's transaction runs.
    real_unknown = h.store.mailboxes.unknown

    def unknown_then_destroy(account_id: str, ids: list[str]) -> list[str]:
        out = real_unknown(account_id, ids)
        h.store.mailboxes.destroy(account_id, gone.id, remove_emails=True)
        return out

    monkeypatch.setattr(h.store.mailboxes, "unknown", unknown_then_destroy)
    before = h.store.changes.highest_modseq(h.account_id)
    res = await h.ok("Email/import", {"emails": {
        "ok": {"blobId": blob, "mailboxIds": {h.inbox: True}},
        "late": {"blobId": blob, "mailboxIds": {gone.id: True}},
    }})
    assert set(res["created"]) == {"ok"}
    assert res["notCreated"]["late"]["properties"] == ["mailboxIds"]
    assert h.store.changes.highest_modseq(h.account_id) == before + 2  # the destroy, then "ok" alone


async def test_imports_and_creates_are_parsed_and_stored_before_the_writer_lane(h, monkeypatch):  # noqa: F811
    """Email/import and Email/set create parse their messages and store and sync the bytes on the store's
    ingest threads (``Store.prepare_ingest(each=True)``); the writer lane, where every write waits its turn under
    SQLite's one write lock, runs their statements only (before, ``ingest_each`` parsed on the lane)."""
    where = record_ingest_threads(monkeypatch)
    blob = upload(h, simple(1))
    res = await h.ok("Email/import", {"emails": {"a": {"blobId": blob, "mailboxIds": {h.inbox: True}}}})
    assert set(res["created"]) == {"a"}
    res = await h.ok("Email/set", {"create": {"n": {"mailboxIds": {h.inbox: True}, "subject": "new",
                                                    "bodyValues": {"1": {"value": "hi"}},
                                                    "textBody": [{"partId": "1", "type": "text/plain"}]}}})
    assert set(res["created"]) == {"n"}
    assert len(where) == 4 and not any(map(on_writer_lane, where)), where
