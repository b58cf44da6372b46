"""What every server process sees live (issue 13 part 4: the web admin's connections and failed logins when
``serve --workers N`` or several nodes run): one row per publishing process, its open connections and its
throttle's recent failed logins as JSON documents (janusmail/store/process_state.py).

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "process_state",
        sa.Column("process", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("heartbeat", sa.BigInteger(), nullable=False),
        sa.Column("connections", sa.Text(), nullable=False),
        sa.Column("failed_logins", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("process"),
    )


def downgrade() -> None:
    op.drop_table("process_state")
