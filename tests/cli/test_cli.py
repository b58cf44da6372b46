"""The janusmail command: users and import (byte-exact, Maildir folders, failures counted)."""

from __future__ import annotations

import time

from janusmail.store.store import Store
from tests.mailgen import corpus, simple
from tests.serverutil import janusmail_cmd


def write_mbox(path, messages):  # noqa: ANN001, ANN201
    with open(path, "wb") as fh:
        for raw in messages:
            fh.write(b"From sender@example.test Fri Nov 27 08:00:00 2026\n")
            fh.write(raw)
            if not raw.endswith(b"\n"):
                fh.write(b"\n")
            fh.write(b"\n")


def stored_messages(data, address):  # noqa: ANN001, ANN201
    store = Store.open(data)
    try:
        acct = store.accounts.by_address(address)
        out = {}
        for box in store.mailboxes.list(acct.id):
            import sqlalchemy as sa

            from janusmail.store.schema import emails, messages
            with store.read() as conn:
                rows = conn.execute(sa.select(messages.c.uid, emails.c.id).join(emails, emails.c.id == messages.c.email_id)
                                    .where(messages.c.mailbox_id == box.id).order_by(messages.c.uid)).all()
            out[box.name] = [store.emails.raw(acct.id, r.id) for r in rows]
        return out
    finally:
        store.close()


def test_user_commands(tmp_path):
    data = tmp_path / "d"
    out = janusmail_cmd(data, "user", "add", "Carol@Example.test", "--password", "-", input="s3cret\n")
    assert "created carol@example.test" in out.stdout
    assert "carol@example.test" in janusmail_cmd(data, "user", "list").stdout
    assert janusmail_cmd(data, "user", "add", "carol@example.test", "--password", "x", check=False).returncode != 0
    janusmail_cmd(data, "user", "passwd", "carol@example.test", "--password", "new")
    janusmail_cmd(data, "user", "delete", "carol@example.test", "--yes")
    assert "carol" not in janusmail_cmd(data, "user", "list").stdout
    assert "Usage" in janusmail_cmd(data, "--help").stdout


def test_import_mbox_is_byte_exact_including_broken_and_8bit(tmp_path):
    data = tmp_path / "d"
    msgs = [m if m.endswith(b"\n") else m + b"\n" for m in corpus(120)]
    # mbox cannot represent a body line starting with "From " unescaped; the corpus has none.
    write_mbox(tmp_path / "in.mbox", msgs)
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw")
    out = janusmail_cmd(data, "import", "a@example.test", str(tmp_path / "in.mbox"), "--no-progress")
    assert "imported 120 messages" in out.stdout and "messages/s" in out.stdout
    assert stored_messages(data, "a@example.test")["INBOX"] == msgs


def test_import_maildir_with_subfolders_and_flags(tmp_path):
    data = tmp_path / "d"
    root = tmp_path / "Mail"
    for folder in (root, root / ".Lists.Python"):
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
    (root / "cur" / "1.host:2,S").write_bytes(simple(1))
    (root / ".Lists.Python" / "new" / "2.host").write_bytes(simple(2))
    (root / "cur" / "broken:2,").mkdir()  # unreadable entry: counted, not skipped silently
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw")
    out = janusmail_cmd(data, "import", "a@example.test", str(root), "--no-progress", check=False)
    assert out.returncode == 1, "a message that could not be imported makes the exit code non-zero"
    assert "imported 2 messages" in out.stdout
    assert "1 messages failed" in out.stdout and "broken:2," in out.stdout
    assert "totals: imported 2, skipped 0 (already in the mailbox), failed 1" in out.stdout
    stored = stored_messages(data, "a@example.test")
    assert stored["INBOX"] == [simple(1)] and stored["Python"] == [simple(2)]
    assert "created mailbox INBOX/Lists/Python" not in out.stdout and "created mailbox Lists/Python" in out.stdout


def test_app_password_and_token_commands(tmp_path):
    from janusmail.auth.factory import build_token_service
    from janusmail.config import load

    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw")
    out = janusmail_cmd(data, "app-password", "add", "a@example.test", "--name", "phone", "--protocols", "imap")
    secret = out.stdout.strip().splitlines()[-1]
    assert len(secret.replace("-", "")) >= 20
    listed = janusmail_cmd(data, "app-password", "list", "a@example.test").stdout
    assert "phone" in listed and "imap" in listed and secret not in listed
    janusmail_cmd(data, "app-password", "revoke", "a@example.test", "phone")
    assert "phone" not in janusmail_cmd(data, "app-password", "list", "a@example.test").stdout
    assert janusmail_cmd(data, "app-password", "revoke", "a@example.test", "phone", check=False).returncode != 0
    tok = janusmail_cmd(data, "token", "issue", "a@example.test", "--scope", "imap,jmap", "--ttl", "10m")
    token = tok.stdout.strip().splitlines()[-1]
    info = build_token_service(load(data)).validate(token)
    assert set(info.scopes) == {"imap", "jmap"}
    assert 0 < info.expires_at - time.time() <= 600
    assert janusmail_cmd(data, "token", "issue", "a@example.test", "--ttl", "soon", check=False).returncode != 0


def test_serve_starts_reports_and_stops_gracefully_on_sigterm(tmp_path):
    import signal
    import smtplib

    from tests.serverutil import make_config, spawn_server

    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", "a@example.test", "--password", "pw")
    cfg = make_config(data)
    proc = spawn_server(data, cfg)
    try:
        with smtplib.LMTP("127.0.0.1", int(cfg.lmtp.listen.rsplit(":", 1)[1])) as client:
            assert client.sendmail("s@example.test", ["a@example.test"], simple(1)) == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert len(stored_messages(data, "a@example.test")["INBOX"]) == 1


def test_demo_creates_account_once_and_prints_how_to_connect(tmp_path):
    data = tmp_path / "d"
    first = janusmail_cmd(data, "demo").stdout
    second = janusmail_cmd(data, "demo").stdout
    password = (data / "demo-password").read_text().strip()
    assert "demo@janus.test" in first and password in first and password in second
    assert "/.well-known/jmap" in first
    assert janusmail_cmd(data, "user", "list").stdout.count("demo@janus.test") == 1


def test_serve_refuses_plain_http_public_url_off_loopback(tmp_path):
    out = janusmail_cmd(tmp_path / "d", "serve", "--public-url", "http://mail.example.com", check=False)
    assert out.returncode != 0 and "https" in out.stderr
