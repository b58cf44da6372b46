"""Received reports linked to their submission (RFC 8621 §7 ``mdnBlobIds``; janusmail/store/report_links.py):
``email_submissions.mdn_blob_ids`` (a JSON list, as ``dsn_blob_ids``) and ``message_id``, the sent message's
Message-ID, with an index on (account_id, message_id) so a delivered report finds the submissions it answers
among its account's rows only. Rows already there take the Message-ID of their email when it still exists.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

EXISTING = """
SELECT s.id, e.message_id FROM email_submissions s JOIN emails e ON e.id = s.email_id AND e.account_id = s.account_id
WHERE s.origin IS NULL AND e.message_id IS NOT NULL
"""


def upgrade() -> None:
    op.add_column("email_submissions", sa.Column("mdn_blob_ids", sa.Text(), server_default="[]", nullable=False))
    op.add_column("email_submissions", sa.Column("message_id", sa.Text(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text(EXISTING)).all()
    # ids past 998 octets are left out, as new rows leave them (the index refuses very long entries)
    found = [{"sid": sid, "mid": mid} for sid, mid in rows if len(mid.encode()) <= 998]
    stmt = sa.text("UPDATE email_submissions SET message_id = :mid WHERE id = :sid")
    for i in range(0, len(found), 1000):
        conn.execute(stmt, found[i : i + 1000])
    op.create_index("ix_email_submissions_account_message_id", "email_submissions", ["account_id", "message_id"])


def downgrade() -> None:
    op.drop_index("ix_email_submissions_account_message_id", table_name="email_submissions")
    # Plain DROP COLUMN (as 0009 explains): batch mode would recreate the table.
    for name in ("message_id", "mdn_blob_ids"):
        op.drop_column("email_submissions", name)
