"""mbsync (isync) two-way sync against the real server: pull 500 messages, change flags both sides, resync."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import imapclient
import pytest

from janusmail.auth.passwords import make_credentials
from janusmail.store.model import IngestItem
from tests.mailgen import simple
from tests.serverutil import ServerThread, make_config

MBSYNC = shutil.which("mbsync")
pytestmark = pytest.mark.skipif(MBSYNC is None and os.environ.get("CI") != "true", reason="mbsync not installed")
PASSWORD = "sync-me-please"


def run_mbsync(rc: Path) -> None:
    assert MBSYNC, "mbsync (Debian isync) is required under CI"
    proc = subprocess.run([MBSYNC, "-c", str(rc), "-a"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def maildir_files(box: Path) -> dict[str, Path]:
    """Message-ID -> file, for every message in a Maildir."""
    out = {}
    for sub in ("cur", "new"):
        for f in (box / sub).iterdir():
            for line in f.read_bytes().replace(b"\r\n", b"\n").split(b"\n"):
                if line.lower().startswith(b"message-id:"):
                    out[line.split(b":", 1)[1].strip().decode()] = f
                    break
    return out


def maildir_flags(f: Path) -> str:
    return f.name.rsplit(":2,", 1)[1] if ":2," in f.name else ""


def test_mbsync_two_way(tmp_path):
    srv = ServerThread(make_config(tmp_path / "data")).start()
    try:
        acct = srv.store.accounts.create("alice@example.test", *make_credentials(PASSWORD))
        inbox = srv.store.mailboxes.by_path(acct.id, ["INBOX"])
        originals = [simple(i, body=f"message {i} " * 20) for i in range(500)]
        srv.store.emails.ingest_many(acct.id, [IngestItem(raw, (inbox.id,)) for raw in originals])
        local = tmp_path / "mail"
        local.mkdir()
        rc = tmp_path / "mbsyncrc"
        rc.write_text(f"""IMAPAccount janus
Host 127.0.0.1
Port {srv.imap_port}
User alice@example.test
Pass {PASSWORD}
SSLType None
AuthMechs PLAIN LOGIN

IMAPStore remote
Account janus

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel janus
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
""")
        run_mbsync(rc)
        files = maildir_files(local / "INBOX")
        assert len(files) == 500
        by_id = {f"<msg{i}@example.test>": raw for i, raw in enumerate(originals)}
        for mid, f in files.items():  # mbsync stores LF line endings and adds its own X-TUID header
            local_lines = [ln for ln in f.read_bytes().replace(b"\r\n", b"\n").split(b"\n")
                           if not ln.startswith(b"X-TUID:")]
            assert local_lines == by_id[mid].replace(b"\r\n", b"\n").split(b"\n")

        # Local side: mark 0..49 seen. Server side: flag 100..149 and delete 490..499.
        for i in range(50):
            f = files[f"<msg{i}@example.test>"]
            target = local / "INBOX" / "cur" / (f.name.split(":2,")[0] + ":2," + "".join(sorted(maildir_flags(f) + "S")))
            f.rename(target)
        client = imapclient.IMAPClient("127.0.0.1", port=srv.imap_port, ssl=False)
        client.login("alice@example.test", PASSWORD)
        client.select_folder("INBOX")
        flag_uids = client.search(["HEADER", "Message-ID", "msg1"])  # narrowed below by exact ids
        wanted = {f"<msg{i}@example.test>" for i in range(100, 150)}
        envs = client.fetch(flag_uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        flag_uids = [u for u, d in envs.items()
                     if d[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].split(b":", 1)[1].strip().decode() in wanted]
        assert len(flag_uids) == 50
        client.add_flags(flag_uids, [b"\\Flagged"])
        all_uids = client.search(["ALL"])
        client.delete_messages(sorted(all_uids)[-10:])
        client.expunge()

        run_mbsync(rc)
        files = maildir_files(local / "INBOX")
        assert len(files) == 490
        for i in range(100, 150):
            assert "F" in maildir_flags(files[f"<msg{i}@example.test>"])
        seen = set(client.search(["SEEN"]))
        fetched = client.fetch(seen, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        seen_ids = {d[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].split(b":", 1)[1].strip().decode() for d in fetched.values()}
        assert seen_ids == {f"<msg{i}@example.test>" for i in range(50)}
        client.logout()
    finally:
        srv.stop()
