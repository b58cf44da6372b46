"""Drop the indexes of ``emails`` and ``email_keywords`` that no query uses but every flag change writes.

Why: an audit of every statement the test suites run (both backends), with ``EXPLAIN QUERY PLAN`` on a
fresh, a 50k-message and an ANALYZEd store, and each index dropped in turn to see which plans change (issue 10):

* ``ix_emails_account_modseq`` (account, modseq): nothing filters or sorts emails by modseq (the change log
  and ``messages.modseq`` answer those questions). The planner picked it only for ``account_id = ?`` and takes
  ``ix_emails_account_received`` or ``ix_emails_account_blob`` at the same cost without it; the foreign key to
  ``accounts`` stays covered by ``ix_emails_account_received``.
* ``ix_emails_meta`` (id, flags, received_at, size, thread_id, modseq), migration 0002's covering index for
  IMAP's metadata join: SQLite without ``sqlite_stat1`` (Janus never creates it) looks emails up through the
  primary key instead, and PostgreSQL prices it the same as ``emails_pkey``. Unused, while every STORE and
  keyword change (``UPDATE emails SET flags, modseq``) rewrote an entry in it.
* ``ix_email_keywords_keyword`` (keyword), SQLite only: its only users were DELETEs that name both key
  columns, which the primary key (``email_id, keyword``) serves; keyword search is a correlated EXISTS on
  that key. PostgreSQL's planner turns keyword searches into semi-joins that read this index, so it stays
  there.

Measured (WAL frames appended per single-message operation on a 2,000-message SQLite mailbox): STORE of
\\Seen \\Deleted and a keyword 14.9 -> 10.8, EXPUNGE 26.2 -> 23.2, APPEND 30.5 -> 28.1; each frame is written
and synced under the one write lock. On PostgreSQL, with ``flags`` and ``modseq`` no longer indexed, a flag
change can be a HOT update (no new entry in any index of ``emails``).

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_emails_account_modseq", table_name="emails")
    op.drop_index("ix_emails_meta", table_name="emails")
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_email_keywords_keyword", table_name="email_keywords")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_email_keywords_keyword", "email_keywords", ["keyword"])
    op.create_index("ix_emails_meta", "emails", ["id", "flags", "received_at", "size", "thread_id", "modseq"])
    op.create_index("ix_emails_account_modseq", "emails", ["account_id", "modseq"])
