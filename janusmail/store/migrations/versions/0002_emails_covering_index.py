"""A covering index for the IMAP metadata join (flags, dates, sizes, threads by email id).

`UID FETCH 1:* (UID FLAGS)` and metadata SEARCH on a big mailbox join every membership to its email row; with
this index SQLite answers from the index alone instead of reading each wide row (measured about 2x on the
cold path of a 100k mailbox).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_emails_meta", "emails", ["id", "flags", "received_at", "size", "thread_id", "modseq"])


def downgrade() -> None:
    op.drop_index("ix_emails_meta", table_name="emails")
