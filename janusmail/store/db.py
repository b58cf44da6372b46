"""Database engines for the two backends, and schema migration.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL`` so that a committed transaction is on
disk before we acknowledge mail; write transactions take the write lock up front (``BEGIN IMMEDIATE``) so two
writers never deadlock upgrading a read lock. PostgreSQL is the scale-out backend: several server nodes on one
database, with the account row lock ordering each account's writes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:  # pragma: no cover
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: A version file's name: its revision id, then an underscore (``0022_unused_email_indexes.py`` is "0022").
_VERSION_FILE = re.compile(r"(\d{4,})_\w+\.py")


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'janus.sqlite3').resolve()}"


def make_engine(url: str) -> sa.Engine:
    """Create an engine tuned for the backend named by ``url``."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30, "isolation_level": None},
            pool_size=8,
            max_overflow=8,
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # noqa: ANN001 - DBAPI types
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # pysqlite's own transaction handling is off (isolation_level=None); we say BEGIN ourselves. A read's
            # BEGIN DEFERRED goes straight to the driver (SQLAlchemy's execution machinery cost more than the
            # statement, on every read transaction); so does the group commit's BEGIN IMMEDIATE
            # (``sqlite_begin_direct``, groupcommit.Group: once per group, issue 10). A standalone writer's BEGIN
            # IMMEDIATE goes through SQLAlchemy, where statement listeners (tests' fault injection) hear it.
            opts = conn.get_execution_options()
            mode = opts.get("sqlite_begin", "DEFERRED")
            if mode == "DEFERRED" or opts.get("sqlite_begin_direct"):
                conn.connection.dbapi_connection.execute(f"BEGIN {mode}")
            else:
                conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return sa.create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def end_transaction(conn: sa.Connection) -> None:
    """Leave a connection kept out of the pool (a writer lane's, the event loop's) with no transaction open, as
    the pool's reset on return would: at SQLAlchemy's level and at the driver's, where a BEGIN said straight to
    the driver lives, and where SQLite still holds a transaction whose COMMIT failed (a full disk) after
    SQLAlchemy forgot it. Raises if the connection cannot be reset (then it is not reusable)."""
    if conn.in_transaction():
        conn.rollback()
    raw = conn.connection.dbapi_connection
    if raw is not None and raw.in_transaction:
        raw.rollback()


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    """The newest migration's revision id, from the version files' names (a test holds it to Alembic's head).

    Read without Alembic, whose import (with Mako, Pygments and all of SQLAlchemy's DDL) cost ~0.3 s of every
    process start, the CLI's included, to learn that there was nothing to migrate.
    """
    revisions = [m.group(1) for f in (MIGRATIONS / "versions").iterdir() if (m := _VERSION_FILE.fullmatch(f.name))]
    return max(revisions, key=int)


def at_head(conn: sa.Connection) -> bool:
    """Whether the database's schema is at :func:`head_revision` (one row in ``alembic_version``, the newest)."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return False
    rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    return rows == [head_revision()]


def migrate(engine: sa.Engine) -> None:
    """Bring the schema to the newest revision (idempotent; safe on every start). A schema already at the head
    is left as it is without starting Alembic (see :func:`head_revision`)."""
    with engine.connect() as conn:
        if at_head(conn):
            return
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
