"""Issue 8, item 1 through LMTP: a full disk (or a disk I/O error) is a per-recipient temporary failure, and
every message acknowledged with 250, before or after the fault, reads back byte-exact over IMAP, also after a
restart. Faults are injected into the real server (it runs in a thread of this process). SQLite and PostgreSQL.
"""

from __future__ import annotations

import smtplib

import pytest

from janusmail.auth import passwords
from tests.imap.e2e_util import ADDRESS, PASSWORD, login, no_delay, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread, make_config
from tests.store.storage_faults import Faults, every_stored_email

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

BOB = "bob@example.test"


def start(cfg):  # noqa: ANN001, ANN201
    srv = ServerThread(cfg).start()
    no_delay(srv.runtime.auth)
    return srv


@pytest.fixture
def server(tmp_path, db_url):  # noqa: ANN001, ANN201
    cfg = make_config(tmp_path / "data", db_url, jmap__listen=None, imap__imaps=None)
    srv = start(cfg)
    srv.store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
    srv.store.accounts.create(BOB, *passwords.make_credentials(PASSWORD))
    holder = {"srv": srv}
    yield holder
    holder["srv"].stop()


def restart(holder):  # noqa: ANN001, ANN201
    holder["srv"].stop()
    holder["srv"] = start(holder["srv"].config)
    return holder["srv"]


def _msg(i: int) -> bytes:
    """About 20 KB, in SMTP-sized lines."""
    return simple(i, body="\r\n".join(f"lmtp {i} line {n} " + "q" * 60 for n in range(260 + i)))


def lmtp_send(srv, raw: bytes, rcpts: list[str]) -> list[tuple[int, bytes]]:  # noqa: ANN001
    """One LMTP transaction; the DATA replies, one per recipient."""
    with smtplib.LMTP("127.0.0.1", srv.lmtp_port, timeout=60) as client:
        client.ehlo_or_helo_if_needed()
        client.mail("sender@example.test")
        for r in rcpts:
            assert client.rcpt(r)[0] == 250
        replies = [client.data(raw)]
        replies += [client.getreply() for _ in rcpts[1:]]
    return replies


def imap_bodies(srv, user: str = ADDRESS) -> list[bytes]:  # noqa: ANN001
    m = login(srv, user)
    try:
        assert m.select("INBOX", readonly=True)[0] == "OK"
        typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        return [d[1] for d in data if isinstance(d, tuple)]
    finally:
        m.logout()


def check_inbox(srv, acked: list[bytes], user: str = ADDRESS) -> None:  # noqa: ANN001
    bodies = imap_bodies(srv, user)
    assert len(bodies) == len(acked)
    for body, raw in zip(bodies, acked, strict=True):  # UID order is delivery order
        assert body.startswith(b"Received: ") and body.endswith(raw)
        assert body.split(b"\r\n", 1)[1] == raw  # our Received line, then the message byte for byte


FAULTS = {
    "short write then ENOSPC": (lambda f, s: f.short_write_then_enospc(), "452 4.3.1"),
    "EIO on fdatasync": (lambda f, s: f.sync_error(), "451 4.3.0"),
    "database disk full at COMMIT": (lambda f, s: f.commit_disk_full(s.engine), "452 4.3.1"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_lmtp_fault_is_temporary_and_acknowledged_mail_survives(server, monkeypatch, fault):
    arm, answer = FAULTS[fault]
    srv = server["srv"]
    acked = []
    for i in range(2):
        assert lmtp_send(srv, _msg(i), [ADDRESS])[0][0] == 250
        acked.append(_msg(i))
    f = Faults(monkeypatch)
    arm(f, srv.store)
    (code, text), = lmtp_send(srv, _msg(50), [ADDRESS])
    assert f.fired == 1
    assert f"{code} {text.decode()}".startswith(answer), (code, text)
    if code == 452:
        assert b"Insufficient system storage" in text
    for i in range(2, 5):  # "space is back"
        assert lmtp_send(srv, _msg(i), [ADDRESS])[0][0] == 250
        acked.append(_msg(i))
    check_inbox(srv, acked)
    assert len(every_stored_email(srv.store)) == len(acked)
    srv = restart(server)
    check_inbox(srv, acked)
    assert lmtp_send(srv, _msg(9), [ADDRESS])[0][0] == 250
    check_inbox(srv, [*acked, _msg(9)])


def test_lmtp_answers_each_recipient_for_itself(server, monkeypatch):
    """The disk refuses one recipient's copy only: that recipient gets 452 and nothing, the other 250 and the
    message. (The recipients' copies are stored at once, so which of them meets the refusal is not fixed.)"""
    srv = server["srv"]
    f = Faults(monkeypatch)
    f.short_write_then_enospc()
    replies = lmtp_send(srv, _msg(1), [ADDRESS, BOB])
    assert f.fired == 1
    assert sorted(c for c, _ in replies) == [250, 452]
    refused, stored = (ADDRESS, BOB) if replies[0][0] == 452 else (BOB, ADDRESS)
    assert next(text for c, text in replies if c == 452).startswith(b"4.3.1")
    check_inbox(srv, [], refused)
    check_inbox(srv, [_msg(1)], stored)
    assert lmtp_send(srv, _msg(2), [ADDRESS, BOB]) == [(250, b"2.0.0 Delivered")] * 2
    srv = restart(server)
    check_inbox(srv, [_msg(2)], refused)
    check_inbox(srv, [_msg(1), _msg(2)], stored)
