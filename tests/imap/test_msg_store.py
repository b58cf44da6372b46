"""STORE / UID STORE, EXPUNGE / UID EXPUNGE, COPY / MOVE on SQLite and PostgreSQL (sans-IO session)."""

from __future__ import annotations

import re

import pytest

from tests.imap.msg_support import deliver, fetch_lines, runtime_fixture, session, tagged, use_cheap_argon2
from tests.mailgen import simple

mrt = pytest.fixture(runtime_fixture)
cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


async def test_store_modes(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(i) for i in range(3)])
    h = await session(mrt)
    out = await h.send("A STORE 1 +FLAGS (\\Seen $Work)")
    assert fetch_lines(out)[1] == b"FLAGS (\\Seen $Work))\r\n"
    out = await h.send("B STORE 1 +FLAGS ($work \\Flagged)")  # keywords are case-insensitive: one $Work
    assert fetch_lines(out)[1] == b"FLAGS (\\Flagged \\Seen $Work))\r\n"
    out = await h.send("C STORE 1 -FLAGS (\\Seen $WORK)")
    assert fetch_lines(out)[1] == b"FLAGS (\\Flagged))\r\n"
    out = await h.send("D STORE 1:2 FLAGS (\\Deleted $Other)")
    lines = fetch_lines(out)
    assert lines[1] == lines[2] == b"FLAGS (\\Deleted $Other))\r\n"
    out = await h.send("E STORE 2 FLAGS ()")
    assert fetch_lines(out)[2] == b"FLAGS ())\r\n"
    out = await h.send("F UID STORE 3 +FLAGS.SILENT (\\Answered)")
    assert b"FETCH" not in out and tagged(out, "F").startswith(b"F OK")
    out = await h.send("G UID STORE 3 -FLAGS (\\Answered)")
    assert fetch_lines(out)[3] == b"UID 3 FLAGS ())\r\n"
    out = await h.send("H NOOP")
    assert b"FETCH" not in out  # our own changes are not repeated by the sync
    await h.close()


async def test_store_refusals(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(1)])
    h = await session(mrt)
    for flags, code in (("\\Recent", b"CANNOT"), ("$seen", b"CANNOT"), ("\\Bogus", b"CANNOT")):
        out = await h.send(f"A STORE 1 +FLAGS ({flags})")
        assert tagged(out, "A").startswith(b"A NO [" + code), (flags, out)
    out = await h.send("B STORE 5 +FLAGS (\\Seen)")
    assert tagged(out, "B").startswith(b"B BAD")
    out = await h.send("C UID STORE 5 +FLAGS (\\Seen)")
    assert tagged(out, "C").startswith(b"C OK") and b"FETCH" not in out
    ro = await session(mrt, examine=True)
    out = await ro.send("D STORE 1 +FLAGS (\\Seen)")
    assert tagged(out, "D").startswith(b"D NO")
    await h.close()
    await ro.close()


async def test_unchangedsince_and_modseq(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(i) for i in range(3)])
    h = await session(mrt, enable="CONDSTORE")
    out = await h.send("A FETCH 1:3 (MODSEQ)")
    modseqs = {seq: int(re.search(rb"MODSEQ \((\d+)\)", v).group(1)) for seq, v in fetch_lines(out).items()}
    out = await h.send("B STORE 2 +FLAGS (\\Flagged)")
    line = fetch_lines(out)[2]
    assert b"FLAGS (\\Flagged)" in line and b"MODSEQ (" in line
    out = await h.send(f"C STORE 1:3 (UNCHANGEDSINCE {modseqs[1]}) +FLAGS.SILENT (\\Seen)")
    assert re.search(rb"C OK \[MODIFIED 2\]", out), out
    lines = fetch_lines(out)
    assert sorted(lines) == [1, 3] and all(b"MODSEQ (" in v and b"FLAGS" not in v for v in lines.values())
    out = await h.send("D UID FETCH 1:3 (FLAGS)")
    lines = fetch_lines(out)
    assert b"\\Seen" in lines[1] and b"\\Seen" not in lines[2] and b"\\Seen" in lines[3]
    await h.close()


async def test_flags_shared_by_copies(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(1)])
    h = await session(mrt)
    out = await h.send("A COPY 1 Archive")
    assert re.search(rb"A OK \[COPYUID \d+ 1 1\]", out), out
    arch = await session(mrt, "Archive")
    await arch.send("B STORE 1 +FLAGS (\\Flagged $Shared)")
    out = await h.send("C NOOP")  # the INBOX copy changed too: an unsolicited FETCH
    assert b"* 1 FETCH (UID 1 FLAGS (\\Flagged" in out and b"$Shared" in out
    out = await h.send("D FETCH 1 (FLAGS EMAILID)")
    out2 = await arch.send("E FETCH 1 (FLAGS EMAILID)")
    a = fetch_lines(out)[1]
    b = fetch_lines(out2)[1]
    assert re.search(rb"EMAILID \((\w+)\)", a).group(1) == re.search(rb"EMAILID \((\w+)\)", b).group(1)
    assert b"\\Flagged $Shared" in a and b"\\Flagged $Shared" in b
    # \Deleted is per mailbox
    await arch.send("F STORE 1 +FLAGS (\\Deleted)")
    out = await h.send("G FETCH 1 (FLAGS)")
    assert b"\\Deleted" not in out
    await h.close()
    await arch.close()


async def test_copy_move_trycreate_and_vanished(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(i) for i in range(5)])
    h = await session(mrt)
    out = await h.send("A COPY 1 Nowhere")
    assert tagged(out, "A").startswith(b"A NO [TRYCREATE]")
    out = await h.send("B FETCH 2,4 (EMAILID)")
    ids = [re.search(rb"EMAILID \((\w+)\)", v).group(1) for v in fetch_lines(out).values()]
    out = await h.send("C MOVE 2,4 Trash")
    lines = out.split(b"\r\n")
    assert re.match(rb"\* OK \[COPYUID \d+ 2,4 1:2\]", lines[0]), out
    assert lines[1:3] == [b"* 4 EXPUNGE", b"* 2 EXPUNGE"]  # descending: numbers never shift under the client
    assert tagged(out, "C").startswith(b"C OK")
    trash = await session(mrt, "Trash")
    out = await trash.send("D FETCH 1:2 (EMAILID)")
    assert [re.search(rb"EMAILID \((\w+)\)", v).group(1) for v in fetch_lines(out).values()] == ids
    out = await h.send("E SEARCH ALL")
    assert b"* SEARCH 1 2 3\r\n" in out
    q = await session(mrt, enable="QRESYNC")
    out = await q.send("F UID MOVE 3 Archive")
    assert b"* VANISHED 3\r\n" in out and b"EXPUNGE" not in out
    out = await q.send("G UID COPY 99 Archive")  # nothing there
    assert tagged(out, "G").startswith(b"G OK")
    for x in (h, trash, q):
        await x.close()


async def test_expunge_forms(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(i) for i in range(6)])
    h = await session(mrt)
    await h.send("A STORE 2,3,5 +FLAGS.SILENT (\\Deleted)")
    out = await h.send("B UID EXPUNGE 5:6")
    assert b"* 5 EXPUNGE\r\n" in out and b"* 2 EXPUNGE" not in out
    out = await h.send("C EXPUNGE")
    assert out.startswith(b"* 3 EXPUNGE\r\n* 2 EXPUNGE\r\n"), out
    out = await h.send("D UID SEARCH ALL")
    assert b"* SEARCH 1 4 6\r\n" in out
    ro = await session(mrt, examine=True)
    out = await ro.send("E EXPUNGE")
    assert tagged(out, "E").startswith(b"E NO")
    q = await session(mrt, enable="QRESYNC")
    await q.send("F STORE 1 +FLAGS.SILENT (\\Deleted)")
    out = await q.send("G EXPUNGE")
    assert b"* VANISHED 1\r\n" in out
    out = await h.send("H NOOP")  # another session's expunge reaches us at the next allowed point
    assert b"* 1 EXPUNGE\r\n" in out
    for x in (h, ro, q):
        await x.close()
