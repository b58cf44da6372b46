"""Shared fixtures: a store on each backend, and mail generators.

Storage tests take the ``store`` fixture and run twice, on SQLite and on PostgreSQL (127.0.0.1:5432, database
``test``; each test gets its own schema so tests can run in parallel). Without PostgreSQL the PostgreSQL half
is skipped, except under CI (``CI=true``), where an unreachable PostgreSQL fails the run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

PG_BASE = os.environ.get("JANUS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

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


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, private schema (dropped afterwards)."""
    require_pg()
    schema = "t_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(PG_BASE)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if backend == "sqlite":
        return None
    return request.getfixturevalue("pg_url")


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
