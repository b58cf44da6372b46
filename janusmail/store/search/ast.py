"""The one search model: a typed query AST that IMAP SEARCH and JMAP Email/query both build.

Why one model: the two doors used to carry their own SQL compilers (and a third, in-memory evaluator) over the
same tables and full-text index, and nothing but tests kept them in agreement. Now each door only *builds* a
tree of these frozen nodes; :mod:`.compile` turns any tree into SQL for SQLite or PostgreSQL and
:mod:`.memory` evaluates the metadata-only ones over the row cache.

Where the RFCs differ, the difference is in how a door builds the tree, not in a second compiler:

* IMAP ``FROM x`` (RFC 9051 §6.4.4: substring) is ``Or(Address("from", ("x",)), Header("from", "x"))``: the
  parsed addresses (decoded names) or the field as received (group names such as ``undisclosed:;``, which
  no address list keeps); JMAP ``from: "x y"`` (RFC 8621 §4.4.1) is ``Address("from", ("x", "y"),
  words=True)``: every term a substring, and on SQLite also words (prefixes) of the address index, which is
  what makes it fast.
* IMAP ``TEXT sdfghjk`` is ``Contains("text", "sdfghjk")``: a substring of any header field or of the body
  text, found through the trigram index (shorter than 3 characters: a scan of the mailbox's rows, the
  compiler's choice). JMAP ``text: 'one "two three"'`` is ``Text("all", ("one", "two three"))``: every term
  is a phrase of whole words, through the word index.
* IMAP ``SUBJECT x`` is a substring of the decoded subject (``SubjectContains``); JMAP ``subject`` is
  ``Text("subject", ...)`` over the index.
* \\Deleted, UIDs and MODSEQ are properties of a membership (IMAP's message): they only have a meaning in a
  mailbox search (:meth:`.service.SearchService.mailbox_search`). An Email/query sees emails, and only those
  with a membership that is not \\Deleted.

Keywords are in the store's JMAP form (``$seen``, lowercase key); the four system keywords are flag bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

__all__ = [
    "ADDRESS_FIELDS",
    "TRIGRAM",
    "SORT_PROPERTIES",
    "Address",
    "All",
    "And",
    "Condition",
    "Contains",
    "Date",
    "Deleted",
    "EmailIs",
    "EmailQuery",
    "HasAttachment",
    "Header",
    "InMailbox",
    "InMailboxOtherThan",
    "Keyword",
    "ModSeqAtLeast",
    "Not",
    "Nothing",
    "Or",
    "SavedDate",
    "Size",
    "SortKey",
    "SubjectContains",
    "Text",
    "ThreadIs",
    "ThreadKeyword",
    "UidIn",
    "conjuncts",
    "walk",
]

AddressField = Literal["from", "to", "cc", "bcc"]
#: the shortest string a trigram index can find; shorter ones are a scan
TRIGRAM = 3
ADDRESS_FIELDS: tuple[AddressField, ...] = ("from", "to", "cc", "bcc")
Compare = Literal["lt", "le", "ge", "gt"]


@dataclass(frozen=True, slots=True)
class All:
    """Every message / email."""


@dataclass(frozen=True, slots=True)
class Nothing:
    """No message (a flag we never store, a reserved keyword, an empty sequence set)."""


@dataclass(frozen=True, slots=True)
class Keyword:
    """The email has the keyword (JMAP form, lowercase key; ``$seen`` etc. are the flag bits)."""

    keyword: str


@dataclass(frozen=True, slots=True)
class ThreadKeyword:
    """``some``/``all``/``none`` of the visible emails of the email's thread have the keyword (RFC 8621)."""

    keyword: str
    quantifier: Literal["some", "all", "none"]


@dataclass(frozen=True, slots=True)
class Deleted:
    """The membership carries IMAP's \\Deleted (mailbox searches only)."""


@dataclass(frozen=True, slots=True)
class UidIn:
    """The membership's UID is in one of the inclusive ranges (mailbox searches only; sequence sets, ``$``
    and \\Recent are resolved to UIDs by the door, which holds the session's snapshot)."""

    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class ModSeqAtLeast:
    """The membership's MODSEQ is >= ``modseq`` (RFC 7162; mailbox searches only)."""

    modseq: int


@dataclass(frozen=True, slots=True)
class InMailbox:
    """The email has a visible (not \\Deleted) membership in the mailbox."""

    mailbox_id: str


@dataclass(frozen=True, slots=True)
class InMailboxOtherThan:
    """The email has a visible membership in a mailbox not among ``mailbox_ids``."""

    mailbox_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmailIs:
    """Exact, case-sensitive email id."""

    email_id: str


@dataclass(frozen=True, slots=True)
class ThreadIs:
    """Exact, case-sensitive thread id."""

    thread_id: str


@dataclass(frozen=True, slots=True)
class Address:
    """Every text is a case-insensitive substring of the field's stored ``"name <addr>, ..."`` list; the text
    ``""`` means "the field is not empty". ``words`` (JMAP): the texts' words must also occur as words
    (prefixes) in the address index — which lets SQLite narrow the search through FTS5 (PostgreSQL's parser
    keeps an address as one token, so there the substring test alone decides)."""

    field: AddressField
    texts: tuple[str, ...]
    words: bool = False


@dataclass(frozen=True, slots=True)
class SubjectContains:
    """Case-insensitive substring of the decoded subject (IMAP SUBJECT)."""

    text: str


@dataclass(frozen=True, slots=True)
class Header:
    """A header field of that name exists (and, when ``value`` is not None/empty, its value as received
    contains it, case-insensitively). The check reads the cached header lists; a value of 3 or more
    characters first narrows the candidates through the trigram index of the header text."""

    name: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class Text:
    """Full text over the word index (subject, addresses and body for ``all``; JMAP). Every phrase must occur
    as consecutive whole words, case-insensitively (SQLite also ignores accents)."""

    scope: Literal["all", "subject", "body"]
    phrases: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Contains:
    """IMAP TEXT and BODY (RFC 9051 §6.4.4: "contains the specified string"): ``value`` is a case-insensitive
    substring of a header field (name and value, as received or decoded) or of the body text (``text``), or
    of the body text (``body``). Every message contains ``""``."""

    scope: Literal["text", "body"]
    value: str


@dataclass(frozen=True, slots=True)
class Date:
    """Compare a date in epoch seconds: ``received`` (IMAP internal date, JMAP receivedAt) or ``sent``
    (the Date header as the sender's wall-clock time, so days compare in the sender's calendar; the
    received date stands in when there is no Date header)."""

    field: Literal["received", "sent"]
    op: Compare
    epoch: int


@dataclass(frozen=True, slots=True)
class SavedDate:
    """Compare the membership's save date (RFC 8514: when the message was put in this mailbox) in epoch
    seconds; mailbox searches only, like \\Deleted."""

    op: Compare
    epoch: int


@dataclass(frozen=True, slots=True)
class Size:
    """Compare the RFC 5322 size in octets."""

    op: Compare
    size: int


@dataclass(frozen=True, slots=True)
class HasAttachment:
    value: bool = True


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition


@dataclass(frozen=True, slots=True)
class And:
    """All of ``items`` (none: everything)."""

    items: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any of ``items`` (none: nothing)."""

    items: tuple[Condition, ...]


Condition = Union[  # noqa: UP007 - a runtime alias used in isinstance-free matching
    All, Nothing, Keyword, ThreadKeyword, Deleted, UidIn, ModSeqAtLeast, InMailbox, InMailboxOtherThan, EmailIs,
    ThreadIs, Address, SubjectContains, Header, Text, Contains, Date, SavedDate, Size, HasAttachment, Not, And, Or,
]

SortProperty = Literal["receivedAt", "sentAt", "size", "from", "to", "subject", "hasKeyword",
                       "allInThreadHaveKeyword", "someInThreadHaveKeyword",
                       "fromMailbox", "toMailbox", "ccMailbox"]
SORT_PROPERTIES: tuple[str, ...] = ("receivedAt", "sentAt", "size", "from", "to", "subject", "hasKeyword",
                                    "allInThreadHaveKeyword", "someInThreadHaveKeyword")


@dataclass(frozen=True, slots=True)
class SortKey:
    """One sort criterion (RFC 8621 §4.4.2 names); ``keyword`` for the keyword sorts.

    IMAP SORT (RFC 5256) adds ``fromMailbox``/``toMailbox``/``ccMailbox``: the local part (IMAP's
    addr-mailbox) of the field's first address, where JMAP's ``from``/``to`` (= RFC 5957 DISPLAYFROM and
    DISPLAYTO) sort on the display name. Only mailbox sorts (:mod:`.sort`) know them; they are not in
    :data:`SORT_PROPERTIES` (what Email/query offers)."""

    prop: SortProperty
    ascending: bool = True
    keyword: str | None = None


@dataclass(frozen=True, slots=True)
class EmailQuery:
    """A whole Email query: what matches, in which order, one email per thread or not. Hashable: it is the
    query cache's key."""

    condition: Condition = All()
    sort: tuple[SortKey, ...] = ()
    collapse: bool = False

    def mutable(self) -> bool:
        """Whether the results can change for an email that still exists (keywords, mailboxes)."""
        return any(isinstance(n, _MUTABLE) for n in walk(self.condition)) or any(
            k.prop in _KEYWORD_SORTS for k in self.sort)

    def thread_sensitive(self) -> bool:
        """Whether a change to one email can move another email of its thread in or out of the results."""
        return (self.collapse or any(isinstance(n, ThreadKeyword) for n in walk(self.condition))
                or any(k.prop in _THREAD_SORTS for k in self.sort))


_MUTABLE = (InMailbox, InMailboxOtherThan, Keyword, ThreadKeyword, Deleted, ModSeqAtLeast)
_KEYWORD_SORTS = frozenset({"hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"})
_THREAD_SORTS = frozenset({"allInThreadHaveKeyword", "someInThreadHaveKeyword"})


def walk(node: Condition):  # noqa: ANN201 - a generator of Condition
    """Every node of the tree, parents first."""
    yield node
    if isinstance(node, Not):
        yield from walk(node.item)
    elif isinstance(node, And | Or):
        for item in node.items:
            yield from walk(item)


def conjuncts(node: Condition) -> list[Condition]:
    """The nodes ANDed at the top of the tree (the node itself when it is not an And)."""
    if isinstance(node, And):
        return [c for item in node.items for c in conjuncts(item)]
    return [node]
