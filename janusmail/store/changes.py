"""The changes service: reads of the one change log (a per-account modification sequence).

Every write logs the objects it touched under the account's new modseq (``transaction.py``); IMAP
CONDSTORE/QRESYNC/IDLE and JMAP state strings, ``/changes`` and push all read it through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from .model import ChangeEntry
from .schema import accounts, changes

if TYPE_CHECKING:  # pragma: no cover
    from .store import Store

#: The kinds a JMAP state snapshot reports (plus "EmailDelivery", derived from Email creations).
SNAPSHOT_KINDS = ("Mailbox", "Email", "Thread")


class Changes:
    """The account's change log and the states derived from it."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def highest_modseq(self, account_id: str) -> int:
        """The account's current modseq (the newest write of any kind). ``NoResultFound`` for no account."""
        with self._store.engine.connect() as conn:
            return conn.execute(sa.select(accounts.c.modseq).where(accounts.c.id == account_id)).scalar_one()

    def since(self, account_id: str, kind: str, since: int, limit: int | None = None) -> list[ChangeEntry]:
        """Log rows of one kind with modseq > since, oldest first (one indexed range scan)."""
        q = (sa.select(changes.c.modseq, changes.c.object_id, changes.c.op)
             .where(changes.c.account_id == account_id, changes.c.kind == kind, changes.c.modseq > since)
             .order_by(changes.c.modseq, changes.c.seq))
        if limit is not None:
            q = q.limit(limit)
        with self._store.engine.connect() as conn:
            return [ChangeEntry(r.modseq, r.object_id, r.op) for r in conn.execute(q)]

    def kind_state(self, account_id: str, kind: str) -> int:
        """The modseq of the newest change of this kind (a JMAP state), or 0."""
        with self._store.engine.connect() as conn:
            v = conn.execute(sa.select(sa.func.max(changes.c.modseq))
                             .where(changes.c.account_id == account_id, changes.c.kind == kind)).scalar()
        return int(v or 0)

    def snapshot(self, account_id: str) -> dict[str, int]:
        """The newest modseq of each change kind ("Mailbox", "Email", "Thread") and of the newest email creation
        ("EmailDelivery"), 0 when none, read on one connection (push's catch-up and event ids)."""
        q = (sa.select(changes.c.kind, sa.func.max(changes.c.modseq))
             .where(changes.c.account_id == account_id, changes.c.kind.in_(SNAPSHOT_KINDS))
             .group_by(changes.c.kind))
        q_delivery = sa.select(sa.func.max(changes.c.modseq)).where(
            changes.c.account_id == account_id, changes.c.kind == "Email", changes.c.op == "c")
        with self._store.engine.connect() as conn:
            states = {kind: int(m or 0) for kind, m in conn.execute(q)}
            delivery = conn.execute(q_delivery).scalar()
        out = {k: states.get(k, 0) for k in SNAPSHOT_KINDS}
        out["EmailDelivery"] = int(delivery or 0)
        return out
