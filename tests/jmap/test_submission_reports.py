"""Reports received for a submission (RFC 8621 §7 ``mdnBlobIds`` / ``dsnBlobIds``) end to end, on SQLite and
PostgreSQL: a message sent with JMAP EmailSubmission through an aiosmtpd smarthost, then a read receipt (RFC
8098) or a remote MTA's bounce (RFC 3464) delivered to the sender by a real LMTP client (smtplib.LMTP), or an
MDN another account here sends back through the outbound sender's local delivery. EmailSubmission/get lists
the report's blob (the blob of the delivered Email), EmailSubmission/changes reports the update; a report to
another account, or one that names nothing, is delivered as usual and changes nothing."""

from __future__ import annotations

import email
import smtplib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.jmap.test_email_submission import USING, Sink, send, submission
from tests.jmap.test_front_harness import Jmap, fresh_client, start_shared
from tests.procmem import wait_for
from tests.reportgen import dsn, mdn
from tests.serverutil import ServerThread


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None, sink: Sink
           ) -> Iterator[ServerThread]:
    yield from start_shared(tmp_path_factory, module_db_url, outbound__relay=f"smtp://127.0.0.1:{sink.port}",
                            outbound__retry_base=1)


@pytest.fixture
def alice(server: ServerThread) -> Iterator[Jmap]:
    j = fresh_client(server, "alice")
    yield j
    j.http.close()


@pytest.fixture
def bob(server: ServerThread) -> Iterator[Jmap]:
    j = fresh_client(server, "bob")
    yield j
    j.http.close()


def lmtp(server: ServerThread, rcpt: str, raw: bytes, mail_from: str = "") -> None:
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
        assert client.sendmail(mail_from, [rcpt], raw) == {}  # delivered (250), whatever the report says


def sent_by(sink: Sink, address: str) -> list[bytes]:
    return [data for mail_from, _, data in sink.received() if mail_from == address]


def sent_message_id(sink: Sink, j: Jmap) -> str:
    """The Message-ID of the message as it reached the smarthost (what the remote side answers), brackets off."""
    wait_for(lambda: sent_by(sink, j.address), "the message at the smarthost")
    return email.message_from_bytes(sent_by(sink, j.address)[0])["Message-ID"].strip()[1:-1]


def submission_state(j: Jmap) -> str:
    return j.call("EmailSubmission/get", {"ids": []}, using=USING)["state"]


def inbox_blobs(j: Jmap) -> dict[str, dict[str, Any]]:
    """blobId -> Email of the Inbox."""
    ids = j.call("Email/query", {"filter": {"inMailbox": j.role("inbox")}})["ids"]
    got = j.call("Email/get", {"ids": ids, "properties": ["blobId", "subject", "messageId"]})["list"]
    return {g["blobId"]: g for g in got}


def send_one(j: Jmap, to: str) -> tuple[str, str]:
    """(submission id, email id) of a new message to ``to``."""
    out = send(j, [to], on_success=False)
    return out[1][1]["created"]["sub"]["id"], out[0][1]["created"]["draft"]["id"]


def test_read_receipt_is_listed_in_mdn_blob_ids(server: ServerThread, alice: Jmap, sink: Sink) -> None:
    sub_id, _ = send_one(alice, "carol@remote.test")
    msgid = sent_message_id(sink, alice)
    wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["delivered"] == "yes",
             "the delivery recorded")
    assert submission(alice, sub_id)["mdnBlobIds"] == []
    state = submission_state(alice)
    receipt = mdn(msgid, to=alice.address)
    lmtp(server, alice.address, receipt, "bob@remote.test")
    # linked in the delivery's own write: seen as soon as LMTP answered
    record = submission(alice, sub_id)
    [blob] = record["mdnBlobIds"]
    assert record["dsnBlobIds"] == []
    assert inbox_blobs(alice)[blob]["subject"] == "Read: Hello"  # the delivered Email's blob
    raw = alice.http.get(f"/jmap/download/{alice.account_id}/{blob}/mdn.eml?type=message/rfc822").content
    assert raw.endswith(receipt)  # (after the Received line LMTP adds)
    changes = alice.call("EmailSubmission/changes", {"sinceState": state}, using=USING)
    assert changes["updated"] == [sub_id] and changes["created"] == [] and changes["newState"] != state


def test_remote_bounce_follows_the_servers_own_dsn(server: ServerThread, alice: Jmap, sink: Sink) -> None:
    sub_id, email_id = send_one(alice, "nobody@remote.test")  # the smarthost refuses: Janus bounces it itself
    wait_for(lambda: submission(alice, sub_id)["dsnBlobIds"], "the server's own DSN")
    [own] = submission(alice, sub_id)["dsnBlobIds"]
    msgid = alice.call("Email/get", {"ids": [email_id], "properties": ["messageId"]})["list"][0]["messageId"][0]
    state = submission_state(alice)
    lmtp(server, alice.address, dsn(msgid, rcpt="nobody@remote.test", to=alice.address))
    record = submission(alice, sub_id)
    assert record["dsnBlobIds"][0] == own and len(record["dsnBlobIds"]) == 2
    remote = record["dsnBlobIds"][1]
    assert inbox_blobs(alice)[remote]["subject"] == "Undelivered Mail" and record["mdnBlobIds"] == []
    assert alice.call("EmailSubmission/changes", {"sinceState": state}, using=USING)["updated"] == [sub_id]


def test_a_report_to_another_account_changes_nothing(server: ServerThread, alice: Jmap, bob: Jmap,
                                                     sink: Sink) -> None:
    sub_id, _ = send_one(alice, "carol@remote.test")
    msgid = sent_message_id(sink, alice)
    wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["delivered"] == "yes",
             "the delivery recorded")
    state = submission_state(alice)
    foreign = mdn(msgid, to=bob.address)  # names alice's message, delivered to bob
    lmtp(server, bob.address, foreign)
    lmtp(server, bob.address, dsn(msgid, to=bob.address))
    assert len(inbox_blobs(bob)) == 2  # bob got both, as any mail
    assert submission(alice, sub_id)["mdnBlobIds"] == [] and submission(alice, sub_id)["dsnBlobIds"] == []
    assert submission_state(alice) == state
    assert bob.call("EmailSubmission/get", {"ids": None}, using=USING)["list"] == []
    # the same receipt delivered to alice is hers to see
    lmtp(server, alice.address, mdn(msgid, to=alice.address))
    assert len(submission(alice, sub_id)["mdnBlobIds"]) == 1


def test_a_malformed_report_is_delivered_as_usual(server: ServerThread, alice: Jmap, sink: Sink) -> None:
    sub_id, _ = send_one(alice, "carol@remote.test")
    msgid = sent_message_id(sink, alice)
    wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["delivered"] == "yes",
             "the delivery recorded")
    state = submission_state(alice)
    garbage = mdn(None, to=alice.address, fields="\x00\xff: <<<\r\nOriginal-Message-ID: <>\r\n\r\n\r\n")
    no_parts = (b"From: x@remote.test\r\nTo: " + alice.address.encode() + b"\r\nSubject: Broken report\r\n"
                b"Content-Type: multipart/report; report-type=disposition-notification; boundary=zz\r\n\r\n"
                b"no parts at all\r\n")
    unknown = dsn("never-sent@example.test", to=alice.address)
    for raw in (garbage, no_parts, unknown):
        lmtp(server, alice.address, raw)
    subjects = sorted(e["subject"] for e in inbox_blobs(alice).values())
    assert subjects == ["Broken report", "Read: Hello", "Undelivered Mail"]
    assert submission_state(alice) == state and submission(alice, sub_id)["mdnBlobIds"] == []
    lmtp(server, alice.address, mdn(msgid, to=alice.address))  # a good one still is linked afterwards
    assert len(submission(alice, sub_id)["mdnBlobIds"]) == 1


def test_receipt_from_an_account_here_by_local_delivery(server: ServerThread, alice: Jmap, bob: Jmap) -> None:
    """Bob (here) sends alice a read receipt with EmailSubmission: the sender's local delivery stores it in
    alice's Inbox and lists it on her submission, in one write."""
    sub_id, email_id = send_one(alice, bob.address)
    wait_for(lambda: submission(alice, sub_id)["deliveryStatus"][bob.address]["delivered"] == "yes",
             "bob's copy")
    msgid = alice.call("Email/get", {"ids": [email_id], "properties": ["messageId"]})["list"][0]["messageId"][0]
    state = submission_state(alice)
    receipt = mdn(msgid, frm=bob.address, to=alice.address)
    up = bob.http.post(f"/jmap/upload/{bob.account_id}", content=receipt,
                       headers={"Content-Type": "message/rfc822"})
    assert up.status_code == 201, up.text
    identity = bob.call("Identity/get", {"ids": None}, using=USING)["list"][0]["id"]
    out = bob.request([
        ["Email/import", {"accountId": bob.account_id, "emails": {"r": {
            "blobId": up.json()["blobId"], "mailboxIds": {bob.role("drafts"): True}}}}, "c0"],
        ["EmailSubmission/set", {"accountId": bob.account_id, "create": {"s": {
            "identityId": identity, "emailId": "#r",
            "envelope": {"mailFrom": {"email": bob.address, "parameters": None},
                         "rcptTo": [{"email": alice.address, "parameters": None}]}}}}, "c1"],
    ], using=USING)["methodResponses"]
    assert "s" in out[1][1].get("created", {}), out
    wait_for(lambda: submission(alice, sub_id)["mdnBlobIds"], "the receipt listed on alice's submission")
    [blob] = submission(alice, sub_id)["mdnBlobIds"]
    assert inbox_blobs(alice)[blob]["subject"] == "Read: Hello"
    assert alice.call("EmailSubmission/changes", {"sinceState": state}, using=USING)["updated"] == [sub_id]


def test_a_displayed_receipt_marks_its_recipient_displayed(server: ServerThread, alice: Jmap, sink: Sink) -> None:
    """RFC 8621 §7 deliveryStatus.displayed: "yes" once the recipient's MDN says ``displayed`` (RFC 8098
    §3.2.6); another disposition (deleted) or a recipient the submission never had changes nothing of it."""
    sub_id, _ = send_one(alice, "carol@remote.test")
    msgid = sent_message_id(sink, alice)
    wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["delivered"] == "yes",
             "the delivery recorded")

    def receipt(rcpt: str, disposition: str) -> bytes:
        return mdn(None, to=alice.address, fields="\r\n".join([
            "Reporting-UA: remote.test; ExampleMail 1.0", f"Final-Recipient: rfc822; {rcpt}",
            f"Original-Message-ID: <{msgid}>", f"Disposition: manual-action/MDN-sent-manually; {disposition}",
        ]) + "\r\n")

    def displayed() -> str:
        return submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["displayed"]

    lmtp(server, alice.address, receipt("carol@remote.test", "deleted"), "carol@remote.test")
    lmtp(server, alice.address, receipt("mallory@remote.test", "displayed"), "mallory@remote.test")
    assert len(submission(alice, sub_id)["mdnBlobIds"]) == 2 and displayed() == "unknown"
    lmtp(server, alice.address, receipt("Carol@remote.test", "displayed"), "carol@remote.test")
    assert len(submission(alice, sub_id)["mdnBlobIds"]) == 3 and displayed() == "yes"
