"""`janusmail import` is idempotent per target mailbox: a killed import resumes, failures are counted, not fatal."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from janusmail.cli.importer import import_path
from janusmail.store.schema import blobs, emails, messages
from janusmail.store.store import Store
from tests.mailgen import corpus, simple
from tests.serverutil import janusmail_cmd

MBOX_SEP = b"From sender@example.test Fri Nov 27 08:00:00 2026\n"


def write_mbox(path, msgs) -> None:  # noqa: ANN001
    with open(path, "wb") as fh:
        for raw in msgs:
            fh.write(MBOX_SEP + raw + (b"" if raw.endswith(b"\n") else b"\n") + b"\n")


def inbox_digests(store: Store, account_id: str, box: str = "INBOX") -> list[str]:
    """SHA-256 of every live message in a mailbox, one entry per membership (duplicates show up twice)."""
    mbox = store.mailboxes.by_path(account_id, box.split("/"))
    with store.read() as conn:
        return [r.sha256 for r in conn.execute(
            sa.select(blobs.c.sha256).select_from(
                messages.join(emails, emails.c.id == messages.c.email_id).join(blobs, blobs.c.id == emails.c.blob_id))
            .where(messages.c.mailbox_id == mbox.id, messages.c.deleted.is_(False)))]


def digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def totals(stdout: str) -> tuple[int, int, int]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("totals: "))
    parts = dict(p.strip().split(" ")[:2] for p in line.removeprefix("totals: ").split(","))
    return int(parts["imported"]), int(parts["skipped"]), int(parts["failed"])


def count_emails(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(emails)).scalar_one()


@pytest.mark.slow
def test_killed_import_resumes_without_duplicates(tmp_path, db_url):
    """SIGKILL the import once some batches are committed; the re-run skips exactly those and imports the rest."""
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw", db=db_url)
    # 10 batches of 500: once two are committed, eight are left, far more than the import writes between our
    # count and the SIGKILL, so the kill lands mid-import (the re-run then has a few thousand to import, not ten).
    msgs = [simple(i, body=f"resume {i} " + "z" * (i % 3000)) for i in range(5000)]
    write_mbox(tmp_path / "big.mbox", msgs)
    env_db = ["--db", db_url] if db_url else []
    argv = [sys.executable, "-m", "janusmail.cli.main", "--data", str(data), *env_db, "import", "a@example.test",
            str(tmp_path / "big.mbox"), "--no-progress"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from janusmail.store import db as dbmod

    engine = dbmod.make_engine(db_url or dbmod.sqlite_url(data))
    try:
        deadline = time.monotonic() + 120
        while count_emails(engine) < 1000:  # wait for the event (two batches committed), not for a time
            assert proc.poll() is None, "import ended before it could be killed"
            assert time.monotonic() < deadline, "import committed nothing within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(60)
        committed = count_emails(engine)
    finally:
        proc.kill()
        proc.wait()
        engine.dispose()
    assert 1000 <= committed < len(msgs), "the kill must land mid-import for this test to mean anything"

    out = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "big.mbox"), "--no-progress", db=db_url)
    imported, skipped, failed = totals(out.stdout)
    # Exactly what the killed run committed is skipped: whole batches. (At least what we counted: on
    # PostgreSQL a COMMIT already sent by the killed client may still land just after our count.)
    assert failed == 0 and imported + skipped == len(msgs)
    assert skipped >= committed and skipped % 500 == 0
    store = Store.open(data, db_url)
    try:
        acct = store.accounts.by_address("a@example.test")
        got = inbox_digests(store, acct.id)
    finally:
        store.close()
    assert len(got) == len(msgs) and sorted(got) == sorted(digest(m) for m in msgs)  # each exactly once

    again = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "big.mbox"), "--no-progress", db=db_url)
    assert totals(again.stdout) == (0, len(msgs), 0)


def test_reimport_skips_per_target_mailbox_and_allow_duplicates_forces(tmp_path, db_url):
    data = tmp_path / "d"
    msgs = [m if m.endswith(b"\n") else m + b"\n" for m in corpus(30)]
    write_mbox(tmp_path / "in.mbox", msgs + [msgs[0]])  # the source repeats one message
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw", db=db_url)
    run = ["import", "a@example.test", str(tmp_path / "in.mbox"), "--no-progress"]
    assert totals(janusmail_cmd(data, *run, db=db_url).stdout) == (30, 1, 0)
    assert totals(janusmail_cmd(data, *run, db=db_url).stdout) == (0, 31, 0)
    # Same bytes, other mailbox: not a duplicate there.
    assert totals(janusmail_cmd(data, *run, "--mailbox", "Archive/2026", db=db_url).stdout) == (30, 1, 0)
    assert totals(janusmail_cmd(data, *run, "--allow-duplicates", db=db_url).stdout) == (31, 0, 0)
    store = Store.open(data, db_url)
    try:
        acct = store.accounts.by_address("a@example.test")
        inbox = inbox_digests(store, acct.id)
        assert len(inbox) == 61 and sorted(set(inbox)) == sorted({digest(m) for m in msgs})
        assert sorted(inbox_digests(store, acct.id, "Archive/2026")) == sorted(digest(m) for m in msgs)
    finally:
        store.close()


def test_failed_messages_are_counted_and_make_the_exit_code_nonzero(tmp_path, db_url):
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw", db=db_url)
    # The last separator line has no message after it: that entry fails, the two before it import.
    (tmp_path / "in.mbox").write_bytes(MBOX_SEP + simple(1) + b"\n" + MBOX_SEP + simple(2) + b"\n" + MBOX_SEP[:-1])
    out = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "in.mbox"), "--no-progress", db=db_url,
                        check=False)
    assert out.returncode == 1, out
    assert totals(out.stdout) == (2, 0, 1)
    assert "separator line without a message" in out.stdout and "in.mbox#3" in out.stdout
    # Run again: the good ones are already there, the bad one still fails.
    again = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "in.mbox"), "--no-progress", db=db_url,
                          check=False)
    assert again.returncode == 1 and totals(again.stdout) == (0, 2, 1)


def test_one_refused_message_fails_alone_and_the_import_goes_on(store, account, tmp_path, monkeypatch):
    msgs = [simple(i) for i in range(40)]
    big = simple(99, body="b" * 5000)
    poison = simple(98, subject="poison")
    write_mbox(tmp_path / "in.mbox", msgs[:10] + [big] + msgs[10:20] + [poison] + msgs[20:])
    store.max_message_size = 4000  # `big` is refused before the transaction
    real = store.emails.ingest_many

    def ingest_many(account_id, items, prepared=None):  # noqa: ANN001, ANN202
        if any(it.raw == poison for it in items):  # refused inside the transaction: the whole batch rolls back
            raise ValueError("poisoned message")
        return real(account_id, items, prepared)

    monkeypatch.setattr(store.emails, "ingest_many", ingest_many)
    report = import_path(store, account.id, tmp_path / "in.mbox", show_progress=False, batch_size=16)
    assert (report.imported, report.skipped, report.failed_count) == (40, 0, 2)
    assert report.failed == {f"refused: TooLarge: {len(big)}": 1, "not stored: ValueError: poisoned message": 1}
    assert sorted(o.rsplit("#", 1)[1] for o, _ in report.failures) == ["11", "22"]
    assert sorted(inbox_digests(store, account.id)) == sorted(digest(m) for m in msgs)


def test_deleted_membership_does_not_count_as_present(store, account, tmp_path):
    """Judgement call: bytes that survive only as a \\Deleted membership are on their way out, so the import
    brings them back (JMAP already shows the mailbox without them)."""
    write_mbox(tmp_path / "in.mbox", [simple(1), simple(2)])
    assert import_path(store, account.id, tmp_path / "in.mbox", show_progress=False).imported == 2
    inbox = store.mailboxes.by_path(account.id, ["INBOX"])
    store.memberships.store_flags(account.id, inbox.id, [(1, 1)], "add", [], deleted=True)
    report = import_path(store, account.id, tmp_path / "in.mbox", show_progress=False)
    assert (report.imported, report.skipped) == (1, 1)
    assert sorted(inbox_digests(store, account.id)) == sorted([digest(simple(1)), digest(simple(2))])


def test_digests_present_is_per_mailbox_and_batched(store, account):
    inbox = store.mailboxes.by_path(account.id, ["INBOX"])
    other = store.mailboxes.create(account.id, "Other")
    store.emails.ingest(account.id, simple(1), (inbox.id,))
    store.emails.ingest(account.id, simple(2), (other.id,))
    d1, d2, d3 = digest(simple(1)), digest(simple(2)), digest(simple(3))
    assert store.emails.digests_present(account.id, [d1, d2, d3], {inbox.id, other.id}) == {(d1, inbox.id), (d2, other.id)}
    assert store.emails.digests_present(account.id, [d1, d2, d3], {other.id}) == {(d2, other.id)}
    assert store.emails.digests_present(account.id, [], {inbox.id}) == set()
    stranger = store.accounts.create("bob@example.test", "x")
    assert store.emails.digests_present(stranger.id, [d1, d2], {inbox.id, other.id}) == set()
