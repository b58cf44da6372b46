"""Small helpers shared by the service contract suites (public store methods only)."""

from __future__ import annotations

from typing import Any

from janusmail.store.keywords import bits_to_keywords
from janusmail.store.model import Mailbox, MailboxCounts


def box(store: Any, account_id: str, name: str = "INBOX") -> Mailbox:
    """A top-level mailbox of the account by name (the default ones exist from account creation)."""
    found = store.mailboxes.by_path(account_id, [name])
    assert found is not None, name
    return found


def ops(store: Any, account_id: str, kind: str, since: int) -> set[tuple[str, str]]:
    """(object id, op) pairs the change log holds for ``kind`` after ``since``."""
    return {(c.object_id, c.op) for c in store.changes.since(account_id, kind, since)}


def states(store: Any, account_id: str) -> dict[str, int]:
    """The JMAP states (newest modseq per kind) of an account."""
    return {k: store.changes.kind_state(account_id, k) for k in ("Mailbox", "Email", "Thread")}


def keywords(store: Any, account_id: str, email_id: str) -> set[str]:
    """The JMAP keywords (system ones included) of a visible email, read through visible_emails."""
    (row,) = store.visible_emails.rows(account_id, [email_id], keywords=True)
    return set(bits_to_keywords(row.flags)) | set(row.keywords)


def mailbox_ids(store: Any, account_id: str, email_id: str) -> set[str]:
    """The mailboxes of an email's visible memberships (empty when it has none)."""
    rows = store.visible_emails.rows(account_id, [email_id], keywords=False)
    return set(rows[0].mailbox_ids) if rows else set()


def counts(store: Any, account_id: str, mailbox_ids: list[str] | None = None) -> dict[str, Any]:
    """``store.mailboxes.counts`` without the all-zero entries (an empty mailbox may be listed with zeros or
    left out: both say the same)."""
    return {k: v for k, v in store.mailboxes.counts(account_id, mailbox_ids).items() if v != MailboxCounts()}
