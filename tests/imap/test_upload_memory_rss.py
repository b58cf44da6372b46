"""Issue 8 item 2, measured: twelve connections each sending a 60 MiB ``APPEND Drafts {62914560+}`` to a real
``janusmail serve`` process grow its resident memory by less than 64 MiB, while the literals are stalled before
their final CRLF and after they completed; and every message is then stored byte-exact.

Before the fix the same load grew RSS by about 1.4 GiB (each literal held in memory about twice).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest
import sqlalchemy as sa

from janusmail.store.schema import blobs, emails
from janusmail.store.store import Store
from tests.procmem import MIB, ProcMem, wait_for
from tests.serverutil import janusmail_cmd, make_config, port_of, spawn_server

pytestmark = pytest.mark.slow

ADDRESS = "rss@example.test"
PASSWORD = "rss-password-1"
CONNECTIONS = 12
SIZE = 62914560  # 60 MiB, as in the issue
AIM = 64 * MIB


class Client:
    """A blocking IMAP client that sends exactly what it is told."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self.buf = b""
        assert self.line().startswith(b"* OK")

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def until(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            lines.append(self.line())
            if lines[-1].startswith(tag + b" "):
                return lines

    def cmd(self, tag: bytes, text: bytes) -> list[bytes]:
        self.sock.sendall(tag + b" " + text + b"\r\n")
        return self.until(tag)


def payload() -> bytes:
    """60 MiB of 76-character lines (a random MiB, repeated)."""
    import base64

    block = base64.b64encode(os.urandom(57 * 14_000))
    lines = b"\r\n".join(block[i : i + 76] for i in range(0, len(block), 76)) + b"\r\n"
    return (lines * (SIZE // len(lines) + 1))[:SIZE]


def header(n: int) -> bytes:
    # An attachment-like body, sent 7bit. Not base64: the MIME parser decodes a whole base64 part to learn its
    # size (a transient ~400 MiB for 60 MiB); not text: a text body feeds the search index, whose memory the
    # store keeps for a while (~1.4 MiB per message). Both are store-side costs, not the upload path measured
    # here, and both are reported separately.
    return (
        b"From: sender@example.test\r\nTo: rss@example.test\r\nSubject: big draft %d\r\n"
        b"Message-ID: <rss%d@example.test>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" % (n, n)
    )


def run_all(fn, n: int) -> list:  # noqa: ANN001
    """fn(i) for i in range(n), each in its own thread; re-raises the first failure."""
    results: list = [None] * n
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    if errors:
        raise errors[0]
    return results


def stored_digests(data, db) -> dict[str, int]:  # noqa: ANN001
    """{sha256 of the bytes actually in the packs: size} for every email, re-read from disk."""
    store = Store.open(data, db)
    try:
        with store.read() as conn:
            rows = conn.execute(sa.select(blobs.c.size, blobs.c.pack, blobs.c.offset)
                                .join(emails, emails.c.blob_id == blobs.c.id)).all()
        out = {}
        for r in rows:
            raw = store.packs.read(r.pack, r.offset, r.size)
            out[hashlib.sha256(raw).hexdigest()] = len(raw)
            del raw
        return out
    finally:
        store.close()


@pytest.mark.timeout(600)
def test_twelve_stalled_60mib_appends_grow_rss_by_less_than_64mib(tmp_path) -> None:  # noqa: ANN001
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", ADDRESS, "--password", PASSWORD)
    cfg = make_config(data, None, jmap__listen=None, lmtp__listen=None)
    proc = spawn_server(data, cfg)  # default [spool] settings: this is what an operator gets
    clients: list[Client] = []
    try:
        mem = ProcMem(proc.pid)
        port = port_of(cfg.imap.listen)
        for _ in range(CONNECTIONS):  # logins first (argon2 takes 64 MiB per hash, briefly)
            c = Client(port)
            assert c.cmd(b"L", b'LOGIN %s "%s"' % (ADDRESS.encode(), PASSWORD.encode()))[-1].startswith(b"L OK")
            clients.append(c)
        warm = header(99) + b"QUJD\r\n" * 200_000  # one spooled APPEND first: every code path loaded once
        assert clients[0].cmd(b"W", b"APPEND INBOX {%d+}\r\n%b" % (len(warm), warm))[-1].startswith(b"W OK")

        body = payload()
        expected: dict[str, int] = {}
        for i in range(CONNECTIONS):
            head = header(i)
            digest = hashlib.sha256(head)
            digest.update(memoryview(body)[: SIZE - len(head)])
            expected[digest.hexdigest()] = SIZE

        base = mem.rss()
        peak_ok = mem.reset_peak()
        written0 = mem.written()

        def send(i: int) -> None:
            head = header(i)
            sock = clients[i].sock
            sock.sendall(b"A APPEND Drafts {%d+}\r\n" % SIZE + head)
            sock.sendall(memoryview(body)[: SIZE - len(head)])  # everything but the final CRLF

        run_all(send, CONNECTIONS)
        # The server has read every literal once it has written them all to its spool files.
        wait_for(lambda: mem.written() - written0 >= CONNECTIONS * SIZE, "the literals to reach the spool")
        spooled = mem.open_files_under(str(data / "tmp"))
        stalled_rss = mem.rss()
        stalled_peak = mem.peak() if peak_ok else stalled_rss
        assert sorted(spooled) == [SIZE] * CONNECTIONS, spooled  # held in (deleted) files, not in memory

        if peak_ok:
            mem.reset_peak()

        def finish(i: int) -> bytes:
            clients[i].sock.sendall(b"\r\n")
            return clients[i].until(b"A")[-1]

        answers = run_all(finish, CONNECTIONS)
        assert all(a.startswith(b"A OK [APPENDUID") for a in answers), answers
        ingest_peak = mem.peak() if peak_ok else None
        wait_for(lambda: not mem.open_files_under(str(data / "tmp")), "the spool files to be closed")
        after_rss = mem.rss()
        after = mem.status()

        report = (
            f"baseline {base / MIB:.1f} MiB; stalled: RSS +{(stalled_rss - base) / MIB:.1f} MiB, "
            f"peak +{(stalled_peak - base) / MIB:.1f} MiB; storing: peak "
            f"+{((ingest_peak or base) - base) / MIB:.1f} MiB; after: RSS +{(after_rss - base) / MIB:.1f} MiB "
            f"(anon {after['RssAnon'] / MIB:.1f} MiB, file {after['RssFile'] / MIB:.1f} MiB)"
        )
        print(report)
        assert stalled_peak - base < AIM, report
        assert after_rss - base < AIM, report
        # While storing, one message at a time is handed to the store as a read-only map of its spool file: its
        # pages count in RSS while mapped (file-backed page cache, not heap), and the MIME scan and the pack
        # writer read it in place without copying it. So the peak is the aim plus at most one mapped message
        # (measured +67 MiB, of which ~60 MiB file pages; +129 MiB when the parser still copied it, +729 MiB
        # without the load gate that maps one message at a time).
        if ingest_peak is not None:
            assert ingest_peak - base < AIM + SIZE, report

        out = clients[0].cmd(b"S", b"SELECT Drafts")
        assert any(b"12 EXISTS" in line for line in out), out
        out = clients[0].cmd(b"F", b"FETCH 1:* (RFC822.SIZE)")
        assert sum(b"RFC822.SIZE %d" % SIZE in line for line in out) == CONNECTIONS, out
    finally:
        for c in clients:
            c.sock.close()
        proc.terminate()
        proc.wait(60)
    stored = stored_digests(data, None)
    for digest, size in expected.items():
        assert stored.get(digest) == size, "a message was not stored byte-exact"
