"""Serving body content from the raw message plus the ingest cache, without re-parsing.

Every function here takes the stored raw bytes and a part dict from the cache; offsets in the
part say where its bytes are, so BODY[section], blob downloads and JMAP bodyValues are slices
plus (at most) a transfer decode and a charset decode.
"""

from __future__ import annotations

import binascii

from .charsets import b64decode_loose, decode_text
from .structure import scan_headers, text_of
from .transfer import qp_decode


def part_bytes(raw: bytes, part: dict) -> bytes:
    """The part's body exactly as stored (still transfer-encoded): IMAP BODY[section]."""
    return raw[part["body_start"] : part["body_end"]]


def part_mime_header(raw: bytes, part: dict) -> bytes:
    """The part's own header block incl. the blank line: IMAP BODY[section.MIME]."""
    return raw[part["header_start"] : part["header_end"]]


def decode_body(raw: bytes, part: dict) -> tuple[bytes, bool]:
    """Transfer-decoded body and whether the encoding was damaged."""
    body = part_bytes(raw, part)
    enc = part.get("encoding", "7BIT").lower()
    if enc == "base64":
        return b64decode_loose(body)
    if enc == "quoted-printable":
        try:
            return qp_decode(body), False
        except (binascii.Error, ValueError):
            return body, True
    return body, False


def decode_part(raw: bytes, part: dict) -> bytes:
    """Transfer-decoded body (base64/quoted-printable undone, junk tolerated): the JMAP blob."""
    return decode_body(raw, part)[0]


def part_text(raw: bytes, part: dict) -> tuple[str, bool]:
    """Charset-decoded text with LF line endings, and RFC 8621 isEncodingProblem."""
    data, problem = decode_body(raw, part)
    jmap = part.get("jmap") or {}
    text, cs_problem = decode_text(data, jmap.get("charset"))
    del data  # one step at a time, each copy freed before the next: a large part costs two copies at most
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if "\r" in text:
            text = text.replace("\r", "\n")
    return text, problem or cs_problem


def find_part(cache: dict, section: str) -> dict | None:
    """The part with IMAP section number `section` ("" = the root), or None.

    Accepts the whole cache or a part. A message/rfc822 part and the multipart root of the
    message inside it share a number; the outer (message/rfc822) part is returned, as IMAP's
    BODY[n] means the whole encapsulated message.
    """
    root = cache.get("part", cache) if "section" not in cache else cache
    if section == "":
        return root
    p: dict | None = root
    while p is not None:
        sec = p.get("section", "")
        if sec == section:
            return p
        if sec and not section.startswith(sec + "."):
            return None
        nxt = None
        msg = p.get("message")
        if msg:
            nxt = msg["part"]
        for child in p.get("children") or ():
            cs = child.get("section", "")
            if cs == section or section.startswith(cs + "."):
                nxt = child
                break
        p = nxt
    return None


def part_headers(raw: bytes, part: dict) -> list[list[str]]:
    """The part's header fields as [name, raw value] (JMAP EmailBodyPart.headers), rescanned
    from the stored offsets: a header block scan, not a message parse."""
    fields, _ = scan_headers(raw, part["header_start"], part["header_end"], top=part["header_start"] == 0)
    return [[n.decode("ascii", "replace"), text_of(v)] for n, v in fields]


def message_header(raw: bytes, part: dict) -> bytes:
    """For a message/rfc822 part: the encapsulated message's header (IMAP BODY[n.HEADER])."""
    msg = part.get("message")
    if not msg:
        return b""
    return raw[msg["header_start"] : msg["header_end"]]


def message_text(raw: bytes, part: dict) -> bytes:
    """For a message/rfc822 part: the encapsulated message's body (IMAP BODY[n.TEXT])."""
    msg = part.get("message")
    if not msg:
        return b""
    return raw[msg["body_start"] : msg["body_end"]]


def truncate_value(text: str, max_bytes: int, html: bool = False) -> tuple[str, bool]:
    """JMAP maxBodyValueBytes: cut `text` to at most `max_bytes` UTF-8 octets, never inside a
    code point, and for HTML never inside a tag. Returns (value, isTruncated)."""
    if max_bytes <= 0:
        return text, False
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    cut = data[:max_bytes].decode("utf-8", "ignore")  # drops only the split code point
    if html:
        lt = cut.rfind("<")
        if lt > cut.rfind(">"):
            cut = cut[:lt]
    return cut, True
