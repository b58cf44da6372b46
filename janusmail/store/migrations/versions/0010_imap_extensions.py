"""IMAP extensions' state: SAVEDATE (RFC 8514) and METADATA (RFC 5464).

``messages.saved_at``: when the email was put in that mailbox (epoch seconds). Existing memberships get their
email's ``received_at``, the best there is: for mail delivered or appended it is the moment it was saved, and
only copies and moves made before this migration are dated too early.

``mailbox_metadata`` / ``server_metadata``: METADATA entries of a mailbox (deleted with it by the foreign key,
renamed with it because a rename keeps the id) and of the account's server view.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("saved_at", sa.BigInteger(), server_default="0", nullable=False))
    op.execute("UPDATE messages SET saved_at = (SELECT e.received_at FROM emails e WHERE e.id = messages.email_id)")
    op.create_table(
        "mailbox_metadata",
        sa.Column("mailbox_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["mailbox_id"], ["mailboxes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mailbox_id", "name"),
    )
    op.create_table(
        "server_metadata",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "name"),
    )


def downgrade() -> None:
    op.drop_table("server_metadata")
    op.drop_table("mailbox_metadata")
    op.drop_column("messages", "saved_at")  # plain DROP COLUMN: a batch copy would cascade (see 0009)
