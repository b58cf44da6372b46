"""The ``CATENATE (...)`` form of an APPEND message (RFC 4469 §5)::

    "CATENATE" SP "(" cat-part *(SP cat-part) ")"
    cat-part  = "TEXT" SP literal / "TEXT" SP literal8 / "URL" SP astring

A TEXT literal may be large (it is spooled like an APPEND message literal); a URL is kept as text here and
parsed by :mod:`.imapurl` when the command runs, so that a bad one is answered ``NO [BADURL url]``, not BAD.
"""

from __future__ import annotations

from .args import CatenatePart
from .cursor import Cursor

__all__ = ["MAX_PARTS", "catenate_parts"]

#: more parts than any real message is built from; a bound on the work one command can ask for
MAX_PARTS = 256


def catenate_parts(cur: Cursor) -> tuple[CatenatePart, ...]:
    """The parenthesised part list after ``CATENATE SP``."""

    def part() -> CatenatePart:
        kind = cur.keyword("catenate part")
        cur.sp()
        if kind == "TEXT":
            data, _ = cur.literal(allow8=True)
            return CatenatePart("TEXT", data)
        if kind == "URL":
            return CatenatePart("URL", url=cur.astring("URL"))
        raise cur.fail(f"Unknown catenate part {kind}")

    parts = cur.paren_list(part)
    if len(parts) > MAX_PARTS:
        raise cur.fail(f"More than {MAX_PARTS} catenate parts")
    return tuple(parts)
