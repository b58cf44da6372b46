"""Issue 8 item 2 (IMAP side): APPEND literals above ``[spool] threshold`` go to spool files as they arrive, one
server-wide budget of bytes in flight refuses what would not fit (before the data is read), and every way a
command ends gives its spool and its share of the budget back. On SQLite and PostgreSQL.

The RSS measurement with twelve 60 MiB APPENDs against a real server process is in test_upload_memory_rss.py.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import time
from pathlib import Path

import pytest

from janusmail import spool as spoolmod
from janusmail.spool import FLUSH_BYTES
from tests.imap.e2e_util import Raw, serve
from tests.imap.msg_support import (
    ADDRESS,
    PASSWORD,
    fetch_lines,
    runtime_fixture,
    session,
    tagged,
    use_cheap_argon2,
)

mrt = pytest.fixture(runtime_fixture)
cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

BIG = 1_500_000  # well above the 256 KiB default threshold


def message(n: int, size: int = BIG) -> bytes:
    head = b"From: a@example.test\r\nSubject: big %d\r\nMessage-ID: <big%d@example.test>\r\n\r\n" % (n, n)
    line = b"%06d abcdefghijklmnopqrstuvwxyz0123456789\r\n" % n
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[: size - len(head)]


def spooler(rt):  # noqa: ANN001, ANN201
    return rt.spooler


def spool_names(rt) -> list[str]:  # noqa: ANN001
    return os.listdir(Path(rt.config.data_dir) / "tmp")


async def feed(h, data: bytes) -> bytes:  # noqa: ANN001
    """Feed like the adapter does: bytes in, then the spool drain, then what was answered."""
    await h.session.feed(data)
    await h.session.literals.drain()
    return h.session.take_output()


async def test_large_literals_stream_to_a_spool_and_are_stored_byte_exact(mrt) -> None:  # noqa: ANN001
    h = await session(mrt, mailbox=None)
    raw = message(1)
    out = await feed(h, b"A APPEND INBOX {%d+}\r\n" % len(raw))
    assert out == b""
    sp = h.session.literals.active[0]
    assert sp.on_disk and spooler(mrt).budget.used == len(raw)
    for i in range(0, len(raw), 65536):  # arriving like network reads: never more than a flush in memory
        await feed(h, raw[i : i + 65536])
        assert sp.buffered < FLUSH_BYTES + 65536
        assert h.session.parser.buffered == 0
    assert sp.size == len(raw)
    out = await feed(h, b"\r\n")
    assert re.search(rb"A OK \[APPENDUID \d+ 1\]", out), out
    # synchronizing: "+" only once the budget has room, then the same streaming
    raw2 = message(2)
    out = await feed(h, b"B APPEND INBOX {%d}\r\n" % len(raw2))
    assert out.startswith(b"+ "), out
    out = await feed(h, raw2 + b"\r\n")
    assert b"B OK [APPENDUID" in out, out
    # MULTIAPPEND mixing a small (in memory) and a large (spooled) literal
    small = b"Subject: small\r\n\r\nhello\r\n"
    raw3 = message(3)
    out = await feed(h, b"C APPEND INBOX {%d+}\r\n%b {%d+}\r\n%b\r\n" % (len(small), small, len(raw3), raw3))
    assert re.search(rb"C OK \[APPENDUID \d+ 3:4\]", out), out
    assert spooler(mrt).budget.used == 0 and spooler(mrt).gate.used == 0
    assert h.session.literals.active == []
    assert spool_names(mrt) == []  # anonymous files: nothing named is ever left behind
    await h.send("S SELECT INBOX")
    out = await h.send("F FETCH 1:4 (BODY.PEEK[])")
    lines = fetch_lines(out)
    for seq, want in ((1, raw), (2, raw2), (3, small), (4, raw3)):
        assert want in lines[seq]
    await h.close()


async def test_many_small_literals_in_one_command_do_not_pile_up_in_memory(mrt) -> None:  # noqa: ANN001
    # Each message is under the spool threshold, but one command may keep only ~1 MiB in memory: the rest
    # of a big MULTIAPPEND goes to spool files too.
    h = await session(mrt, mailbox=None)
    raws = [message(i, 200_000) for i in range(8)]
    cmd = b"A APPEND INBOX" + b"".join(b" {%d+}\r\n%b" % (len(r), r) for r in raws)
    await feed(h, cmd)
    spools = h.session.literals.active
    assert len(spools) >= 3 and all(sp.on_disk and sp.buffered == 0 for sp in spools)
    out = await feed(h, b"\r\n")
    assert re.search(rb"A OK \[APPENDUID \d+ 1:8\]", out), out
    assert spooler(mrt).budget.used == 0
    await h.send("S SELECT INBOX")
    lines = fetch_lines(await h.send("F FETCH 1:8 (BODY.PEEK[])"))
    assert all(raws[i] in lines[i + 1] for i in range(8))
    await h.close()


async def test_budget_refuses_before_the_data_is_read(mrt) -> None:  # noqa: ANN001
    mrt.config.spool.max_in_flight = 2 * BIG + 100
    h1 = await session(mrt, mailbox=None)
    h2 = await session(mrt, mailbox=None)
    raw1, raw2 = message(1), message(2)
    # h1 holds a large literal half received; h2 takes the rest of the budget
    await feed(h1, b"A APPEND INBOX {%d+}\r\n" % len(raw1) + raw1[:1000])
    out = await feed(h2, b"B APPEND INBOX {%d}\r\n" % len(raw2))
    assert out.startswith(b"+ ")
    assert spooler(mrt).budget.used == len(raw1) + len(raw2)
    # a third: synchronizing -> NO [LIMIT] instead of "+", the client sends nothing, the session goes on
    h3 = await session(mrt, mailbox=None)
    out = await feed(h3, b"C APPEND INBOX {%d}\r\n" % BIG)
    assert tagged(out, "C").startswith(b"C NO [LIMIT]"), out
    assert b"+ " not in out
    assert b"D OK" in await h3.send("D NOOP")
    # non-synchronizing -> BAD [LIMIT]; its data (which would look like commands) is read and thrown away
    evil = (b"X LOGOUT\r\n" * (BIG // 10))[:BIG]
    out = await feed(h3, b"E APPEND INBOX {%d+}\r\n" % len(evil) + evil + b" {3+}\r\nabc\r\nF NOOP\r\n")
    assert tagged(out, "E").startswith(b"E BAD [LIMIT]"), out[:200]
    assert b"F OK" in out and b"BYE" not in out and h3.session.state == "auth"
    assert spooler(mrt).budget.used == len(raw1) + len(raw2)
    # the first two finish: their budget comes back, and the third client gets in
    out = await feed(h1, raw1[1000:] + b"\r\n")
    assert b"A OK [APPENDUID" in out
    out = await feed(h2, raw2 + b"\r\n")
    assert b"B OK [APPENDUID" in out
    assert spooler(mrt).budget.used == 0
    out = await feed(h3, b"G APPEND INBOX {%d}\r\n" % BIG)
    assert out.startswith(b"+ ")
    out = await feed(h3, message(7) + b"\r\n")
    assert b"G OK [APPENDUID" in out
    for h in (h1, h2, h3):
        await h.close()
    assert spooler(mrt).budget.used == 0


async def test_large_literal_outside_append_and_over_appendlimit(mrt) -> None:  # noqa: ANN001
    h = await session(mrt, mailbox=None)
    needle = b"n" * 300_000
    out = await feed(h, b"A SEARCH TEXT {%d+}\r\n%b\r\nB NOOP\r\n" % (len(needle), needle))
    assert tagged(out, "A").startswith(b"A BAD [TOOBIG]") and b"B OK" in out
    # over APPENDLIMIT: refused before the continuation, nothing read, nothing reserved
    limit = mrt.config.imap.max_append_size
    out = await feed(h, b"C APPEND INBOX {%d}\r\n" % (limit + 1))
    assert b"[TOOBIG]" in tagged(out, "C") and b"+ " not in out
    assert spooler(mrt).budget.used == 0
    assert b"D OK" in await h.send("D NOOP")
    await h.close()


async def test_disconnect_mid_literal_gives_everything_back(mrt) -> None:  # noqa: ANN001
    h = await session(mrt, mailbox=None)
    raw = message(1)
    await feed(h, b"A APPEND INBOX {%d+}\r\n" % len(raw) + raw[: len(raw) // 2])
    sp = h.session.literals.active[0]
    assert spooler(mrt).budget.used == len(raw) and sp.size == len(raw) // 2
    await h.close()
    assert spooler(mrt).budget.used == 0 and spooler(mrt).gate.used == 0
    assert h.session.literals.active == []


async def test_spool_write_failure_is_unavailable_not_a_crash(mrt, monkeypatch) -> None:  # noqa: ANN001
    h = await session(mrt, mailbox=None)
    real_write = os.write

    def full(fd: int, data) -> int:  # noqa: ANN001
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spoolmod.os, "write", full)
    raw = message(1)
    out = await feed(h, b"A APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
    assert tagged(out, "A").startswith(b"A NO [UNAVAILABLE]"), out
    monkeypatch.setattr(spoolmod.os, "write", real_write)
    assert spooler(mrt).budget.used == 0
    out = await h.send("S STATUS INBOX (MESSAGES)")
    assert b"MESSAGES 0" in out
    out = await feed(h, b"B APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
    assert b"B OK [APPENDUID" in out
    await h.close()


# -- through the real server ------------------------------------------------------------------------------


@pytest.fixture
def stall_server(tmp_path):  # noqa: ANN001, ANN201
    yield from serve(tmp_path, spool__stall_timeout=1)


def _login(port: int) -> Raw:
    c = Raw(port)
    assert c.cmd("L", f'LOGIN {ADDRESS} "{PASSWORD}"')[-1].startswith(b"L OK")
    return c


def _wait(predicate, what: str, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_e2e_stalled_literal_is_cut_off_and_its_budget_freed(stall_server) -> None:  # noqa: ANN001
    srv = stall_server
    budget = srv.runtime.spooler.budget
    idle = _login(srv.imap_port)  # logged in and silent all along
    c = _login(srv.imap_port)
    size = 60 * 1024 * 1024
    c.send(b"A APPEND Drafts {%d+}\r\n" % size + b"x" * 200_000)  # then nothing: a stalled upload
    _wait(lambda: budget.used == size, "the literal to be reserved")
    c.sock.settimeout(30)
    line = c.line()
    assert line.startswith(b"* BYE"), line
    _wait(lambda: budget.used == 0, "the reservation to be released")
    c.close()
    # the silent session outlived the stall timeout: it only applies while a literal is arriving
    raw = message(9)
    idle.sock.settimeout(30)
    assert idle.cmd("B", b"APPEND Drafts {%d+}\r\n%b" % (len(raw), raw))[-1].startswith(b"B OK [APPENDUID")
    idle.close()


@pytest.fixture
def any_server(tmp_path, db_url):  # noqa: ANN001, ANN201
    yield from serve(tmp_path, db_url)


def test_e2e_large_append_over_the_wire_is_byte_exact(any_server) -> None:  # noqa: ANN001
    srv = any_server
    c = _login(srv.imap_port)
    raw = message(5, 5_000_000)
    c.send(b"A APPEND INBOX {%d}\r\n" % len(raw))
    assert c.line().startswith(b"+ ")
    for i in range(0, len(raw), 100_000):
        c.send(raw[i : i + 100_000])
    c.send(b"\r\n")
    assert c.until("A")[-1].startswith(b"A OK [APPENDUID")
    _wait(lambda: srv.runtime.spooler.budget.used == 0, "the spool to be released")  # right after the OK
    c.cmd("S", "SELECT INBOX")
    c.send(b"F FETCH 1 (BODY.PEEK[])\r\n")
    head = c.line()
    m = re.search(rb"\{(\d+)\}$", head)
    assert m and int(m.group(1)) == len(raw), head
    got = c.buf
    while len(got) < len(raw):
        got += c.sock.recv(1 << 20)
    assert hashlib.sha256(got[: len(raw)]).digest() == hashlib.sha256(raw).digest()
    c.buf = got[len(raw) :]
    assert c.until("F")[-1].startswith(b"F OK")
    c.close()


def test_spool_directory_is_cleaned_at_start(tmp_path) -> None:  # noqa: ANN001
    tmp = tmp_path / "data" / "tmp"
    tmp.mkdir(parents=True)
    stale = tmp / "spool-leftover"
    stale.write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    other = tmp / "not-ours"
    other.write_bytes(b"keep")
    for _srv in serve(tmp_path):
        assert not stale.exists()
        assert other.exists()
