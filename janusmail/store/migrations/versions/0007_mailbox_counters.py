"""Per-mailbox counters (n_messages, n_unseen, n_deleted, n_size, n_emails, n_unread_emails, n_threads,
n_unread_threads), kept exact by every write transaction from now on (janusmail/store/counters.py); existing
mailboxes are counted once here, one grouped pass over the memberships, so STATUS and JMAP counts never count
rows again.

Revision ID: 0007
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("n_messages", "n_unseen", "n_deleted", "n_size", "n_emails", "n_unread_emails", "n_threads",
           "n_unread_threads")
SEEN, DRAFT = 1, 8  # janusmail.store.schema FLAG_SEEN / FLAG_DRAFT (fixed values: stored on disk)

COUNT = f"""
SELECT m.mailbox_id,
       count(*),
       sum(CASE WHEN (e.flags & {SEEN}) = 0 THEN 1 ELSE 0 END),
       sum(CASE WHEN m.deleted THEN 1 ELSE 0 END),
       sum(e.size),
       count(DISTINCT CASE WHEN NOT m.deleted THEN m.email_id END),
       count(DISTINCT CASE WHEN NOT m.deleted AND (e.flags & {SEEN | DRAFT}) = 0 THEN m.email_id END),
       count(DISTINCT CASE WHEN NOT m.deleted THEN e.thread_id END),
       count(DISTINCT CASE WHEN NOT m.deleted AND (e.flags & {SEEN | DRAFT}) = 0 THEN e.thread_id END)
FROM messages m JOIN emails e ON e.id = m.email_id
GROUP BY m.mailbox_id
"""


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("mailboxes", sa.Column(name, sa.BigInteger(), server_default="0", nullable=False))
    conn = op.get_bind()
    rows = conn.execute(sa.text(COUNT)).all()
    setter = ", ".join(f"{c} = :{c}" for c in COLUMNS)
    stmt = sa.text(f"UPDATE mailboxes SET {setter} WHERE id = :mid")
    for i in range(0, len(rows), 1000):
        conn.execute(stmt, [{"mid": r[0], **{c: int(v or 0) for c, v in zip(COLUMNS, r[1:], strict=True)}}
                            for r in rows[i : i + 1000]])


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35 has it): batch mode would copy the table and drop the original, and
    # with foreign keys on, dropping mailboxes cascades to every row that references it: all the mail.
    for name in reversed(COLUMNS):
        op.drop_column("mailboxes", name)
