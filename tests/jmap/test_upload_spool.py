"""Issue 8 item 2 (JMAP side): uploads are streamed to a spool file, never read whole into memory; the server-wide
in-flight budget (shared with IMAP literals) refuses what would not fit with a 503 problem-details answer and
Retry-After; a stalled upload ends with 408 and gives its share back. Real server, real HTTP.

The RSS measurement against a real server process is in test_upload_spool_rss.py.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from janusmail.auth import make_credentials
from tests.serverutil import ServerThread, make_config

ADDRESS = "alice@example.test"
PASSWORD = "alice-secret-1"


def start(tmp_path, db_url: str | None = None, **overrides) -> ServerThread:  # noqa: ANN001, ANN003
    cfg = make_config(tmp_path / "data", db_url, imap__imaps=None, lmtp__listen=None, **overrides)
    srv = ServerThread(cfg).start()
    h, s = make_credentials(PASSWORD)
    srv.account_id = srv.store.accounts.create(ADDRESS, h, s).id  # type: ignore[attr-defined]
    return srv


@pytest.fixture
def server(tmp_path, db_url) -> Iterator[ServerThread]:  # noqa: ANN001
    srv = start(tmp_path, db_url)
    yield srv
    srv.stop()


@pytest.fixture
def tight(tmp_path) -> Iterator[ServerThread]:  # noqa: ANN001
    """A server whose in-flight budget takes 3 MB, and whose stall timeout is one second."""
    srv = start(tmp_path, spool__max_in_flight=3_000_000, spool__stall_timeout=1)
    yield srv
    srv.stop()


def http(srv: ServerThread) -> httpx.Client:
    return httpx.Client(base_url=srv.config.public_url, auth=(ADDRESS, PASSWORD), timeout=60)


def url(srv: ServerThread) -> str:
    return f"/jmap/upload/{srv.account_id}"  # type: ignore[attr-defined]


def _wait(predicate, what: str, timeout: float = 30.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def chunks(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_large_upload_is_spooled_and_stored_byte_exact(server, declared) -> None:  # noqa: ANN001
    data = os.urandom(5_000_000)
    headers = {"Content-Type": "application/pdf"}
    if declared:
        headers["Content-Length"] = str(len(data))
    with http(server) as c:
        r = c.post(url(server), content=chunks(data), headers=headers)
        assert r.status_code == 201, r.text
        up = r.json()
        assert up["size"] == len(data)
        got = c.get(f"/jmap/download/{server.account_id}/{up['blobId']}/x.pdf?type=application/pdf")
        assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    sp = server.runtime.spooler
    _wait(lambda: sp.budget.used == 0 and sp.gate.used == 0, "the spool to be given back")
    assert os.listdir(sp.directory) == []  # anonymous spool files: nothing named left behind


def test_budget_refusal_is_503_with_retry_after(tight) -> None:  # noqa: ANN001
    with http(tight) as c:
        r = c.post(url(tight), content=b"x" * 3_500_000)  # declared length over what is left
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) > 0
        assert r.json()["status"] == 503 and "try again later" in r.json()["detail"]
        # without a Content-Length it is counted as it arrives, and refused when it passes the budget
        r = c.post(url(tight), content=chunks(b"y" * 3_500_000))
        assert r.status_code == 503, r.text
    with http(tight) as c:  # a fresh connection: the refused body was not read to its end
        r = c.post(url(tight), content=b"z" * 2_000_000)
        assert r.status_code == 201, r.text
    _wait(lambda: tight.runtime.spooler.budget.used == 0, "the budget to be given back")


def test_budget_is_shared_with_imap_literals(tight) -> None:  # noqa: ANN001
    budget = tight.runtime.spooler.budget
    sock = socket.create_connection(("127.0.0.1", tight.imap_port), timeout=30)
    try:
        sock.recv(4096)
        sock.sendall(f'L LOGIN {ADDRESS} "{PASSWORD}"\r\n'.encode())
        buf = b""
        while b"L OK" not in buf:
            buf += sock.recv(4096)
        sock.sendall(b"A APPEND INBOX {2500000+}\r\n" + b"q" * 100_000)  # holds 2.5 MB of the 3 MB budget
        _wait(lambda: budget.used == 2_500_000, "the IMAP literal to be reserved")
        with http(tight) as c:
            r = c.post(url(tight), content=b"w" * 1_000_000)
            assert r.status_code == 503, r.text
    finally:
        sock.close()
    _wait(lambda: budget.used == 0, "the IMAP reservation to be released at disconnect")
    with http(tight) as c:
        assert c.post(url(tight), content=b"w" * 1_000_000).status_code == 201


def _raw_post(srv: ServerThread, length: int, body: bytes) -> socket.socket:
    """Send an upload request's head and the first ``body`` octets of a ``length``-octet body, by hand."""
    import base64

    host, port = "127.0.0.1", int(srv.config.jmap.listen.rsplit(":", 1)[1])
    sock = socket.create_connection((host, port), timeout=30)
    auth = base64.b64encode(f"{ADDRESS}:{PASSWORD}".encode()).decode()
    head = (
        f"POST {url(srv)} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def _status_line(sock: socket.socket) -> bytes:
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer.split(b"\r\n", 1)[0]


def test_stalled_upload_is_408_and_gives_its_share_back(tight) -> None:  # noqa: ANN001
    budget = tight.runtime.spooler.budget
    sock = _raw_post(tight, 2_000_000, b"s" * 300_000)  # then silence
    try:
        _wait(lambda: budget.used == 2_000_000, "the upload to be reserved")
        assert _status_line(sock).startswith(b"HTTP/1.1 408")
    finally:
        sock.close()
    _wait(lambda: budget.used == 0, "the stalled upload's share to be released")


def test_upload_over_max_size_is_413_before_reading(tight) -> None:  # noqa: ANN001
    limit = 50_000_000  # maxSizeUpload default
    sock = _raw_post(tight, limit + 1, b"")  # the body is never sent: the answer must come anyway
    try:
        assert _status_line(sock).startswith(b"HTTP/1.1 413")
    finally:
        sock.close()
    assert tight.runtime.spooler.budget.used == 0
