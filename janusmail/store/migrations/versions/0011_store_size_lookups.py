"""Two deletes that read the whole store become lookups (issue 10 item 1; tests/store/test_query_plans.py).

``thread_refs.thread_id`` gets an index: destroying a thread's last email (EXPUNGE of its last membership,
Email/set destroy, a mailbox destroyed with its mail) deletes the thread's Message-ID references by thread id,
and the table's key is (account_id, msgid), so that DELETE read every reference of every account.

SQLite's word index ``email_fts`` (FTS5) keeps ``email_id`` UNINDEXED, so unindexing an email by that column
read the whole full-text table (78 ms per expunged message at 100k messages in the store, linear beyond).
``email_text`` (one row per email, unique ``email_id``) now also records the email's rowid in ``email_fts``
(``fts_rowid``), and the delete goes by rowid. New rows get one rowid in all three tables; the rows already
there are mapped here, in one pass over ``email_fts`` in batches.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_BATCH = 5000


def upgrade() -> None:
    op.create_index("ix_thread_refs_thread_id", "thread_refs", ["thread_id"])
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    op.execute("ALTER TABLE email_text ADD COLUMN fts_rowid INTEGER")
    last = 0
    while True:
        rows = conn.execute(sa.text("SELECT rowid, email_id FROM email_fts WHERE rowid > :last ORDER BY rowid "
                                    "LIMIT :n"), {"last": last, "n": _BATCH}).all()
        if not rows:
            break
        last = rows[-1][0]
        conn.execute(sa.text("UPDATE email_text SET fts_rowid = :r WHERE email_id = :e"),
                     [{"r": r[0], "e": r[1]} for r in rows])


def downgrade() -> None:
    op.drop_index("ix_thread_refs_thread_id", table_name="thread_refs")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE email_text DROP COLUMN fts_rowid")
