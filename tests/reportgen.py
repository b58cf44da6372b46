"""Delivery reports as remote agents write them, for the report-linking tests: an MDN (RFC 8098) and a DSN
(RFC 3464), both ``multipart/report`` (RFC 6522), naming the message they answer the way real agents do."""

from __future__ import annotations

import uuid


def _report(report_type: str, parts: list[tuple[str, str]], *, frm: str, to: str, subject: str,
            extra: tuple[str, ...] = ()) -> bytes:
    boundary = f"=_report_{uuid.uuid4().hex}"
    lines = [
        f"From: {frm}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: <{uuid.uuid4().hex}@remote.test>",
        "Date: Fri, 27 Nov 2026 08:00:00 +0100",
        "MIME-Version: 1.0",
        *extra,
        f'Content-Type: multipart/report; report-type={report_type}; boundary="{boundary}"',
        "",
        "This is a report.",
    ]
    for header, body in parts:
        lines += [f"--{boundary}", header, "", body]
    lines += [f"--{boundary}--", ""]
    return "\r\n".join(lines).encode()


def mdn(original_message_id: str | None, *, frm: str = "Bob <bob@remote.test>", to: str = "alice@example.test",
        in_reply_to: str | None = None, fields: str | None = None) -> bytes:
    """A read receipt for the message ``original_message_id`` (no brackets; None: no Original-Message-ID
    field, as some agents do); ``fields`` replaces the whole machine-readable part."""
    if fields is None:
        fields = "\r\n".join([
            "Reporting-UA: remote.test; ExampleMail 1.0",
            "Final-Recipient: rfc822; bob@remote.test",
            *([f"Original-Message-ID: <{original_message_id}>"] if original_message_id else []),
            "Disposition: manual-action/MDN-sent-manually; displayed",
        ]) + "\r\n"
    extra = (f"In-Reply-To: <{in_reply_to}>",) if in_reply_to else ()
    return _report("disposition-notification", [
        ("Content-Type: text/plain; charset=us-ascii", "Your message was displayed.\r\n"),
        ("Content-Type: message/disposition-notification", fields),
    ], frm=frm, to=to, subject="Read: Hello", extra=extra)


def dsn(original_message_id: str, *, rcpt: str = "carol@remote.test", to: str = "alice@example.test") -> bytes:
    """A bounce from a remote MTA, returning only the original's header section (``text/rfc822-headers``)."""
    status = "\r\n".join([
        "Reporting-MTA: dns; mx.remote.test",
        "",
        f"Final-Recipient: rfc822; {rcpt}",
        "Action: failed",
        "Status: 5.1.1",
        "Diagnostic-Code: smtp; 550 5.1.1 No such user",
    ]) + "\r\n"
    headers = "\r\n".join([
        f"From: {to}",
        f"To: {rcpt}",
        "Subject: Hello",
        f"Message-ID: <{original_message_id}>",
    ]) + "\r\n"
    return _report("delivery-status", [
        ("Content-Type: text/plain; charset=us-ascii", f"Delivery to {rcpt} failed.\r\n"),
        ("Content-Type: message/delivery-status", status),
        ("Content-Type: text/rfc822-headers", headers),
    ], frm="Mail Delivery System <MAILER-DAEMON@mx.remote.test>", to=to, subject="Undelivered Mail")
