"""The pure half of vacation replies (janusmail/smtp/vacation.py): RFC 3834's refusals and the reply's shape."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from janusmail.smtp.vacation import build_reply, headers_of, refusal
from janusmail.store.vacation import VacationResponse

OWN = ("alice@example.test", "desk@example.test")


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode()


@pytest.mark.parametrize(("lines", "mail_from", "refused"), [
    (("To: Alice <alice@example.test>",), "bob@remote.test", False),
    (("To: x@remote.test", "Cc: desk@Example.TEST"), "bob@remote.test", False),
    (("To: x@remote.test", "Resent-To: alice@example.test"), "bob@remote.test", False),
    (("To: alice@example.test", "Auto-Submitted: no"), "bob@remote.test", False),
    (("To: alice@example.test", "Auto-Submitted: No (a person)"), "bob@remote.test", False),
    (("To: alice@example.test", "Auto-Submitted: auto-notified; owner-email=x@remote.test"), "b@r.test", True),
    (("To: alice@example.test", "Auto-Submitted: (no) auto-generated"), "bob@remote.test", True),
    (("To: alice@example.test",), "<>", True),
    (("To: alice@example.test",), "", True),
    (("To: alice@example.test",), "owner-news@remote.test", True),
    (("To: alice@example.test",), "news-request@remote.test", True),
    (("To: alice@example.test",), "Desk@example.test", True),
    (("To: alice@example.test", "Precedence: List"), "bob@remote.test", True),
    (("To: alice@example.test", "List-Post: <mailto:l@remote.test>"), "bob@remote.test", True),
    (("To: alice@example.test", "Content-Type: multipart/report; report-type=delivery-status"), "b@r.test", True),
    (("To: undisclosed-recipients:;",), "bob@remote.test", True),
])
def test_refusal(lines: tuple[str, ...], mail_from: str, refused: bool) -> None:
    why = refusal(headers_of(head(*lines)), mail_from, OWN)
    assert (why is not None) == refused, why


def test_reply_shape_unicode_and_defaults() -> None:
    original = head("From: Bob <bob@remote.test>", "To: alice@example.test",
                    "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n  aus Berlin",
                    "Message-ID: <1@remote.test>", "References: <0@remote.test> junk")
    reply = build_reply(VacationResponse(True, html_body="<p>Weg bis <b>Montag</b></p>"), headers_of(original),
                        "alice@example.test", "bob@remote.test", now=0)
    assert b"\r\n" in reply and all(len(line) <= 998 for line in reply.split(b"\r\n"))
    msg = message_from_bytes(reply, policy=policy.default)
    assert msg["Subject"] == "Auto: Grüße aus Berlin"
    assert msg["In-Reply-To"] == "<1@remote.test>" and msg["References"] == "<0@remote.test> <1@remote.test>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["To"] == "bob@remote.test"
    assert "Weg bis Montag" in msg.get_body(("plain",)).get_content()  # text made from the HTML
    assert msg.get_body(("html",)) is not None


def test_reply_without_html_is_plain_text() -> None:
    reply = build_reply(VacationResponse(True, subject="Fort – bis Montag", text_body="Ich bin weg."),
                        headers_of(head("To: alice@example.test")), "alice@example.test", "bob@remote.test")
    msg = message_from_bytes(reply, policy=policy.default)
    assert msg.get_content_type() == "text/plain" and msg["Subject"] == "Fort – bis Montag"
    assert msg.get_content().strip() == "Ich bin weg." and msg["In-Reply-To"] is None
