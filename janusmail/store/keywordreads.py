"""Which keywords a mailbox uses: IMAP's ``* FLAGS`` / ``PERMANENTFLAGS`` at SELECT (RFC 9051 §6.3.2).

Keywords are stored per email (``email_keywords``), not per mailbox, so "the keywords defined in a mailbox" are
the distinct keywords of the emails it holds. One grouped query over the mailbox's memberships, run once per
SELECT; later additions are noticed by the session from the FETCH data it already reads, never by asking again.
"""

from __future__ import annotations

import sqlalchemy as sa

from .schema import email_keywords, mailboxes, messages


class KeywordReadsMixin:
    def mailbox_keywords(self, account_id: str, mailbox_id: str) -> list[str]:
        """The distinct non-system keywords of the messages in a mailbox, in their IMAP spelling (``display``),
        one per case-insensitive key, sorted by key; empty for a mailbox that is not the account's."""
        k, m = email_keywords, messages
        q = (
            sa.select(k.c.keyword, sa.func.min(k.c.display))
            .select_from(m.join(k, k.c.email_id == m.c.email_id))
            .where(m.c.mailbox_id == mailbox_id,
                   sa.exists().where(mailboxes.c.id == mailbox_id, mailboxes.c.account_id == account_id))
            .group_by(k.c.keyword)
            .order_by(k.c.keyword)
        )
        with self.engine.connect() as conn:  # type: ignore[attr-defined]
            return [display for _key, display in conn.execute(q)]
