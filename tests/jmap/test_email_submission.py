"""EmailSubmission (RFC 8621 §7) end to end, on SQLite and PostgreSQL, with real parts: an aiosmtpd sink as the
smarthost, a second account here as a local recipient, jmap over httpx. Draft -> send -> Sent with
onSuccessUpdateEmail; per-recipient delivery status; a permanent failure bounced as a DSN into the sender's
Inbox; undo-send of a held message; the sender checks; a retry that survives a server restart; the hold limits
the session advertises; the envelope derived from Sender/From; onSuccess* for destroyed submissions."""

from __future__ import annotations

import datetime as dt
import email
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.jmap.test_front_harness import (
    CORE,
    MAIL,
    Jmap,
    client_for,
    fresh_client,
    start_server,
    start_shared,
)
from tests.procmem import wait_for
from tests.serverutil import ServerThread, make_config

SUBMISSION = "urn:ietf:params:jmap:submission"
USING = [CORE, MAIL, SUBMISSION]


class Sink:
    """A smarthost stand-in: accepts everything but ``nobody@...`` (550) and keeps what it received."""

    def __init__(self, port: int | None = None) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: ANN001, ANN201, N802
                if address.startswith("nobody@"):
                    return "550 5.1.1 No such user here"
                envelope.rcpt_tos.append(address)
                return "250 2.1.5 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
                with outer.lock:
                    outer.messages.append((envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
                return "250 2.0.0 Queued"

        self.port = port or _free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def received(self) -> list[tuple[str, list[str], bytes]]:
        with self.lock:
            return list(self.messages)

    def stop(self) -> None:
        self.controller.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.stop()


@pytest.fixture
def server(tmp_path, db_url, sink):  # noqa: ANN001, ANN201
    srv = start_server(tmp_path, db_url, outbound__relay=f"smtp://127.0.0.1:{sink.port}", outbound__retry_base=1)
    yield srv
    srv.stop()


@pytest.fixture
def alice(server) -> Iterator[Jmap]:  # noqa: ANN001
    j = client_for(server, "alice@example.test")
    yield j
    j.http.close()


@pytest.fixture
def bob(server) -> Iterator[Jmap]:  # noqa: ANN001
    j = client_for(server, "bob@example.test")
    yield j
    j.http.close()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    """One server per backend for the refusal tests (nothing reaches its sink); each takes a fresh account."""
    sink = Sink()
    try:
        yield from start_shared(tmp_path_factory, module_db_url, outbound__relay=f"smtp://127.0.0.1:{sink.port}",
                                outbound__retry_base=1)
    finally:
        sink.stop()


@pytest.fixture
def lone_alice(shared_server: ServerThread) -> Iterator[Jmap]:
    j = fresh_client(shared_server, "alice")
    yield j
    j.http.close()


def identity_of(j: Jmap) -> str:
    return j.call("Identity/get", {"ids": None}, using=USING)["list"][0]["id"]


def draft(j: Jmap, to: list[str], sender: str | None = None, subject: str = "Hello") -> dict[str, Any]:
    return {
        "mailboxIds": {j.role("drafts"): True},
        "keywords": {"$draft": True, "$seen": True},
        "from": [{"email": sender or j.address}],
        "to": [{"email": a} for a in to],
        "subject": subject,
        "bodyValues": {"b": {"value": "Hi there.\n"}},
        "textBody": [{"partId": "b", "type": "text/plain"}],
    }


def send(j: Jmap, to: list[str], *, envelope: dict[str, Any] | None = None, sender: str | None = None,
         on_success: bool = True) -> list[Any]:
    """Email/set create a draft, then EmailSubmission/set for it in the same request (the usual client)."""
    sub: dict[str, Any] = {"identityId": identity_of(j), "emailId": "#draft"}
    if envelope is not None:
        sub["envelope"] = envelope
    args: dict[str, Any] = {"accountId": j.account_id, "create": {"sub": sub}}
    if on_success:
        args["onSuccessUpdateEmail"] = {"#sub": {
            f"mailboxIds/{j.role('drafts')}": None, f"mailboxIds/{j.role('sent')}": True, "keywords/$draft": None}}
    out = j.request([
        ["Email/set", {"accountId": j.account_id, "create": {"draft": draft(j, to, sender)}}, "c0"],
        ["EmailSubmission/set", args, "c1"],
    ], using=USING)
    return out["methodResponses"]


def submission(j: Jmap, sub_id: str) -> dict[str, Any]:
    return j.call("EmailSubmission/get", {"ids": [sub_id]}, using=USING)["list"][0]


def test_draft_is_sent_delivered_and_filed(alice: Jmap, bob: Jmap, sink: Sink) -> None:
    responses = send(alice, ["bob@example.test", "carol@remote.test"])
    names = [r[0] for r in responses]
    assert names == ["Email/set", "EmailSubmission/set", "Email/set"], responses  # the implicit one last
    created = responses[1][1]["created"]["sub"]
    assert created["undoStatus"] == "final" and created["threadId"]
    email_id = responses[0][1]["created"]["draft"]["id"]
    implicit = responses[2][1]
    assert implicit["updated"] == {email_id: None}, implicit
    got = alice.call("Email/get", {"ids": [email_id], "properties": ["mailboxIds", "keywords"]})["list"][0]
    assert got["mailboxIds"] == {alice.role("sent"): True} and "$draft" not in got["keywords"]
    # the remote recipient through the smarthost, the local one straight into bob's Inbox
    wait_for(lambda: sink.received(), "the smarthost to receive the message")
    mail_from, rcpts, data = sink.received()[0]
    assert mail_from == "alice@example.test" and rcpts == ["carol@remote.test"]
    assert email.message_from_bytes(data)["Subject"] == "Hello"
    wait_for(lambda: bob.call("Email/query", {"filter": {"inMailbox": bob.role("inbox")}})["ids"], "bob's copy")
    sub_id = created["id"]
    wait_for(lambda: all(d["delivered"] == "yes" for d in submission(alice, sub_id)["deliveryStatus"].values()),
             "both recipients delivered")
    record = submission(alice, sub_id)
    assert record["envelope"] == {"mailFrom": {"email": "alice@example.test", "parameters": None},
                                  "rcptTo": [{"email": "bob@example.test", "parameters": None},
                                             {"email": "carol@remote.test", "parameters": None}]}
    assert record["emailId"] == email_id and record["dsnBlobIds"] == []
    # query and changes see it
    assert alice.call("EmailSubmission/query", {"filter": {"emailIds": [email_id]}}, using=USING)["ids"] == [sub_id]
    changes = alice.call("EmailSubmission/changes", {"sinceState": "0"}, using=USING)
    assert sub_id in changes["created"]


def test_permanent_failure_bounces_to_the_sender(alice: Jmap, sink: Sink) -> None:
    responses = send(alice, ["nobody@remote.test"], on_success=False)
    sub_id = responses[1][1]["created"]["sub"]["id"]
    wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["nobody@remote.test"]["delivered"] == "no",
             "the refusal recorded")
    record = submission(alice, sub_id)
    assert record["deliveryStatus"]["nobody@remote.test"]["smtpReply"].startswith("550")
    [dsn_blob] = record["dsnBlobIds"]
    inbox = alice.call("Email/query", {"filter": {"inMailbox": alice.role("inbox")}})["ids"]
    got = alice.call("Email/get", {"ids": inbox, "properties": ["blobId", "subject", "from"]})["list"]
    [bounce] = [g for g in got if g["blobId"] == dsn_blob]
    assert bounce["subject"] == "Undelivered Mail Returned to Sender"
    raw = alice.http.get(f"/jmap/download/{alice.account_id}/{dsn_blob}/dsn.eml?type=message/rfc822").content
    report = email.message_from_bytes(raw)
    assert report.get_content_type() == "multipart/report"
    assert b"Final-Recipient: rfc822; nobody@remote.test" in raw and b"Status: 5.1.1" in raw


def test_undo_send_while_held(alice: Jmap, sink: Sink) -> None:
    envelope = {"mailFrom": {"email": alice.address, "parameters": {"HOLDFOR": "600"}},
                "rcptTo": [{"email": "carol@remote.test", "parameters": None}]}
    responses = send(alice, ["carol@remote.test"], envelope=envelope, on_success=False)
    created = responses[1][1]["created"]["sub"]
    assert created["undoStatus"] == "pending" and created["sendAt"] > "2026"
    out = alice.call("EmailSubmission/set", {"update": {created["id"]: {"undoStatus": "canceled"}}}, using=USING)
    assert out["updated"] == {created["id"]: None}, out
    assert submission(alice, created["id"])["undoStatus"] == "canceled"
    # a canceled one cannot be sent any more, and a final one cannot be canceled
    done = send(alice, ["carol@remote.test"], on_success=False)[1][1]["created"]["sub"]["id"]
    out = alice.call("EmailSubmission/set", {"update": {done: {"undoStatus": "canceled"}}}, using=USING)
    assert out["notUpdated"][done]["type"] == "cannotUnsend", out
    wait_for(lambda: sink.received(), "the final one sent")
    assert len(sink.received()) == 1


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"sender": "mallory@example.test"}, "forbiddenFrom"),
    ({"envelope": {"mailFrom": {"email": "mallory@example.test", "parameters": None},
                   "rcptTo": [{"email": "x@remote.test", "parameters": None}]}}, "forbiddenMailFrom"),
    ({"envelope": {"mailFrom": {"email": "alice@example.test", "parameters": None}, "rcptTo": []}}, "noRecipients"),
    ({"envelope": {"mailFrom": {"email": "alice@example.test", "parameters": {"HOLDFOR": "99999999"}},
                   "rcptTo": [{"email": "x@remote.test", "parameters": None}]}}, "invalidProperties"),
    # not ASCII digits: "²" passes str.isdigit() and 5000 digits are past int()'s limit (both were serverFail)
    ({"envelope": {"mailFrom": {"email": "alice@example.test", "parameters": {"HOLDFOR": "\u00b2"}},
                   "rcptTo": [{"email": "x@remote.test", "parameters": None}]}}, "invalidProperties"),
    ({"envelope": {"mailFrom": {"email": "alice@example.test", "parameters": {"HOLDFOR": "9" * 5000}},
                   "rcptTo": [{"email": "x@remote.test", "parameters": None}]}}, "invalidProperties"),
])
def test_sender_checks(lone_alice: Jmap, kwargs: dict[str, Any], error: str) -> None:
    alice = lone_alice  # "alice@example.test" in the cases is her own address
    kwargs = json.loads(json.dumps(kwargs).replace('"alice@example.test"', json.dumps(alice.address)))
    responses = send(alice, ["x@remote.test"], on_success=False, **kwargs)
    assert responses[1][1]["notCreated"]["sub"]["type"] == error, responses


def test_other_accounts_cannot_see_submissions(alice: Jmap, bob: Jmap) -> None:
    sub_id = send(alice, ["x@remote.test"], on_success=False)[1][1]["created"]["sub"]["id"]
    assert bob.call("EmailSubmission/get", {"ids": [sub_id]}, using=USING)["notFound"] == [sub_id]
    out = bob.call("EmailSubmission/set", {"destroy": [sub_id]}, using=USING)
    assert out["notDestroyed"][sub_id]["type"] == "notFound"


def test_retry_survives_a_restart(tmp_path, db_url) -> None:  # noqa: ANN001
    port = _free_port()  # nothing listens yet: the relay is down
    srv = start_server(tmp_path, db_url, outbound__relay=f"smtp://127.0.0.1:{port}", outbound__retry_base=1)
    try:
        alice = client_for(srv, "alice@example.test")
        sub_id = send(alice, ["carol@remote.test"], on_success=False)[1][1]["created"]["sub"]["id"]
        wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["smtpReply"]
                 .startswith("451"), "a temporary failure recorded")
        alice.http.close()
    finally:
        srv.stop()
    sink = Sink(port)  # the relay comes back while the server is down
    try:
        cfg = make_config(tmp_path / "data", db_url, imap__listen=None, imap__imaps=None,
                          outbound__relay=f"smtp://127.0.0.1:{port}", outbound__retry_base=1)
        srv = ServerThread(cfg).start()  # the same data directory and database: the accounts are there
        try:
            alice = client_for(srv, "alice@example.test")
            wait_for(lambda: sink.received(), "the retry after the restart")
            wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["delivered"] == "yes",
                     "delivered recorded")
            assert len(sink.received()) == 1
            alice.http.close()
        finally:
            srv.stop()
    finally:
        sink.stop()


def test_still_failing_at_max_age_bounces_to_the_sender(tmp_path, db_url) -> None:  # noqa: ANN001
    """Issue 12 item 3: temporary failures are retried until ``[outbound] max_age``, then the recipient fails
    for good (5.4.7) and a DSN lands in the sender's Inbox, listed in dsnBlobIds; nothing is retried after."""
    port = _free_port()  # nothing ever listens: every attempt is a temporary failure
    srv = start_server(tmp_path, db_url, outbound__relay=f"smtp://127.0.0.1:{port}", outbound__retry_base=1,
                       outbound__max_age=2)
    try:
        alice = client_for(srv, "alice@example.test")
        sub_id = send(alice, ["carol@remote.test"], on_success=False)[1][1]["created"]["sub"]["id"]
        wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["delivered"] == "no",
                 "the recipient given up after max_age")
        record = submission(alice, sub_id)
        assert record["deliveryStatus"]["carol@remote.test"]["smtpReply"].startswith("550 5.4.7"), record
        [dsn_blob] = record["dsnBlobIds"]
        inbox = alice.call("Email/query", {"filter": {"inMailbox": alice.role("inbox")}})["ids"]
        assert dsn_blob in [g["blobId"] for g in alice.call("Email/get", {"ids": inbox,
                                                                          "properties": ["blobId"]})["list"]]
        raw = alice.http.get(f"/jmap/download/{alice.account_id}/{dsn_blob}/dsn.eml?type=message/rfc822").content
        assert b"Final-Recipient: rfc822; carol@remote.test" in raw and b"Status: 5.4.7" in raw
        assert srv.store.submissions.next_due() is None  # not queued any more
        alice.http.close()
    finally:
        srv.stop()


def test_bcc_recipients_get_the_message_but_nobody_sees_the_bcc_field(alice: Jmap, bob: Jmap, sink: Sink) -> None:
    """RFC 5322 §3.6.3: the Bcc field stays in the sender's copy only; the envelope still reaches every
    recipient (it was sent as stored, so To, Cc and each Bcc recipient saw the whole blind-copy list)."""
    obj = draft(alice, ["carol@remote.test"])
    obj["bcc"] = [{"email": "bob@example.test"}, {"email": "dave@remote.test"}]
    sub = {"identityId": identity_of(alice), "emailId": "#draft"}
    out = alice.request([
        ["Email/set", {"accountId": alice.account_id, "create": {"draft": obj}}, "c0"],
        ["EmailSubmission/set", {"accountId": alice.account_id, "create": {"sub": sub}}, "c1"],
    ], using=USING)["methodResponses"]
    assert "sub" in out[1][1]["created"], out
    wait_for(lambda: sink.received(), "the smarthost to receive the message")
    _, rcpts, data = sink.received()[0]
    assert sorted(rcpts) == ["carol@remote.test", "dave@remote.test"]
    assert email.message_from_bytes(data)["Bcc"] is None and b"dave@remote.test" not in data
    inbox = wait_for(lambda: bob.call("Email/query", {"filter": {"inMailbox": bob.role("inbox")}})["ids"],
                     "bob's blind copy")
    blob = bob.call("Email/get", {"ids": inbox, "properties": ["blobId"]})["list"][0]["blobId"]
    raw = bob.http.get(f"/jmap/download/{bob.account_id}/{blob}/m.eml?type=message/rfc822").content
    assert email.message_from_bytes(raw)["Bcc"] is None and b"dave@remote.test" not in raw


@pytest.mark.parametrize("extra", [
    {"onSuccessUpdateEmail": ["#sub"]},
    {"onSuccessUpdateEmail": {"#sub": "not a patch"}},
    {"onSuccessDestroyEmail": {"#sub": True}},
    {"onSuccessDestroyEmail": [{"id": "#sub"}]},
])
def test_malformed_on_success_is_refused_before_anything_is_queued(lone_alice: Jmap, extra: dict[str, Any]) -> None:
    """Found only after the submission was queued, a malformed onSuccess* failed the call (serverFail) while
    the mail went out: a client retrying it sent the message twice."""
    alice = lone_alice
    sub = {"identityId": identity_of(alice), "emailId": "#draft"}
    out = alice.request([
        ["Email/set", {"accountId": alice.account_id, "create": {"draft": draft(alice, ["x@remote.test"])}}, "c0"],
        ["EmailSubmission/set", {"accountId": alice.account_id, "create": {"sub": sub}, **extra}, "c1"],
    ], using=USING)["methodResponses"]
    assert out[1][0] == "error" and out[1][1]["type"] == "invalidArguments", out
    assert alice.call("EmailSubmission/query", {}, using=USING)["ids"] == []


def test_dsn_keeps_a_multiline_reply_inside_its_field() -> None:
    """A remote server's multi-line reply (aiosmtplib joins the lines with LF) became bogus header lines of
    the delivery-status part, where the remote text could forge fields (RFC 3464 §2.3.6: one field)."""
    from janusmail.smtp.outbound import dsn_message
    from janusmail.store.submissions import Envelope, Submission

    sub = Submission("S1", "a", "i", "e", "t", "b", Envelope("me@example.test", ("bob@remote.test",)), 0,
                     "final", {}, (), 0, None, 0)
    reply = "550 5.1.1 No such user\nFinal-Recipient: rfc822; forged@example.test\n5.1.1 see https://help"
    raw = dsn_message("mx.example.test", sub, b"Subject: hi\r\n\r\nbody", {"bob@remote.test": reply})
    report = email.message_from_bytes(raw)
    status = next(p for p in report.walk() if p.get_content_type() == "message/delivery-status")
    blocks = status.get_payload()
    assert [b.get_all("Final-Recipient") for b in blocks[1:]] == [["rfc822; bob@remote.test"]]
    assert blocks[1]["Diagnostic-Code"].startswith("smtp; 550 5.1.1 No such user Final-Recipient:")


def test_too_many_derived_recipients_is_refused_not_truncated(alice: Jmap, sink: Sink) -> None:
    """RFC 8621 §7.5 tooManyRecipients: a message to more than the limit was sent to the first 100 only,
    and reported created, so the rest silently never got it."""
    from janusmail.jmap.types.email_submission import MAX_RECIPIENTS

    many = [f"r{i}@remote.test" for i in range(MAX_RECIPIENTS + 1)]
    responses = send(alice, many, on_success=False)
    error = responses[1][1]["notCreated"]["sub"]
    assert error["type"] == "tooManyRecipients" and error["maxRecipients"] == MAX_RECIPIENTS, responses
    envelope = {"mailFrom": {"email": alice.address, "parameters": None},
                "rcptTo": [{"email": a, "parameters": None} for a in many]}
    error = send(alice, ["x@remote.test"], envelope=envelope, on_success=False)[1][1]["notCreated"]["sub"]
    assert error["type"] == "tooManyRecipients", error


def test_relay_password_is_never_sent_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    """With relay AUTH configured, STARTTLS is required (it was opportunistic: a relay or a man in the middle
    that left STARTTLS out of EHLO got the password in plain text)."""
    import asyncio
    from types import SimpleNamespace

    from janusmail.smtp import outbound

    made: list[dict[str, Any]] = []

    class Refusing:
        def __init__(self, **kwargs: Any) -> None:
            made.append(kwargs)

        async def connect(self) -> None:
            raise outbound.aiosmtplib.SMTPException("stop here")

    monkeypatch.setattr(outbound.aiosmtplib, "SMTP", Refusing)
    for username, want in ((None, None), ("relayuser", True)):
        cfg = SimpleNamespace(outbound=SimpleNamespace(relay="smtp://relay.test:587", relay_username=username,
                                                       relay_tls_verify=True), hostname="mx.test")
        runner = outbound.Outbound(None, cfg)  # type: ignore[arg-type]
        with pytest.raises(outbound.aiosmtplib.SMTPException):
            asyncio.run(runner._connection())
        assert made[-1]["start_tls"] is want and made[-1]["use_tls"] is False


def test_a_stalled_relay_is_abandoned_before_the_lease_ends(tmp_path, db_url, monkeypatch) -> None:  # noqa: ANN001
    """An attempt that outlived its row's lease let another worker claim the row and send the message again
    while the first still talked to the relay: the relay part now ends inside the lease (retried later)."""
    import asyncio

    from janusmail.smtp import outbound

    release = threading.Event()

    class Stalling:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
            while not release.is_set():  # a relay that never answers the message
                await asyncio.sleep(0.05)
            return "250 2.0.0 Queued"

    port = _free_port()
    controller = Controller(Stalling(), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setattr(outbound, "RELAY_DEADLINE", 1)
    srv = start_server(tmp_path, db_url, outbound__relay=f"smtp://127.0.0.1:{port}", outbound__retry_base=3600)
    try:
        alice = client_for(srv, "alice@example.test")
        sub_id = send(alice, ["carol@remote.test"], on_success=False)[1][1]["created"]["sub"]["id"]
        wait_for(lambda: submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["smtpReply"]
                 .startswith("451 4.4.2"), "the stalled attempt abandoned and recorded")
        assert submission(alice, sub_id)["deliveryStatus"]["carol@remote.test"]["delivered"] == "queued"
        alice.http.close()
    finally:
        release.set()
        srv.stop()
        controller.stop()


def _envelope(j: Jmap, params: dict[str, Any] | None, rcpt_params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"mailFrom": {"email": j.address, "parameters": params},
            "rcptTo": [{"email": "x@remote.test", "parameters": rcpt_params}]}


def test_the_queue_holds_to_the_limits_the_session_shows(lone_alice: Jmap) -> None:
    """maxDelayedSend and FUTURERELEASE's arguments are what EmailSubmission/set enforces: a hold up to them is
    accepted (pending), past them refused; and FUTURERELEASE is the only extension the envelope may use
    (a DSN NOTIFY the sender would drop is refused, not silently ignored)."""
    alice = lone_alice
    session = alice.http.get("/jmap/session").json()
    caps = session["accounts"][alice.account_id]["accountCapabilities"][SUBMISSION]
    longest = caps["maxDelayedSend"]
    interval, latest = caps["submissionExtensions"]["FUTURERELEASE"]
    assert set(caps["submissionExtensions"]) == {"FUTURERELEASE"} and int(interval) == longest

    def outcome(params: dict[str, Any] | None, rcpt_params: dict[str, Any] | None = None) -> dict[str, Any]:
        out = send(alice, ["x@remote.test"], envelope=_envelope(alice, params, rcpt_params), on_success=False)
        answer = out[1][1]
        return answer["created"]["sub"] if answer.get("created") else answer["notCreated"]["sub"]

    made = outcome({"HOLDFOR": str(longest)})
    assert made.get("undoStatus") == "pending", made
    made = outcome({"holduntil": latest})  # parameter names are case-insensitive (RFC 5321 §4.1.2)
    assert (made.get("undoStatus"), made.get("sendAt")) == ("pending", latest), made
    too_late = dt.datetime.fromisoformat(latest.replace("Z", "+00:00")) + dt.timedelta(days=1, seconds=60)
    refused = [
        ({"HOLDFOR": str(longest + 1)}, None, "envelope/mailFrom/parameters"),
        ({"HOLDUNTIL": too_late.strftime("%Y-%m-%dT%H:%M:%SZ")}, None, "envelope/mailFrom/parameters"),
        ({"HOLDFOR": "60", "HOLDUNTIL": latest}, None, "envelope/mailFrom/parameters"),
        ({"RET": "HDRS"}, None, "envelope/mailFrom/parameters"),
        (None, {"NOTIFY": "NEVER"}, "envelope/rcptTo/0/parameters"),
    ]
    for params, rcpt_params, prop in refused:
        error = outcome(params, rcpt_params)
        assert (error["type"], error["properties"]) == ("invalidProperties", [prop]), (params, rcpt_params, error)
    assert len(alice.call("EmailSubmission/query", {"filter": {"undoStatus": "pending"}}, using=USING)["ids"]) == 2


def test_derived_mail_from_is_the_sender_address(shared_server: ServerThread, lone_alice: Jmap) -> None:
    """RFC 8621 §7.5: with no envelope, MAIL FROM is the Sender field's address (else From's); one the account
    may not send as gives way to the identity's address, and a Sender naming several is refused."""
    alice = lone_alice
    desk = f"desk-{alice.account_id.lower()}@example.test"
    shared_server.store.identities.add_alias(alice.account_id, desk)

    def submit(sender: list[dict[str, str]] | None) -> dict[str, Any]:
        obj = draft(alice, ["x@remote.test"])
        if sender is not None:
            obj["sender"] = sender
        out = alice.request([
            ["Email/set", {"accountId": alice.account_id, "create": {"draft": obj}}, "c0"],
            ["EmailSubmission/set", {"accountId": alice.account_id,
                                     "create": {"sub": {"identityId": identity_of(alice), "emailId": "#draft"}}},
             "c1"],
        ], using=USING)["methodResponses"][1][1]
        if not out.get("created"):
            return out["notCreated"]["sub"]
        return submission(alice, out["created"]["sub"]["id"])["envelope"]["mailFrom"]

    assert submit([{"email": desk}]) == {"email": desk, "parameters": None}
    assert submit(None) == {"email": alice.address, "parameters": None}
    assert submit([{"email": "someone@else.test"}]) == {"email": alice.address, "parameters": None}
    error = submit([{"email": desk}, {"email": alice.address}])
    assert (error["type"], error["properties"]) == ("invalidEmail", ["sender"]), error


def test_on_success_acts_for_submissions_destroyed_in_the_same_call(lone_alice: Jmap) -> None:
    """onSuccessUpdateEmail / onSuccessDestroyEmail keyed by a submission this /set destroys act on its email
    (RFC 8621 §7.5: "if the create/update/destroy succeeds"); they were skipped, the row being gone."""
    alice = lone_alice
    held = _envelope(alice, {"HOLDFOR": "3600"})
    made = []
    for _ in range(2):
        out = send(alice, ["x@remote.test"], envelope=held, on_success=False)
        made.append((out[0][1]["created"]["draft"]["id"], out[1][1]["created"]["sub"]["id"]))
    (email1, sub1), (email2, sub2) = made
    drafts, sent = alice.role("drafts"), alice.role("sent")
    out = alice.request([["EmailSubmission/set", {
        "accountId": alice.account_id, "destroy": [sub1, sub2, "Snosuch"],
        "onSuccessUpdateEmail": {sub1: {f"mailboxIds/{drafts}": None, f"mailboxIds/{sent}": True,
                                        "keywords/$draft": None},
                                 "Snosuch": {"keywords/$seen": None}},
        "onSuccessDestroyEmail": [sub2],
    }, "c1"]], using=USING)["methodResponses"]
    assert [r[0] for r in out] == ["EmailSubmission/set", "Email/set"], out
    assert sorted(out[0][1]["destroyed"]) == sorted([sub1, sub2])
    assert out[1][1]["updated"] == {email1: None} and out[1][1]["destroyed"] == [email2], out[1]
    got = alice.call("Email/get", {"ids": [email1, email2], "properties": ["mailboxIds", "keywords"]})
    assert got["notFound"] == [email2]
    assert got["list"][0]["mailboxIds"] == {sent: True} and "$draft" not in got["list"][0]["keywords"]
    # /queryChanges is one of the type's methods (RFC 8621 §7); this server answers it by asking for a new query
    out = alice.call("EmailSubmission/queryChanges", {"sinceQueryState": "0"}, using=USING)
    assert out["error"] == "cannotCalculateChanges", out
