"""Plain value objects the store hands to the protocol layers, and the store's errors.

The protocol layers (IMAP, JMAP) map these errors to their own vocabulary (``NO [ALREADYEXISTS]`` or a JMAP
SetError); the store never speaks either protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class StoreError(Exception):
    """Base of every refusal the store makes; ``code`` is a protocol-neutral reason."""

    code = "error"


class NotFound(StoreError):
    code = "notFound"


class AlreadyExists(StoreError):
    code = "alreadyExists"


class InvalidName(StoreError):
    code = "invalidName"


class RoleTaken(StoreError):
    code = "roleTaken"


class HasChildren(StoreError):
    code = "hasChildren"


class HasEmails(StoreError):
    code = "hasEmails"


class Forbidden(StoreError):
    code = "forbidden"


class InboxProtected(Forbidden):
    """The account's inbox cannot be destroyed, lose its role or leave the top level: mail delivery and IMAP's
    INBOX (a top-level name, RFC 9051 §5.1) need it, and DELETE INBOX is an error (RFC 9051 §6.3.4). Checked
    in the write's own transaction, so both doors refuse the same thing, however they race. ``prop`` names
    what an update tried to change (``"role"`` or ``"parentId"``); None for a destroy."""

    def __init__(self, mailbox_id: str, *, prop: str | None = None) -> None:
        super().__init__(mailbox_id)
        self.prop = prop


class TooManyKeywords(StoreError):
    code = "tooManyKeywords"


class InvalidKeyword(StoreError):
    code = "invalidKeyword"


class TooLarge(StoreError):
    code = "tooLarge"


class OverQuota(StoreError):
    """The write would take the account above a quota limit (janusmail/store/quotas.py); nothing was written.
    ``args[0]`` names the resource ("storage" or "messages"). IMAP NO [OVERQUOTA], LMTP 552 5.2.2, JMAP
    overQuota."""

    code = "overQuota"


class StorageUnavailable(StoreError):
    """The disk refused a write (ENOSPC, EDQUOT, EIO...): nothing was recorded, the client may retry later.

    Raised by the blob store and the ingest paths instead of a bare OSError so every door can answer with its
    own "try again later" (LMTP 452 4.3.1, IMAP NO [UNAVAILABLE], JMAP 507 / serverUnavailable) rather than a
    server bug. ``full`` tells out-of-space apart from other I/O failures.
    """

    code = "unavailable"

    def __init__(self, message: str = "the mail store cannot write right now", *, full: bool = False) -> None:
        super().__init__(message)
        self.full = full


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    address: str
    jmap_enabled: bool
    modseq: int


@dataclass(frozen=True, slots=True)
class Mailbox:
    id: str
    account_id: str
    name: str
    parent_id: str | None
    role: str | None
    sort_order: int
    subscribed: bool
    uidvalidity: int
    uidnext: int
    recent_uid: int
    highest_modseq: int
    modseq: int
    #: The mailbox row's counters (``counters.py``), read with it, so STATUS and LIST-STATUS need no count query
    #: of their own; None when the reader did not read them. Not part of equality.
    counts: MailboxCounts | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class MailboxCounts:
    """What STATUS and JMAP Mailbox counts need, computed in one grouped query per mailbox set.

    ``messages``/``unseen``/``deleted``/``size`` count IMAP memberships (including \\Deleted ones); the
    ``*_emails``/``*_threads`` counts are JMAP's, which leave \\Deleted memberships out.
    """

    messages: int = 0
    unseen: int = 0
    deleted: int = 0
    size: int = 0
    total_emails: int = 0
    unread_emails: int = 0
    total_threads: int = 0
    unread_threads: int = 0


@dataclass(frozen=True, slots=True)
class Delivered:
    """The result of storing one message: its ids and where it landed (mailbox id -> IMAP UID)."""

    email_id: str
    thread_id: str
    blob_id: str
    size: int
    received_at: int
    uids: dict[str, int] = field(default_factory=dict)
    modseq: int = 0
    #: with ``IngestItem.claim_recent``: the first UID of that mailbox the claim gave the storing session (every
    #: UID from it up to this message's own is \\Recent to that session); None when nothing was claimed
    recent_from: int | None = None


@dataclass(frozen=True, slots=True)
class IngestItem:
    """One message to store. ``deleted``: its new memberships carry IMAP's ``\\Deleted`` (APPEND with that
    flag), set in the same transaction that stores the message, so the APPEND is all or nothing.
    ``claim_recent``: one of ``mailbox_ids`` whose \\Recent messages, up to and including this one, the storing
    IMAP4rev1 session claims in the same transaction (APPEND into its selected mailbox: it is the first session
    told of the message, and claiming here spares it a write of its own when it announces it).
    ``inbound``: the message arrived by delivery (LMTP, the sender's local delivery of another account's mail):
    if it is a delivery report, the submission it answers lists it (``report_links``) in the same write. Not
    for APPEND, import or the server's own bounces: see report_links.py for why."""

    raw: bytes
    mailbox_ids: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    received_at: int | None = None
    deleted: bool = False
    claim_recent: str | None = None
    inbound: bool = False


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Where a blob's bytes are: read them with ``Store.blobs.read_location(loc, start, end)``."""

    blob_id: str
    sha256: str
    size: int
    pack: str
    offset: int
    type: str | None = None


@dataclass(frozen=True, slots=True)
class ChangeEntry:
    modseq: int
    object_id: str
    op: str  # c u d k
