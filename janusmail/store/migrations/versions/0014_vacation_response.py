"""VacationResponse (RFC 8621 §8) and its reply log; system rows on the outbound queue
(janusmail/store/vacation.py, janusmail/store/submissions.py).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vacation_responses",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("is_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("from_date", sa.BigInteger(), nullable=True),
        sa.Column("to_date", sa.BigInteger(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("text_body", sa.Text(), nullable=True),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "vacation_replies",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("replied_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "sender"),
    )
    op.add_column("email_submissions", sa.Column("origin", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("email_submissions", "origin")
    op.drop_table("vacation_replies")
    op.drop_table("vacation_responses")
