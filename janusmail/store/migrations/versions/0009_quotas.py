"""Quotas (issue 11 QUOTA / RFC 9208, issue 12 JMAP Quota / RFC 9425): per-account limits and usage on the
accounts row (janusmail/store/quotas.py). Usage counts every membership (a message in two mailboxes twice,
\\Deleted ones until expunged); existing accounts are counted once here, one grouped pass over the memberships,
and every write keeps the columns exact from then on.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

USAGE = """
SELECT b.account_id, count(*), coalesce(sum(e.size), 0)
FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id JOIN emails e ON e.id = m.email_id
GROUP BY b.account_id
"""


def upgrade() -> None:
    op.add_column("accounts", sa.Column("quota_storage", sa.BigInteger(), nullable=True))
    op.add_column("accounts", sa.Column("quota_messages", sa.BigInteger(), nullable=True))
    op.add_column("accounts", sa.Column("used_storage", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("accounts", sa.Column("used_messages", sa.BigInteger(), server_default="0", nullable=False))
    conn = op.get_bind()
    rows = conn.execute(sa.text(USAGE)).all()
    stmt = sa.text("UPDATE accounts SET used_messages = :messages, used_storage = :storage WHERE id = :aid")
    for i in range(0, len(rows), 1000):
        conn.execute(stmt, [{"aid": r[0], "messages": int(r[1]), "storage": int(r[2])} for r in rows[i : i + 1000]])


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35 has it): batch mode would copy the table and drop the original, and
    # with foreign keys on, dropping accounts cascades to every row that references it: all the mail.
    for name in ("used_messages", "used_storage", "quota_messages", "quota_storage"):
        op.drop_column("accounts", name)
