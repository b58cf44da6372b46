"""``store.save_dates``: when each message was put in its mailbox (IMAP SAVEDATE, RFC 8514).

The date is a property of the membership (``messages.saved_at``, migration 0010), not of the email: a copy
made today of last year's message has today's save date in its new mailbox. Every INSERT into ``messages``
stamps it (the column's default in :mod:`.schema`; ingest and COPY/MOVE stamp it explicitly), so the
writes need no help from here. Searches on it (SAVEDBEFORE/SAVEDON/SAVEDSINCE) are conditions of the one
search compiler (:class:`janusmail.store.search.ast.SavedDate`); this service only serves FETCH SAVEDATE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .rawrows import raw_rows
from .schema import messages
from .uidranges import UidRanges, uid_condition

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

__all__ = ["SaveDates"]


class SaveDates:
    """Reads of ``messages.saved_at``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def of(self, mailbox_id: str, ranges: UidRanges) -> dict[int, int]:
        """``{uid: saved_at}`` (epoch seconds) of the mailbox's memberships with a UID in ``ranges``: one
        query however many ranges."""
        if not ranges:
            return {}
        q = sa.select(messages.c.uid, messages.c.saved_at).where(
            messages.c.mailbox_id == mailbox_id, uid_condition(messages.c.uid, list(ranges)))
        with self._store.engine.connect() as conn:
            return {int(uid): int(saved) for uid, saved in raw_rows(conn, q)}
