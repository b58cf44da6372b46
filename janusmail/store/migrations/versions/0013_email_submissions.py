"""Email submissions, which are also the outbound queue (RFC 8621 §7; janusmail/store/submissions.py).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_submissions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("identity_id", sa.String(length=64), nullable=False),
        sa.Column("email_id", sa.String(length=64), nullable=False),
        sa.Column("thread_id", sa.String(length=64), nullable=False),
        sa.Column("blob_id", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("send_at", sa.BigInteger(), nullable=False),
        sa.Column("undo_status", sa.String(length=16), nullable=False),
        sa.Column("delivery", sa.Text(), nullable=False),
        sa.Column("dsn_blob_ids", sa.Text(), server_default="[]", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt", sa.BigInteger(), nullable=True),
        sa.Column("lease_until", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_email_submissions_account_id", "email_submissions", ["account_id"])
    op.create_index("ix_email_submissions_next_attempt", "email_submissions", ["next_attempt"])


def downgrade() -> None:
    op.drop_index("ix_email_submissions_next_attempt", table_name="email_submissions")
    op.drop_index("ix_email_submissions_account_id", table_name="email_submissions")
    op.drop_table("email_submissions")
