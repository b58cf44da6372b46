"""Ready-made untagged data responses, so the session never hand-assembles protocol text.

Each function returns one complete line (``* ...\\r\\n``) as bytes. Mailbox names are taken in their
internal Unicode form and encoded for the client (modified UTF-7 unless ``utf8_ok``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .sequence import NumberSet
from .serializer import compress_uids, flag_list, mailbox_name, render, untagged
from .strings import nstring, quoted, quoted_or_literal

__all__ = [
    "capability_response",
    "enabled_response",
    "esearch_response",
    "exists_response",
    "expunge_response",
    "flags_response",
    "id_response",
    "jmapaccess_response",
    "list_response",
    "namespace_response",
    "quota_response",
    "quotaroot_response",
    "recent_response",
    "search_response",
    "status_response",
    "vanished_response",
]


def capability_response(capabilities: Iterable[str]) -> bytes:
    return untagged("CAPABILITY", *capabilities)


def enabled_response(capabilities: Iterable[str]) -> bytes:
    """``* ENABLED`` (an empty list is valid: nothing newly enabled)."""
    return untagged("ENABLED", *capabilities)


def exists_response(count: int) -> bytes:
    return b"* %d EXISTS\r\n" % count


def recent_response(count: int) -> bytes:
    return b"* %d RECENT\r\n" % count


def expunge_response(seq: int) -> bytes:
    return b"* %d EXPUNGE\r\n" % seq


def vanished_response(uids: Iterable[int] | NumberSet, earlier: bool = False) -> bytes:
    """``* VANISHED [(EARLIER)] uid-set`` (RFC 7162)."""
    uid_set = compress_uids(uids)
    return untagged("VANISHED", "(EARLIER)", uid_set) if earlier else untagged("VANISHED", uid_set)


def flags_response(flags: Iterable[str]) -> bytes:
    return untagged("FLAGS", flag_list(flags))


def search_response(numbers: Iterable[int], modseq: int | None = None) -> bytes:
    """Classic ``* SEARCH 2 3 5`` (IMAP4rev1); ``modseq`` appends ``(MODSEQ n)`` (RFC 7162)."""
    parts: list[str | bytes | int] = ["SEARCH", *numbers]
    if modseq is not None:
        parts.append(b"(MODSEQ %d)" % modseq)
    return untagged(*parts)


def esearch_response(
    tag: str | None, uid: bool, results: Sequence[tuple[str, int | Iterable[int] | NumberSet]]
) -> bytes:
    """``* ESEARCH (TAG "a") UID COUNT 3 ALL 1:3`` (RFC 4731 / RFC 9051). Results are (name, value):
    ints for MIN/MAX/COUNT/MODSEQ, number collections for ALL; a ready string passes through."""
    parts: list[str | bytes | int] = ["ESEARCH"]
    if tag is not None:
        parts.append(b"(TAG " + quoted(tag) + b")")
    if uid:
        parts.append("UID")
    for name, value in results:
        parts.append(name)
        if isinstance(value, int):
            parts.append(value)
        elif isinstance(value, (str, bytes)):
            parts.append(value)
        else:
            parts.append(compress_uids(value))
    return untagged(*parts)


def list_response(
    attributes: Iterable[str],
    delimiter: str | None,
    name: str,
    utf8_ok: bool = False,
    extended: Sequence[tuple[str, object]] = (),
    command: str = "LIST",
) -> bytes:
    """``* LIST (\\HasNoChildren) "/" INBOX``; ``extended`` items (e.g. ``("CHILDINFO", ["SUBSCRIBED"])``
    or ``("OLDNAME", ["old"])``) are appended as mbox-list-extended. ``command="LSUB"`` for LSUB."""
    parts: list[str | bytes | int] = [
        command,
        flag_list(tuple(attributes)),
        b"NIL" if delimiter is None else quoted(delimiter),
        mailbox_name(name, utf8_ok),
    ]
    if extended:
        items = []
        for tag, value in extended:
            items.append(quoted(tag) + b" " + render(value, utf8_ok))
        parts.append(b"(" + b" ".join(items) + b")")
    return untagged(*parts)


def status_response(name: str, items: Sequence[tuple[str, int | str]], utf8_ok: bool = False) -> bytes:
    """``* STATUS name (MESSAGES 3 UIDNEXT 9 MAILBOXID (F1))``: MAILBOXID values get their parentheses."""
    out = []
    for key, value in items:
        if key == "MAILBOXID":
            out.append(b"MAILBOXID (" + str(value).encode("ascii") + b")")
        else:
            out.append(
                key.encode("ascii")
                + b" "
                + (b"%d" % value if isinstance(value, int) else str(value).encode())
            )
    return untagged("STATUS", mailbox_name(name, utf8_ok), b"(" + b" ".join(out) + b")")


def jmapaccess_response(url: str) -> bytes:
    """``* JMAPACCESS "url"`` (RFC 9698 §4): always quoted, never a literal; ValueError on CR/LF."""
    return untagged("JMAPACCESS", quoted(url))


def id_response(params: Sequence[tuple[str, str | None]] | None, utf8_ok: bool = False) -> bytes:
    """``* ID ("name" "Janus Mail" ...)`` or ``* ID NIL`` (RFC 2971)."""
    if not params:
        return untagged("ID", "NIL")
    items = b" ".join(quoted_or_literal(k, utf8_ok) + b" " + nstring(v, utf8_ok) for k, v in params)
    return untagged("ID", b"(" + items + b")")


def _namespace(entries: Sequence[tuple[str, str | None]] | None, utf8_ok: bool) -> bytes:
    if not entries:
        return b"NIL"
    out = []
    for prefix, delim in entries:
        out.append(
            b"("
            + quoted_or_literal(prefix, utf8_ok)
            + b" "
            + (b"NIL" if delim is None else quoted(delim))
            + b")"
        )
    return b"(" + b"".join(out) + b")"


def namespace_response(
    personal: Sequence[tuple[str, str | None]] | None,
    other: Sequence[tuple[str, str | None]] | None = None,
    shared: Sequence[tuple[str, str | None]] | None = None,
    utf8_ok: bool = False,
) -> bytes:
    """``* NAMESPACE (("" "/")) NIL NIL`` from (prefix, delimiter) lists."""
    return untagged(
        "NAMESPACE", _namespace(personal, utf8_ok), _namespace(other, utf8_ok), _namespace(shared, utf8_ok)
    )


def quota_response(root: str, resources: Sequence[tuple[str, int, int]], utf8_ok: bool = False) -> bytes:
    """``* QUOTA root (STORAGE used limit ...)`` (RFC 9208; STORAGE is in 1024-octet units)."""
    items = b" ".join(b"%s %d %d" % (name.encode("ascii"), used, limit) for name, used, limit in resources)
    return untagged("QUOTA", quoted_or_literal(root, utf8_ok), b"(" + items + b")")


def quotaroot_response(mailbox: str, roots: Iterable[str], utf8_ok: bool = False) -> bytes:
    return untagged(
        "QUOTAROOT", mailbox_name(mailbox, utf8_ok), *(quoted_or_literal(r, utf8_ok) for r in roots)
    )
