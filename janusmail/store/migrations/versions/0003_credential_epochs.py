"""Credential epochs on accounts: sessions end when the credential they logged in with is replaced or revoked.

``credential_epoch`` is stamped (with a store-wide increasing value) by every credential change of the account,
``password_epoch`` by password changes only; the index lets a SQLite server notice changes made by another
process (the CLI) with one ``max()`` lookup per poll. Existing accounts start at 0: nothing changed yet.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("credential_epoch", sa.BigInteger(), server_default="0", nullable=False))
    op.add_column("accounts", sa.Column("password_epoch", sa.BigInteger(), server_default="0", nullable=False))
    op.create_index("ix_accounts_credential_epoch", "accounts", ["credential_epoch"])


def downgrade() -> None:
    op.drop_index("ix_accounts_credential_epoch", table_name="accounts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("password_epoch")
        batch.drop_column("credential_epoch")
