"""SORT, ESORT and THREAD end to end (RFC 5256, RFC 5957, RFC 5267 §3, RFC 5182 SAVE, RFC 9394 PARTIAL), through
real sockets on SQLite and PostgreSQL: imapclient's ``sort()`` and ``thread()``, exact wire answers from a raw
client, the refusals, and the session's view (messages it has not been told about, and ones another session
expunged, stay out of the answer exactly as for SEARCH)."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import imapclient
import pytest

from tests.imap.e2e_util import ADDRESS, PASSWORD, Raw, serve, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

T0 = 1_700_000_000
HOUR = 3600


def message(i: int, frm: str, subject: str, date: int | None, refs: str = "") -> bytes:
    lines = [f"From: {frm}", "To: alice@example.test", f"Subject: {subject}", f"Message-ID: <p{i}@x.test>"]
    if date is not None:
        lines.append("Date: " + format_datetime(datetime.fromtimestamp(T0 + date, UTC)))
    if refs:
        lines.append(f"References: {refs}")
    return ("\r\n".join(lines) + f"\r\n\r\nbody {i}\r\n").encode()


#: UID n is MESSAGES[n - 1]; received at T0 + n minutes. #4 has no Date: its sent date is its internal date.
MESSAGES = [
    (message(1, "Zed <zed@x.test>", "Plan", 5 * HOUR), ("$seen",)),
    (message(2, "adam@x.test", "Re: Plan", 1 * HOUR, "<p1@x.test>"), ()),
    (message(3, "Mia <bob@x.test>", "Other", 3 * HOUR), ("$seen",)),
    (message(4, "carl@x.test", "Re: Plan", None, "<p1@x.test> <p2@x.test>"), ()),
]


@pytest.fixture
def server(tmp_path, db_url) -> Iterator[ServerThread]:  # noqa: ANN001
    for srv in serve(tmp_path, db_url):
        inbox = srv.store.mailboxes.by_path(srv.account.id, ["INBOX"])  # type: ignore[attr-defined]
        for n, (raw, keywords) in enumerate(MESSAGES, start=1):
            srv.store.emails.ingest(srv.account.id, raw, [inbox.id], keywords, T0 + n * 60)  # type: ignore[attr-defined]
        yield srv


def raw_client(srv: ServerThread) -> Raw:
    c = Raw(srv.imap_port)
    assert c.cmd("l", f'LOGIN {ADDRESS} "{PASSWORD}"')[-1].startswith(b"l OK")
    return c


def test_imapclient_sort_and_thread(server: ServerThread):
    client = imapclient.IMAPClient("127.0.0.1", port=server.imap_port, ssl=False)
    try:
        client.login(ADDRESS, PASSWORD)
        caps = client.capabilities()
        for cap in (b"SORT", b"SORT=DISPLAY", b"ESORT", b"THREAD=ORDEREDSUBJECT", b"THREAD=REFERENCES"):
            assert cap in caps
        client.select_folder("INBOX")
        assert client.sort(["REVERSE", "DATE"]) == [1, 3, 2, 4]
        assert client.sort("DATE") == [4, 2, 3, 1]
        assert client.sort("ARRIVAL") == [1, 2, 3, 4]
        assert client.sort(["SUBJECT"]) == [3, 1, 2, 4]  # base subjects: Other, Plan x3 (ties by UID)
        assert client.sort(["SUBJECT", "REVERSE", "DATE"]) == [3, 1, 2, 4]
        assert client.sort("FROM") == [2, 3, 4, 1]  # adam, bob (Mia's address), carl, zed
        assert client.sort("DISPLAYFROM") == [2, 4, 3, 1]  # adam@x.test, carl@x.test, Mia, Zed
        assert client.sort("DATE", ["UNSEEN"]) == [4, 2]
        assert client.sort("DATE", ["FROM", "x.test", "NOT", "SUBJECT", "other"], charset="US-ASCII") == [4, 2, 1]
        assert client.thread("REFERENCES") == ((3,), (1, 2, 4))
        assert client.thread("ORDEREDSUBJECT") == ((4, (2,), (1,)), (3,))
        assert client.thread("REFERENCES", ["NOT", "UID", "2"]) == ((3,), (1, 4))
        client.use_uid = False
        assert client.sort(["REVERSE", "SIZE", "ARRIVAL"]) == sorted([1, 2, 3, 4], key=lambda n: -len(
            MESSAGES[n - 1][0]))
    finally:
        client.logout()


def test_esort_and_the_refusals(server: ServerThread):
    c = raw_client(server)
    try:
        assert c.cmd("s0", "SORT (DATE) UTF-8 ALL")[-1].startswith(b"s0 BAD")  # nothing selected
        assert c.cmd("s1", "SELECT INBOX")[-1].startswith(b"s1 OK")
        assert c.cmd("e1", "UID SORT RETURN (MIN MAX COUNT ALL) (REVERSE DATE) UTF-8 ALL") == [
            b'* ESEARCH (TAG "e1") UID MIN 1 MAX 4 ALL 1,3,2,4 COUNT 4', b"e1 OK SORT completed"]
        assert c.cmd("e2", "SORT RETURN (COUNT) (DATE) UTF-8 UNSEEN")[0] == b'* ESEARCH (TAG "e2") COUNT 2'
        assert c.cmd("e3", "SORT RETURN () (SUBJECT) UTF-8 ALL")[0] == b'* ESEARCH (TAG "e3") ALL 3,1:2,4'
        assert c.cmd("e4", "UID SORT RETURN (PARTIAL 1:2) (REVERSE DATE) UTF-8 ALL")[0] == (
            b'* ESEARCH (TAG "e4") UID PARTIAL (1:2 1,3)')
        assert c.cmd("e5", "SORT RETURN (MIN) (SUBJECT) UTF-8 SUBJECT nothing-like-this") == [
            b'* ESEARCH (TAG "e5")', b"e5 OK SORT completed"]
        # SAVE with MIN keeps the first message in *sort* order (UID 4: the earliest sent date)
        assert c.cmd("v1", "SORT RETURN (SAVE MIN) (DATE) UTF-8 ALL")[-1].startswith(b"v1 OK")
        assert c.cmd("v2", "UID FETCH $ (UID)")[0] == b"* 4 FETCH (UID 4)"
        out = c.cmd("m1", "SORT (DATE) UTF-8 MODSEQ 1")
        assert any(line.startswith(b"* SORT 4 2 3 1 (MODSEQ ") for line in out), out
        assert c.cmd("t1", "THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (3)(1 2 4)"
        assert c.cmd("t2", "UID THREAD ORDEREDSUBJECT US-ASCII SUBJECT plan")[0] == b"* THREAD (4 (2)(1))"
        assert c.cmd("t3", "THREAD REFERENCES UTF-8 SUBJECT nothing-like-this")[0] == b"* THREAD"
        assert c.cmd("n0", "SORT (DATE) UTF-8 SUBJECT nothing-like-this")[0] == b"* SORT"
        # refusals: BAD for what cannot be parsed or is unknown, NO [BADCHARSET] for a charset we do not search
        for tag, command in (("b1", "SORT (DATE FOO) UTF-8 ALL"), ("b2", "SORT () UTF-8 ALL"),
                             ("b3", "SORT (DATE) UTF-8"), ("b4", "SORT DATE UTF-8 ALL"),
                             ("b5", "THREAD FOO UTF-8 ALL"), ("b6", "UID SORT (REVERSE) UTF-8 ALL")):
            assert c.cmd(tag, command)[-1].startswith(tag.encode() + b" BAD"), command
        for tag, command in (("c1", "SORT (DATE) KOI8-R ALL"), ("c2", "SORT (DATE) X-NO-SUCH-CHARSET ALL"),
                             ("c3", "THREAD REFERENCES ISO-8859-1 ALL")):
            assert c.cmd(tag, command)[-1].startswith(tag.encode() + b" NO [BADCHARSET (UTF-8 US-ASCII)]"), command
        assert c.cmd("z", "NOOP")[-1].startswith(b"z OK")  # still in business
    finally:
        c.close()


def test_answers_follow_the_sessions_view(server: ServerThread):
    a, b = raw_client(server), raw_client(server)
    try:
        assert a.cmd("a1", "SELECT INBOX")[-1].startswith(b"a1 OK")
        assert b.cmd("b1", "SELECT INBOX")[-1].startswith(b"b1 OK")
        new = message(5, "eve@x.test", "Re: Plan", 2 * HOUR, "<p1@x.test>")
        b.send(b"b2 APPEND INBOX {%d+}\r\n" % len(new) + new + b"\r\n")
        assert b.until("b2")[-1].startswith(b"b2 OK")
        assert b.cmd("b3", "UID STORE 3 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"b3 OK")
        assert b.cmd("b4", "UID EXPUNGE 3")[-1].startswith(b"b4 OK")
        # A has not been told about UID 5 and still numbers UID 3 as message 3, which is gone
        out = a.cmd("a2", "SORT (DATE) UTF-8 ALL")
        assert out[0] == b"* SORT 4 2 1"
        assert b"* 5 EXISTS" in out and not any(line.endswith(b"EXPUNGE") for line in out)  # held back
        out = a.cmd("a3", "THREAD REFERENCES UTF-8 ALL")  # now A knows UID 5 (message 5); 3 is still held
        assert out[0] == b"* THREAD (1 (2 4)(5))" and not any(line.endswith(b"EXPUNGE") for line in out)
        out = a.cmd("a4", "UID SORT (DATE) UTF-8 ALL")
        assert out[0] == b"* SORT 4 2 5 1"
        assert b"* 3 EXPUNGE" in out
        assert a.cmd("a5", "SORT (DATE) UTF-8 ALL")[0] == b"* SORT 3 2 4 1"  # renumbered: UID 4 3 5 1
        assert a.cmd("a6", "THREAD REFERENCES UTF-8 ALL")[0] == b"* THREAD (1 (2 3)(4))"
    finally:
        a.close()
        b.close()


def test_snapshot_mapping_keeps_the_order_and_drops_strangers():
    from janusmail.imap.commands.search import ordered_in_snapshot

    snapshot = array("q", [2, 3, 5, 8])
    assert ordered_in_snapshot([8, 2, 5, 3], [4, 1, 3, 2], snapshot) == ([8, 2, 5, 3], [4, 1, 3, 2], [4, 1, 3, 2])
    assert ordered_in_snapshot([8, 2, 5, 3], None, snapshot, want_seqs=False) == ([8, 2, 5, 3], [], None)
    assert ordered_in_snapshot([9, 5, 1, 2], [7, 6, 5, 4], snapshot) == ([5, 2], [3, 1], [6, 4])
    assert ordered_in_snapshot([9, 5, 1, 2], None, snapshot, want_seqs=False) == ([5, 2], [3, 1], None)
