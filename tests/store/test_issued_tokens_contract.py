"""``store.tokens`` (janusmail/store/issued_tokens.py) on SQLite and PostgreSQL: the record of issued bearer tokens,
revocation as a credential change, and the in-memory revoked set that answers JMAP's per-request question
without a database read, kept current by ``Credential`` events (which is how another process's revocation
reaches it).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from janusmail.auth import passwords
from janusmail.store import credentials
from janusmail.store.issued_tokens import FULL_REFRESH, KEEP_EXPIRED, RevokedSet
from janusmail.store.model import NotFound
from janusmail.store.store import Store

NOW = int(time.time())


@pytest.fixture
def alice(store: Store) -> str:
    return store.accounts.create("alice@example.test", *passwords.make_credentials("pw")).id


def _record(store: Store, account_id: str, jti: str, *, issued: int = NOW, ttl: int = 3600, label: str = ""):  # noqa: ANN202
    return store.tokens.record(account_id, jti, ["jmap", "imap"], issued, issued + ttl, label=label)


def test_record_list_get_state(store: Store, alice: str) -> None:
    bob = store.accounts.create("bob@example.test", *passwords.make_credentials("pw")).id
    first = _record(store, alice, "jti-first", issued=NOW - 10, label="  laptop script  ")
    _record(store, alice, "jti-second", issued=NOW - 5)
    _record(store, alice, "jti-old", issued=NOW - 7200, ttl=60)  # expired an hour ago
    _record(store, bob, "jti-bob")
    assert first.label == "laptop script" and first.scopes == frozenset({"imap", "jmap"})
    assert [t.jti for t in store.tokens.list(alice, now=NOW)] == ["jti-second", "jti-first"]  # newest first
    assert [t.jti for t in store.tokens.list(alice, include_expired=True, now=NOW)] == [
        "jti-second", "jti-first", "jti-old"]
    got = store.tokens.get("jti-first")
    assert got == first and got.active(NOW) and not got.active(got.expires_at)
    assert store.tokens.state("jti-bob") == (bob, True)
    assert store.tokens.state("no-such-jti") is None and store.tokens.get("no-such-jti") is None
    with pytest.raises(NotFound):
        _record(store, "Anosuchaccount", "jti-orphan")


def test_revoke_is_a_credential_change(store: Store, alice: str) -> None:
    bob = store.accounts.create("bob@example.test", *passwords.make_credentials("pw")).id
    _record(store, alice, "jti-a")
    _record(store, alice, "jti-b")
    heard = []
    store.notifier.watchers.append(heard.append)
    assert not store.tokens.is_revoked("jti-a")
    before = store.credentials.sequence()
    assert store.tokens.revoke("jti-a", account_id=bob) is None  # another account's page cannot revoke it
    assert store.credentials.sequence() == before and not heard
    revoked = store.tokens.revoke("jti-a", account_id=alice, now=NOW)
    assert revoked is not None and revoked.jti == "jti-a" and not revoked.revoked  # (as it was)
    assert store.credentials.sequence() > before  # stamped in the revocation's transaction
    assert [ev.account_id for ev in heard if credentials.is_credential_event(ev)] == [alice]  # announced
    assert store.tokens.state("jti-a") == (alice, False) and store.tokens.get("jti-a").revoked_at == NOW
    assert store.tokens.is_revoked("jti-a") and not store.tokens.is_revoked("jti-b")
    assert store.tokens.revoke("jti-a") is None  # once is enough
    assert store.tokens.revoke("no-such-jti") is None
    listed = {t.jti: t.revoked for t in store.tokens.list(alice)}
    assert listed == {"jti-a": True, "jti-b": False}  # revoked tokens stay listed until they expire


def test_another_process_revocation_reaches_the_revoked_set_by_its_event(store: Store, alice: str,
                                                                         db_url: str | None, tmp_path: Path) -> None:
    """A second Store on the same database stands for another worker or node: its revoked set answers from
    memory (no statement per lookup) and learns of the first one's revocation from the Credential event."""
    other = Store.open(tmp_path / "data", db_url)
    try:
        _record(store, alice, "jti-x")
        assert not other.tokens.is_revoked("jti-x")  # first lookup: loaded once
        statements = []
        sa.event.listen(other.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        for _ in range(50):
            assert not other.tokens.is_revoked("jti-x")
        assert statements == []  # the per-request question costs no database round trip

        store.tokens.revoke("jti-x")
        assert store.tokens.is_revoked("jti-x")  # the revoking process: at once
        assert not other.tokens.is_revoked("jti-x")  # the other one has not heard yet (and does not ask)
        other.notifier.deliver(credentials.event(alice))  # what the change bus / NOTIFY / watcher hand it
        assert other.tokens.is_revoked("jti-x")
        assert len(statements) == 1  # one re-read of that account's revoked tokens
    finally:
        other.close()


def test_last_use_is_stamped_once_a_minute(store: Store, alice: str) -> None:
    _record(store, alice, "jti-used")
    store.tokens.touch_soon("jti-used", NOW)
    store.tokens.touch_soon("jti-used", NOW + 30)  # within the minute: nothing queued
    store.tokens.settle()
    assert store.tokens.get("jti-used").last_used_at == NOW
    store.tokens.touch_soon("jti-used", NOW + 61)
    store.tokens.settle()
    assert store.tokens.get("jti-used").last_used_at == NOW + 61
    store.tokens.touch_soon("no-such-jti", NOW)  # an unrecorded token: nothing to stamp, nothing fails
    store.tokens.settle()


def test_old_expired_rows_go_and_account_deletion_takes_the_rest(store: Store, alice: str) -> None:
    _record(store, alice, "jti-ancient", issued=NOW - KEEP_EXPIRED - 7200, ttl=60)
    _record(store, alice, "jti-recent", issued=NOW - 7200, ttl=60)
    _record(store, alice, "jti-new")  # recording prunes this account's long-expired rows
    assert store.tokens.get("jti-ancient") is None and store.tokens.get("jti-recent") is not None
    store.accounts.delete(alice)
    assert store.tokens.get("jti-new") is None


def test_revoked_set_refreshes_fully_as_a_safety_net() -> None:
    """Without any event (a listener reconnecting lost it) the set is re-read whole every FULL_REFRESH s."""
    rows: list[tuple[str, str, int]] = []
    calls: list[object] = []
    mono = [0.0]

    def load(accounts, now):  # noqa: ANN001, ANN202
        calls.append(accounts)
        return [r for r in rows if (accounts is None or r[1] in accounts) and r[2] > now]

    revoked = RevokedSet(load, clock=lambda: 1000.0, monotonic=lambda: mono[0])
    assert not revoked.contains("j1") and calls == [None]
    rows.append(("j1", "A1", 5000))
    rows.append(("j2", "A2", 900))  # revoked but expired: not kept
    assert not revoked.contains("j1") and calls == [None]  # memory only
    mono[0] = FULL_REFRESH
    assert revoked.contains("j1") and not revoked.contains("j2") and calls == [None, None]
    rows.append(("j3", "A2", 5000))
    revoked.changed("A2")
    assert revoked.contains("j3") and calls[-1] == ["A2"] and revoked.contains("j1") and len(revoked) == 2
