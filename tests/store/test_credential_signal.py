"""The shared credential counter (janusmail/store/credential_signal.py) that lets an IMAP session skip its
per-command epoch read while no credential changed anywhere (issue 10: 7.5% of the event loop's time)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from janusmail.store.credential_signal import CredentialSignal, bump_for, signal_path


def test_every_mapping_of_the_file_sees_each_bump(tmp_path: Path) -> None:
    path = str(tmp_path / "db-credentials")
    a, b = CredentialSignal(path), CredentialSignal(path)
    try:
        assert a.read() == b.read() == 0
        a.bump()
        assert a.read() == b.read() == 1
        child = f"from janusmail.store.credential_signal import CredentialSignal; CredentialSignal({path!r}).bump()"
        subprocess.run([sys.executable, "-c", child], check=True, timeout=60)  # another process
        assert b.read() == 2
    finally:
        a.close()
        b.close()


def test_concurrent_bumps_are_never_lost(tmp_path: Path) -> None:
    """Two bumpers reading the same value and both writing value + 1 would hide the second change from a
    session that checked in between: the read-modify-write is under an exclusive flock."""
    path = str(tmp_path / "db-credentials")
    signals = [CredentialSignal(path) for _ in range(4)]  # four open files: flock excludes each from the others
    start = threading.Barrier(len(signals))

    def bump_many(signal: CredentialSignal) -> None:
        start.wait()
        for _ in range(500):
            signal.bump()

    threads = [threading.Thread(target=bump_many, args=(s,)) for s in signals]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert signals[0].read() == 2000
    finally:
        for s in signals:
            s.close()


def test_no_signal_without_a_shared_file(tmp_path: Path) -> None:
    assert CredentialSignal(None).read() is None
    unwritable = CredentialSignal(str(tmp_path / "no-such-dir" / "db-credentials"))
    assert unwritable.read() is None and not unwritable.enabled
    unwritable.bump()  # nothing to move, and no error


def test_the_store_moves_its_signal_after_each_credential_change(store: Any) -> None:
    """Through the notifier, after the commit: a password change, an engine-only app-password revocation;
    PostgreSQL (several hosts, no shared memory) has no signal and sessions read the epoch every command."""
    from janusmail.auth import app_passwords

    acct = store.accounts.create("signal@example.test", "hash")
    if not store.sqlite:
        assert store.credential_signal.read() is None and signal_path(store.engine) is None
        return
    before = store.credential_signal.read()
    store.mailboxes.create(acct.id, "Not a credential")
    assert store.credential_signal.read() == before
    store.credentials.set_password(acct.id, "new hash", None)
    assert store.credential_signal.read() == before + 1
    app_passwords.create(store, acct.id, "phone", ["imap"])
    moved = store.credential_signal.read()
    assert app_passwords.revoke(store.engine, acct.id, "phone")  # a tool with only an engine
    assert store.credential_signal.read() > moved
    bump_for(store.engine)
    assert store.credential_signal.read() > moved + 1
