"""Issue 11, failure 12, over real sockets on SQLite and PostgreSQL (mod-sequences are storage state).

* The first CONDSTORE enabling command (RFC 7162 §3.1) with a mailbox selected is followed by
  ``* OK [HIGHESTMODSEQ n]``: FETCH MODSEQ, SEARCH MODSEQ, STATUS HIGHESTMODSEQ; later ones are not.
* ``SEARCH RETURN (MIN|MAX) ... MODSEQ ...`` carries the mod-sequence of the message(s) returned, not the
  highest of every match (RFC 7162 §3.1.5 with RFC 4731 §3.2); ALL and COUNT cover every match.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.imap.e2e_util import Raw, Tenant, serve_shared, use_cheap_argon2
from tests.mailgen import simple
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared_pg_server(tmp_path_factory: pytest.TempPathFactory, module_db_url: str | None) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory, module_db_url)


@pytest.fixture
def pg_server(shared_pg_server: ServerThread) -> Tenant:
    return Tenant(shared_pg_server)


def selected(srv: ServerThread, n: int = 3) -> Raw:
    inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])
    for i in range(n):
        srv.run(srv.store.deliver(srv.account.id, simple(i), (inbox.id,)))
    raw = Raw(srv.imap_port)
    assert raw.cmd("l", f'LOGIN {srv.address} "{srv.password}"')[-1].startswith(b"l OK")
    out = raw.cmd("s", "SELECT INBOX")  # plain SELECT: CONDSTORE not on yet
    assert out[-1].startswith(b"s OK")
    return raw


def highest(raw: Raw) -> int:
    out = raw.cmd("h", "STATUS INBOX (HIGHESTMODSEQ)")
    found = re.search(rb"HIGHESTMODSEQ (\d+)\)", out[0])
    assert found, out
    return int(found.group(1))


def hms_lines(out: list[bytes]) -> list[bytes]:
    return [line for line in out if line.startswith(b"* OK [HIGHESTMODSEQ ")]


def test_fetch_modseq_enables_condstore_with_highestmodseq(pg_server: Tenant) -> None:
    raw = selected(pg_server)
    out = raw.cmd("a", "FETCH 1 MODSEQ")
    assert out[-1].startswith(b"a OK"), out
    assert re.fullmatch(rb"\* 1 FETCH \(MODSEQ \(\d+\)\)", out[1]), out
    lines = hms_lines(out)
    assert len(lines) == 1, out
    n = int(re.match(rb"\* OK \[HIGHESTMODSEQ (\d+)\]", lines[0]).group(1))
    assert n == highest(raw)
    assert hms_lines(raw.cmd("b", "FETCH 1 MODSEQ")) == []  # only when CONDSTORE was not yet on
    raw.close()


@pytest.mark.parametrize("command", ["SEARCH MODSEQ 1", "STATUS INBOX (HIGHESTMODSEQ)",
                                     "FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
                                     "STORE 1 (UNCHANGEDSINCE 999999) +FLAGS.SILENT (\\Seen)"])
def test_other_enabling_commands_send_highestmodseq(pg_server: Tenant, command: str) -> None:
    raw = selected(pg_server)
    out = raw.cmd("a", command)
    assert out[-1].startswith(b"a OK"), out
    assert len(hms_lines(out)) == 1, out
    assert hms_lines(raw.cmd("b", "FETCH 1 MODSEQ")) == []
    raw.close()


def test_enabling_command_without_a_selected_mailbox_sends_nothing(pg_server: Tenant) -> None:
    raw = Raw(pg_server.imap_port)
    raw.cmd("l", f'LOGIN {pg_server.address} "{pg_server.password}"')
    out = raw.cmd("a", "STATUS INBOX (HIGHESTMODSEQ)")
    assert out[-1].startswith(b"a OK") and hms_lines(out) == []
    out = raw.cmd("b", "SELECT INBOX")  # CONDSTORE already on: SELECT reports HIGHESTMODSEQ itself
    assert len(hms_lines(out)) == 1
    raw.close()


def test_esearch_min_max_modseq_is_of_the_returned_messages(pg_server: Tenant) -> None:
    raw = selected(pg_server)
    # distinct mod-sequences in a different order from the messages: m3 < m1 < m2
    for tag, seq in (("f3", 3), ("f1", 1), ("f2", 2)):
        assert raw.cmd(tag, f"STORE {seq} +FLAGS (\\Seen)")[-1].startswith(tag.encode() + b" OK")
    out = raw.cmd("m", "FETCH 1:3 (MODSEQ)")
    mod = {int(m.group(1)): int(m.group(2))
           for m in (re.match(rb"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", line) for line in out[:-1]) if m}
    assert mod[3] < mod[1] < mod[2], out

    def esearch(tag: str, ret: str) -> bytes:
        out = raw.cmd(tag, f'SEARCH RETURN ({ret}) 1:3 MODSEQ "/flags/\\\\seen" all 1')
        assert out[-1].startswith(tag.encode() + b" OK"), out
        return [line for line in out if line.startswith(b"* ESEARCH")][0]

    assert esearch("a", "MIN") == b'* ESEARCH (TAG "a") MIN 1 MODSEQ %d' % mod[1]
    assert esearch("b", "MAX") == b'* ESEARCH (TAG "b") MAX 3 MODSEQ %d' % mod[3]
    assert esearch("c", "MIN MAX") == b'* ESEARCH (TAG "c") MIN 1 MAX 3 MODSEQ %d' % max(mod[1], mod[3])
    assert esearch("d", "ALL") == b'* ESEARCH (TAG "d") ALL 1:3 MODSEQ %d' % mod[2]
    assert esearch("e", "COUNT") == b'* ESEARCH (TAG "e") COUNT 3 MODSEQ %d' % mod[2]
    assert esearch("g", "MIN COUNT") == b'* ESEARCH (TAG "g") MIN 1 COUNT 3 MODSEQ %d' % mod[2]
    # UID SEARCH: the same rule over UIDs
    out = raw.cmd("u", 'UID SEARCH RETURN (MIN) MODSEQ "/flags/\\\\seen" all 1')
    line = [x for x in out if x.startswith(b"* ESEARCH")][0]
    assert line.endswith(b" MODSEQ %d" % mod[1]), line
    # plain (rev1) SEARCH: every match
    out = raw.cmd("p", "SEARCH MODSEQ 1")
    assert out[0] == b"* SEARCH 1 2 3 (MODSEQ %d)" % mod[2], out
    raw.close()
