"""Substring index for IMAP SEARCH (RFC 9051 §6.4.4 "contains the specified string"): trigrams over every
header field and the body text (see ``janusmail/store/search/index.py``).

SQLite: the FTS5 ``trigram`` table ``email_trgm`` (header text and body text per email) and ``email_text``,
which gives each email (unique ``email_id``, cascading from ``emails``) its rowid there; a trigger deletes
the text with it. PostgreSQL: ``pg_trgm``, a ``headers`` column on ``email_search`` and a GIN ``gin_trgm_ops`` index
on (headers, body), which serves ILIKE.

Existing mail is backfilled in batches (the body text from the existing full-text rows, the header text from
each email's MIME cache), so memory stays bounded whatever the store's size.

Revision ID: 0004
Revises: 0007
"""


import orjson
import sqlalchemy as sa
from alembic import op

from janusmail.store.search.index import header_text

revision = "0004"
# TEMPORARY, as in 0005: after 0007 while that one is chained after 0003, so the history never has two heads;
# the lead sets the final order ("0003").
down_revision = "0007"
branch_labels = None
depends_on = None

_BATCH = 1000
#: serialises concurrent migrations creating the extension (CREATE EXTENSION IF NOT EXISTS is not race-safe)
_LOCK = 0x4A414E5553  # "JANUS"


def _headers(cache: bytes | None) -> str:
    if not cache:
        return ""
    try:
        return header_text(orjson.loads(cache).get("headers"))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return ""


def _upgrade_sqlite(conn: sa.Connection) -> None:
    op.execute(
        "CREATE TABLE email_text ("
        "id INTEGER PRIMARY KEY, "
        "email_id VARCHAR(64) NOT NULL UNIQUE REFERENCES emails(id) ON DELETE CASCADE)"
    )
    op.execute("CREATE VIRTUAL TABLE email_trgm USING fts5(headers, body, tokenize='trigram')")
    # Segments are merged only when 16 pile up on a level (crisismerge), not a little on every insert: the
    # same lookups at this size, a third less CPU per indexed message (measured; see index.py).
    op.execute("INSERT INTO email_trgm(email_trgm, rank) VALUES ('automerge', 0)")
    op.execute(
        "CREATE TRIGGER email_text_ad AFTER DELETE ON email_text BEGIN "
        "DELETE FROM email_trgm WHERE rowid = old.id; END"
    )
    last, next_id = 0, 1
    while True:
        rows = conn.execute(sa.text(
            "SELECT f.rowid, f.email_id, f.body, e.cache FROM email_fts f JOIN emails e ON e.id = f.email_id "
            "WHERE f.rowid > :last ORDER BY f.rowid LIMIT :n"), {"last": last, "n": _BATCH}).all()
        if not rows:
            break
        last = rows[-1][0]
        ids = range(next_id, next_id + len(rows))
        next_id += len(rows)
        conn.execute(sa.text("INSERT INTO email_text(id, email_id) VALUES (:i, :e)"),
                     [{"i": i, "e": r[1]} for i, r in zip(ids, rows, strict=True)])
        conn.execute(sa.text("INSERT INTO email_trgm(rowid, headers, body) VALUES (:i, :h, :b)"),
                     [{"i": i, "h": _headers(r[3]), "b": r[2] or ""} for i, r in zip(ids, rows, strict=True)])


def _upgrade_postgresql(conn: sa.Connection) -> None:
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    find = sa.text("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'")
    schema = conn.execute(find).scalar()
    if schema is None:
        # In "public" when there is one, so that a schema dropped later (one per test, say) never takes the
        # extension, and every other schema's index on it, along.
        public = conn.execute(sa.text("SELECT to_regnamespace('public') IS NOT NULL")).scalar()
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm" + (" SCHEMA public" if public else ""))
        schema = conn.execute(find).scalar()
    op.add_column("email_search", sa.Column("headers", sa.Text(), server_default="", nullable=False))
    last = ""
    while True:
        rows = conn.execute(sa.text(
            "SELECT e.id, e.cache FROM emails e JOIN email_search s ON s.email_id = e.id "
            "WHERE e.id > :last ORDER BY e.id LIMIT :n"), {"last": last, "n": _BATCH}).all()
        if not rows:
            break
        last = rows[-1][0]
        conn.execute(sa.text("UPDATE email_search SET headers = :h WHERE email_id = :e"),
                     [{"e": r[0], "h": _headers(r[1]).replace("\x00", "")} for r in rows])
    op.execute(f"CREATE INDEX ix_email_search_trgm ON email_search USING gin "
               f"(headers {schema}.gin_trgm_ops, body {schema}.gin_trgm_ops)")


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "sqlite":
        _upgrade_sqlite(conn)
    else:
        _upgrade_postgresql(conn)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS email_trgm")
        op.execute("DROP TABLE IF EXISTS email_text")  # its triggers go with it
        return
    op.execute("DROP INDEX IF EXISTS ix_email_search_trgm")
    op.drop_column("email_search", "headers")
