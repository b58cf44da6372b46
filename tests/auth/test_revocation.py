"""The credential check behind "sessions end with their credential", over a real store (SQLite and PostgreSQL).

``revocation.check`` is what an IMAP session asks before every command; these tests pin down which change ends
which session (a password change ends password and SCRAM sessions only, a revocation that one app password's
only), that unrelated changes merely move the baseline, that a token ends at ``exp`` plus its issuer's grace,
and the store facts under it: epochs stamped in the change's own transaction, increasing store-wide, and the
SQLite watcher that turns another process's change into a notifier event.
"""

from __future__ import annotations

import pytest

from janusmail.auth import app_passwords, passwords, revocation
from janusmail.auth.authenticator import AuthResult
from janusmail.store.credentials import CredentialWatcher, is_credential_event
from janusmail.store.store import Store


def result(store: Store, account_id: str, method: str, credential_id: str | None = None,
           expires_at: int | None = None) -> AuthResult:
    acct = store.accounts.get(account_id)
    assert acct is not None
    return AuthResult(account_id, acct.address, method, credential_id, frozenset({"imap"}), expires_at)


@pytest.fixture
def alice(store: Store) -> str:
    return store.accounts.create("alice@example.test", *passwords.make_credentials("old password")).id


def test_password_change_ends_password_and_scram_sessions_only(store: Store, alice: str) -> None:
    ap, _ = app_passwords.create(store, alice, "laptop", "imap")
    baseline = store.credentials.sequence()
    pw, scram, app = (result(store, alice, m, ap.id if m == "app_password" else None)
                      for m in ("password", "scram", "app_password"))
    for r in (pw, scram, app):
        assert revocation.check(store, r, baseline, now=0) == revocation.Verdict(None, baseline)
    store.credentials.set_password(alice, *passwords.make_credentials("new password"))
    for r in (pw, scram):
        assert revocation.check(store, r, baseline, now=0).reason == revocation.PASSWORD_CHANGED
    verdict = revocation.check(store, app, baseline, now=0)
    assert verdict.reason is None and verdict.baseline > baseline  # moved past a change that was not ours
    # A session that logged in after the change (its baseline read before verifying) is not ended by it.
    after = store.credentials.sequence()
    assert revocation.check(store, pw, after, now=0) == revocation.Verdict(None, after)


def test_revocation_ends_that_app_password_only(store: Store, alice: str) -> None:
    laptop, _ = app_passwords.create(store, alice, "laptop", "imap")
    phone, _ = app_passwords.create(store, alice, "phone", "imap")
    baseline = store.credentials.sequence()
    assert store.app_passwords.revoke(alice, "laptop")
    gone = revocation.check(store, result(store, alice, "app_password", laptop.id), baseline, now=0)
    assert gone.reason == revocation.APP_PASSWORD_REVOKED
    for r in (result(store, alice, "app_password", phone.id), result(store, alice, "password")):
        assert revocation.check(store, r, baseline, now=0).reason is None
    # Re-creating the name deletes the revoked row: the old session's credential is still gone.
    app_passwords.create(store, alice, "laptop", "imap")
    again = revocation.check(store, result(store, alice, "app_password", laptop.id), baseline, now=0)
    assert again.reason == revocation.APP_PASSWORD_REVOKED
    # A revocation that matched nothing changes nothing.
    before = store.credentials.sequence()
    assert not store.app_passwords.revoke(alice, "no such name")
    assert store.credentials.sequence() == before


def test_token_ends_at_exp_plus_grace_without_a_database_change(store: Store, alice: str) -> None:
    baseline = store.credentials.sequence()
    tok = result(store, alice, "bearer", "jti-1", expires_at=1_000)
    assert revocation.deadline(tok) == 1_000 and revocation.deadline(tok, 60) == 1_060
    assert revocation.check(store, tok, baseline, now=999.9).reason is None
    assert revocation.check(store, tok, baseline, now=1_000).reason == revocation.TOKEN_EXPIRED
    assert revocation.check(store, tok, baseline, now=1_030, grace=60).reason is None
    assert revocation.deadline(result(store, alice, "password")) is None
    # Passwords and app passwords do not expire by the clock.
    assert revocation.check(store, result(store, alice, "password"), baseline, now=10**12).reason is None


def test_revoked_token_ends_that_token_only(store: Store, alice: str) -> None:
    for jti in ("jti-laptop", "jti-phone"):
        store.tokens.record(alice, jti, ["imap"], 0, 10**10)
    baseline = store.credentials.sequence()
    laptop, phone = (result(store, alice, "bearer", j, expires_at=10**10) for j in ("jti-laptop", "jti-phone"))
    unrecorded = result(store, alice, "bearer", "jti-never-recorded", expires_at=10**10)
    assert store.tokens.revoke("jti-laptop") is not None
    assert revocation.check(store, laptop, baseline, now=0).reason == revocation.TOKEN_REVOKED
    for r in (phone, unrecorded, result(store, alice, "password")):
        verdict = revocation.check(store, r, baseline, now=0)
        assert verdict.reason is None and verdict.baseline > baseline
    # another account's session whose token id happens to be the revoked one's is not ended by it
    bob = store.accounts.create("bob@example.test", "x").id
    assert revocation.check(store, result(store, bob, "bearer", "jti-laptop", expires_at=10**10),
                            0, now=0).reason is None


def test_deleted_account(store: Store, alice: str) -> None:
    r = result(store, alice, "password")
    baseline = store.credentials.sequence()
    store.accounts.delete(alice)
    assert revocation.check(store, r, baseline, now=0).reason == revocation.ACCOUNT_GONE


def test_epochs_increase_store_wide_in_commit_order(store: Store, alice: str) -> None:
    bob = store.accounts.create("bob@example.test", "x").id
    assert store.credentials.epochs(alice) == (0, 0) and store.credentials.sequence() == 0
    store.credentials.set_password(alice, "h1", None)
    assert store.credentials.epochs(alice) == (1, 1)
    app_passwords.create(store, bob, "p", "imap")
    app_passwords.revoke(store, bob, "p")  # the auth helper hands it to the store
    assert store.credentials.epochs(bob) == (2, 0)  # a revocation is not a password change
    store.credentials.set_password(alice, "h2", None)
    assert store.credentials.epochs(alice) == (3, 3) and store.credentials.sequence() == 3
    assert store.credentials.epochs("A-does-not-exist") is None


async def test_local_changes_are_announced_on_the_notifier(store: Store, alice: str) -> None:
    sub = store.notifier.subscribe(alice)
    try:
        await store.call(store.credentials.set_password, alice, "h", None)
        events = await sub.wait(30)
        assert any(is_credential_event(ev) for ev in events)
        assert all(not ev.mailbox_ids for ev in events if is_credential_event(ev))
    finally:
        sub.close()


async def test_watcher_hears_another_process_on_sqlite(tmp_path) -> None:  # noqa: ANN001
    """Another process = another engine on the same SQLite file (the CLI): its change reaches subscribers."""
    server = Store.open(tmp_path / "data")
    cli = Store.open(tmp_path / "data")
    try:
        alice = server.accounts.create("alice@example.test", "x").id
        ap, _ = app_passwords.create(server, alice, "laptop", "imap")
        watcher = CredentialWatcher(server, interval=3600)  # polled by hand below: no timing involved
        watcher.start()
        try:
            sub = server.notifier.subscribe(alice)
            assert watcher.poll() == 0
            assert app_passwords.revoke(cli.engine, alice, ap.id)  # writes through the other engine only
            assert watcher.poll() == 1
            events = await sub.wait(30)
            assert [ev.account_id for ev in events if is_credential_event(ev)] == [alice]
            assert watcher.poll() == 0  # announced once
            cli.accounts.delete(alice)  # a deletion leaves no row to stamp: the listened-to account is missed
            assert watcher.poll() == 1
            events = await sub.wait(30)
            assert [ev.account_id for ev in events if is_credential_event(ev)] == [alice]
            sub.close()
        finally:
            watcher.stop()
    finally:
        cli.close()
        server.close()


def test_server_store_starts_the_watcher_on_sqlite_only(store: Store) -> None:
    store.start_listener()  # PostgreSQL hears other processes through LISTEN/NOTIFY instead
    assert (store._credential_watcher is not None) == store.sqlite


def test_migration_keeps_existing_accounts_at_epoch_zero(db_url: str | None, tmp_path) -> None:  # noqa: ANN001
    """A store created before the credential epochs existed upgrades in place: its accounts start at 0."""
    import sqlalchemy as sa
    from alembic import command

    from janusmail.store import db
    from janusmail.store.schema import accounts

    engine = db.make_engine(db_url or db.sqlite_url(tmp_path))
    try:
        cfg = db.alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002")
            conn.execute(sa.text("INSERT INTO accounts (id, address, password_hash, created_at) "
                                 "VALUES ('Aold', 'old@example.test', 'x', 0)"))
        db.migrate(engine)
        with engine.connect() as conn:
            row = conn.execute(sa.select(accounts.c.credential_epoch, accounts.c.password_epoch)).one()
        assert tuple(row) == (0, 0)
    finally:
        engine.dispose()
