"""Blob bytes in the database (issue 10 item 4: several nodes, one mailstore; janusmail/store/blobstore.py).

``blob_chunks`` holds the bytes of blobs stored with ``[store] blob_store = "database"``: ordered chunks of at
most 1 MiB per blob, keyed by the blob id. The foreign key to ``blobs`` is checked at commit (the ingest writes
the chunks, then the rows that name them, in one transaction) and cascades with the account's blobs.
PostgreSQL keeps the chunks uncompressed (STORAGE EXTERNAL): no compression cost at ingest, and a ranged
``substr`` reads only the TOAST pieces it covers. Existing blobs keep their pack locations.

Revision ID: 0008
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_chunks",
        sa.Column("blob_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["blob_id"], ["blobs.id"], ondelete="CASCADE", deferrable=True,
                                initially="DEFERRED"),
        sa.PrimaryKeyConstraint("blob_id", "seq"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("blob_chunks")
