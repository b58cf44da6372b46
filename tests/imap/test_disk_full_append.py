"""Issue 8, item 1 through IMAP APPEND (single and MULTIAPPEND): a full disk answers ``NO [UNAVAILABLE]`` with a
plain reason (not ``[SERVERBUG]``), stores nothing, and every appended message reads back byte-exact with
``UID FETCH n BODY[]``, also after a restart. Faults are injected into the real server (a thread of this
process). SQLite and PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.imap.e2e_util import Raw, login, no_delay, start_server, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread
from tests.store.storage_faults import Faults, every_stored_email

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture
def server(tmp_path, db_url):  # noqa: ANN001, ANN201
    holder = {"srv": start_server(tmp_path, db_url, jmap__listen=None, lmtp__listen=None, imap__imaps=None)}
    yield holder
    holder["srv"].stop()


def restart(holder):  # noqa: ANN001, ANN201
    holder["srv"].stop()
    holder["srv"] = ServerThread(holder["srv"].config).start()
    no_delay(holder["srv"].runtime.auth)
    return holder["srv"]


def _msg(i: int) -> bytes:
    return simple(i, body="\r\n".join(f"append {i} line {n} " + "a" * 60 for n in range(200 + i)))


def fetch_all(srv) -> list[bytes]:  # noqa: ANN001
    m = login(srv)
    try:
        assert m.select("INBOX", readonly=True)[0] == "OK"
        typ, data = m.uid("FETCH", "1:*", "(BODY[])")
        assert typ == "OK"
        return [d[1] for d in data if isinstance(d, tuple)]
    finally:
        m.logout()


def append(srv, raw: bytes) -> tuple[str, bytes]:  # noqa: ANN001
    m = login(srv)
    try:
        typ, data = m.append("INBOX", None, None, raw)
        return typ, data[0]
    finally:
        m.logout()


FAULTS = {
    "short write then ENOSPC": (lambda f, s: f.short_write_then_enospc(), b"disk space"),
    "EIO on fdatasync": (lambda f, s: f.sync_error(), b"cannot write"),
    "database disk full at INSERT": (lambda f, s: f.insert_disk_full(s.engine, "emails"), b"disk space"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_append_on_a_failing_disk_says_unavailable(server, monkeypatch, fault):
    arm, reason = FAULTS[fault]
    srv = server["srv"]
    acked = []
    for i in range(2):
        assert append(srv, _msg(i))[0] == "OK"
        acked.append(_msg(i))
    f = Faults(monkeypatch)
    arm(f, srv.store)
    typ, text = append(srv, _msg(50))
    assert f.fired == 1
    assert typ == "NO" and text.startswith(b"[UNAVAILABLE] "), text
    assert reason in text and b"try again later" in text and b"SERVERBUG" not in text
    for i in range(2, 5):
        assert append(srv, _msg(i))[0] == "OK"
        acked.append(_msg(i))
    assert fetch_all(srv) == acked
    assert sorted(every_stored_email(srv.store)) == sorted(acked)
    srv = restart(server)
    assert fetch_all(srv) == acked
    assert append(srv, _msg(9))[0] == "OK"
    assert fetch_all(srv) == [*acked, _msg(9)]


def test_multiappend_on_a_full_disk_stores_none_of_them(server, monkeypatch):
    srv = server["srv"]
    first, second = _msg(1), _msg(2)
    raw = Raw(srv.imap_port)
    try:
        assert raw.cmd("L", 'LOGIN alice@example.test "correct horse battery staple"')[-1].startswith(b"L OK")
        f = Faults(monkeypatch)
        f.short_write_then_enospc()
        cmd = (b"A1 APPEND INBOX {%d+}\r\n" % len(first) + first + b" {%d+}\r\n" % len(second) + second)
        answer = raw.cmd("A1", cmd[3:])[-1]
        assert f.fired == 1
        assert answer.startswith(b"A1 NO [UNAVAILABLE] "), answer
        answer = raw.cmd("A2", cmd[3:])[-1]
        assert answer.startswith(b"A2 OK [APPENDUID "), answer
    finally:
        raw.close()
    assert fetch_all(srv) == [first, second]
    srv = restart(server)
    assert fetch_all(srv) == [first, second]
