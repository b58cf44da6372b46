"""Who a message is from and to, as sending needs it: the header addresses an envelope is derived from.

RFC 8621 §7.5: with no envelope given, MAIL FROM is the Sender address (else the From address) and RCPT TO
every address of To, Cc and Bcc (groups flattened, duplicates once). Only the header section is parsed, with
the same forgiving address parser IMAP ENVELOPE and JMAP use (janusmail.mime.addresses), so the three agree on
what an address is.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from .addresses import flatten, parse_address_list

__all__ = ["derived_mail_from", "envelope_addresses", "without_bcc"]


def _emails(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        for m in flatten(parse_address_list(str(value))):
            email = m.email()
            if email and "@" in email:
                out.append(email.lower())
    return out


def envelope_addresses(raw: bytes) -> tuple[list[str], list[str]]:
    """(From addresses, To + Cc + Bcc addresses), lowercased, in order, recipients without duplicates."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(bytes(raw), headersonly=True)
    senders = _emails(headers.get_all("from", []))
    rcpts = _emails([*headers.get_all("to", []), *headers.get_all("cc", []), *headers.get_all("bcc", [])])
    return senders, list(dict.fromkeys(rcpts))


def derived_mail_from(raw: bytes) -> tuple[str | None, str]:
    """RFC 8621 §7.5's MAIL FROM for an envelope the client left out: (address, field it came from). The field is
    ``sender`` when the message has a Sender field, else ``from``; the address is None unless that field
    appears once with exactly one address (the RFC: several SHOULD be refused)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(bytes(raw), headersonly=True)
    name = "sender" if headers.get_all("sender") else "from"
    fields = headers.get_all(name, [])
    found = _emails(fields)
    return (found[0] if len(fields) == 1 and len(found) == 1 else None), name


def without_bcc(raw: bytes) -> bytes:
    """The message as it is sent: its ``Bcc`` header fields removed (RFC 5322 §3.6.3, the usual way), so the
    To/Cc recipients and every Bcc recipient never learn who else got a blind copy. The envelope still names
    them. A message without Bcc comes back as it is (no copy)."""
    end = raw.find(b"\r\n\r\n")
    end = end + 2 if end >= 0 else raw.find(b"\n\n") + 1
    head = raw[:end] if end > 0 else raw  # the header lines, each with its line end
    if b"bcc" not in head.lower():
        return raw
    kept: list[bytes] = []
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):  # a continuation belongs to the field before it
            if not skipping:
                kept.append(line)
            continue
        skipping = b":" in line and line.split(b":", 1)[0].strip().lower() == b"bcc"
        if not skipping:
            kept.append(line)
    return b"".join(kept) + raw[len(head):]
