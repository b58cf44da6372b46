"""Thread changes caused by JMAP visibility: a write step shared by the services that move memberships.

JMAP sees an email only while one of its memberships is not ``\\Deleted`` (``visible_emails``), and a Thread's
``emailIds`` lists the visible emails only. So a membership write that leaves an email's row in place can
still add it to or remove it from its thread as JMAP sees it: COPY of a message whose every copy is
``\\Deleted`` shows it again; destroying the mailbox of its last visible copy hides it. Thread/changes must
report those threads, or a client's cached thread keeps (or lacks) the email for ever.

Usage, inside one write transaction, before and after the memberships change::

    seen = ThreadVisibility(tx, email_ids)   # before: who JMAP sees now
    ... change memberships ...
    seen.log_changes()                       # after: log a Thread update for each email that appeared/vanished

Emails the write destroyed are left out (``emails.destroy_rows`` logs their threads). A caller names only
the emails that can flip, which is usually none, so the common write pays no query: COPY names the emails
whose source membership is ``\\Deleted`` (any other copied email was visible already and stays visible), a
mailbox destroy the emails with a visible membership in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .schema import emails, threads
from .visible_emails import CHUNK, visible_among

if TYPE_CHECKING:  # pragma: no cover
    from .transaction import WriteTx


class ThreadVisibility:
    """Which of some emails JMAP sees before a membership change, to log the threads of those that flip."""

    def __init__(self, tx: WriteTx, email_ids: Sequence[str]) -> None:
        self._tx = tx
        self._ids = list(dict.fromkeys(email_ids))
        self._before = visible_among(tx.conn, tx.account_id, self._ids) if self._ids else set()

    def log_changes(self) -> list[str]:
        """Log a Thread update for every email whose visibility changed and that still exists; returns those
        thread ids (sorted)."""
        if not self._ids:
            return []
        conn = self._tx.conn
        after = visible_among(conn, self._tx.account_id, self._ids)
        flipped = sorted(self._before ^ after)
        changed: set[str] = set()
        for i in range(0, len(flipped), CHUNK):
            changed.update(r[0] for r in conn.execute(
                sa.select(emails.c.thread_id).where(emails.c.id.in_(flipped[i : i + CHUNK]))))
        ordered = sorted(changed)
        for i in range(0, len(ordered), CHUNK):  # stamped like emails.destroy_rows stamps the threads it changes
            conn.execute(sa.update(threads).where(threads.c.id.in_(ordered[i : i + CHUNK]))
                         .values(modseq=self._tx.modseq))
        self._tx.log_many("Thread", ordered, "u")
        return ordered
