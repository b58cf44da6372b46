"""Big submissions are spooled, not held: two concurrent 32 MB messages sent over SMTP submission to a real
``janusmail serve`` process, stalled before their end-of-data dot, grow its resident memory by less than 48 MiB
(each body is in a spool file under DIR/tmp), and once finished both are stored byte-exact in Sent."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import threading

import httpx
import pytest

from janusmail.spool import FLUSH_BYTES
from tests.procmem import MIB, ProcMem, wait_for
from tests.serverutil import free_port, janusmail_cmd, make_config, spawn_server

pytestmark = pytest.mark.slow

ADDRESS = "rss@example.test"
PASSWORD = "rss-password-1"
MESSAGES = 2
AIM = 48 * MIB


def _message(i: int) -> bytes:
    head = (f"From: {ADDRESS}\r\nTo: someone@remote.test\r\nSubject: big {i}\r\n"
            f"Message-ID: <big{i}@example.test>\r\nContent-Type: application/octet-stream\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n").encode()
    data = base64.encodebytes(os.urandom(24_000_000)).replace(b"\n", b"\r\n")  # about 32 MB of 76-char lines
    return head + data


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=300)
        self.f = self.sock.makefile("rwb")
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        lines = [self.f.readline()]
        while lines[-1][3:4] == b"-":
            lines.append(self.f.readline())
        return b"".join(lines)

    def cmd(self, data: bytes) -> bytes:
        self.f.write(data)
        self.f.flush()
        return self.reply()

    def close(self) -> None:
        self.f.close()
        self.sock.close()


@pytest.mark.timeout(600)
def test_two_stalled_32mb_submissions_grow_rss_by_less_than_48mib(tmp_path) -> None:  # noqa: ANN001
    data_dir = tmp_path / "d"
    janusmail_cmd(data_dir, "user", "add", ADDRESS, "--password", PASSWORD)
    port = free_port()
    (data_dir / "janusmail.toml").write_text(f'[submission]\nlisten = "127.0.0.1:{port}"\n')
    cfg = make_config(data_dir, None, imap__listen=None, lmtp__listen=None)
    proc = spawn_server(data_dir, cfg)
    bodies = [_message(i) for i in range(MESSAGES)]
    release = threading.Event()
    answers: list[bytes | BaseException | None] = [None] * MESSAGES
    threads: list[threading.Thread] = []
    try:
        mem = ProcMem(proc.pid)
        plain = base64.b64encode(f"\0{ADDRESS}\0{PASSWORD}".encode())

        def submit(i: int) -> None:
            c = Client(port)
            try:
                assert c.cmd(b"EHLO rss.test\r\n").startswith(b"250")
                assert c.cmd(b"AUTH PLAIN " + plain + b"\r\n").startswith(b"235")
                assert c.cmd(f"MAIL FROM:<{ADDRESS}>\r\n".encode()).startswith(b"250")
                assert c.cmd(b"RCPT TO:<someone@remote.test>\r\n").startswith(b"250")
                assert c.cmd(b"DATA\r\n").startswith(b"354")
                c.f.write(bodies[i])
                c.f.flush()
                release.wait(300)  # stall before the end of data until the memory was measured
                answers[i] = c.cmd(b".\r\n")
            except BaseException as exc:  # noqa: BLE001 - checked below
                answers[i] = exc
            finally:
                c.close()

        warm = Client(port)  # every code path of a submission loaded once
        assert warm.cmd(b"EHLO rss.test\r\n").startswith(b"250")
        warm.close()
        base = mem.rss()
        written0 = mem.written()
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(MESSAGES)]
        for t in threads:
            t.start()

        def all_spooled() -> bool:
            files = mem.open_files_under(str(data_dir / "tmp"))
            return len(files) == MESSAGES and all(s >= len(b) - 2 * FLUSH_BYTES for s, b in zip(
                sorted(files), sorted(bodies, key=len), strict=True))

        total = sum(len(b) for b in bodies)
        wait_for(lambda: mem.written() - written0 >= total - MESSAGES * 2 * FLUSH_BYTES and all_spooled(),
                 "the messages to spool")
        stalled_rss = mem.rss()
        release.set()
        for t in threads:
            t.join(300)
        assert all(isinstance(a, bytes) and a.startswith(b"250 2.0.0") for a in answers), answers
        after_rss = mem.rss()
        report = (f"baseline {base / MIB:.1f} MiB; stalled: RSS +{(stalled_rss - base) / MIB:.1f} MiB; "
                  f"after storing: RSS +{(after_rss - base) / MIB:.1f} MiB")
        print(report)
        assert stalled_rss - base < AIM, report
        with httpx.Client(base_url=cfg.public_url, auth=(ADDRESS, PASSWORD), timeout=120) as client:
            session = client.get("/.well-known/jmap").json()
            account = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]

            def call(method: str, args: dict) -> dict:
                body = {"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                        "methodCalls": [[method, {"accountId": account, **args}, "c"]]}
                return client.post("/jmap/api", json=body).json()["methodResponses"][0][1]

            for i, body in enumerate(bodies):
                ids = call("Email/query", {"filter": {"subject": f"big {i}"}})["ids"]
                assert len(ids) == 1
                blob = call("Email/get", {"ids": ids, "properties": ["blobId"]})["list"][0]["blobId"]
                digest = hashlib.sha256()
                with client.stream("GET", f"/jmap/download/{account}/{blob}/m.eml") as got:
                    assert got.status_code == 200
                    for part in got.iter_bytes():
                        digest.update(part)
                assert digest.digest() == hashlib.sha256(body).digest()
    finally:
        release.set()
        for t in threads:
            t.join(60)
        proc.terminate()
        proc.wait(60)
