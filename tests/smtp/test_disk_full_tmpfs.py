"""Issue 8, item 1 on a real full disk: the data directory (SQLite and blobs) on a 32 MiB tmpfs.

The reproduction of the issue: fill the filesystem, deliver ~20 KB messages over LMTP until the server
answers 452, delete the filler, deliver 3 more. Every message that got 250 must read back byte-exact with
``UID FETCH n BODY[]``, also after the server restarts. The server is the real ``janusmail serve`` process.
Needs root (CI runs as root) to mount the tmpfs; skipped with the reason otherwise.
"""

from __future__ import annotations

import imaplib
import smtplib

import pytest

from tests.mailgen import simple
from tests.serverutil import janusmail_cmd, make_config, spawn_server
from tests.store.storage_faults import fill, tmpfs

pytestmark = pytest.mark.slow

ADDRESS, PASSWORD = "a@example.test", "pw-on-a-small-disk"
MAX_ATTEMPTS = 3000  # 20 MiB / 20 KB is ~1000: the disk is full long before


def _msg(i: int) -> bytes:
    return simple(i, body="\r\n".join(f"tmpfs {i} line {n} " + "t" * 60 for n in range(260)))


def _stop(proc) -> None:  # noqa: ANN001
    proc.terminate()
    try:
        proc.wait(60)
    except Exception:  # noqa: BLE001 - a stuck server must not hide the test's own result
        proc.kill()
        proc.wait()


def check_every_message(cfg, acked: dict[int, bytes]) -> None:  # noqa: ANN001
    """Each acknowledged message, fetched by its own UID, is our Received line plus the message, exactly."""
    m = imaplib.IMAP4("127.0.0.1", int(cfg.imap.listen.rsplit(":", 1)[1]), timeout=60)
    try:
        m.login(ADDRESS, PASSWORD)
        typ, data = m.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == len(acked)
        typ, data = m.uid("SEARCH", None, "ALL")
        uids = [int(u) for u in data[0].split()]
        assert len(uids) == len(acked)
        for uid, (i, raw) in zip(uids, sorted(acked.items()), strict=True):
            typ, data = m.uid("FETCH", str(uid), "(BODY[])")
            assert typ == "OK"
            body = next(d[1] for d in data if isinstance(d, tuple))
            assert body.startswith(b"Received: ") and body.split(b"\r\n", 1)[1] == raw, f"message {i} (uid {uid})"
    finally:
        m.logout()


def test_lmtp_until_the_disk_is_full_then_every_acknowledged_message_is_intact(tmp_path):
    with tmpfs(tmp_path / "mnt", "32m") as mnt:
        data = mnt / "data"
        janusmail_cmd(data, "user", "add", ADDRESS, "--password", PASSWORD)
        cfg = make_config(data, None, jmap__listen=None, imap__imaps=None)
        proc = spawn_server(data, cfg)
        try:
            filler = fill(mnt, leave=12 * 1024 * 1024)  # the substring index makes a message cost more
            acked: dict[int, bytes] = {}
            refusals: list[tuple[int, bytes]] = []
            port = int(cfg.lmtp.listen.rsplit(":", 1)[1])
            with smtplib.LMTP("127.0.0.1", port, timeout=60) as client:
                for i in range(MAX_ATTEMPTS):
                    try:
                        client.sendmail("s@example.test", [ADDRESS], _msg(i))
                        acked[i] = _msg(i)
                    except smtplib.SMTPDataError as exc:
                        refusals.append((exc.smtp_code, exc.smtp_error))
                        if len(refusals) >= 5:  # keep knocking a little: each one must be refused cleanly
                            break
                assert refusals, "the disk never filled up"
                assert all(code == 452 and text.startswith(b"4.3.1") for code, text in refusals), refusals
                assert len(acked) > 20
                filler.unlink()
                for i in range(MAX_ATTEMPTS, MAX_ATTEMPTS + 3):
                    assert client.sendmail("s@example.test", [ADDRESS], _msg(i)) == {}
                    acked[i] = _msg(i)
            check_every_message(cfg, acked)
        finally:
            _stop(proc)
        proc = spawn_server(data, cfg)
        try:
            check_every_message(cfg, acked)
        finally:
            _stop(proc)
