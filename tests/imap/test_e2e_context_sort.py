"""CONTEXT=SORT (RFC 5267 §4) through real sockets: ``SORT RETURN (UPDATE)`` keeps its sorted result current with
positional ADDTO / REMOVEFROM (the position in the sorted result; removals before EXPUNGE, additions after EXISTS,
for the session's own STORE and EXPUNGE, for other sessions' writes, during IDLE), CANCELUPDATE ends it, a tag
names one context (SEARCH or SORT), PARTIAL with UPDATE (RFC 9394 §3.1), and the context limit (NOUPDATE).

One server for the module; each test works in a mailbox of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from janusmail.imap.search_updates import MAX_CONTEXTS, sort_changes
from tests.imap.e2e_util import ADDRESS, PASSWORD, Raw, serve_shared
from tests.imap.test_e2e_idle import read_until
from tests.serverutil import ServerThread


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


def message(subject: str) -> bytes:
    return (f"From: a@x.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject}@x.test>\r\n\r\nbody\r\n").encode()


def append(raw: Raw, mailbox: str, subject: str) -> None:
    msg = message(subject)
    raw.send(b"p APPEND %s {%d+}\r\n" % (mailbox.encode(), len(msg)) + msg + b"\r\n")
    assert raw.until("p")[-1].startswith(b"p OK")


def client(srv: ServerThread, select: str | None = None) -> Raw:
    raw = Raw(srv.imap_port)
    assert raw.cmd("a", f'LOGIN {ADDRESS} "{PASSWORD}"')[-1].startswith(b"a OK")
    if select:
        assert raw.cmd("s", f"SELECT {select}")[-1].startswith(b"s OK")
    return raw


def mailbox(srv: ServerThread, name: str, subjects: list[str]) -> Raw:
    """A fresh mailbox holding one message per subject (UIDs in list order), and a second connection to it."""
    other = client(srv)
    assert other.cmd("c", f"CREATE {name}")[-1].startswith(b"c OK")
    for subject in subjects:
        append(other, name, subject)
    return other


def esearch(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines if line.startswith(b"* ESEARCH")]


def test_uid_sort_updates_carry_positions(server: ServerThread) -> None:
    other = mailbox(server, "ctx1", ["c", "a", "e"])  # UIDs 1, 2, 3
    raw = client(server, "ctx1")
    caps = b" ".join(raw.cmd("c", "CAPABILITY"))
    assert b"CONTEXT=SORT" in caps and b"CONTEXT=SEARCH" in caps
    out = raw.cmd("U1", "UID SORT RETURN (UPDATE) (SUBJECT) UTF-8 UNSEEN")
    assert esearch(out) == [b'* ESEARCH (TAG "U1") UID ALL 2,1,3'] and out[-1] == b"U1 OK SORT completed", out
    # the session's own STORE: "c" (second in the order) leaves the unseen result
    out = raw.cmd("s", "UID STORE 1 +FLAGS.SILENT (\\Seen)")
    assert esearch(out) == [b'* ESEARCH (TAG "U1") UID REMOVEFROM (2 1)'], out
    # arrivals elsewhere: EXISTS first, then each run inserted where it sorts (a, b, e, f)
    append(other, "ctx1", "b")  # UID 4
    append(other, "ctx1", "f")  # UID 5
    out = raw.cmd("n", "NOOP")
    assert esearch(out) == [b'* ESEARCH (TAG "U1") UID ADDTO (2 4 4 5)'], out
    assert out.index(b"* 5 EXISTS") < out.index(esearch(out)[0]), out
    # an expunge elsewhere: REMOVEFROM (at "e"'s position) before the EXPUNGE
    assert other.cmd("x", "SELECT ctx1")[-1].startswith(b"x OK")
    assert other.cmd("x", "UID STORE 3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"x OK")
    assert other.cmd("y", "UID EXPUNGE 3")[-1].startswith(b"y OK")
    out = raw.cmd("m", "NOOP")
    assert esearch(out) == [b'* ESEARCH (TAG "U1") UID REMOVEFROM (3 3)'], out
    assert out.index(esearch(out)[0]) < out.index(b"* 3 EXPUNGE"), out
    # during IDLE: a message that sorts first
    raw.send(b"i IDLE\r\n")
    assert raw.line() == b"+ idling"
    append(other, "ctx1", "0")  # UID 6
    read_until(raw, rb'^\* ESEARCH \(TAG "U1"\) UID ADDTO \(1 6\)$')
    raw.send(b"DONE\r\n")
    assert raw.until("i")[-1].startswith(b"i OK")
    # the maintained list is the one a fresh SORT gives
    assert esearch(raw.cmd("v", "UID SORT RETURN (ALL) (SUBJECT) UTF-8 UNSEEN")) == [
        b'* ESEARCH (TAG "v") UID ALL 6,2,4:5']
    # CANCELUPDATE: no more updates
    assert raw.cmd("c2", 'CANCELUPDATE "U1"')[-1].startswith(b"c2 OK")
    append(other, "ctx1", "d")
    assert esearch(raw.cmd("n2", "NOOP")) == []
    other.close()
    raw.close()


def test_message_numbers_partial_tags_and_limit(server: ServerThread) -> None:
    other = mailbox(server, "ctx2", ["z", "y", "x"])
    raw = client(server, "ctx2")
    out = raw.cmd("A", "SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL")
    assert esearch(out) == [b'* ESEARCH (TAG "A") ALL 3,2,1'], out
    assert raw.cmd("A", "SORT RETURN (UPDATE) (SUBJECT) UTF-8 ALL")[-1].startswith(b"A BAD")  # tag in use
    assert raw.cmd("A", "SEARCH RETURN (UPDATE) ALL")[-1].startswith(b"A BAD")  # SEARCH and SORT share tags
    # PARTIAL with UPDATE: the window now, updates for every match (RFC 9394 §3.1)
    out = raw.cmd("P", "SORT RETURN (UPDATE PARTIAL 1:2) (SUBJECT) UTF-8 ALL")
    assert esearch(out) == [b'* ESEARCH (TAG "P") PARTIAL (1:2 3,2)'] and out[-1].startswith(b"P OK"), out
    append(other, "ctx2", "w")  # sorts first, message 4
    out = raw.cmd("n", "NOOP")
    assert esearch(out) == [b'* ESEARCH (TAG "A") ADDTO (1 4)', b'* ESEARCH (TAG "P") ADDTO (1 4)'], out
    assert out.index(b"* 4 EXISTS") < out.index(esearch(out)[0]), out
    # the session's own EXPUNGE of "y" (third in w, x, y, z): REMOVEFROM with its number, before the EXPUNGE
    assert raw.cmd("d", "STORE 2 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"d OK")
    out = raw.cmd("e", "EXPUNGE")
    assert esearch(out) == [b'* ESEARCH (TAG "A") REMOVEFROM (3 2)', b'* ESEARCH (TAG "P") REMOVEFROM (3 2)'], out
    assert out.index(esearch(out)[-1]) < out.index(b"* 2 EXPUNGE"), out
    # the context limit: past it, the answer stands and an untagged NO [NOUPDATE] says no updates will follow
    for n in range(MAX_CONTEXTS - 2):
        assert raw.cmd(f"K{n}", "SORT RETURN (UPDATE) (ARRIVAL) UTF-8 ALL")[-1].startswith(f"K{n} OK".encode())
    out = raw.cmd("L", "SORT RETURN (UPDATE) (ARRIVAL) UTF-8 ALL")
    assert esearch(out) == [b'* ESEARCH (TAG "L") ALL 1:3'] and out[-1].startswith(b"L OK"), out
    assert any(line.startswith(b'* NO [NOUPDATE "L"]') for line in out), out  # untagged (RFC 5267 §4.3.1)
    assert raw.cmd("C", 'CANCELUPDATE "A" "P"')[-1].startswith(b"C OK")
    assert raw.cmd("C", 'CANCELUPDATE "A"')[-1].startswith(b"C BAD")  # no longer a context
    # leaving the mailbox ends every context
    assert raw.cmd("s", "SELECT ctx2")[-1].startswith(b"s OK")
    append(other, "ctx2", "v")
    assert esearch(raw.cmd("n2", "NOOP")) == []
    other.close()
    raw.close()


@pytest.mark.parametrize(("old", "new", "removals", "additions"), [
    ([1, 2, 3], [1, 2, 3], [], []),
    ([1, 2, 3, 4], [1, 4], [(2, [2, 3])], []),
    ([1, 2, 3, 4], [2, 4], [(1, [1]), (2, [3])], []),
    ([5, 1], [7, 5, 6, 1, 8], [], [(1, [7]), (3, [6]), (5, [8])]),
    ([5, 1, 9], [5, 2, 9], [(2, [1])], [(2, [2])]),
    ([1, 2], [2, 1], [(1, [1, 2])], [(1, [2, 1])]),  # survivors reordered: the whole result is replaced
])
def test_sort_changes(old: list[int], new: list[int], removals: list, additions: list) -> None:
    assert sort_changes(old, new) == (removals, additions)
    # applying the pairs in order turns old into new
    result = list(old)
    for pos, run in removals:
        assert result[pos - 1:pos - 1 + len(run)] == run
        del result[pos - 1:pos - 1 + len(run)]
    for pos, run in additions:
        result[pos - 1:pos - 1] = run
    assert result == new
