"""Typed arguments, one dataclass per command shape.

Conventions, so the session never has to re-parse:

* mailbox names are ``str`` exactly as on the wire (modified UTF-7 unless the session enabled UTF8=ACCEPT;
  decode with :func:`janusmail.imap.codec.mutf7.decode`), except that any case of ``INBOX`` becomes
  ``"INBOX"`` (RFC 9051 §5.1);
* keywords in capability/option/attribute positions are upper case;
* system flags are canonical (``\\Seen``); keywords keep the client's spelling;
* sequence sets are :class:`~janusmail.imap.codec.sequence.SequenceSet`, unresolved.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .searchkeys import SearchKey
from .sequence import SequenceSet

if TYPE_CHECKING:  # pragma: no cover
    from .events import LiteralSink

__all__ = [
    "AppendArgs",
    "AppendMessage",
    "AuthenticateArgs",
    "CancelUpdateArgs",
    "CatenatePart",
    "CommandArgs",
    "CompressArgs",
    "CopyArgs",
    "CreateArgs",
    "EnableArgs",
    "ExpungeArgs",
    "FetchArgs",
    "FetchAttr",
    "FetchBinarySize",
    "FetchBody",
    "FetchItem",
    "GetMetadataArgs",
    "IdArgs",
    "ListArgs",
    "LoginArgs",
    "LsubArgs",
    "MailboxArgs",
    "NO_ARGS",
    "NoArgs",
    "NotifyArgs",
    "NotifyEvent",
    "NotifyGroup",
    "QResync",
    "QuotaRootArgs",
    "RenameArgs",
    "ReplaceArgs",
    "SearchArgs",
    "Section",
    "SelectArgs",
    "SetMetadataArgs",
    "SetQuotaArgs",
    "SortArgs",
    "SortCriterion",
    "StatusArgs",
    "StoreArgs",
    "ThreadArgs",
]


@dataclass(frozen=True, slots=True)
class NoArgs:
    """CAPABILITY NOOP LOGOUT STARTTLS IDLE CHECK CLOSE UNSELECT NAMESPACE GETJMAPACCESS."""


NO_ARGS = NoArgs()


@dataclass(frozen=True, slots=True)
class LoginArgs:
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class AuthenticateArgs:
    """``mechanism`` upper case. ``initial_response`` is the decoded SASL-IR: None when absent,
    ``b""`` when the client sent ``=``."""

    mechanism: str
    initial_response: bytes | None = None


@dataclass(frozen=True, slots=True)
class EnableArgs:
    capabilities: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class QResync:
    """``QRESYNC (uidvalidity modseq [known-uids [(seqs uids)]])`` (RFC 7162 §3.2.5)."""

    uidvalidity: int
    modseq: int
    known_uids: SequenceSet | None = None
    seq_match: tuple[SequenceSet, SequenceSet] | None = None


@dataclass(frozen=True, slots=True)
class SelectArgs:
    """SELECT and EXAMINE."""

    mailbox: str
    condstore: bool = False
    qresync: QResync | None = None


@dataclass(frozen=True, slots=True)
class CreateArgs:
    """``special_use`` holds the ``USE (...)`` attributes (RFC 6154), canonical case (``\\Sent``)."""

    mailbox: str
    special_use: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MailboxArgs:
    """DELETE SUBSCRIBE UNSUBSCRIBE GETQUOTAROOT."""

    mailbox: str


@dataclass(frozen=True, slots=True)
class RenameArgs:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class ListArgs:
    """LIST, basic or extended (RFC 5258, RFC 6154, RFC 5819).

    ``extended`` is True when any extended syntax was used (selection options, a parenthesised pattern
    list or RETURN); the session then follows RFC 5258 response rules. ``return_status`` is None when no
    ``STATUS (...)`` return option was given, otherwise its upper-case items.
    """

    reference: str
    patterns: tuple[str, ...]
    selection: frozenset[str] = frozenset()
    return_subscribed: bool = False
    return_children: bool = False
    return_special_use: bool = False
    return_status: tuple[str, ...] | None = None
    extended: bool = False


@dataclass(frozen=True, slots=True)
class LsubArgs:
    reference: str
    pattern: str


@dataclass(frozen=True, slots=True)
class StatusArgs:
    mailbox: str
    items: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CatenatePart:
    """One part of an RFC 4469 ``CATENATE (...)``: ``TEXT`` with its literal's bytes (or the sink a large one
    was streamed into), or ``URL`` with the IMAP URL as sent (parsed and resolved by the session)."""

    kind: Literal["TEXT", "URL"]
    data: bytes | LiteralSink = b""
    url: str = ""


@dataclass(frozen=True, slots=True)
class AppendMessage:
    """One message of a (MULTI)APPEND. ``binary`` when sent as ``~{n}`` (RFC 3516), ``utf8`` for the
    RFC 6855 ``UTF8 (~{n}...)`` form. ``data`` is the literal's bytes, or the session's sink when the
    literal was large enough to be streamed out of memory (see :class:`~.events.LargeLiteral`)."""

    data: bytes | LiteralSink
    flags: tuple[str, ...] = ()
    date: _dt.datetime | None = None
    binary: bool = False
    utf8: bool = False
    #: RFC 4469 CATENATE: the message is these parts joined (``data`` is then empty)
    catenate: tuple[CatenatePart, ...] = ()


@dataclass(frozen=True, slots=True)
class AppendArgs:
    mailbox: str
    messages: tuple[AppendMessage, ...]


@dataclass(frozen=True, slots=True)
class SearchArgs:
    """SEARCH / UID SEARCH.

    ``return_opts`` is None for the classic form (answer ``* SEARCH``); otherwise the ESEARCH options,
    upper case (an empty ``RETURN ()`` means ``("ALL",)`` per RFC 4731, which the parser fills in).
    ``partial`` is the RFC 9394 range ``(first, last)``; negative values count from the end.
    String values in ``key`` are already decoded from ``charset``.
    """

    key: SearchKey
    charset: str | None = None
    return_opts: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class SortCriterion:
    key: str
    reverse: bool = False


@dataclass(frozen=True, slots=True)
class SortArgs:
    """SORT / UID SORT (RFC 5256, RFC 5267 ESORT return options)."""

    criteria: tuple[SortCriterion, ...]
    charset: str
    key: SearchKey
    return_opts: tuple[str, ...] | None = None
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ThreadArgs:
    algorithm: str
    charset: str
    key: SearchKey


@dataclass(frozen=True, slots=True)
class Section:
    """A body section: ``part`` numbers, then an optional ``text`` specifier.

    ``text`` is one of None, ``HEADER``, ``HEADER.FIELDS``, ``HEADER.FIELDS.NOT``, ``TEXT``, ``MIME``.
    ``fields`` keeps the header names as the client wrote them (they are echoed back in the response
    and compared case-insensitively).
    """

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def to_string(self) -> str:
        out = ".".join(str(p) for p in self.part)
        if self.text:
            out = f"{out}.{self.text}" if out else self.text
        if self.text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            out += " (" + " ".join(_field_name(f) for f in self.fields) + ")"
        return out


def _field_name(name: str) -> str:
    if name and all(33 <= ord(c) < 127 and c not in '(){%*"\\]' for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class FetchAttr:
    """A plain FETCH item: FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID MODSEQ
    EMAILID THREADID."""

    name: str

    def response_key(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class FetchBody:
    """``BODY[...]``, ``BODY.PEEK[...]``, ``BINARY[...]``, ``BINARY.PEEK[...]`` with optional
    ``<offset.length>``, and the RFC822 / RFC822.HEADER / RFC822.TEXT forms (``alias`` keeps the name
    that must be echoed). Fetching without ``peek`` sets ``\\Seen``."""

    section: Section = field(default_factory=Section)
    partial: tuple[int, int] | None = None
    peek: bool = False
    binary: bool = False
    alias: str | None = None

    def response_key(self) -> str:
        """The item name for the response: ``BODY[1.TEXT]<0>``, ``BINARY[2]``, ``RFC822.HEADER``."""
        if self.alias:
            return self.alias
        name = "BINARY" if self.binary else "BODY"
        out = f"{name}[{self.section.to_string()}]"
        if self.partial is not None:
            out += f"<{self.partial[0]}>"
        return out


@dataclass(frozen=True, slots=True)
class FetchBinarySize:
    """``BINARY.SIZE[part]`` (RFC 3516)."""

    part: tuple[int, ...] = ()

    def response_key(self) -> str:
        return "BINARY.SIZE[" + ".".join(str(p) for p in self.part) + "]"


FetchItem = FetchAttr | FetchBody | FetchBinarySize


@dataclass(frozen=True, slots=True)
class FetchArgs:
    """FETCH / UID FETCH. Macros (ALL FAST FULL) are already expanded into ``items``. For UID FETCH the
    session adds UID to the response itself (RFC 9051 §6.4.9), the parser does not insert it."""

    sequence: SequenceSet
    items: tuple[FetchItem, ...]
    changedsince: int | None = None
    vanished: bool = False
    #: RFC 9394 ``(PARTIAL first:last)``: only the messages of the set at these positions (negative: from the end)
    partial: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class StoreArgs:
    """STORE / UID STORE: ``action`` is ``set`` (FLAGS), ``add`` (+FLAGS) or ``remove`` (-FLAGS)."""

    sequence: SequenceSet
    action: Literal["set", "add", "remove"]
    flags: tuple[str, ...]
    silent: bool = False
    unchangedsince: int | None = None


@dataclass(frozen=True, slots=True)
class CopyArgs:
    """COPY MOVE UID COPY UID MOVE."""

    sequence: SequenceSet
    mailbox: str


@dataclass(frozen=True, slots=True)
class ExpungeArgs:
    """EXPUNGE (``sequence`` None) and UID EXPUNGE (RFC 4315)."""

    sequence: SequenceSet | None = None


@dataclass(frozen=True, slots=True)
class IdArgs:
    """ID (RFC 2971): None for ``ID NIL``; field names keep their case (they are case-insensitive)."""

    params: tuple[tuple[str, str | None], ...] | None


@dataclass(frozen=True, slots=True)
class CompressArgs:
    mechanism: str


@dataclass(frozen=True, slots=True)
class QuotaRootArgs:
    """GETQUOTA (RFC 9208)."""

    root: str


@dataclass(frozen=True, slots=True)
class SetQuotaArgs:
    """SETQUOTA (RFC 9208): ``limits`` as (upper-case resource, limit)."""

    root: str
    limits: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class CancelUpdateArgs:
    """CANCELUPDATE "tag" ... (RFC 5267 §4.2): the SEARCH contexts to stop updating."""

    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    """One event of a NOTIFY event group (RFC 5465 §5), name upper-cased (``MESSAGENEW``, ``MAILBOXNAME``,
    or an unknown atom the session answers with ``NO [BADEVENT]``); ``fetch`` only for MessageNew."""

    name: str
    fetch: tuple[FetchItem, ...] = ()


@dataclass(frozen=True, slots=True)
class NotifyGroup:
    """``(filter events)``: ``filter`` is SELECTED, SELECTED-DELAYED, INBOXES, PERSONAL, SUBSCRIBED, SUBTREE or
    MAILBOXES (the last two with ``mailboxes``); ``events`` empty means NONE."""

    filter: str
    mailboxes: tuple[str, ...] = ()
    events: tuple[NotifyEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class NotifyArgs:
    """NOTIFY NONE (``groups`` empty, ``none``) or NOTIFY SET [STATUS] groups (RFC 5465 §3)."""

    none: bool
    status: bool = False
    groups: tuple[NotifyGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplaceArgs:
    """REPLACE / UID REPLACE (RFC 8508): the message to replace (``number`` None for ``*``), the mailbox the
    new message goes to, and the new message as APPEND takes it."""

    number: int | None
    mailbox: str
    message: AppendMessage


@dataclass(frozen=True, slots=True)
class GetMetadataArgs:
    """GETMETADATA (RFC 5464 §4.2): ``mailbox`` ``""`` is the server; ``entries`` lower case (entry names
    are case-insensitive); ``depth`` 0, 1 or None (infinity); ``maxsize`` None when not given."""

    mailbox: str
    entries: tuple[str, ...]
    maxsize: int | None = None
    depth: int | None = 0


@dataclass(frozen=True, slots=True)
class SetMetadataArgs:
    """SETMETADATA (RFC 5464 §4.3): ``(entry, value)`` pairs in order, entries lower case, ``None`` = remove."""

    mailbox: str
    entries: tuple[tuple[str, bytes | None], ...]


CommandArgs = (
    NoArgs
    | LoginArgs
    | AuthenticateArgs
    | EnableArgs
    | SelectArgs
    | CreateArgs
    | MailboxArgs
    | RenameArgs
    | ReplaceArgs
    | ListArgs
    | LsubArgs
    | StatusArgs
    | AppendArgs
    | SearchArgs
    | SortArgs
    | ThreadArgs
    | FetchArgs
    | StoreArgs
    | CopyArgs
    | ExpungeArgs
    | IdArgs
    | CompressArgs
    | QuotaRootArgs
    | SetQuotaArgs
    | GetMetadataArgs
    | SetMetadataArgs
    | NotifyArgs
    | CancelUpdateArgs
)

