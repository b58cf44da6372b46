"""Fixtures for the auth tests: a migrated database on SQLite and on PostgreSQL, accounts, tokens, a clock.

PostgreSQL tests use a fresh schema per test on 127.0.0.1:5432 (db ``test``, user ``postgres``). They skip when
the server is unreachable, except under ``CI=true`` where an unreachable server is a failure.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import argon2
import pytest
import sqlalchemy as sa

from janusmail.auth import passwords
from janusmail.auth.authenticator import Authenticator, LoginThrottle
from janusmail.auth.policy import AuthPolicy
from janusmail.auth.tokens import TokenService
from janusmail.store import db, ids
from janusmail.store.schema import accounts
from janusmail.store.store import Store

PG_URL = os.environ.get("JANUS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ISSUER = "https://mail.example.test"

CHEAP = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_argon2() -> Iterator[None]:
    """Real argon2id, tiny parameters: the tests stay fast and still exercise the real code."""
    prev = passwords.set_hasher(CHEAP)
    yield
    passwords.set_hasher(prev)


_pg_state: dict[str, bool] = {}


def _pg_reachable() -> bool:
    if "ok" not in _pg_state:
        probe = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3}, poolclass=sa.pool.NullPool)
        try:
            probe.connect().close()
            _pg_state["ok"] = True
        except sa.exc.OperationalError:
            _pg_state["ok"] = False
        finally:
            probe.dispose()
    return _pg_state["ok"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        eng = db.make_engine(f"sqlite:///{tmp_path / 'auth.sqlite3'}")
        db.migrate(eng)
        yield eng
        eng.dispose()
        return
    if not _pg_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not reachable on 127.0.0.1:5432 and CI=true")
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    schema = f"auth_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    eng = sa.create_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        db.migrate(eng)
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def auth_store(engine: sa.Engine, tmp_path: Path) -> Iterator[Store]:
    """A Store over the test database: what the Authenticator and the app-password functions take."""
    store = Store(engine, tmp_path / "blobs", fsync=False)
    yield store
    store.close()


class Clock:
    """A settable clock shared by the token service and the authenticator."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeAccount = Callable[..., str]


@pytest.fixture
def make_account(engine: sa.Engine) -> MakeAccount:
    """Insert an account row (as the store would) and return its id."""

    def make(address: str, password: str | None = "correct horse", *, jmap_enabled: bool = True) -> str:
        pw_hash, scram = passwords.make_credentials(password) if password is not None else (None, None)
        account_id = ids.mint(ids.ACCOUNT)
        with engine.begin() as conn:
            conn.execute(
                sa.insert(accounts).values(
                    id=account_id,
                    address=address.lower(),
                    password_hash=pw_hash,
                    scram_sha256=scram,
                    jmap_enabled=jmap_enabled,
                    created_at=int(time.time()),
                )
            )
        return account_id

    return make


@pytest.fixture
def token_service(tmp_path: Path, clock: Clock) -> TokenService:
    return TokenService(ISSUER, tmp_path / "data", clock=clock)


@pytest.fixture
def make_auth(auth_store: Store, token_service: TokenService, clock: Clock) -> Callable[..., Authenticator]:
    """An Authenticator under a given policy (keyword overrides of AuthPolicy), sharing store and tokens."""

    def make(**policy: object) -> Authenticator:
        return Authenticator(
            auth_store,
            AuthPolicy(**policy),  # type: ignore[arg-type]
            token_service,
            clock=clock,
            throttle=LoginThrottle(clock=clock),
        )

    return make


@pytest.fixture
def auth(make_auth: Callable[..., Authenticator]) -> Authenticator:
    return make_auth()


#: For tests of parsing and policy that touch the database only incidentally: one backend is enough.
sqlite_only = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
