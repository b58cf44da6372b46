"""FETCH and STORE argument grammar (RFC 9051 §6.4.5-6, RFC 3516 BINARY, RFC 7162 CONDSTORE/QRESYNC,
RFC 8474 OBJECTID, RFC 8514 SAVEDATE, RFC 8970 PREVIEW, RFC 9394 PARTIAL)."""

from __future__ import annotations

import re

from .args import FetchArgs, FetchAttr, FetchBinarySize, FetchBody, FetchItem, Section, StoreArgs
from .cursor import Cursor
from .grammar_search import partial_range

__all__ = ["parse_fetch", "parse_store"]

_NAME_RE = re.compile(rb"[A-Za-z0-9.]+")
_STORE_RE = re.compile(rb"([+-]?)(FLAGS)(\.SILENT)?(?![^\x00-\x20\x7f-\xff(){%*\"\\\]])", re.IGNORECASE)
_PART_RE = re.compile(r"[1-9][0-9]{0,9}\Z")
_TEXTS = frozenset({"HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT", "MIME"})

_SIMPLE = {
    name: FetchAttr(name)
    for name in (
        "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE",
        "UID", "MODSEQ", "EMAILID", "THREADID", "SAVEDATE",
    )
}  # fmt: skip
_ALIASES = {
    "RFC822": FetchBody(Section(), peek=False, alias="RFC822"),
    "RFC822.HEADER": FetchBody(Section(text="HEADER"), peek=True, alias="RFC822.HEADER"),
    "RFC822.TEXT": FetchBody(Section(text="TEXT"), peek=False, alias="RFC822.TEXT"),
}
_FAST = (_SIMPLE["FLAGS"], _SIMPLE["INTERNALDATE"], _SIMPLE["RFC822.SIZE"])
_MACROS: dict[str, tuple[FetchItem, ...]] = {
    "FAST": _FAST,
    "ALL": (*_FAST, _SIMPLE["ENVELOPE"]),
    "FULL": (*_FAST, _SIMPLE["ENVELOPE"], _SIMPLE["BODY"]),
}
_SECTIONED = frozenset({"BODY", "BODY.PEEK", "BINARY", "BINARY.PEEK", "BINARY.SIZE"})


def _section(cur: Cursor, binary: bool) -> Section:
    cur.expect(b"[")
    if cur.maybe(b"]"):
        return Section()
    raw = cur.token(_NAME_RE, "section").decode("ascii").upper()
    pieces = raw.split(".")
    part: list[int] = []
    while pieces and _PART_RE.match(pieces[0]):
        n = int(pieces.pop(0))
        if n > 4294967295:
            raise cur.fail("Section part out of range")
        part.append(n)
    text = ".".join(pieces) if pieces else None
    if binary and text is not None:
        raise cur.fail("BINARY sections take part numbers only")
    if text is not None and (text not in _TEXTS or (text == "MIME" and not part)):
        raise cur.fail(f"Invalid section {raw}")
    fields: list[str] = []
    if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        cur.sp()
        fields = cur.paren_list(lambda: cur.astring("header field name"))
    cur.expect(b"]")
    return Section(tuple(part), text, tuple(fields))


def _partial(cur: Cursor) -> tuple[int, int] | None:
    if not cur.maybe(b"<"):
        return None
    offset = cur.number("partial offset")
    cur.expect(b".")
    length = cur.nz_number("partial length")
    cur.expect(b">")
    return offset, length


def fetch_att(cur: Cursor) -> FetchItem:
    name = cur.token(_NAME_RE, "fetch item").decode("ascii").upper()
    if name in _SECTIONED and cur.peek() == 0x5B:  # "["
        binary = name.startswith("BINARY")
        section = _section(cur, binary)
        if name == "BINARY.SIZE":
            return FetchBinarySize(section.part)
        return FetchBody(section, _partial(cur), peek=name.endswith(".PEEK"), binary=binary)
    if name == "PREVIEW":
        _preview_mods(cur)
        return _PREVIEW
    item = _SIMPLE.get(name) or _ALIASES.get(name)
    if item is None:
        raise cur.fail(f"Unknown fetch item {name}")
    return item


_PREVIEW = FetchAttr("PREVIEW")
_PREVIEW_MODS = frozenset({"LAZY"})
_MOD_WORD_RE = re.compile(rb" \(([A-Za-z]+)")


def _preview_mods(cur: Cursor) -> None:
    """RFC 8970: ``PREVIEW [SP "(" preview-mod *(SP preview-mod) ")"]``, preview-mod = ``LAZY``. A list after
    PREVIEW whose first word is not a preview modifier is left alone: it is the command's fetch modifiers
    (``FETCH 1 PREVIEW (CHANGEDSINCE 5)``). The modifiers change nothing here: the preview is always at hand."""
    m = _MOD_WORD_RE.match(cur.buf, cur.pos, cur.end)
    if m is None or m.group(1).decode("ascii").upper() not in _PREVIEW_MODS:
        return
    cur.sp()

    def mod() -> str:
        word = cur.keyword("preview modifier")
        if word not in _PREVIEW_MODS:
            raise cur.fail(f"Unknown preview modifier {word}")
        return word

    cur.paren_list(mod)


def parse_fetch(cur: Cursor, uid: bool) -> FetchArgs:
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    items: tuple[FetchItem, ...]
    if cur.peek() == 0x28:
        items = tuple(cur.paren_list(lambda: fetch_att(cur)))
    else:
        start = cur.pos
        macro = _MACROS.get(cur.token(_NAME_RE, "fetch item").decode("ascii").upper())
        if macro is not None:
            items = macro
        else:
            cur.pos = start
            items = (fetch_att(cur),)
    mods: dict[str, int | None] = {}
    partial: list[tuple[int, int]] = []

    def modifier() -> None:
        mod = cur.keyword("fetch modifier")
        if mod == "PARTIAL":  # RFC 9394 §3.2
            if partial:
                raise cur.fail("PARTIAL given twice")
            cur.sp()
            partial.append(partial_range(cur))
        elif mod == "CHANGEDSINCE":
            cur.sp()
            mods[mod] = cur.number64("mod-sequence", low=1)
        elif mod == "VANISHED":
            if not uid:
                raise cur.fail("VANISHED is only allowed with UID FETCH")
            mods[mod] = None
        else:
            raise cur.fail(f"Unknown fetch modifier {mod}")

    if not cur.at_end():
        cur.sp()
        cur.paren_list(modifier)
        if "VANISHED" in mods and "CHANGEDSINCE" not in mods:
            raise cur.fail("VANISHED requires CHANGEDSINCE")
    changedsince = mods.get("CHANGEDSINCE")
    vanished = "VANISHED" in mods
    cur.finish()
    return FetchArgs(sequence, items, changedsince, vanished, partial[0] if partial else None)


def parse_store(cur: Cursor, uid: bool) -> StoreArgs:
    cur.sp()
    sequence = cur.sequence_set()
    cur.sp()
    unchangedsince = None
    if cur.peek() == 0x28:

        def modifier() -> int:
            mod = cur.keyword("store modifier")
            if mod != "UNCHANGEDSINCE":
                raise cur.fail(f"Unknown store modifier {mod}")
            cur.sp()
            return cur.number64("mod-sequence")

        unchangedsince = cur.paren_list(modifier)[-1]
        cur.sp()
    m = _STORE_RE.match(cur.buf, cur.pos)
    if m is None:
        if cur.at_end():
            raise cur.eof("store action")
        raise cur.fail("Expected FLAGS, +FLAGS or -FLAGS")
    cur.pos = m.end()
    action = {b"": "set", b"+": "add", b"-": "remove"}[m.group(1)]
    silent = m.group(3) is not None
    cur.sp()
    if cur.peek() == 0x28:
        flags = cur.flag_list()
    else:
        lst = [cur.flag()]
        while not cur.at_end():
            cur.sp()
            lst.append(cur.flag())
        flags = tuple(lst)
    cur.finish()
    return StoreArgs(sequence, action, flags, silent, unchangedsince)  # type: ignore[arg-type]
