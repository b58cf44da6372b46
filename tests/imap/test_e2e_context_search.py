"""CONTEXT=SEARCH (RFC 5267 §4) through real sockets, on SQLite and PostgreSQL: SEARCH RETURN (UPDATE) keeps its
result current with ADDTO / REMOVEFROM (after EXISTS for new mail, before EXPUNGE for removed mail, for the
session's own STORE too, during IDLE), CANCELUPDATE ends it, a tag names one context. CONTEXT=SORT (positional
updates) is tests/imap/test_e2e_context_sort.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.imap.e2e_util import serve, use_cheap_argon2
from tests.imap.test_e2e_idle import deliver, logged_in, read_until
from tests.imap.test_e2e_notify import append
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture
def server(tmp_path: Path, db_url: str | None) -> Iterator[ServerThread]:
    yield from serve(tmp_path, db_url)


def esearch(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ESEARCH")]


def test_updates_follow_flags_arrivals_and_expunges(server: ServerThread) -> None:
    for i in range(3):
        deliver(server, i)
    raw = logged_in(server)
    caps = b" ".join(raw.cmd("c", "CAPABILITY"))
    assert b"CONTEXT=SEARCH" in caps and b"CONTEXT=SORT" in caps
    out = raw.cmd("U1", "UID SEARCH RETURN (UPDATE) UNSEEN")
    assert esearch(out) == [b'* ESEARCH (TAG "U1") UID ALL 1:3'] and out[-1].startswith(b"U1 OK"), out
    # the session's own STORE: the message leaves the unseen result
    out = raw.cmd("s", "UID STORE 1 +FLAGS.SILENT (\\Seen)")
    assert esearch(out) == [b'* ESEARCH (TAG "U1") UID REMOVEFROM (0 1)'], out
    # a delivery elsewhere: EXISTS first, then ADDTO
    deliver(server, 9)
    out = raw.cmd("n", "NOOP")
    assert out.index(b"* 4 EXISTS") < out.index(esearch(out)[0]), out
    assert esearch(out) == [b'* ESEARCH (TAG "U1") UID ADDTO (0 4)'], out
    # an expunge elsewhere: REMOVEFROM before the EXPUNGE
    other = logged_in(server)
    assert other.cmd("x", "UID STORE 2 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"x OK")
    assert other.cmd("y", "UID EXPUNGE 2")[-1].startswith(b"y OK")
    out = raw.cmd("m", "NOOP")
    assert esearch(out) == [b'* ESEARCH (TAG "U1") UID REMOVEFROM (0 2)'], out
    assert out.index(esearch(out)[0]) < out.index(b"* 2 EXPUNGE"), out
    # during IDLE
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    append(other, "INBOX", 10)
    read_until(raw, rb'^\* ESEARCH \(TAG "U1"\) UID ADDTO \(0 5\)$')
    raw.send(b"DONE\r\n")
    assert raw.until("i")[-1].startswith(b"i OK")
    # CANCELUPDATE: no more updates
    assert raw.cmd("c2", 'CANCELUPDATE "U1"')[-1].startswith(b"c2 OK")
    deliver(server, 11)
    assert esearch(raw.cmd("n2", "NOOP")) == []
    other.close()
    raw.close()


def test_message_numbers_and_rules(server: ServerThread) -> None:
    for i in range(2):
        deliver(server, i)
    raw = logged_in(server)
    out = raw.cmd("A", "SEARCH RETURN (UPDATE COUNT) ALL")
    assert esearch(out) == [b'* ESEARCH (TAG "A") COUNT 2'], out
    assert raw.cmd("A", "SEARCH RETURN (UPDATE) ALL")[-1].startswith(b"A BAD")  # the tag names a context
    assert raw.cmd("C", 'CANCELUPDATE "nosuch"')[-1].startswith(b"C BAD")
    deliver(server, 5)
    out = raw.cmd("n", "NOOP")
    assert esearch(out) == [b'* ESEARCH (TAG "A") ADDTO (0 3)'], out  # message numbers for SEARCH
    raw.cmd("u", "UNSELECT")
    assert raw.cmd("s", "SELECT INBOX")[-1].startswith(b"s OK")
    deliver(server, 6)
    assert esearch(raw.cmd("n2", "NOOP")) == []  # leaving the mailbox ended the context
    raw.close()
