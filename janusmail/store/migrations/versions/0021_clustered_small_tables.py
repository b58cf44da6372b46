"""SQLite: the small tables every IMAP write touches keep their rows in their primary key (``WITHOUT ROWID``).

Why: a rowid table with a declared primary key is two B-trees, the rows by rowid and the key's own index, and a
write changes both. Measured on the logged-in IMAP stress loop (issue 10), one STORE, EXPUNGE and APPEND
dirtied 13-19, 30-37 and 27-30 database pages, each written to the WAL and synced at COMMIT while the one
writer lock is held; the pages of the rowid B-trees of ``messages``, ``email_keywords``, ``thread_refs``,
``vanished`` and ``threads`` were 2, 5 and 4 of them. Their rows are small (ids, a UID, a modseq), which is
where SQLite recommends ``WITHOUT ROWID``; nothing reads their rowids; nothing references them by a foreign key.
``emails`` (large rows) and ``blobs`` (parent of ``blob_chunks``) stay as they are. PostgreSQL has no rowid
B-tree: nothing to do there.

Each table is rebuilt from its own ``CREATE TABLE`` text (same columns, defaults, keys and foreign keys),
its rows copied, and its indexes made again from theirs.

Revision ID: 0021
Revises: 0020
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

TABLES = ("messages", "email_keywords", "thread_refs", "vanished", "threads")


def _rebuild(table: str, *, rowid: bool) -> None:
    conn = op.get_bind()
    create = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                                  (table,)).scalar()
    if create is None:
        return
    body = create.rstrip()
    clustered = body.upper().endswith("WITHOUT ROWID")
    if clustered != rowid:
        return  # already as wanted
    if clustered:
        body = body[: -len("WITHOUT ROWID")].rstrip()
    indexes = [r[0] for r in conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL", (table,))]
    head, rest = body.split("(", 1)
    assert head.split()[-1].strip('"') == table, head
    new = f"{table}_rebuilt"
    conn.exec_driver_sql(f"CREATE TABLE {new} ({rest}" + ("" if rowid else " WITHOUT ROWID"))
    columns = ", ".join(f'"{r[1]}"' for r in conn.exec_driver_sql(f"PRAGMA table_info({table})"))
    conn.exec_driver_sql(f"INSERT INTO {new} ({columns}) SELECT {columns} FROM {table}")
    conn.exec_driver_sql(f"DROP TABLE {table}")  # (its indexes go with it)
    conn.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {table}")
    for sql in indexes:
        conn.exec_driver_sql(sql)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        _rebuild(table, rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        _rebuild(table, rowid=True)
