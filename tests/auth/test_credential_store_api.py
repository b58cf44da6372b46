"""The credential facts the doors ask the store for, through typed methods only (no SQL outside the store).

``revocation.check`` works on anything offering ``credential_epochs``, ``disabled`` and ``app_password_state`` (shown with a
stand-in that has no engine at all); ``Store.app_passwords.state`` reads one app password's state; and
``Store.app_passwords.revoke`` revokes and stamps the epoch in one transaction (a failure of the stamp leaves
the app password active) and announces the change on the notifier. SQLite and PostgreSQL.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from janusmail.auth import app_passwords, passwords, revocation
from janusmail.auth.authenticator import AuthResult
from janusmail.store import credentials
from janusmail.store.credentials import is_credential_event
from janusmail.store.model import StorageUnavailable
from janusmail.store.store import Store
from janusmail.store.writes import is_write
from tests.store.storage_faults import db_disk_full


class FactsOnly:
    """A store that can only answer the two typed questions: any SQL attempt would fail (no engine)."""

    def __init__(self, epochs: tuple[int, int] | None, state: tuple[str, bool] | None = None,
                 disabled: bool = False) -> None:
        self.credentials = SimpleNamespace(epochs=lambda account_id: epochs,
                                           disabled=lambda account_id: None if epochs is None else disabled)
        self.app_passwords = SimpleNamespace(state=lambda credential_id: state)


def auth(method: str, credential_id: str | None = None) -> AuthResult:
    return AuthResult("A1", "alice@example.test", method, credential_id, frozenset({"imap"}), None)


def test_check_asks_the_store_through_typed_methods_only() -> None:
    assert revocation.check(FactsOnly((3, 0)), auth("password"), 3, now=0) == revocation.Verdict(None, 3)
    assert revocation.check(FactsOnly(None), auth("password"), 3, now=0).reason == revocation.ACCOUNT_GONE
    assert revocation.check(FactsOnly((5, 5)), auth("scram"), 3, now=0).reason == revocation.PASSWORD_CHANGED
    app = auth("app_password", "P1")
    assert revocation.check(FactsOnly((5, 0), ("A1", True)), app, 3, now=0) == revocation.Verdict(None, 5)
    for state in (("A1", False), None, ("A2", True)):
        assert revocation.check(FactsOnly((5, 0), state), app, 3, now=0).reason == revocation.APP_PASSWORD_REVOKED
    for r in (auth("password"), app):  # a disabled account ends every session
        assert revocation.check(FactsOnly((5, 0), ("A1", True), True), r, 3, now=0).reason == \
            revocation.ACCOUNT_DISABLED


@pytest.fixture
def alice(store: Store) -> str:
    return store.accounts.create("alice@example.test", *passwords.make_credentials("pw")).id


def test_app_password_state(store: Store, alice: str) -> None:
    laptop, _ = app_passwords.create(store, alice, "laptop", "imap")
    assert store.app_passwords.state(laptop.id) == (alice, True)
    assert store.app_passwords.revoke(alice, laptop.id)
    assert store.app_passwords.state(laptop.id) == (alice, False)
    app_passwords.create(store, alice, "laptop", "imap")  # reusing the name deletes the revoked row
    assert store.app_passwords.state(laptop.id) is None
    assert store.app_passwords.state("P-no-such-id") is None


def test_revoke_and_stamp_are_one_transaction(store: Store, alice: str, monkeypatch: pytest.MonkeyPatch) -> None:
    laptop, _ = app_passwords.create(store, alice, "laptop", "imap")
    before = store.credentials.epochs(alice)
    real = credentials.record_change

    def stamp_then_disk_full(conn: sa.Connection, *args: object, **kwargs: object) -> int | None:
        real(conn, *args, **kwargs)  # type: ignore[arg-type]
        raise sa.exc.OperationalError("UPDATE accounts", {}, db_disk_full(store.engine))

    monkeypatch.setattr(credentials, "record_change", stamp_then_disk_full)
    with pytest.raises(StorageUnavailable):
        store.app_passwords.revoke(alice, "laptop")
    monkeypatch.undo()
    assert store.app_passwords.state(laptop.id) == (alice, True)  # the revocation rolled back with the stamp
    assert store.credentials.epochs(alice) == before
    assert store.app_passwords.revoke(alice, "laptop")
    assert store.credentials.epochs(alice)[0] > before[0]  # type: ignore[index]


async def test_revoke_is_a_write_announced_on_the_notifier(store: Store, alice: str) -> None:
    assert is_write(store.app_passwords.revoke)  # runs on the writer threads
    app_passwords.create(store, alice, "laptop", "imap")
    sub = store.notifier.subscribe(alice)
    try:
        assert await store.call(store.app_passwords.revoke, alice, "laptop")
        events = await sub.wait(30)
        assert any(is_credential_event(ev) for ev in events)
        assert not await store.call(store.app_passwords.revoke, alice, "laptop")  # nothing left to revoke
    finally:
        sub.close()
