"""Contract of ``store.credentials`` (the account reads a login needs, the password re-hash) and of
``writer_calls`` (how synchronous callers reach the writer executor), on both backends."""

from __future__ import annotations

import threading

import pytest

from janusmail.store import writer_calls
from janusmail.store.credentials import LoginAccount
from janusmail.store.writes import is_write, writes


def test_login_account_by_address_and_id(store) -> None:  # noqa: ANN001
    acct = store.accounts.create("Ann@Example.test", "argon-hash", "scram-secret")
    want = LoginAccount(acct.id, "ann@example.test", "argon-hash", "scram-secret", True)
    assert store.credentials.login_account(address="ann@example.test") == want
    assert store.credentials.login_account(account_id=acct.id) == want
    store.accounts.set_jmap_enabled(acct.id, False)
    assert store.credentials.login_account(account_id=acct.id).jmap_enabled is False
    assert store.credentials.login_account(address="Ann@Example.test") is None  # callers normalize first
    assert store.credentials.login_account(account_id="A-no-such") is None
    with pytest.raises(TypeError):
        store.credentials.login_account()
    with pytest.raises(TypeError):
        store.credentials.login_account(address="ann@example.test", account_id=acct.id)


def test_upgrade_password_is_a_compare_and_set(store) -> None:  # noqa: ANN001
    acct = store.accounts.create("ann@example.test", "old-hash", None)
    epochs = store.credentials.epochs(acct.id)
    assert is_write(store.credentials.upgrade_password)
    assert store.credentials.upgrade_password(acct.id, "old-hash", password_hash="new-hash", scram_sha256="s1")
    row = store.credentials.login_account(account_id=acct.id)
    assert (row.password_hash, row.scram_sha256) == ("new-hash", "s1")
    assert store.credentials.epochs(acct.id) == epochs  # the same password: no session ends
    assert store.credentials.upgrade_password(acct.id, "new-hash", scram_sha256="s2")  # only what is given
    assert store.credentials.login_account(account_id=acct.id).password_hash == "new-hash"


def test_upgrade_never_undoes_a_concurrent_password_change(store) -> None:  # noqa: ANN001
    acct = store.accounts.create("ann@example.test", "old-hash", None)
    store.credentials.set_password(acct.id, "changed-hash", "changed-scram")  # the owner changed it meanwhile
    modseq = store.changes.highest_modseq(acct.id)
    assert not store.credentials.upgrade_password(acct.id, "old-hash", password_hash="rehash", scram_sha256="x")
    row = store.credentials.login_account(account_id=acct.id)
    assert (row.password_hash, row.scram_sha256) == ("changed-hash", "changed-scram")
    assert store.changes.highest_modseq(acct.id) == modseq  # rolled back: nothing written, nobody woken


def test_upgrade_edge_cases(store) -> None:  # noqa: ANN001
    acct = store.accounts.create("ann@example.test", None, None)
    assert not store.credentials.upgrade_password(acct.id, None)  # nothing to write
    assert store.credentials.upgrade_password(acct.id, None, scram_sha256="s")  # NULL compares as NULL
    assert not store.credentials.upgrade_password("A-no-such", "h", password_hash="x")


def test_writer_calls_run_on_the_writer_and_inline_there(store) -> None:  # noqa: ANN001
    @writes
    def where() -> str:
        return threading.current_thread().name

    @writes
    def nested() -> str:
        return writer_calls.run(store, where)  # on the (single, on SQLite) writer: inline, no deadlock

    assert writer_calls.run(store, where).startswith(writer_calls.WRITER_PREFIX)
    assert writer_calls.run(store, nested).startswith(writer_calls.WRITER_PREFIX)
    with pytest.raises(TypeError):
        writer_calls.run(store, lambda: None)  # only methods marked @writes go to the writer

    @writes
    def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        writer_calls.run(store, fails)
