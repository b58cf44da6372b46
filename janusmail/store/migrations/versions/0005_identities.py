"""Sending identities (JMAP Identity, RFC 8621 §6) and account aliases (janusmail/store/identities.py).

``identities`` holds the identities clients created, and the account's own (default) identity once it was
changed; until then that one is derived from the account and has no row, so existing accounts need no
backfill. ``aliases`` maps an address to the one account that may send from it (primary key: unique across
the store).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identities",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("reply_to", sa.Text(), nullable=True),
        sa.Column("bcc", sa.Text(), nullable=True),
        sa.Column("text_signature", sa.Text(), server_default="", nullable=False),
        sa.Column("html_signature", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_identities_account_id", "identities", ["account_id"])
    op.create_table(
        "aliases",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_index("ix_aliases_account_id", "aliases", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_aliases_account_id", table_name="aliases")
    op.drop_table("aliases")
    op.drop_index("ix_identities_account_id", table_name="identities")
    op.drop_table("identities")
