"""Opening a store whose schema is already at the head revision does not start Alembic (process start cost).

:func:`janusmail.store.db.head_revision` reads the head from the version files' names; it must be the revision
Alembic itself calls the head, or a store one migration behind would be taken as current and never migrated.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from janusmail.store import db


def test_head_revision_is_alembics_head() -> None:
    assert db.head_revision() == ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def test_a_store_behind_the_head_is_migrated_and_one_at_the_head_is_left_alone(db_url, tmp_path) -> None:  # noqa: ANN001
    engine = db.make_engine(db_url or f"sqlite:///{tmp_path / 'j.sqlite3'}")
    try:
        db.migrate(engine)
        with engine.connect() as conn:
            assert db.at_head(conn)
        cfg = db.alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "-1")
        with engine.connect() as conn:
            assert not db.at_head(conn)
        db.migrate(engine)
        with engine.connect() as conn:
            assert db.at_head(conn)
            assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one() == db.head_revision()
    finally:
        engine.dispose()


def test_an_empty_database_is_not_at_the_head(tmp_path) -> None:  # noqa: ANN001
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    try:
        with engine.connect() as conn:
            assert not db.at_head(conn)
    finally:
        engine.dispose()


def test_opening_a_current_store_imports_no_alembic(tmp_path) -> None:  # noqa: ANN001
    """A fresh process (the CLI, a server start) opens a migrated store without importing Alembic."""
    url = f"sqlite:///{tmp_path / 'j.sqlite3'}"
    engine = db.make_engine(url)
    try:
        db.migrate(engine)
    finally:
        engine.dispose()
    probe = textwrap.dedent(f"""
        import sys
        from janusmail.store import db
        engine = db.make_engine({url!r})
        db.migrate(engine)
        print(sorted(m for m in sys.modules if m.split(".")[0] == "alembic"))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
