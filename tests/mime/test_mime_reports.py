"""Which message a delivery report names (janusmail/mime/reports.py), read by the one parse at ingest: the MDN's
Original-Message-ID and its fallbacks, a DSN's returned message or header block (plain or encoded), and
nothing at all for ordinary mail, other report types or garbage, with no error."""

from __future__ import annotations

import base64

from janusmail.mime.parse import parse_message
from tests.mailgen import simple
from tests.reportgen import _report, dsn, mdn


def _ref(raw: bytes) -> dict[str, str] | None:
    return parse_message(raw).get("report")


#: what reportgen's MDN says happened, and to whom (for deliveryStatus.displayed)
SEEN = {"disposition": "displayed", "recipient": "bob@remote.test"}


def test_mdn_names_its_original_message_id() -> None:
    assert _ref(mdn("sent-1@example.test", in_reply_to="other@example.test")) == {
        "kind": "mdn", "message_id": "sent-1@example.test", **SEEN}


def test_mdn_disposition_needs_both_fields_and_keeps_only_the_type() -> None:
    fields = ("Final-Recipient: rfc822; <Carol@Remote.test>\r\nOriginal-Message-ID: <s@example.test>\r\n"
              "Disposition: automatic-action/MDN-sent-automatically; deleted/error\r\n")
    assert _ref(mdn(None, fields=fields)) == {"kind": "mdn", "message_id": "s@example.test",
                                               "disposition": "deleted", "recipient": "Carol@Remote.test"}
    no_recipient = "Original-Message-ID: <s@example.test>\r\nDisposition: manual-action/x; displayed\r\n"
    assert _ref(mdn(None, fields=no_recipient)) == {"kind": "mdn", "message_id": "s@example.test"}


def test_mdn_without_the_field_falls_back_to_in_reply_to() -> None:
    assert _ref(mdn(None, in_reply_to="sent-2@example.test")) == {"kind": "mdn", "message_id": "sent-2@example.test",
                                                                   **SEEN}


def test_mdn_falls_back_to_the_last_reference_only() -> None:
    raw = mdn(None).replace(b"MIME-Version: 1.0\r\n",
                            b"MIME-Version: 1.0\r\nReferences: <old@example.test> <parent@example.test>\r\n")
    assert _ref(raw) == {"kind": "mdn", "message_id": "parent@example.test", **SEEN}


def test_dsn_names_the_returned_headers_message_id() -> None:
    assert _ref(dsn("sent-3@example.test")) == {"kind": "dsn", "message_id": "sent-3@example.test"}


def test_dsn_with_the_whole_message_returned() -> None:
    raw = _report("delivery-status", [
        ("Content-Type: message/delivery-status", "Reporting-MTA: dns; mx.remote.test\r\n"),
        ("Content-Type: message/rfc822", simple(1, msgid="sent-4@example.test").decode()),
    ], frm="MAILER-DAEMON@remote.test", to="alice@example.test", subject="Undelivered")
    assert _ref(raw) == {"kind": "dsn", "message_id": "sent-4@example.test"}


def test_dsn_with_base64_returned_headers() -> None:
    headers = base64.b64encode(b"From: a@example.test\r\nMessage-ID: <sent-5@example.test>\r\n\r\n").decode()
    raw = _report("delivery-status", [
        ("Content-Type: message/delivery-status", "Reporting-MTA: dns; mx.remote.test\r\n"),
        ("Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: base64", headers),
    ], frm="MAILER-DAEMON@remote.test", to="alice@example.test", subject="Undelivered")
    assert _ref(raw) == {"kind": "dsn", "message_id": "sent-5@example.test"}


def test_ordinary_mail_other_reports_and_garbage_name_nothing() -> None:
    assert _ref(simple(1, in_reply_to="sent@example.test")) is None
    feedback = _report("feedback-report", [("Content-Type: message/feedback-report", "Feedback-Type: abuse\r\n")],
                       frm="x@remote.test", to="alice@example.test", subject="abuse")
    assert _ref(feedback) is None
    assert _ref(mdn(None, fields="\x00\xff garbage: <<>>\r\n: :\r\nOriginal-Message-ID: no id here\r\n")) is None
    no_parts = (b"From: x@remote.test\r\nContent-Type: multipart/report; report-type=delivery-status; "
                b"boundary=zz\r\n\r\nno delimiter at all\r\n")
    assert _ref(no_parts) is None
    # a DSN whose returned part names no Message-ID does not fall back to the report's own threading fields
    bare = _report("delivery-status", [("Content-Type: text/rfc822-headers", "Subject: x\r\n")],
                   frm="x@remote.test", to="alice@example.test", subject="Undelivered",
                   extra=("In-Reply-To: <sent@example.test>",))
    assert _ref(bare) is None


def test_an_overlong_id_names_nothing() -> None:
    assert _ref(mdn("x" * 1200 + "@example.test")) is None


def test_the_reference_is_not_kept_in_the_stored_cache() -> None:
    from janusmail.store.ingest import _ROW_ONLY

    assert "report" in _ROW_ONLY


def test_unclosed_escaped_comments_cost_linear_time() -> None:
    """A crafted id (``(\\(\\(...`` never closed) in a report's returned header block, and in the message's own
    Message-ID: the comment stripping retried from every later "(" (quadratic: about a minute per 64 KiB
    value, four passes, per part). Now the parse takes milliseconds and still finds the id beside it."""
    import time

    from janusmail.mime.headers import _COMMENT, _strip_comments

    crafted = "(\\" * 32000
    headers = f"From: a@example.test\r\nMessage-ID: {crafted}<sent-1@example.test>\r\n"
    raw = _report("delivery-status", [("Content-Type: text/rfc822-headers", headers)],
                  frm="MAILER-DAEMON@remote.test", to="a@example.test", subject="Undelivered",
                  extra=(f"In-Reply-To: {crafted}",))
    started = time.perf_counter()
    got = _ref(raw)
    assert time.perf_counter() - started < 5  # (quadratic: minutes)
    assert got == {"kind": "dsn", "message_id": "sent-1@example.test"}  # (an unclosed "(" is no comment)
    for s in ("a(b\\)c)d", "(\\(", "((x)", "(a(b)c)d(", "\\((x)", "(x\\", "((\\()y)"):  # the same as the regex
        assert _strip_comments(s) == _COMMENT.sub(" ", _COMMENT.sub(" ", _COMMENT.sub(" ", _COMMENT.sub(" ", s))))
