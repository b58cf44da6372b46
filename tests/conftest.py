"""Shared fixtures: a store on each backend, and mail generators.

Storage tests take the ``store`` fixture and run twice, on SQLite and on PostgreSQL (127.0.0.1:5432, database
``test``; each test gets its own schema so tests can run in parallel). Without PostgreSQL the PostgreSQL half
is skipped, except under CI (``CI=true``), where an unreachable PostgreSQL fails the run. ``module_db_url``
is the same choice for what a whole test module shares (one server or seeded store per backend).
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from tests.pgschemas import PgSchemas

PG_BASE = os.environ.get("JANUS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

#: This test process's PostgreSQL schemas (tests/pgschemas.py): a private one per test, reused once emptied.
PG_SCHEMAS = PgSchemas(PG_BASE)

#: argon2id as in production, with the smallest parameters: what every test process hashes with by default.
CHEAP_ARGON2 = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)

# Hypothesis profiles. None has a deadline or the too_slow health check: both are wall-clock verdicts, and a
# busy 2-core machine makes them fail tests whose code is fine.
#   dev   (default) random examples, failures remembered in .hypothesis/ and replayed first next time.
#   ci    (CI=true) derandomized: the same examples on every run, so a red CI run is red again on rerun, and
#         print_blob so a failure can be reproduced exactly elsewhere; no example database.
#   fuzz  (`make fuzz`, HYPOTHESIS_PROFILE=fuzz) many more examples for the parser tests (see tests/fuzzing.py).
_QUIET = [HealthCheck.too_slow]
settings.register_profile("dev", deadline=None, suppress_health_check=_QUIET)
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                          suppress_health_check=_QUIET)
settings.register_profile("fuzz", max_examples=3000, deadline=None, print_blob=True, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "dev"))


def _cache_bytecode_of_child_processes() -> None:
    """Processes the tests start (``janusmail serve``, the CLI: hundreds of them) read compiled modules.

    Under ``PYTHONDONTWRITEBYTECODE`` no process keeps the bytecode of janusmail, whose ``__pycache__`` is never
    written: each process compiled every janusmail module it imported from source again, a third of the CPU
    a server start costs. Child processes get a private cache directory outside the source tree instead (the
    tree stays free of bytecode, as the setting asks), shared by all of them and kept between runs.
    """
    if not os.environ.get("PYTHONDONTWRITEBYTECODE") or os.environ.get("PYTHONPYCACHEPREFIX"):
        return
    prefix = Path(tempfile.gettempdir()) / f"janusmail-test-pycache-{os.getuid()}"
    try:
        prefix.mkdir(mode=0o700, exist_ok=True)
        if prefix.is_symlink() or prefix.stat().st_uid != os.getuid():
            return  # not ours: leave the children as they were
    except OSError:
        return
    os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    del os.environ["PYTHONDONTWRITEBYTECODE"]


_cache_bytecode_of_child_processes()


@pytest.fixture(scope="session", autouse=True)
def cheap_argon2_by_default() -> Iterator[None]:
    """Real argon2id with tiny parameters in every test process (as tests/auth, the shared servers had it).

    Accounts are made and logged into everywhere (two or more per server start, each costing an argon2 hash of
    the production parameters, and a verification at the first login): hundreds of seconds of CPU a run that
    tested nothing the tests of :mod:`janusmail.auth.passwords` do not. Tests that need other parameters set
    their own hasher (``passwords.set_hasher``) and restore this one.
    """
    from janusmail.auth import passwords

    prev = passwords.set_hasher(CHEAP_ARGON2)
    try:
        yield
    finally:
        passwords.set_hasher(prev)


@pytest.fixture(scope="session", autouse=True)
def fast_fresh_migrations(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fresh databases of this test process skip re-running every Alembic migration one by one.

    Hundreds of tests open a fresh store (the ``store`` fixture, each server they start); migrating each cost
    more than many of the tests. A new SQLite file starts as a copy of one migrated here once; an empty
    PostgreSQL schema gets, in one round trip, the statements the first real migration of this process ran
    (they name no schema: the search_path picks it). :func:`janusmail.store.db.migrate` then still runs on it
    (it finds the head revision and has nothing to do), and a database that already has a schema (the
    migration tests' older revisions) is migrated for real, as before.
    """
    import shutil
    import sqlite3

    from janusmail.store import db

    real_migrate = db.migrate
    template = tmp_path_factory.mktemp("migrated") / "template.sqlite3"

    def sqlite_template() -> Path:  # made on first use: a process that opens no store migrates nothing
        if not template.exists():
            engine = db.make_engine(f"sqlite:///{template}")
            try:
                real_migrate(engine)
            finally:
                engine.dispose()
            with sqlite3.connect(template) as conn:  # everything in the main file, no -wal beside it
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return template

    pg_script: list[str] = []  # the first fresh PostgreSQL migration's statements (none with parameters)

    def record_pg(engine: sa.Engine) -> None:
        seen: list[tuple[str, object]] = []

        def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
            seen.append((statement, parameters))

        sa.event.listen(engine, "before_cursor_execute", on_execute)
        try:
            real_migrate(engine)
        finally:
            sa.event.remove(engine, "before_cursor_execute", on_execute)
        # Statements with parameters are catalogue look-ups and backfills of empty tables: all SELECTs. Anything
        # else, or a "%" the driver would have read as a placeholder, and this process keeps migrating for real.
        if all(sql.lstrip().upper().startswith("SELECT") if p else "%" not in sql for sql, p in seen):
            pg_script.append(";\n".join(sql for sql, p in seen if not p))

    def migrate(engine: sa.Engine) -> None:
        if db.is_sqlite(engine):
            path = engine.url.database
            if path and path != ":memory:" and not os.path.exists(path):
                shutil.copyfile(sqlite_template(), path)
        else:
            with engine.connect() as conn:
                fresh = conn.exec_driver_sql("SELECT to_regclass('alembic_version')").scalar() is None
                schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
            if fresh:
                raw = engine.raw_connection()
                try:
                    if PG_SCHEMAS.adopt(raw, schema):  # a pooled schema, migrated before, emptied since
                        fresh = False
                    elif pg_script:
                        raw.cursor().execute(pg_script[0])  # no parameters: one round trip, many statements
                        raw.commit()
                finally:
                    raw.close()
            if fresh and not pg_script:
                record_pg(engine)
            else:
                real_migrate(engine)
            if fresh:
                PG_SCHEMAS.migrated(schema)
            return
        real_migrate(engine)

    mp = pytest.MonkeyPatch()
    mp.setattr(db, "migrate", migrate)
    try:
        yield
    finally:
        mp.undo()
        PG_SCHEMAS.close()


def pg_available() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=2).close()
        return True
    except OSError:
        return False


def require_pg() -> None:
    if not pg_available():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL on 127.0.0.1:5432 is required under CI")
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")


@contextmanager
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, private schema (dropped afterwards)."""
    require_pg()
    schema = PG_SCHEMAS.create()
    try:
        # synchronous_commit=off: a COMMIT does not wait for its WAL flush (durability against a crash of the
        # PostgreSQL server itself, which no test makes); every other session sees the commit at once as usual.
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
    finally:
        PG_SCHEMAS.release(schema)  # emptied for the next test when it is still as migrated, else dropped


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, private schema (dropped afterwards)."""
    with pg_schema_url() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if backend == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``db_url`` for what one test module shares (a server, a seeded store): made once per backend per
    module, not per test. Its tests keep out of each other's way with accounts or mailboxes of their own."""
    if request.param == "sqlite":
        yield None
        return
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def store(db_url: str | None, tmp_path: Path):  # noqa: ANN201
    from janusmail.store.store import Store

    s = Store.open(tmp_path / "data", db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def account(store):  # noqa: ANN001, ANN201
    return store.accounts.create("alice@example.test", "x")
