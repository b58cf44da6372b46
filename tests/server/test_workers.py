"""``janusmail serve --workers 2`` as a real process tree: a write served by one worker reaches IDLE and JMAP
push in the other worker, and a worker killed with SIGKILL is replaced by one that serves and hears changes.

Which worker serves a connection is read from the kernel (tests/procworkers.py), so the tests need Linux; they
run on SQLite (the supervisor's change bus) and PostgreSQL (LISTEN/NOTIFY between workers).
"""

from __future__ import annotations

import base64
import imaplib
import os
import signal
import smtplib
import socket
import sys
import time
from collections.abc import Callable

import httpx
import pytest

from tests.mailgen import simple
from tests.procworkers import gone, serving_pid, worker_pids
from tests.serverutil import janusmail_cmd, make_config, port_of, spawn_server

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to tell workers apart")

ADDRESS = "w@example.test"
PASSWORD = "worker test password"
#: A safety net for things that should happen: generous, because a busy machine is slow, not broken.
WAIT = 60.0


def imap_on(port: int, pids: set[int], want: set[int]) -> tuple[int, imaplib.IMAP4]:
    """An IMAP connection served by one of ``want`` (connections that land elsewhere are closed again)."""
    deadline = time.monotonic() + WAIT
    while True:
        assert time.monotonic() < deadline, f"no connection was served by {want}"
        client = imaplib.IMAP4("127.0.0.1", port, timeout=WAIT)  # the greeting is read: accepted by now
        pid = serving_pid(client.sock, pids)
        if pid in want:
            return pid, client
        client.shutdown()


def two_workers(proc) -> set[int]:  # noqa: ANN001 - subprocess.Popen
    """The supervisor's two workers (it says ready only once both serve)."""
    pids = worker_pids(proc.pid)
    assert len(pids) == 2, pids
    return pids


def idle_until_exists(client: imaplib.IMAP4, count: int) -> None:
    """Read IDLE's untagged responses until ``* count EXISTS`` (the socket timeout is the safety net)."""
    while True:
        line = client.readline()
        assert line, "the connection closed while idling"
        if line.strip() == f"* {count} EXISTS".encode():
            return


def start_idle(client: imaplib.IMAP4) -> None:
    client.login(ADDRESS, PASSWORD)
    client.select("INBOX")
    client.send(b"I1 IDLE\r\n")
    assert client.readline().startswith(b"+")


@pytest.fixture
def server(tmp_path, db_url):  # noqa: ANN001, ANN201
    data = tmp_path / "d"
    janusmail_cmd(data, "user", "add", ADDRESS, "--password", PASSWORD, "--admin", db=db_url)
    # IDLE's fallback poll (30 s by default) out of the way: only a pushed change can pass within WAIT.
    (data / "janusmail.toml").write_text("[imap]\nidle_poll_interval = 3600\n")
    cfg = make_config(data, db_url, imap__imaps=None)
    proc = spawn_server(data, cfg, db_url, workers=2)
    try:
        yield proc, cfg
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(WAIT) == 0  # the supervisor stops its workers and exits cleanly
        finally:
            proc.kill()
            proc.wait()
        assert not worker_pids(proc.pid)


def admin_page_until(cfg, path: str, shows: Callable[[str], bool]) -> None:  # noqa: ANN001 - a Config
    """Ask the web admin (served by whichever worker) for ``path`` until ``shows(page)``, within the deadline:
    what another process publishes (janusmail.connections.publish_forever) arrives within seconds."""
    deadline = time.monotonic() + WAIT
    with httpx.Client(base_url=f"http://127.0.0.1:{port_of(cfg.jmap.listen)}", auth=(ADDRESS, PASSWORD),
                      timeout=WAIT) as web:
        while True:
            page = web.get(path)
            assert page.status_code == 200, page.text
            if shows(page.text):
                return
            assert time.monotonic() < deadline, page.text
            time.sleep(0.2)  # polling for a state another process publishes, with a deadline


def every_workers_sessions_in_the_admin(cfg, pids: set[int]) -> None:  # noqa: ANN001 - a Config
    """The connections page lists the logged-in IMAP sessions of both workers: two sessions of the account, one
    of them from the other worker (its label, "pid N", on the page)."""
    admin_page_until(cfg, "/admin/connections", lambda text: text.count(f">{ADDRESS}</a>") >= 2
                     and len({pid for pid in pids if f"pid {pid}</td>" in text}) == 1)


def every_workers_failed_logins_in_the_admin(cfg, accounts: list[str]) -> None:  # noqa: ANN001 - a Config
    """The auth-failures page shows the failed logins of both workers."""
    admin_page_until(cfg, "/admin/security", lambda text: all(f"<td>{a}</td>" in text for a in accounts))


def test_append_and_lmtp_in_one_worker_reach_an_idler_in_the_other(server) -> None:  # noqa: ANN001
    proc, cfg = server
    pids = two_workers(proc)
    port = port_of(cfg.imap.listen)
    idler_pid, idler = imap_on(port, pids, pids)
    other = pids - {idler_pid}
    _, writer = imap_on(port, pids, other)
    try:
        start_idle(idler)
        writer.login(ADDRESS, PASSWORD)
        every_workers_sessions_in_the_admin(cfg, {idler_pid, *other})
        for n, want in enumerate(({idler_pid}, other)):  # a failed login in each worker
            _, stranger = imap_on(port, pids, want)
            with pytest.raises(imaplib.IMAP4.error):
                stranger.login(f"ghost{n}@example.test", "not the password")
            stranger.shutdown()
        every_workers_failed_logins_in_the_admin(cfg, ["ghost0@example.test", "ghost1@example.test"])
        assert writer.append("INBOX", None, None, simple(1))[0] == "OK"
        idle_until_exists(idler, 1)
        deadline = time.monotonic() + WAIT
        while True:  # an LMTP session served by the other worker too
            assert time.monotonic() < deadline, "no LMTP connection was served by the other worker"
            lmtp = smtplib.LMTP("127.0.0.1", port_of(cfg.lmtp.listen), timeout=WAIT)
            if serving_pid(lmtp.sock, pids) in other:
                break
            lmtp.close()
        with lmtp:
            lmtp.sendmail("s@example.test", [ADDRESS], simple(2))
        idle_until_exists(idler, 2)
    finally:
        idler.shutdown()
        writer.logout()


def test_jmap_event_source_in_one_worker_hears_an_append_in_the_other(server) -> None:  # noqa: ANN001
    proc, cfg = server
    pids = two_workers(proc)
    sock = socket.create_connection(("127.0.0.1", port_of(cfg.jmap.listen)), timeout=WAIT)
    try:
        auth = base64.b64encode(f"{ADDRESS}:{PASSWORD}".encode()).decode()
        sock.sendall(f"GET /jmap/eventsource?types=*&closeafter=state&ping=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Basic {auth}\r\nAccept: text/event-stream\r\n\r\n".encode())
        stream = b""
        while b": janus push" not in stream:  # the stream is open: its notifier subscription exists
            chunk = sock.recv(65536)
            assert chunk, stream
            stream += chunk
        assert stream.startswith(b"HTTP/1.1 200"), stream
        push_pid = serving_pid(sock, pids)
        assert push_pid in pids
        _, writer = imap_on(port_of(cfg.imap.listen), pids, pids - {push_pid})
        try:
            writer.login(ADDRESS, PASSWORD)
            assert writer.append("INBOX", None, None, simple(1))[0] == "OK"
        finally:
            writer.logout()
        while b"event: state" not in stream:
            chunk = sock.recv(65536)
            assert chunk, stream
            stream += chunk
        assert b'"Email"' in stream.split(b"event: state", 1)[1]
    finally:
        sock.close()


def test_a_killed_worker_is_replaced_and_the_new_one_serves(server) -> None:  # noqa: ANN001
    proc, cfg = server
    pids = two_workers(proc)
    victim = min(pids)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + WAIT
    while True:
        now = worker_pids(proc.pid)
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, f"the killed worker was not replaced: {now}"
        time.sleep(0.05)
    (fresh,) = now - pids
    port = port_of(cfg.imap.listen)
    _, writer = imap_on(port, now, {fresh})  # the replacement accepts connections
    survivor_pid, idler = imap_on(port, now, now - {fresh})
    try:
        start_idle(idler)
        writer.login(ADDRESS, PASSWORD)
        assert writer.append("INBOX", None, None, simple(1))[0] == "OK"
        idle_until_exists(idler, 1)  # and its writes reach the surviving worker's sessions
    finally:
        idler.shutdown()
        writer.logout()


def test_workers_stop_when_the_supervisor_is_killed(tmp_path, db_url) -> None:  # noqa: ANN001
    data = tmp_path / "d"
    cfg = make_config(data, db_url, imap__imaps=None)
    proc = spawn_server(data, cfg, db_url, workers=2)
    try:
        pids = two_workers(proc)
    finally:
        proc.kill()  # no SIGTERM for the workers: they must notice on their own
        proc.wait()
    deadline = time.monotonic() + WAIT
    while not all(gone(pid) for pid in pids):
        assert time.monotonic() < deadline, "workers outlived their supervisor"
        time.sleep(0.05)
    with pytest.raises(ConnectionRefusedError):  # nobody holds the listening socket any more
        socket.create_connection(("127.0.0.1", port_of(cfg.imap.listen)), timeout=WAIT).close()
