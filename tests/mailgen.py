"""Generated mail for tests and benchmarks: plain, multipart, 8-bit, broken, threaded."""

from __future__ import annotations

import random


def simple(i: int, *, subject: str | None = None, msgid: str | None = None, in_reply_to: str | None = None,
           references: list[str] | None = None, frm: str = "Sender <sender@example.test>",
           to: str = "alice@example.test", body: str | None = None) -> bytes:
    lines = [
        f"From: {frm}",
        f"To: {to}",
        f"Subject: {subject if subject is not None else f'Message number {i}'}",
        f"Message-ID: <{msgid or f'msg{i}@example.test'}>",
        "Date: Fri, 27 Nov 2026 08:00:00 +0100",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        lines.append("References: " + " ".join(f"<{r}>" for r in references))
    lines += ["Content-Type: text/plain; charset=utf-8", "", body or f"Body of message {i}.\nSecond line."]
    return ("\r\n".join(lines) + "\r\n").encode()


def corpus(n: int, seed: int = 1) -> list[bytes]:
    """A mixed corpus including broken and 8-bit mail (bytes returned exactly as they should be stored)."""
    rnd = random.Random(seed)
    out: list[bytes] = []
    for i in range(n):
        kind = i % 7
        if kind == 0:
            out.append(simple(i))
        elif kind == 1:  # multipart with attachment
            out.append((
                f"From: a@example.test\r\nTo: b@example.test\r\nSubject: mp {i}\r\nMessage-ID: <mp{i}@x>\r\n"
                "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n--BB\r\n"
                "Content-Type: text/plain\r\n\r\nhello attachment\r\n--BB\r\nContent-Type: application/octet-stream\r\n"
                "Content-Disposition: attachment; filename=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                "AAECAwQ=\r\n--BB--\r\n").encode())
        elif kind == 2:  # raw 8-bit UTF-8 headers and body, bare LF
            out.append(f"From: Jörg <j@example.test>\nSubject: Grüße {i} ☃\nMessage-ID: <u{i}@x>\n\nHällo wörld\n"
                       .encode())
        elif kind == 3:  # unclosed multipart, unknown charset, bad base64
            out.append((f"Subject: broken {i}\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\n"
                        "Content-Type: text/plain; charset=x-unknown-42\r\nContent-Transfer-Encoding: base64\r\n\r\n"
                        "!!!not base64@@@\r\n").encode())
        elif kind == 4:  # no headers at all
            out.append(f"just a body line {i} with no header\r\n".encode())
        elif kind == 5:  # latin-1 8-bit bytes (not UTF-8)
            out.append(b"From: x@example.test\r\nSubject: caf\xe9 " + str(i).encode() + b"\r\n\r\nna\xefve\r\n")
        else:
            out.append(simple(i, subject=f"Re: thread {i % 3}", msgid=f"t{i}@x", references=[f"root{i % 3}@x"]))
        if rnd.random() < 0.05:
            out[-1] = out[-1] + bytes([0x80, 0xFF, 0x00]) + b"\r\n"
    return out
