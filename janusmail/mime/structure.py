"""The MIME structure scanner: header blocks and multipart boundaries found over the raw bytes,
so every part carries exact byte offsets into the stored message.

IMAP serves BODY[1.2.MIME], BODY[1.2.TEXT] and friends as byte slices of the original; the
stdlib parser cannot report offsets, so we scan ourselves. The rules mirror what
``email.feedparser`` decides on broken input:

* a header block ends at the first empty line, or at the first line that is neither a field
  (``name:``) nor a continuation (the body then starts at that line, no separator);
* a delimiter is a line ``--boundary`` or ``--boundary--`` followed only by spaces/tabs; the line
  break before it belongs to the delimiter (RFC 2046 §5.1.1);
* an outer delimiter ends any inner part (we split outer ranges first, so it does by construction);
* a multipart whose closing delimiter never comes runs to the end of its enclosing range;
* a multipart with no boundary parameter, or no delimiter line at all, is read as text/plain;
* message/rfc822 is only opened when its transfer encoding is an identity (7bit/8bit/binary).

The message may be ``bytes`` or a ``buffer.ByteSource`` over a spool file's map: nothing here copies a
body, and the decoded size of a base64/quoted-printable part comes from ``transfer`` without decoding it.
"""

from __future__ import annotations

import re

from .buffer import Raw, regex_target
from .params import param_value, parse_content_type, parse_disposition, raw_param
from .transfer import decoded_size

MAX_DEPTH = 48
MAX_PARTS = 5000

# Possessive quantifiers: a field, once its name and colon matched, always ends at the first line break
# not followed by a blank, so nothing ever backtracks; and the regex engine keeps no backtracking state per
# repetition, which for a header of 600,000 lines would be ~250 MiB.
_FIELDS = re.compile(rb"([\x21-\x39\x3b-\x7e]*+):([^\n]*+(?:\n[ \t][^\n]*+)*+)(?:\n|\Z)")
_BLOCK = re.compile(rb"(?:[\x21-\x39\x3b-\x7e]*+:[^\n]*+(?:\n[ \t][^\n]*+)*+(?:\n|\Z))*+")

_IDENTITY = frozenset({"7bit", "8bit", "binary"})
_ENCAPSULATED = frozenset({"rfc822", "global"})

_CONTENT_FIELDS = frozenset(
    {
        b"content-type",
        b"content-transfer-encoding",
        b"content-id",
        b"content-description",
        b"content-disposition",
        b"content-language",
        b"content-location",
        b"content-md5",
    }
)


#: Octets of one header block read into fields. A larger block still ends where it ends (offsets, and so
#: BODY[HEADER] and every body slice, are exact), but fields past this point are not read and a field
#: crossing it is cut there, as MTAs cap header memory (Postfix ``header_size_limit``): a 60 MiB header
#: would otherwise cost several times its size as field objects, and its cache row as much again. Real
#: header blocks are a few KiB; list traffic with long Received chains stays far below this.
HEADER_FIELDS_LIMIT = 1 << 20


def scan_headers(
    raw: Raw, start: int, end: int, top: bool = False, limit: int | None = HEADER_FIELDS_LIMIT
) -> tuple[list[tuple[bytes, bytes]], int]:
    """Header fields of the entity at [start, end) as (name, raw value) byte pairs, and the offset
    where its body starts. The value excludes the final line break but keeps folding. Fields are read
    from the first `limit` octets of the block only (None: all of it)."""
    pos = start
    if top and raw.startswith(b"From ", start, end):  # mbox separator line, not a header
        nl = raw.find(b"\n", start, end)
        pos = end if nl < 0 else nl + 1
    target = regex_target(raw)
    m = _BLOCK.match(target, pos, end)
    block_end = m.end() if m else pos
    fields: list[tuple[bytes, bytes]] = []
    if block_end > pos:
        stop = block_end if limit is None else min(block_end, pos + limit)
        for name, value in _FIELDS.findall(target, pos, stop):
            if value.endswith(b"\r"):
                value = value[:-1]
            fields.append((name, value))
    body = block_end
    if raw.startswith(b"\r\n", body, end):
        body += 2
    elif raw.startswith(b"\n", body, end):
        body += 1
    return fields, body


def text_of(value: bytes) -> str:
    """Header bytes as str: UTF-8 with bad octets replaced, NUL dropped (RFC 8621 asRaw)."""
    s = value.decode("utf-8", "replace")
    return s.replace("\x00", "") if "\x00" in s else s


def _unfold_trim(value: bytes) -> str:
    s = text_of(value)
    if "\n" in s or "\r" in s:
        s = s.replace("\r", "").replace("\n", "")
    return s.strip()


def split_multipart(
    raw: Raw, start: int, end: int, boundary: bytes, trimmed: bool = False
) -> list[tuple[int, int]]:
    """Byte ranges of the body parts of a multipart body at [start, end).

    `trimmed` says the range already lost its final line break (it was ended by an outer
    delimiter, or is itself a trimmed last part): an unclosed last part then keeps its own
    final line break. The stdlib strips exactly one line break from the innermost last part,
    and so do we."""
    delim = b"--" + boundary
    dl = len(delim)
    ranges: list[tuple[int, int]] = []
    pos = start
    cur: int | None = None
    find = raw.find
    while True:
        i = find(delim, pos, end)
        if i < 0:
            break
        if i != start and raw[i - 1] != 0x0A:
            pos = i + 1
            continue
        j = i + dl
        close = raw.startswith(b"--", j, end)
        k = j + 2 if close else j
        while k < end and raw[k] in (0x20, 0x09):
            k += 1
        if k < end:
            c = raw[k]
            if c == 0x0D:
                k += 1
                if k < end and raw[k] == 0x0A:
                    k += 1
            elif c == 0x0A:
                k += 1
            else:
                pos = i + 1
                continue
        if cur is not None and i > cur:
            pe = i
            if raw[pe - 1] == 0x0A:
                pe -= 1
                if pe > cur and raw[pe - 1] == 0x0D:
                    pe -= 1
            ranges.append((cur, pe))
            if len(ranges) >= MAX_PARTS:
                return ranges
        # (i == cur: a delimiter straight after a delimiter line encloses no part; the stdlib
        # skips such runs too, and RFC 2046 needs a CRLF for even an empty part)
        if close:
            return ranges
        cur = k
        pos = k
    if cur is not None:
        # Unclosed: the last part runs to the end, minus a final line break, as in the stdlib.
        pe = end
        if trimmed:
            pass
        elif pe > cur and raw[pe - 1] == 0x0A:
            pe -= 1
            if pe > cur and raw[pe - 1] == 0x0D:
                pe -= 1
        elif pe > cur and raw[pe - 1] == 0x0D:
            pe -= 1
        ranges.append((cur, pe))
    return ranges


def count_lines(raw: Raw, start: int, end: int) -> int:
    if end <= start:
        return 0
    n = raw.count(b"\n", start, end)
    return n if raw[end - 1] == 0x0A else n + 1


#: Characters of address headers parsed in full across all encapsulated messages of one message.
EMBEDDED_ADDRESS_BUDGET = 256 * 1024


class _Ctx:
    __slots__ = ("raw", "parts", "budget")

    def __init__(self, raw: Raw) -> None:
        self.raw = raw
        self.parts = 0
        self.budget = [EMBEDDED_ADDRESS_BUDGET]


def _strip_angle(s: str) -> str | None:
    s = s.strip()
    if s.startswith("<") and s.endswith(">"):
        s = s[1:-1].strip()
    return s or None


def _entity(
    ctx: _Ctx,
    start: int,
    end: int,
    sec_multi: str,
    sec_leaf: str,
    default: tuple[str, str],
    depth: int,
    top: bool = False,
    trimmed: bool = False,
) -> tuple[dict, list[tuple[bytes, bytes]]]:
    """Parse the entity at [start, end): returns (part dict, its header fields)."""
    raw = ctx.raw
    ctx.parts += 1
    fields, body_start = scan_headers(raw, start, end, top)
    hdr: dict[bytes, bytes] = {}
    for name, value in fields:
        ln = name.lower()
        if ln in _CONTENT_FIELDS and ln not in hdr:
            hdr[ln] = value
    ctype = hdr.get(b"content-type")
    if ctype is not None:
        t, st, params = parse_content_type(text_of(ctype))
        if t is None:
            t, st = default
    else:
        t, st = default
        params = []
    cte = hdr.get(b"content-transfer-encoding")
    encoding = "7bit"
    if cte is not None:
        enc = _unfold_trim(cte).split(";", 1)[0].strip().lower()
        if enc:
            encoding = enc
    jtype = f"{t}/{st}"
    children: list[dict] | None = None
    message: dict | None = None
    deep = depth >= MAX_DEPTH or ctx.parts >= MAX_PARTS

    if t == "multipart":
        ranges: list[tuple[int, int]] = []
        boundary = raw_param(params, "boundary")
        if boundary and not deep:
            ranges = split_multipart(raw, body_start, end, boundary.encode("utf-8", "replace"), trimmed)
        if ranges:
            child_default = ("message", "rfc822") if st == "digest" else ("text", "plain")
            children = []
            for i, (cs, ce) in enumerate(ranges, 1):
                sec = f"{sec_multi}.{i}" if sec_multi else str(i)
                children.append(_entity(ctx, cs, ce, sec, sec, child_default, depth + 1, trimmed=True)[0])
        else:  # unusable multipart: show it as the text it is
            t, st, params, jtype = "text", "plain", [], "text/plain"
    elif t == "message" and st in _ENCAPSULATED:
        if encoding in _IDENTITY and not deep:
            message = parse_embedded(ctx, body_start, end, sec_leaf, depth + 1, trimmed)
        else:  # IMAP's grammar needs an envelope for message/rfc822; hide it as opaque data
            t, st = "application", "octet-stream"

    section = sec_multi if children is not None else sec_leaf
    if t == "text" and raw_param(params, "charset") is None:
        params = [*params, ["charset", "us-ascii"]]

    disposition = None
    jdisp = None
    dparams: list[list[str]] = []
    dval = hdr.get(b"content-disposition")
    if dval is not None:
        dtype, dparams = parse_disposition(text_of(dval))
        if dtype:
            disposition = [dtype, dparams]
            jdisp = dtype.lower()
    language = None
    lval = hdr.get(b"content-language")
    if lval is not None:
        language = [x.strip() for x in _unfold_trim(lval).split(",") if x.strip()] or None
    location = _unfold_trim(hdr[b"content-location"]) if b"content-location" in hdr else None
    cid_raw = _unfold_trim(hdr[b"content-id"]) if b"content-id" in hdr else None

    size = end - body_start if end > body_start else 0
    body_start = min(body_start, end)
    part: dict = {
        "section": section,
        "type": t,
        "subtype": st,
        "params": params,
        "id": cid_raw,
        "description": _unfold_trim(hdr[b"content-description"]) if b"content-description" in hdr else None,
        "encoding": encoding.upper(),
        "size": size,
        "lines": count_lines(raw, body_start, end) if (t == "text" or message is not None) else None,
        "md5": _unfold_trim(hdr[b"content-md5"]) if b"content-md5" in hdr else None,
        "disposition": disposition,
        "language": language,
        "location": location or None,
        "header_start": start,
        "header_end": body_start,
        "body_start": body_start,
        "body_end": end,
    }
    if children is not None:
        part["children"] = children
        name = None
        charset = None
        dsize = size
    else:
        name = param_value(dparams, "filename") if dparams else None
        if name is None and params:
            name = param_value(params, "name")
        charset = ((raw_param(params, "charset") or "").strip() or None) if ctype is not None else None
        if charset is None and jtype.startswith("text/"):
            charset = "us-ascii"
        # from the encoded bytes, a window at a time: a huge attachment is never decoded here
        dsize = (
            decoded_size(raw, encoding, body_start, end)
            if encoding in ("base64", "quoted-printable")
            else size
        )
    if message is not None:
        part["message"] = message
    part["jmap"] = {
        "partId": None if children is not None else section,
        "type": jtype,
        "name": name,
        "charset": charset,
        "disposition": jdisp,
        "cid": _strip_angle(cid_raw) if cid_raw else None,
        "language": language,
        "location": location or None,
        "size": dsize,
    }
    return part, fields


def parse_embedded(ctx: _Ctx, start: int, end: int, section: str, depth: int, trimmed: bool = False) -> dict:
    """An encapsulated message: header offsets, envelope and root part (RFC 9051 numbering:
    the body of a single-part message inside part S is S.1; a multipart body's parts are S.n)."""
    from .envelope import envelope_from_fields  # local import: envelope imports structure helpers

    part, fields = _entity(
        ctx, start, end, section, f"{section}.1", ("text", "plain"), depth, trimmed=trimmed
    )
    return {
        "header_start": start,
        "header_end": part["header_end"],
        "body_start": part["body_start"],
        "body_end": end,
        "envelope": envelope_from_fields(fields, None, ctx.budget),
        "part": part,
    }


def parse_structure(raw: Raw) -> tuple[dict, list[tuple[bytes, bytes]]]:
    """Root part of a whole message plus its top-level header fields."""
    ctx = _Ctx(raw)
    return _entity(ctx, 0, len(raw), "", "1", ("text", "plain"), 0, top=True)
