"""A forgiving RFC 5322 address-list parser, shared by IMAP ENVELOPE and JMAP asAddresses.

The stdlib's modern header parser is correct but slow (it builds a full token tree per header),
and its legacy parser loses group and route information. This one tokenises once and keeps
what both protocols need: the display name exactly as written (IMAP wants RFC 2047 words left
encoded; JMAP decodes them), the obsolete route, local part, domain, and group boundaries.
It never raises: garbage becomes a best-effort mailbox, as RFC 8621 asks.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from .charsets import decode_words

# [whitespace] then one of: quoted-string | comment start | domain literal | special | dot-atom-ish
# run | any other char. Dots stay inside atoms: "john.q.public" is one token, which is all the
# phrase and addr-spec builders need (they join tokens without inserting anything).
_TOK = re.compile(
    r'[ \t\r\n]*(?:("(?:[^"\\]|\\.)*"?)|(\()|(\[[^\[\]]*\]?)|([<>@,;:])'
    r'|([^ \t\r\n"()<>@,;:\[\]\\]+)|(\\.?|[^ \t\r\n]))',
    re.S,
)
_UNESCAPE = re.compile(r"\\(.)", re.S)
_NEEDS_QUOTE = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\x80-\U0010ffff]|^\.|\.$|\.\.")

# token kinds
_ATOM, _QUOTED, _COMMENT, _LITERAL, _SPECIAL = range(5)
_KINDS = {3: _LITERAL, 4: _SPECIAL, 5: _ATOM, 6: _ATOM}


class Mailbox(NamedTuple):
    """One mailbox; `name` is the phrase as written (quotes removed, encoded words kept)."""

    name: str | None
    route: str | None
    local: str
    domain: str | None
    comment: str | None

    def email(self) -> str:
        local = self.local
        if self.domain is None:  # not an address at all; show what was there
            return local
        if local and _NEEDS_QUOTE.search(local):
            local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{local}@{self.domain}"

    def display_name(self) -> str | None:
        """The decoded display name for JMAP (falls back to a trailing comment)."""
        name = self.name if self.name else self.comment
        if not name:
            return None
        name = unicodedata.normalize("NFC", decode_words(name).strip())
        return name or None


class Group(NamedTuple):
    name: str
    members: list[Mailbox]


def _comment_end(s: str, start: int) -> int:
    """Index just past the ')' matching the '(' at `start` (or len(s) if unterminated)."""
    depth = 0
    i = start
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return n


def _tokens(s: str) -> list[tuple[int, str, bool]]:
    """(kind, text, preceded_by_space) triples; comments count as space and are also kept."""
    out: list[tuple[int, str, bool]] = []
    append = out.append
    if "(" not in s:
        for m in _TOK.finditer(s):
            idx = m.lastindex
            text = m.group(idx)
            space = m.start(idx) > m.start()
            if idx == 1:
                body = text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]
                if "\\" in body:
                    body = _UNESCAPE.sub(r"\1", body)
                append((_QUOTED, body, space))
            else:
                append((_KINDS[idx], text, space))
        return out
    pos = 0
    n = len(s)
    pending_space = False
    match = _TOK.match
    while pos < n:
        m = match(s, pos)
        if m is None:  # only trailing whitespace is left
            break
        idx = m.lastindex
        start = m.start(idx)
        space = pending_space or start > pos
        pending_space = False
        if idx == 2:
            end = _comment_end(s, start)
            text = s[start + 1 : end - 1 if s[end - 1 : end] == ")" else end]
            append((_COMMENT, _UNESCAPE.sub(r"\1", text) if "\\" in text else text, space))
            pending_space = True
            pos = end
            continue
        text = m.group(idx)
        pos = m.end()
        if idx == 1:
            body = text[1:-1] if len(text) > 1 and text.endswith('"') else text[1:]
            if "\\" in body:
                body = _UNESCAPE.sub(r"\1", body)
            append((_QUOTED, body, space))
        else:
            append((_KINDS[idx], text, space))
    return out


def _phrase(toks: list[tuple[int, str, bool]]) -> str | None:
    parts: list[str] = []
    for kind, text, sp in toks:
        if kind == _COMMENT:
            continue
        if parts and sp:
            parts.append(" ")
        parts.append(text)
    s = "".join(parts).strip(" ")
    return s or None


def _addr_spec(toks: list[tuple[int, str, bool]]) -> tuple[str, str | None, str | None]:
    """(local, domain, trailing comment) from addr-spec tokens."""
    comment = None  # only a comment after the address can stand in for a display name
    words: list[tuple[int, str, bool]] = []
    for t in toks:
        if t[0] == _COMMENT:
            if words and comment is None:
                comment = t[1].strip() or None
        else:
            words.append(t)
            comment = None
    at = -1
    for i in range(len(words) - 1, -1, -1):
        if words[i][0] == _SPECIAL and words[i][1] == "@":
            at = i
            break
    if at < 0:
        return _phrase(words) or "", None, comment
    local = "".join(t[1] for t in words[:at])
    domain = "".join(t[1] for t in words[at + 1 :])
    return local, domain, comment


#: Only this much of one address header is parsed (a few hundred addresses of real mail); the
#: parse is linear but not cheap per byte, and ingest must stay fast on hostile input.
MAX_ADDRESS_HEADER = 32 * 1024


_HARD = re.compile(r'["()\\:;\[\]]')
_SIMPLE_ADDR = re.compile(r"[ \t\r\n]*([^ \t\r\n<>,@]+)@([^ \t\r\n<>,@]+)[ \t\r\n]*")
_SIMPLE_NAMED = re.compile(r"[ \t\r\n]*([^<>,]*?)[ \t\r\n]*<([^ \t\r\n<>,@]+)@([^ \t\r\n<>,@]+)>[ \t\r\n]*")
_FWS = re.compile(r"[ \t\r\n]+")


def _fast(value: str) -> list[Mailbox | Group] | None:
    """The common shapes (``a@b``, ``Name <a@b>``, comma-separated) without the tokeniser;
    None sends anything else to the full parser."""
    out: list[Mailbox | Group] = []
    for item in value.split(","):
        m = _SIMPLE_ADDR.fullmatch(item)
        if m:
            out.append(Mailbox(None, None, m.group(1), m.group(2), None))
            continue
        m = _SIMPLE_NAMED.fullmatch(item)
        if m:
            name = _FWS.sub(" ", m.group(1)) or None
            out.append(Mailbox(name, None, m.group(2), m.group(3), None))
            continue
        if item.strip(" \t\r\n"):
            return None
    return out


def parse_address_list(value: str) -> list[Mailbox | Group]:
    """Parse an address-list header value into mailboxes and groups, in order."""
    if len(value) > MAX_ADDRESS_HEADER:
        cut = value.rfind(",", 0, MAX_ADDRESS_HEADER)
        value = value[: cut if cut > 0 else MAX_ADDRESS_HEADER]
    if _HARD.search(value) is None:
        fast = _fast(value)
        if fast is not None:
            return fast
    return parse_full(value)


def parse_full(value: str) -> list[Mailbox | Group]:
    """The general parser (parse_address_list tries a fast path first)."""
    items: list[Mailbox | Group] = []
    group: Group | None = None
    cur: list[tuple[int, str, bool]] = []
    angle: list[tuple[int, str, bool]] | None = None
    phrase: list[tuple[int, str, bool]] | None = None
    after: list[tuple[int, str, bool]] = []
    in_angle = False

    def finish() -> None:
        nonlocal cur, angle, phrase, after
        mb: Mailbox | None = None
        if angle is not None:
            route = None
            toks = angle
            if toks and toks[0][0] == _SPECIAL and toks[0][1] == "@":
                for i, t in enumerate(toks):
                    if t[0] == _SPECIAL and t[1] == ":":
                        route = "".join(x[1] for x in toks[:i] if x[0] != _COMMENT)
                        toks = toks[i + 1 :]
                        break
            local, domain, _ = _addr_spec(toks)
            comment = None
            for t in after:
                if t[0] == _COMMENT and t[1].strip():
                    comment = t[1].strip()
                    break
            mb = Mailbox(_phrase(phrase or []), route, local, domain, comment)
        elif any(t[0] != _COMMENT for t in cur):
            local, domain, comment = _addr_spec(cur)
            mb = Mailbox(None, None, local, domain, comment)
        if mb is not None:
            if group is not None:
                group.members.append(mb)
            else:
                items.append(mb)
        cur, angle, phrase, after = [], None, None, []

    for tok in _tokens(value):
        kind, text = tok[0], tok[1]
        if in_angle:
            if kind == _SPECIAL and text == ">":
                in_angle = False
            else:
                angle.append(tok)  # type: ignore[union-attr]
            continue
        if kind == _SPECIAL:
            if text == "<":
                if angle is None:
                    phrase = cur
                    cur = []
                    angle = []
                    in_angle = True
                else:  # a second '<' after a complete <addr>: ignore junk
                    after.append(tok)
                continue
            if text == ",":
                finish()
                continue
            if text == ";":
                finish()
                if group is not None:
                    items.append(group)
                    group = None
                continue
            if text == ":" and group is None and angle is None:
                name = _phrase(cur) or ""
                cur = []
                group = Group(name, [])
                continue
        if angle is not None:
            after.append(tok)
        else:
            cur.append(tok)
    finish()
    if group is not None:
        items.append(group)
    return items


def flatten(items: list[Mailbox | Group]) -> list[Mailbox]:
    out: list[Mailbox] = []
    for it in items:
        if isinstance(it, Group):
            out.extend(it.members)
        else:
            out.append(it)
    return out


MISSING_HOST = ".MISSING-HOST-NAME."


def imap_addresses(items: list[Mailbox | Group]) -> list[list[str | None]] | None:
    """IMAP ENVELOPE address list (RFC 9051 §7.5.2), or None (NIL) when there is no address."""
    out: list[list[str | None]] = []

    def mbox(m: Mailbox) -> list[str | None]:
        # ``user@domain (Real Name)``: the old convention (RFC 822) of a trailing comment as the personal
        # name, still common; RFC 5322 §3.4 says the comment may be the name, and IMAP servers (Dovecot,
        # Cyrus) report it as the ENVELOPE addr-name, as JMAP's display_name() does.
        name = m.name if m.name else m.comment
        return [name, m.route, m.local, m.domain if m.domain is not None else MISSING_HOST]

    for it in items:
        if isinstance(it, Group):
            out.append([None, None, it.name, None])
            out.extend(mbox(m) for m in it.members)
            out.append([None, None, None, None])
        else:
            out.append(mbox(it))
    return out or None


def jmap_addresses(items: list[Mailbox | Group]) -> list[dict[str, str | None]]:
    """RFC 8621 asAddresses: groups flattened, names decoded."""
    return [{"name": m.display_name(), "email": m.email()} for m in flatten(items)]


def jmap_grouped(items: list[Mailbox | Group]) -> list[dict]:
    """RFC 8621 asGroupedAddresses: runs of ungrouped mailboxes become a group with name null."""
    out: list[dict] = []
    loose: list[dict] | None = None
    for it in items:
        if isinstance(it, Group):
            loose = None
            name = unicodedata.normalize("NFC", decode_words(it.name).strip()) or None
            out.append(
                {
                    "name": name,
                    "addresses": [{"name": m.display_name(), "email": m.email()} for m in it.members],
                }
            )
        else:
            if loose is None:
                loose = []
                out.append({"name": None, "addresses": loose})
            loose.append({"name": it.display_name(), "email": it.email()})
    return out
