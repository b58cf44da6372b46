"""Issued bearer tokens as store facts (issue 13 part 4: "tokens (list, revoke)"): one row per access token the
built-in issuer hands out, so an operator can list an account's tokens and revoke one before its ``exp``
(janusmail/store/issued_tokens.py). The token itself is never stored: its id (``jti``) names it.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issued_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), server_default="", nullable=False),
        sa.Column("scopes", sa.String(length=100), nullable=False),
        sa.Column("issued_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index("ix_issued_tokens_account", "issued_tokens", ["account_id", "expires_at"])
    op.create_index("ix_issued_tokens_revoked", "issued_tokens", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_issued_tokens_revoked", table_name="issued_tokens")
    op.drop_index("ix_issued_tokens_account", table_name="issued_tokens")
    op.drop_table("issued_tokens")
