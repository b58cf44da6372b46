"""SQLite: new mail waits in ``search_queue`` for the full-text indexes instead of being indexed by the write
that stores it (janusmail/store/search/queue.py says why and when it is indexed).

One row per email not yet indexed: its texts, as the ingest computed them for ``email_fts`` and
``email_trgm``. ``seq`` orders the queue (oldest first); ``email_id`` is unique and cascades from ``emails``, so
mail expunged before it was indexed leaves nothing behind. PostgreSQL indexes in the write as before (GIN
indexes on ``email_search``): nothing to do there.

Revision ID: 0020
Revises: 0019
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE TABLE search_queue ("
        "seq INTEGER PRIMARY KEY, "
        "email_id VARCHAR(64) NOT NULL UNIQUE REFERENCES emails(id) ON DELETE CASCADE, "
        "account_id VARCHAR(64) NOT NULL, "
        "subject TEXT NOT NULL, addresses TEXT NOT NULL, headers TEXT NOT NULL, body TEXT NOT NULL)"
    )
    # The index rows of destroyed mail are deleted in batches too: the email's ``email_text`` row (gone with
    # the email by its cascade) leaves its two rowids here instead of deleting the trigram row itself.
    op.execute("CREATE TABLE search_trash (trgm_rowid INTEGER PRIMARY KEY, fts_rowid INTEGER)")
    op.execute("DROP TRIGGER email_text_ad")
    op.execute(
        "CREATE TRIGGER email_text_ad AFTER DELETE ON email_text BEGIN "
        "INSERT INTO search_trash (fts_rowid, trgm_rowid) VALUES (old.fts_rowid, old.id); END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # (what waits is indexed first: after the downgrade nothing would index it)
    from janusmail.store.search.index import index_rows

    conn = op.get_bind()
    rows = [dict(r._mapping) for r in conn.exec_driver_sql(
        "SELECT email_id, account_id, subject, addresses, headers, body FROM search_queue ORDER BY seq")]
    for i in range(0, len(rows), 500):
        index_rows(conn, rows[i : i + 500])
    op.execute("DROP TABLE search_queue")
    op.execute("DELETE FROM email_fts WHERE rowid IN (SELECT fts_rowid FROM search_trash)")
    op.execute("DELETE FROM email_trgm WHERE rowid IN (SELECT trgm_rowid FROM search_trash)")
    op.execute("DROP TRIGGER email_text_ad")
    op.execute(
        "CREATE TRIGGER email_text_ad AFTER DELETE ON email_text BEGIN "
        "DELETE FROM email_trgm WHERE rowid = old.id; END"
    )
    op.execute("DROP TABLE search_trash")
