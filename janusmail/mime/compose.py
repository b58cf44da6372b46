"""Build an RFC 5322 message for JMAP Email/set create (RFC 8621 §4.6).

Input is the Email object as the JMAP layer has validated it, with every body part's content
already resolved to bytes (from bodyValues or a blob). Output is CRLF bytes ready to store.
We write the message ourselves rather than through ``email.generator`` so that header folding,
encodings and the multipart layout are exactly what we choose, and so a client-supplied raw
header value can never smuggle in an extra header line.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import re
import time
import uuid
from email.utils import format_datetime
from urllib.parse import quote

CRLF = b"\r\n"
_FOLD_AT = 78


class ComposeError(ValueError):
    """The Email object cannot become a message; `prop` names the offending property."""

    def __init__(self, message: str, prop: str | None = None) -> None:
        super().__init__(message)
        self.prop = prop


_HEADER_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")
_ATEXT_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MEDIA_TYPE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


# ---------------------------------------------------------------- header value encoders


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 B-encoded words of at most 75 chars, never splitting a character."""
    words: list[str] = []
    chunk = ""
    for ch in text:
        if len((chunk + ch).encode("utf-8")) > 45:
            words.append("=?UTF-8?B?" + base64.b64encode(chunk.encode("utf-8")).decode("ascii") + "?=")
            chunk = ""
        chunk += ch
    if chunk:
        words.append("=?UTF-8?B?" + base64.b64encode(chunk.encode("utf-8")).decode("ascii") + "?=")
    return words


def _check_text(value: str, prop: str | None) -> None:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ComposeError("line breaks and NUL are not allowed in this value", prop)


def encode_text(value: str, prop: str | None = None) -> list[str]:
    """An unstructured value (e.g. Subject) as words: ASCII words as-is, a run of words that
    needs encoding as encoded words (whitespace between encoded words is not significant)."""
    _check_text(value, prop)
    if value.isascii() and "=?" not in value:
        return value.split(" ") if value else [""]
    out: list[str] = []
    pending: list[str] = []
    for word in value.split(" "):
        # an empty word (a run of spaces) inside an encoded run stays in it: white space
        # between two encoded words is dropped by decoders
        if word.isascii() and "=?" not in word and not (pending and not word):
            if pending:
                out.extend(_encoded_words(" ".join(pending)))
                pending = []
            out.append(word)
        else:
            pending.append(word)
    if pending:
        out.extend(_encoded_words(" ".join(pending)))
    return out


def _phrase(name: str, prop: str | None) -> str:
    _check_text(name, prop)
    if not name.isascii():
        return " ".join(_encoded_words(name))
    if _ATEXT_PHRASE.match(name) and name.strip() == name and "  " not in name:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _address(addr: dict, prop: str | None) -> str:
    if not isinstance(addr, dict) or not isinstance(addr.get("email"), str):
        raise ComposeError("an EmailAddress needs an email string", prop)
    email = addr["email"].strip()
    if not email or any(c in email for c in "\r\n\x00<>,;") or " " in email.split("@")[-1]:
        raise ComposeError(f"invalid email address {email!r}", prop)
    name = addr.get("name")
    if name:
        if not isinstance(name, str):
            raise ComposeError("an EmailAddress name must be a string", prop)
        return f"{_phrase(name, prop)} <{email}>"
    return email


def encode_addresses(addrs: list, prop: str | None = None) -> list[str]:
    """Words of an address list; a fold may go between any two (FWS is allowed between the
    words of a phrase, inside a quoted string, and before the angle-addr)."""
    if not isinstance(addrs, list):
        raise ComposeError("expected a list of EmailAddress", prop)
    items = [_address(a, prop) for a in addrs]
    return _words([x + "," for x in items[:-1]] + items[-1:])


def _words(items: list[str]) -> list[str]:
    return [w for item in items for w in item.split(" ")]


def encode_grouped(groups: list, prop: str | None = None) -> list[str]:
    if not isinstance(groups, list):
        raise ComposeError("expected a list of EmailAddressGroup", prop)
    out: list[str] = []
    for g in groups:
        if not isinstance(g, dict):
            raise ComposeError("expected an EmailAddressGroup", prop)
        members = [_address(a, prop) for a in g.get("addresses") or []]
        if g.get("name") is None:
            out.extend(m + "," for m in members)
        else:
            inner = [m + "," for m in members[:-1]] + members[-1:]
            if inner:
                out.extend([_phrase(g["name"], prop) + ":", *inner[:-1], inner[-1] + ";,"])
            else:
                out.append(_phrase(g["name"], prop) + ":;,")
    if out:
        out[-1] = out[-1][:-1]
    return _words(out)


def encode_message_ids(ids: list, prop: str | None = None) -> list[str]:
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ComposeError("expected a list of message ids", prop)
    for i in ids:
        if not i or any(c in i for c in " \t\r\n<>\x00"):
            raise ComposeError(f"invalid message id {i!r}", prop)
    return [f"<{i}>" for i in ids]


def encode_date(value: str, prop: str | None = None) -> list[str]:
    try:
        d = _dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ComposeError(f"invalid date {value!r}", prop) from None
    if d.tzinfo is None:
        raise ComposeError("date needs a time zone offset", prop)
    return format_datetime(d.replace(microsecond=0)).split(" ")


def encode_urls(urls: list, prop: str | None = None) -> list[str]:
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise ComposeError("expected a list of URLs", prop)
    for u in urls:
        _check_text(u, prop)
    items = [f"<{u}>" for u in urls]
    return [x + "," for x in items[:-1]] + items[-1:]


def _raw(value: str, prop: str | None) -> str:
    """A client's asRaw value: folding allowed, any other line break is refused."""
    if not isinstance(value, str):
        raise ComposeError("a raw header value must be a string", prop)
    if "\x00" in value:
        raise ComposeError("NUL in header value", prop)
    probe = value.replace("\r\n ", "").replace("\r\n\t", "")
    if "\r" in probe or "\n" in probe:
        raise ComposeError("bare line break in raw header value", prop)
    return value if value.startswith((" ", "\t")) or not value else " " + value


def fold(name: str, words: list[str]) -> bytes:
    """``Name: w1 w2 ...`` folded before a word when the line would pass 78 characters."""
    lines: list[str] = []
    line = name + ":"
    for w in words:
        if w and len(line) + 1 + len(w) > _FOLD_AT and len(line) > len(name) + 1:
            lines.append(line)
            line = " " + w
        else:
            line += " " + w
    lines.append(line)
    return "\r\n".join(lines).encode("utf-8") + CRLF


def _raw_line(name: str, raw_value: str) -> bytes:
    return (name + ":" + raw_value).encode("utf-8") + CRLF


_FORM_ENCODERS = {
    "asText": lambda v, p: encode_text(v, p) if isinstance(v, str) else _bad(p),
    "asAddresses": encode_addresses,
    "asGroupedAddresses": encode_grouped,
    "asMessageIds": encode_message_ids,
    "asDate": lambda v, p: encode_date(v, p) if isinstance(v, str) else _bad(p),
    "asURLs": encode_urls,
}


def _bad(prop: str | None) -> list[str]:
    raise ComposeError("wrong value type", prop)


def _header_props(obj: dict, where: str) -> list[bytes]:
    """Lines for ``headers`` [{name, value}] and ``header:Name[:asForm][:all]`` properties."""
    lines: list[bytes] = []
    extra = obj.get("headers")
    if extra:
        if not isinstance(extra, list):
            raise ComposeError("headers must be a list", f"{where}headers")
        for i, h in enumerate(extra):
            prop = f"{where}headers/{i}"
            if (
                not isinstance(h, dict)
                or not isinstance(h.get("name"), str)
                or not _HEADER_NAME.match(h["name"])
            ):
                raise ComposeError("invalid EmailHeader", prop)
            lines.append(_raw_line(h["name"], _raw(h.get("value", ""), prop)))
    for key, value in obj.items():
        if not key.startswith("header:"):
            continue
        prop = where + key
        bits = key.split(":")[1:]
        all_ = bits[-1] == "all"
        if all_:
            bits = bits[:-1]
        if not bits or not _HEADER_NAME.match(bits[0]) or len(bits) > 2:
            raise ComposeError("invalid header property", prop)
        name = bits[0]
        form = bits[1] if len(bits) == 2 else "asRaw"
        values = value if all_ else [value]
        if not isinstance(values, list):
            raise ComposeError(":all needs a list", prop)
        for v in values:
            if v is None:
                continue
            if form == "asRaw":
                lines.append(_raw_line(name, _raw(v, prop)))
            elif form in _FORM_ENCODERS:
                lines.append(fold(name, _FORM_ENCODERS[form](v, prop)))
            else:
                raise ComposeError(f"unknown header form {form}", prop)
    return lines


# ---------------------------------------------------------------- body parts


_ASCII = bytes(range(128))


def _param(name: str, value: str, prop: str | None = None) -> str:
    if _TOKEN.match(value):
        return f"{name}={value}"
    if value.isascii():
        _check_text(value, prop)
        return f'{name}="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name}*=utf-8''" + quote(value.encode("utf-8"), safe="")


def _crlf(data: bytes) -> bytes:
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")


def _choose_text_encoding(data: bytes) -> tuple[str, bytes]:
    if data.isascii() and b"\x00" not in data and all(len(line) <= 998 for line in data.split(b"\r\n")):
        return "7bit", data
    high = len(data.translate(None, _ASCII))
    if high * 5 <= len(data):
        qp = binascii.b2a_qp(data, istext=True)
        return "quoted-printable", qp
    return "base64", _base64_lines(data)


def _base64_lines(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return CRLF.join(enc[i : i + 76] for i in range(0, len(enc), 76))


def _leaf(part: dict, where: str, default_disposition: str | None = None) -> tuple[list[bytes], bytes]:
    if not isinstance(part, dict):
        raise ComposeError("a body part must be an object", where.rstrip("/"))
    for key in ("type", "charset", "disposition", "name"):
        if part.get(key) is not None and not isinstance(part[key], str):
            raise ComposeError(f"{key} must be a string", f"{where}{key}")
    ptype = (part.get("type") or "text/plain").lower()
    if not _MEDIA_TYPE.match(ptype) or ptype.startswith("multipart/"):
        raise ComposeError(f"invalid part type {ptype!r}", f"{where}type")
    content = part.get("content")
    if not isinstance(content, (bytes, bytearray)):
        raise ComposeError("part content is missing", f"{where}content")
    content = bytes(content)
    is_text = ptype.startswith("text/")
    ct = [ptype + ";"]
    charset = part.get("charset")
    if is_text:
        content = _crlf(content)
        if not charset:
            if content.isascii():
                charset = "us-ascii"
            else:
                try:
                    content.decode("utf-8")
                    charset = "utf-8"
                except UnicodeDecodeError:
                    charset = None
        if charset:
            ct.append(_param("charset", charset, f"{where}charset") + ";")
    name = part.get("name")
    if name is not None and not isinstance(name, str):
        raise ComposeError("name must be a string", f"{where}name")
    if name:
        ct.append(
            (
                _param("name", name, f"{where}name")
                if name.isascii()
                else 'name="' + " ".join(_encoded_words(name)) + '"'
            )
            + ";"
        )
    ct[-1] = ct[-1].rstrip(";")
    if ptype in ("message/rfc822", "message/global"):
        cte, body = ("7bit" if content.isascii() else "8bit"), content
    elif is_text:
        cte, body = _choose_text_encoding(content)
    else:
        cte, body = "base64", _base64_lines(content)
    lines = [fold("Content-Type", ct), fold("Content-Transfer-Encoding", [cte])]
    disposition = part.get("disposition") or default_disposition
    if disposition:
        if not _TOKEN.match(disposition):
            raise ComposeError("invalid disposition", f"{where}disposition")
        d = [disposition + (";" if name else "")]
        if name:
            d.append(_param("filename", name, f"{where}name"))
        lines.append(fold("Content-Disposition", d))
    lines += _part_common(part, where)
    return lines, body


def _part_common(part: dict, where: str) -> list[bytes]:
    lines: list[bytes] = []
    cid = part.get("cid")
    if cid:
        if not isinstance(cid, str) or any(c in cid for c in " \t\r\n<>"):
            raise ComposeError("invalid cid", f"{where}cid")
        lines.append(fold("Content-ID", [f"<{cid}>"]))
    lang = part.get("language")
    if lang:
        if not isinstance(lang, list) or not all(isinstance(x, str) and _TOKEN.match(x) for x in lang):
            raise ComposeError("invalid language", f"{where}language")
        lines.append(fold("Content-Language", [x + "," for x in lang[:-1]] + lang[-1:]))
    loc = part.get("location")
    if loc:
        if not isinstance(loc, str):
            raise ComposeError("invalid location", f"{where}location")
        _check_text(loc, f"{where}location")
        lines.append(fold("Content-Location", [loc]))
    for line in _header_props(part, where):
        low = line[:26].lower()
        if low.startswith((b"content-transfer-encoding:", b"content-type:")):
            raise ComposeError(
                "Content-Type/Content-Transfer-Encoding are set by the server", where + "headers"
            )
        lines.append(line)
    return lines


def _boundary(children: list[bytes]) -> str:
    while True:
        b = "=_" + uuid.uuid4().hex
        probe = b"--" + b.encode("ascii")
        if not any(probe in c for c in children):
            return b


def _multipart(
    subtype: str, kids: list[tuple[list[bytes], bytes]], extra: list[bytes] | None = None
) -> tuple[list[bytes], bytes]:
    rendered = [b"".join(h) + CRLF + body for h, body in kids]
    boundary = _boundary(rendered)
    delim = b"--" + boundary.encode("ascii")
    body = b"".join(delim + CRLF + r + CRLF for r in rendered) + delim + b"--" + CRLF
    lines = [fold("Content-Type", [f"multipart/{subtype};", f'boundary="{boundary}"'])]
    return lines + (extra or []), body


def _structure(node: dict, where: str, depth: int = 0) -> tuple[list[bytes], bytes]:
    if not isinstance(node, dict):
        raise ComposeError("a body part must be an object", where)
    if depth > 32:
        raise ComposeError("body structure nested too deeply", where)
    ptype = node.get("type") or ""
    if not isinstance(ptype, str):
        raise ComposeError("type must be a string", f"{where}type")
    ptype = ptype.lower()
    if ptype.startswith("multipart/"):
        sub = ptype.split("/", 1)[1]
        kids = node.get("subParts")
        if not isinstance(kids, list) or not kids:
            raise ComposeError("a multipart needs subParts", f"{where}subParts")
        built = [_structure(k, f"{where}subParts/{i}/", depth + 1) for i, k in enumerate(kids)]
        extra = _part_common(node, where)
        disposition = node.get("disposition")
        if disposition:
            if not isinstance(disposition, str) or not _TOKEN.match(disposition):
                raise ComposeError("invalid disposition", f"{where}disposition")
            extra.append(fold("Content-Disposition", [disposition]))
        return _multipart(sub, built, extra)
    return _leaf(node, where)


def _from_lists(email: dict) -> tuple[list[bytes], bytes]:
    text = email.get("textBody") or []
    htm = email.get("htmlBody") or []
    atts = email.get("attachments") or []
    if not isinstance(text, list) or not isinstance(htm, list) or not isinstance(atts, list):
        raise ComposeError("textBody/htmlBody/attachments must be lists", "textBody")
    if len(text) > 1 or len(htm) > 1:
        raise ComposeError(
            "textBody and htmlBody take at most one part each", "textBody" if len(text) > 1 else "htmlBody"
        )
    for prop, lst in (("textBody", text), ("htmlBody", htm), ("attachments", atts)):
        for i, item in enumerate(lst):
            if not isinstance(item, dict):
                raise ComposeError("a body part must be an object", f"{prop}/{i}")
    text_node = _leaf({"type": "text/plain", **text[0]}, "textBody/0/") if text else None
    inline = (
        [
            (i, a)
            for i, a in enumerate(atts)
            if isinstance(a, dict) and a.get("cid") and a.get("disposition") in (None, "inline")
        ]
        if htm
        else []
    )
    inline_ids = {i for i, _ in inline}
    others = [(i, a) for i, a in enumerate(atts) if i not in inline_ids]
    html_node = None
    if htm:
        html_node = _leaf({"type": "text/html", **htm[0]}, "htmlBody/0/")
        if inline:
            rel = [html_node] + [_leaf(a, f"attachments/{i}/", "inline") for i, a in inline]
            html_node = _multipart("related", rel)
    if text_node and html_node:
        core = _multipart("alternative", [text_node, html_node])
    else:
        core = text_node or html_node or _leaf({"type": "text/plain", "content": b""}, "textBody/0/")
    if others:
        parts = [core] + [
            _leaf(a if isinstance(a, dict) else {}, f"attachments/{i}/", "attachment") for i, a in others
        ]
        return _multipart("mixed", parts)
    return core


# ---------------------------------------------------------------- the message


_ADDRESS_PROPS = (
    ("from", "From"),
    ("sender", "Sender"),
    ("replyTo", "Reply-To"),
    ("to", "To"),
    ("cc", "Cc"),
    ("bcc", "Bcc"),
)


def new_message_id(domain: str) -> str:
    """A fresh Message-ID value without brackets."""
    return f"{uuid.uuid4().hex}@{domain}"


def compose_message(email: dict, domain: str, now: float | None = None) -> bytes:
    """Render a JMAP Email create object as an RFC 5322 message (CRLF line endings).

    Adds Date and Message-ID when the object has none (RFC 8621 §4.6 MUST), the latter under
    `domain`. Raises ComposeError (with ``prop``) on input that cannot be rendered.
    """
    if not isinstance(email, dict):
        raise ComposeError("an Email must be an object")
    if "bodyStructure" in email and any(k in email for k in ("textBody", "htmlBody", "attachments")):
        raise ComposeError("give bodyStructure or textBody/htmlBody/attachments, not both", "bodyStructure")
    extra = email.get("headers")
    if extra is not None and not isinstance(extra, list):
        raise ComposeError("headers must be a list", "headers")
    out: list[bytes] = []
    have = {k.split(":")[1].lower() for k in email if k.startswith("header:") and k.count(":") >= 1}
    have |= {
        h["name"].lower()
        for h in email.get("headers") or []
        if isinstance(h, dict) and isinstance(h.get("name"), str)
    }

    for prop, hname in _ADDRESS_PROPS:
        v = email.get(prop)
        if v:
            out.append(fold(hname, encode_addresses(v, prop)))
    subject = email.get("subject")
    if subject is not None:
        if not isinstance(subject, str):
            raise ComposeError("subject must be a string", "subject")
        out.append(fold("Subject", encode_text(subject, "subject")))
    sent_at = email.get("sentAt")
    if sent_at is not None:
        out.append(
            fold("Date", encode_date(sent_at, "sentAt") if isinstance(sent_at, str) else _bad("sentAt"))
        )
    elif "date" not in have:
        stamp = _dt.datetime.fromtimestamp(time.time() if now is None else now, _dt.UTC)
        out.append(fold("Date", format_datetime(stamp).split(" ")))
    mid = email.get("messageId")
    if mid:
        out.append(fold("Message-ID", encode_message_ids(mid, "messageId")))
    elif "message-id" not in have:
        out.append(fold("Message-ID", [f"<{new_message_id(domain)}>"]))
    for prop, hname in (("inReplyTo", "In-Reply-To"), ("references", "References")):
        v = email.get(prop)
        if v:
            out.append(fold(hname, encode_message_ids(v, prop)))
    for line in _header_props(email, ""):
        if line[:8].lower() == b"content-" or line[:13].lower() == b"mime-version:":
            raise ComposeError("Content-* header fields belong on body parts", "headers")
        out.append(line)

    if "bodyStructure" in email:
        root_headers, body = _structure(email["bodyStructure"], "bodyStructure/")
    else:
        root_headers, body = _from_lists(email)
    out.append(b"MIME-Version: 1.0\r\n")
    out.extend(root_headers)
    return b"".join(out) + CRLF + body
