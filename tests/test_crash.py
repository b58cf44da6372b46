"""Crash safety: SIGKILL in the middle of delivery or import loses nothing acknowledged, shows nothing half-done."""

from __future__ import annotations

import hashlib
import signal
import smtplib
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from janusmail.store.schema import blobs, emails
from janusmail.store.store import Store
from tests.mailgen import simple
from tests.serverutil import janusmail_cmd, make_config, spawn_server

pytestmark = pytest.mark.slow


def stored(data, db):  # noqa: ANN001, ANN201
    """{sha256: bytes} of every email row, checking each row's blob is complete and matches its digest."""
    store = Store.open(data, db)
    try:
        with store.read() as conn:
            rows = conn.execute(sa.select(blobs.c.sha256, blobs.c.size, blobs.c.pack, blobs.c.offset)
                                .join(emails, emails.c.blob_id == blobs.c.id)).all()
        out = {}
        for r in rows:
            raw = store.packs.read(r.pack, r.offset, r.size)
            assert len(raw) == r.size and hashlib.sha256(raw).hexdigest() == r.sha256
            out[r.sha256] = raw
        return out
    finally:
        store.close()


def test_sigkill_during_lmtp_keeps_every_acknowledged_message(tmp_path, db_url):
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw", db=db_url)
    cfg = make_config(data, db_url, imap__listen=None, jmap__listen=None)
    proc = spawn_server(data, cfg, db_url)
    acked: list[bytes] = []
    try:
        with smtplib.LMTP("127.0.0.1", int(cfg.lmtp.listen.rsplit(":", 1)[1])) as client:
            i = 0
            while True:
                raw = simple(i, body="x" * (i % 5000))
                if i >= 200:  # a count, not a time: the same test on a fast or a busy machine
                    proc.send_signal(signal.SIGKILL)  # kill with messages in flight
                try:
                    client.sendmail("s@example.test", ["a@example.test"], raw)
                except (smtplib.SMTPException, OSError):
                    break
                acked.append(raw)
                i += 1
    finally:
        proc.kill()
        proc.wait()
    assert len(acked) > 20
    received = stored(data, db_url)
    bodies = [raw.split(b"\r\n", 1)[1] if raw.startswith(b"Received:") else raw for raw in received.values()]
    for raw in acked:
        assert any(b.endswith(raw) for b in bodies)
    assert len(received) in (len(acked), len(acked) + 1)  # at most the in-flight one, complete


def test_sigkill_during_import_shows_only_whole_batches(tmp_path, db_url):
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw", db=db_url)
    msgs = [simple(i, body="y" * 2000) for i in range(20000)]
    with open(tmp_path / "big.mbox", "wb") as fh:
        for raw in msgs:
            fh.write(b"From s@example.test Fri Nov 27 08:00:00 2026\n" + raw + b"\n")
    env_db = ["--db", db_url] if db_url else []
    proc = subprocess.Popen([sys.executable, "-m", "janusmail.cli.main", "--data", str(data), *env_db, "import",
                             "a@example.test", str(tmp_path / "big.mbox"), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from janusmail.store import db as dbmod

    engine = dbmod.make_engine(db_url or dbmod.sqlite_url(data))
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # kill once a few batches are in, while more are being written
            with engine.connect() as conn:
                if conn.execute(sa.select(sa.func.count()).select_from(emails)).scalar() >= 1500:
                    break
            time.sleep(0.05)
    finally:
        engine.dispose()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    got = stored(data, db_url)
    assert 0 < len(got) < len(msgs), "kill should land mid-import"
    assert len(got) % 500 == 0, "a batch is one transaction: all of it or none of it"
    expected = {hashlib.sha256(m).hexdigest() for m in msgs[: len(got)]}
    assert set(got) == expected
