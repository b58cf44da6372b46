"""Private PostgreSQL schemas for tests, and a pool of migrated ones emptied for reuse.

Every PostgreSQL test works in a schema of its own (``search_path``), so tests can run in parallel. Building the
migrated schema (87 DDL statements) and dropping it afterwards cost PostgreSQL about half a second per test, on
the same two cores as the tests: more than most tests themselves. A schema a test leaves behind exactly as the
migration made it (the catalogue unchanged: same tables, columns, indexes, constraints, triggers, functions and
revision) only holds rows, so its rows are deleted and the schema joins this process's pool; the next test that
migrates a fresh schema of its own gets a pooled one renamed to its schema's name instead of running the DDL.
Anything else (an older revision a migration test left, a changed table) is dropped as before. What a test sees
is what it saw before: its own empty schema, and after :func:`janusmail.store.db.migrate`, the head revision
with no rows.
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

#: One line per catalogue object of the current schema (whose name :meth:`PgSchemas._catalogue` then removes
#: from the index definitions that qualify their table with it).
CATALOGUE = """
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = current_schema())
SELECT coalesce(string_agg(item, E'\\n' ORDER BY item), '') FROM (
  SELECT concat_ws(' ', 'r', c.relname, c.relkind, c.relpersistence, c.relrowsecurity)
    FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
  UNION ALL
  SELECT concat_ws(' ', 'a', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                   pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON c.relnamespace = ns.oid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT concat_ws(' ', 'i', pg_get_indexdef(i.indexrelid))
    FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN ns ON c.relnamespace = ns.oid
  UNION ALL
  SELECT concat_ws(' ', 'k', k.conname, pg_get_constraintdef(k.oid))
    FROM pg_constraint k JOIN ns ON k.connamespace = ns.oid
  UNION ALL
  SELECT concat_ws(' ', 't', t.tgname, t.tgenabled, pg_get_triggerdef(t.oid))
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON c.relnamespace = ns.oid WHERE NOT t.tgisinternal
  UNION ALL
  SELECT concat_ws(' ', 'f', p.proname, md5(coalesce(p.prosrc, ''))) FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
  UNION ALL
  SELECT concat_ws(' ', 'y', t.typname, t.typtype) FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
    WHERE t.typtype IN ('d', 'e', 'r', 'm')
  UNION ALL
  SELECT concat_ws(' ', 'e', t.typname, e.enumlabel)
    FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid JOIN ns ON t.typnamespace = ns.oid
  UNION ALL
  SELECT concat_ws(' ', 'p', c.relname, pol.polname)
    FROM pg_policy pol JOIN pg_class c ON c.oid = pol.polrelid JOIN ns ON c.relnamespace = ns.oid
) AS catalogue(item)
"""


def quoted(name: str) -> str:
    assert name.replace("_", "").isalnum(), name  # our own names only: t_<hex>, tp_<hex>
    return f'"{name}"'


class PgSchemas:
    """This process's test schemas on one PostgreSQL database (``base_url``)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._admin: sa.Engine | None = None
        self._ours: set[str] = set()  # handed out by create(), not yet released
        self._pool: list[str] = []  # migrated, emptied, waiting under a pool name
        self._pristine: str | None = None  # the catalogue of a schema the migration just made
        self.reused = 0

    @property
    def admin(self) -> sa.Engine:
        if self._admin is None:
            self._admin = sa.create_engine(self.base_url, pool_size=1, max_overflow=0)
        return self._admin

    def create(self) -> str:
        """A new, empty schema of this process."""
        schema = "t_" + uuid.uuid4().hex[:12]
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {quoted(schema)}")
        self._ours.add(schema)
        return schema

    @staticmethod
    def _catalogue(conn: sa.Connection, schema: str) -> str | None:
        """The catalogue of ``schema`` and its revision; None when it has no ``alembic_version``."""
        conn.exec_driver_sql(f"SET LOCAL search_path TO {quoted(schema)}")
        if conn.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar() is None:
            return None
        revision = conn.exec_driver_sql("SELECT string_agg(version_num, ',' ORDER BY version_num) "
                                        "FROM alembic_version").scalar()
        listing = conn.exec_driver_sql(CATALOGUE).scalar()
        return f"revision {revision}\n" + listing.replace(f"{schema}.", "")  # index definitions name it

    def migrated(self, schema: str) -> None:
        """``schema`` was just migrated to the head revision from empty: what a poolable schema looks like."""
        if self._pristine is None and schema in self._ours:
            with self.admin.begin() as conn:
                self._pristine = self._catalogue(conn, schema)

    def adopt(self, raw_connection, schema: str) -> bool:  # noqa: ANN001 - a DBAPI connection
        """Replace the empty ``schema`` with a pooled migrated one (renamed to its name), on the connection
        that is about to migrate it; False when the pool is empty (the caller migrates as usual)."""
        if schema not in self._ours or not self._pool:
            return False
        pooled = self._pool.pop()
        cur = raw_connection.cursor()
        try:
            cur.execute(f"DROP SCHEMA {quoted(schema)}; ALTER SCHEMA {quoted(pooled)} RENAME TO {quoted(schema)}")
            raw_connection.commit()
        except Exception:
            raw_connection.rollback()
            self._pool.append(pooled)
            return False
        finally:
            cur.close()
        self.reused += 1
        return True

    def release(self, schema: str) -> None:
        """The test is done with ``schema``: empty it into the pool when it is as migrated, else drop it."""
        self._ours.discard(schema)
        try:
            if self._pristine is not None and self._empty_into_pool(schema):
                return
        except sa.exc.DBAPIError:
            pass  # locked by a connection the test left open, say: dropped below, as before
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {quoted(schema)} CASCADE")

    def _empty_into_pool(self, schema: str) -> bool:
        with self.admin.begin() as conn:
            if self._catalogue(conn, schema) != self._pristine:
                return False
            tables = conn.exec_driver_sql(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "AND tablename <> 'alembic_version'").scalars().all()
            pooled = "tp_" + uuid.uuid4().hex[:12]
            # Foreign keys are triggers, off under the replica role: every table is emptied, in any order.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '5s'; SET LOCAL session_replication_role = replica; "
                                 + "".join(f"DELETE FROM {quoted(t)}; " for t in tables)
                                 + "SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s "
                                   "JOIN pg_class c ON c.oid = s.seqrelid "
                                   "JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema(); "
                                 + f"ALTER SCHEMA {quoted(schema)} RENAME TO {quoted(pooled)}")
        self._pool.append(pooled)
        return True

    def close(self) -> None:
        """Drop the pool (at the end of the test process)."""
        if self._admin is None:
            return
        try:
            with self.admin.begin() as conn:
                for schema in self._pool:
                    conn.exec_driver_sql(f"DROP SCHEMA {quoted(schema)} CASCADE")
            self._pool.clear()
        finally:
            self._admin.dispose()
            self._admin = None
