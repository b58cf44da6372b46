"""Account flags for the web admin (issue 13 part 4): ``is_admin`` (may use /admin) and ``disabled`` (no login
through any door; its sessions end). Both default to false, so existing accounts keep working as before.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("accounts", sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    # Plain DROP COLUMN (as 0009 explains): batch mode would recreate accounts, cascading to all the mail.
    for name in ("disabled", "is_admin"):
        op.drop_column("accounts", name)
