"""Vacation replies end to end: a VacationResponse switched on over JMAP (httpx), mail delivered by a real LMTP
client (smtplib.LMTP) and by the outbound sender's local delivery (JMAP EmailSubmission from another account
here), replies leaving through the outbound queue to an aiosmtpd sink configured as the smarthost.

RFC 3834's rules: one reply per sender per period, none to lists, automatic mail, bulk, robots, a null return
path, the account itself, mail that does not name the account, nor outside fromDate/toDate. A refused message
queues nothing, and that is decided before LMTP answers, so the tests check the store's reply log right after
the LMTP reply and, to be sure nothing left either, a later control reply that the sink must receive alone.
"""

from __future__ import annotations

import email
import itertools
import smtplib
from collections.abc import Iterator
from email import policy
from typing import Any

import httpx
import pytest

from janusmail.auth import make_credentials
from tests.jmap.test_email_submission import Sink, send
from tests.jmap.test_front_harness import CORE, MAIL, Jmap, client_for, start_server
from tests.procmem import wait_for
from tests.serverutil import ServerThread

VACATION = "urn:ietf:params:jmap:vacationresponse"
SUBMISSION = "urn:ietf:params:jmap:submission"
SUBJECT = "Away until Monday"
_serial = itertools.count()


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sink: Sink) -> Iterator[ServerThread]:
    srv = start_server(tmp_path_factory.mktemp("vacation-e2e"), outbound__relay=f"smtp://127.0.0.1:{sink.port}",
                       outbound__retry_base=1)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def alice(server: ServerThread) -> Iterator[Jmap]:
    """Away: her VacationResponse is on, with an HTML alternative."""
    j = client_for(server, "alice@example.test")
    out = j.call("VacationResponse/set", {"update": {"singleton": {
        "isEnabled": True, "subject": SUBJECT, "textBody": "I am away.", "htmlBody": "<p>I am <b>away</b>.</p>"}}},
        using=[CORE, MAIL, VACATION])
    assert out["updated"] == {"singleton": None}, out
    yield j
    j.http.close()


def sender() -> str:
    return f"out{next(_serial)}@remote.test"


def message(frm: str, to: str = "alice@example.test", *extra: str, subject: str = "Question") -> bytes:
    n = next(_serial)
    head = [f"From: {frm}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <m{n}@remote.test>",
            "Date: Sun, 06 Dec 2026 08:00:00 +0000", *extra]
    return ("\r\n".join(head) + "\r\n\r\nHello?\r\n").encode()


def lmtp(server: ServerThread, mail_from: str, raw: bytes, rcpt: str = "alice@example.test") -> None:
    with smtplib.LMTP("127.0.0.1", server.lmtp_port) as client:
        assert client.sendmail(mail_from, [rcpt], raw) == {}


def replies_to(sink: Sink, address: str) -> list[tuple[str, list[str], bytes]]:
    return [m for m in sink.received() if m[1] == [address]]


def drained(server: ServerThread) -> None:
    wait_for(lambda: server.store.submissions.next_due() is None, "the outbound queue to be worked off")


def account_id(server: ServerThread, address: str) -> str:
    return server.store.accounts.by_address(address).id


def test_one_reply_per_sender(server: ServerThread, alice: Jmap, sink: Sink) -> None:
    first, second = sender(), sender()
    originals = [message(first), message(first, subject="Again"), message(second)]
    lmtp(server, first, originals[0])
    lmtp(server, first, originals[1])
    lmtp(server, second, originals[2])
    wait_for(lambda: replies_to(sink, first) and replies_to(sink, second), "both replies at the smarthost")
    drained(server)
    assert len(replies_to(sink, first)) == 1 and len(replies_to(sink, second)) == 1
    mail_from, rcpts, data = replies_to(sink, first)[0]
    assert mail_from in ("", "<>") and rcpts == [first]  # null return path (RFC 3834 §3.3)
    reply = email.message_from_bytes(data, policy=policy.default)
    original = email.message_from_bytes(originals[0])
    assert reply["From"] == "alice@example.test" and reply["To"] == first
    assert reply["Subject"] == SUBJECT and reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == original["Message-ID"] and original["Message-ID"] in reply["References"]
    assert reply.get_content_type() == "multipart/alternative"
    assert reply.get_body(("plain",)).get_content().strip() == "I am away."
    assert "<b>away</b>" in reply.get_body(("html",)).get_content()
    # the replies are no EmailSubmission of alice's and are filed nowhere in her mailboxes
    using = [CORE, MAIL, SUBMISSION]
    assert alice.call("EmailSubmission/query", {}, using=using)["ids"] == []
    assert alice.call("Email/query", {"filter": {"subject": SUBJECT}})["ids"] == []


NO_REPLY = {
    "list": ("List-Id: <news.remote.test>",),
    "list-unsubscribe": ("List-Unsubscribe: <mailto:leave@remote.test>",),
    "auto-generated": ("Auto-Submitted: auto-generated",),
    "auto-replied": ("Auto-Submitted: auto-replied (vacation)",),
    "bulk": ("Precedence: bulk",),
    "junk": ("Precedence: junk",),
}


@pytest.mark.parametrize("case", [*NO_REPLY, "mailer-daemon", "null-path", "own-address", "not-named", "alias"])
def test_no_reply(server: ServerThread, alice: Jmap, sink: Sink, case: str) -> None:
    frm = sender()
    raw = message(frm, "alice@example.test", *NO_REPLY.get(case, ()))
    mail_from = frm
    if case == "mailer-daemon":
        mail_from = "MAILER-DAEMON@remote.test"
    elif case == "null-path":
        mail_from = "<>"
    elif case == "own-address":
        mail_from = "alice@example.test"
    elif case == "not-named":  # a blind copy: alice is in neither To nor Cc
        raw = message(frm, "someone@remote.test")
    if case == "alias":  # the control: an alias named in To is the account's address, so this one is answered
        server.store.identities.add_alias(account_id(server, "alice@example.test"), "desk@example.test")
        raw = message(frm, "desk@example.test")
        lmtp(server, mail_from, raw, rcpt="desk@example.test")
        wait_for(lambda: replies_to(sink, frm), "the reply to mail for an alias")
        return
    lmtp(server, "" if case == "null-path" else mail_from, raw)  # smtplib sends "" as MAIL FROM:<>
    alice_id = account_id(server, "alice@example.test")
    assert server.store.vacation.replied_at(alice_id, mail_from) is None  # decided before LMTP answered
    # a control reply queued after it arrives, and nothing for the refused message left before or with it
    control = sender()
    lmtp(server, control, message(control))
    wait_for(lambda: replies_to(sink, control), "the control reply")
    drained(server)
    assert replies_to(sink, mail_from) == [] and replies_to(sink, frm) == []


def test_outside_the_date_window(server: ServerThread, sink: Sink) -> None:
    """Dora's response is on but starts in the future, then ended in the past: no reply; inside it, one."""
    h, s = make_credentials("dora-secret-1")
    dora_id = server.store.accounts.create(f"dora{next(_serial)}@example.test", h, s).id
    address = server.store.accounts.get(dora_id).address
    with httpx.Client(base_url=server.config.public_url, auth=(address, "dora-secret-1"), timeout=30) as http:
        dora = Jmap(server, http, dora_id, address)

        def setv(**patch: Any) -> None:
            out = dora.call("VacationResponse/set", {"update": {"singleton": patch}}, using=[CORE, MAIL, VACATION])
            assert out["updated"] == {"singleton": None}, out

        setv(isEnabled=True, fromDate="2999-01-01T00:00:00Z")
        early = sender()
        lmtp(server, early, message(early, address), rcpt=address)
        setv(fromDate="2001-01-01T00:00:00Z", toDate="2002-01-01T00:00:00Z")
        late = sender()
        lmtp(server, late, message(late, address), rcpt=address)
        assert server.store.vacation.replied_at(dora_id, early) is None
        assert server.store.vacation.replied_at(dora_id, late) is None
        setv(toDate="2999-01-01T00:00:00Z")
        inside = sender()
        lmtp(server, inside, message(inside, address), rcpt=address)
        wait_for(lambda: replies_to(sink, inside), "the reply inside the window")
        drained(server)
        assert replies_to(sink, early) == [] and replies_to(sink, late) == []


def test_local_sender_gets_the_reply_in_its_inbox(server: ServerThread, alice: Jmap) -> None:
    """Bob (an account here) writes to alice through JMAP EmailSubmission: the outbound sender delivers it
    locally, alice's response answers, and that answer is delivered locally into bob's Inbox, once."""
    bob = client_for(server, "bob@example.test")
    try:
        for _ in range(2):
            responses = send(bob, ["alice@example.test"], on_success=False)
            assert "created" in responses[1][1] and responses[1][1]["created"], responses

        def answered() -> list[str]:
            return bob.call("Email/query", {"filter": {"inMailbox": bob.role("inbox"), "subject": SUBJECT}})["ids"]

        wait_for(answered, "alice's reply in bob's Inbox")
        drained(server)
        [reply_id] = answered()
        props = ["from", "subject", "header:Auto-Submitted:asText"]
        rec = bob.call("Email/get", {"ids": [reply_id], "properties": props})["list"][0]
        assert rec["from"] == [{"name": None, "email": "alice@example.test"}]
        assert rec["header:Auto-Submitted:asText"] == "auto-replied"
        # bob's own submissions are the two he made; the reply is not among alice's
        using = [CORE, MAIL, SUBMISSION]
        assert len(bob.call("EmailSubmission/query", {}, using=using)["ids"]) == 2
        assert alice.call("EmailSubmission/query", {}, using=using)["ids"] == []
    finally:
        bob.http.close()
