"""App passwords as store facts: the state a logged-in session's credential check needs, and revocation.

Why here and not in :mod:`janusmail.auth.app_passwords`: revoking an app password must end the sessions logged
in with it, so the revocation and the account's credential-epoch stamp (:mod:`.credentials`) are one
transaction, and the change is announced on the store's notifier. That is store work (one owner of writes and
of the change notifier); the doors and the auth layer ask for it through typed methods and never run SQL or
stamp epochs themselves.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from . import credentials, faults
from .schema import app_passwords as table
from .writes import writes


def state(conn: sa.Connection, credential_id: str) -> tuple[str, bool] | None:
    """``(account_id, active)`` of one app password, ``None`` when there is no such row (any more)."""
    row = conn.execute(sa.select(table.c.account_id, table.c.revoked_at).where(table.c.id == credential_id)).first()
    return (row.account_id, row.revoked_at is None) if row is not None else None


def revoke(conn: sa.Connection, account_id: str, name_or_id: str, *, now: int, node_id: str | None = None) -> bool:
    """Inside the caller's write transaction: revoke the account's active app password with that id or name
    and stamp the account's credential epoch; False (nothing written) when there is none."""
    c = table.c
    res = conn.execute(
        sa.update(table)
        .where(c.account_id == account_id, c.revoked_at.is_(None),
               sa.or_(c.id == name_or_id, c.name == name_or_id.strip()))
        .values(revoked_at=now)
    )
    if res.rowcount == 0:
        return False
    credentials.record_change(conn, account_id, node_id=node_id)
    return True


def revoke_with_engine(engine: sa.Engine, account_id: str, name_or_id: str, *, now: int | None = None) -> bool:
    """:func:`revoke` in its own transaction, for a tool holding only an engine (no Store, so no local
    notifier: other processes hear it through the SQLite watcher or PostgreSQL NOTIFY, as from the CLI)."""
    with faults.mapped(), engine.begin() as conn:
        return revoke(conn, account_id, name_or_id, now=int(time.time()) if now is None else now)


class AppPasswordsMixin:
    def app_password_state(self, credential_id: str) -> tuple[str, bool] | None:
        """``(account_id, active)`` of an app password, or ``None`` once it no longer exists (a revoked one
        is deleted when its name is reused). The credential check behind "sessions end with their credential"."""
        with self.engine.connect() as conn:
            return state(conn, credential_id)

    @writes
    def revoke_app_password(self, account_id: str, name_or_id: str, *, now: int | None = None) -> bool:
        """Revoke the account's active app password with that id or name; False when there is none.

        One transaction revokes it and stamps the account's credential epoch; after the commit the change is
        published on the notifier (and on PostgreSQL sent to the other nodes by ``NOTIFY`` with the commit), so
        IMAP sessions and JMAP push connections logged in with it end within seconds, in any process."""
        with faults.mapped(), self.engine.begin() as conn:
            done = revoke(conn, account_id, name_or_id, now=int(time.time()) if now is None else now,
                          node_id=self.node_id)
        if done:
            self.notifier.publish(credentials.event(account_id))
        return done
