"""Issue 8, item 1 through ``janusmail import``: when the disk refuses, the import stops with a clear message and
a non-zero exit (no traceback), keeps every batch it finished, and once there is room again a re-run stores
the rest byte-exact. The command runs in this process (``main()``, exactly what the console script calls) so
faults can be injected. SQLite and PostgreSQL.
"""

from __future__ import annotations

import sys

import pytest

from janusmail.cli import main as climain
from janusmail.store.store import Store
from tests.mailgen import simple
from tests.serverutil import janusmail_cmd
from tests.store.storage_faults import Faults, every_stored_email, fill, tmpfs


def _msg(i: int) -> bytes:
    return simple(i, body="\r\n".join(f"import {i} line {n} " + "m" * 60 for n in range(100 + i)))


def write_mbox(path, msgs: list[bytes]) -> None:  # noqa: ANN001
    with open(path, "wb") as fh:
        for raw in msgs:
            fh.write(b"From sender@example.test Fri Nov 27 08:00:00 2026\n" + raw + b"\n")


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    monkeypatch.setattr(sys, "argv", ["janusmail", *args])
    try:
        climain.main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


FAULTS = {
    "short write then ENOSPC": lambda f, s: f.short_write_then_enospc(),
    "EIO on fdatasync": lambda f, s: f.sync_error(),
    "database disk full at COMMIT": lambda f, s: f.commit_disk_full(s.engine),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_import_stops_cleanly_on_a_failing_disk_and_resumes(tmp_path, db_url, monkeypatch, capsys, fault):
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw", db=db_url)
    msgs = [_msg(i) for i in range(12)]
    write_mbox(tmp_path / "in.mbox", msgs)
    if db_url:
        monkeypatch.setenv("JANUSMAIL_DB", db_url)
    else:
        monkeypatch.delenv("JANUSMAIL_DB", raising=False)
    f = Faults(monkeypatch)
    real_open = Store.open

    def open_with_fault(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        store = real_open(*a, **kw)
        FAULTS[fault](f, store)
        return store

    monkeypatch.setattr(Store, "open", open_with_fault)
    code, out, err = run_cli(monkeypatch, capsys, "--data", str(data), "import", "a@example.test",
                             str(tmp_path / "in.mbox"), "--no-progress")
    assert f.fired == 1
    assert code != 0
    assert "Traceback" not in err and "Traceback" not in out
    assert "disk" in err and "run the same command again" in err, err
    monkeypatch.setattr(Store, "open", real_open)
    store = Store.open(data, db_url)
    try:
        assert every_stored_email(store) == []  # the one batch was refused whole: nothing half-stored
    finally:
        store.close()
    # Space is back: the same command imports everything.
    done = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "in.mbox"), "--no-progress", db=db_url)
    assert "imported 12 messages" in done.stdout
    store = Store.open(data, db_url)
    try:
        assert sorted(every_stored_email(store)) == sorted(msgs)
    finally:
        store.close()


@pytest.mark.slow
def test_import_onto_a_full_tmpfs_stops_cleanly_and_resumes(tmp_path):
    """The real command on a real full disk (needs root to mount the tmpfs; skipped with the reason otherwise)."""
    msgs = [simple(i, body="\r\n".join(f"tmpfs {i} line {n} " + "f" * 60 for n in range(120)))
            for i in range(300)]  # ~3 MB: more than the room left at first, and it all fits afterwards
    write_mbox(tmp_path / "in.mbox", msgs)
    with tmpfs(tmp_path / "mnt", "20m") as mnt:
        data = mnt / "data"
        janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw")
        filler = fill(mnt, leave=2 * 1024 * 1024)
        full = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "in.mbox"), "--no-progress",
                             check=False)
        assert full.returncode == climain.EXIT_STORAGE_UNAVAILABLE, (full.stdout, full.stderr)
        assert "Traceback" not in full.stderr and "disk" in full.stderr, full.stderr
        filler.unlink()
        store = Store.open(data)
        try:
            partial = every_stored_email(store)  # whatever was stored before the disk filled is intact
        finally:
            store.close()
        assert set(partial) <= set(msgs)
        done = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "in.mbox"), "--no-progress",
                             check=False)
        assert done.returncode == 0, (done.stdout, done.stderr)
        store = Store.open(data)
        try:
            stored = every_stored_email(store)
        finally:
            store.close()
        assert set(stored) == set(msgs)
