"""``serve --workers 2 --metrics``: the supervisor serves the sum of both workers' metrics (prometheus-client's
multiprocess mode), and a worker that dies takes its open connections out of the gauge but not its commands
out of the counters.

Which worker serves a connection is read from the kernel (tests/procworkers.py): Linux only.
"""

from __future__ import annotations

import imaplib
import os
import signal
import smtplib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from janusmail.auth import passwords
from janusmail.store.store import Store
from tests.imap.e2e_util import CHEAP
from tests.observability.util import WAIT, Served, sample, serve, wait_for_sample
from tests.procworkers import serving_pid, worker_pids

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to tell workers apart")

ADDRESS = "workers@example.test"
PASSWORD = "workers-metrics-pw"
FETCHES = 3


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "janusmail.toml").write_text("[auth]\nlogin_delay_base = 0.0\nlogin_delay_max = 0.0\n")
    previous = passwords.set_hasher(CHEAP)
    try:
        store = Store.open(data)
        try:
            store.accounts.create(ADDRESS, *passwords.make_credentials(PASSWORD))
        finally:
            store.close()
    finally:
        passwords.set_hasher(previous)
    server = serve(data, workers=2, verbose=False)
    try:
        yield server
    finally:
        server.stop()


def imap_on(served: Served, pids: set[int], want: set[int]) -> tuple[int, imaplib.IMAP4]:
    """An IMAP connection served by one of ``want`` (connections that land elsewhere are closed again)."""
    deadline = time.monotonic() + WAIT
    while True:
        assert time.monotonic() < deadline, f"no connection was served by {want}"
        client = imaplib.IMAP4("127.0.0.1", served.port("imap"), timeout=WAIT)  # greeting read: accepted
        pid = serving_pid(client.sock, pids)
        if pid in want:
            return pid, client
        client.shutdown()


def test_the_supervisor_sums_both_workers(served: Served) -> None:
    with smtplib.LMTP("127.0.0.1", served.port("lmtp"), timeout=WAIT) as lmtp:
        lmtp.sendmail("a@example.test", [ADDRESS], b"Subject: hi\r\n\r\nbody\r\n")
    pids = worker_pids(served.proc.pid)
    assert len(pids) == 2, pids
    before = served.scrape()
    first, one = imap_on(served, pids, pids)
    second, two = imap_on(served, pids, pids - {first})
    for client in (one, two):
        client.login(ADDRESS, PASSWORD)
        client.select("INBOX")
        for _ in range(FETCHES):
            client.fetch("1", "(FLAGS)")
    after = served.scrape()

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("janusmail_imap_commands_total", command="FETCH", result="ok") == 2 * FETCHES
    assert delta("janusmail_imap_command_duration_seconds_count", command="FETCH") == 2 * FETCHES
    assert sample(after, "janusmail_connections_open", door="imap") == 2
    assert sample(after, "janusmail_store_accounts") == 1
    # a worker killed outright: the supervisor marks it dead, its connection leaves the gauge, its counts stay
    os.kill(first, signal.SIGKILL)
    wait_for_sample(served, "janusmail_connections_open", lambda v: v == 1, door="imap")
    final = served.scrape()
    assert sample(final, "janusmail_imap_commands_total", command="FETCH", result="ok") == sample(
        after, "janusmail_imap_commands_total", command="FETCH", result="ok")
    two.logout()
    one.sock.close()
