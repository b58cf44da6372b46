"""APPEND / MULTIAPPEND on SQLite and PostgreSQL: APPENDUID, flags and dates, all-or-nothing, TOOBIG,
TRYCREATE, UTF8 and binary literals, byte-exact storage."""

from __future__ import annotations

import re

import pytest

from tests.imap.msg_support import fetch_lines, mailbox_id, runtime_fixture, session, tagged, use_cheap_argon2
from tests.ingest_threads import on_writer_lane, record_ingest_threads
from tests.mailgen import simple

mrt = pytest.fixture(runtime_fixture)
cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


def lit(data: bytes) -> bytes:
    return b"{%d+}\r\n" % len(data) + data


async def test_append_with_flags_and_date(mrt) -> None:  # noqa: ANN001
    h = await session(mrt, mailbox=None)
    raw = simple(1)
    out = await h.send(b'A APPEND INBOX (\\Seen $Work) "05-Mar-2021 10:20:30 +0100" ' + lit(raw) + b"\r\n")
    m = re.search(rb"A OK \[APPENDUID (\d+) 1\]", out)
    assert m, out
    out = await h.send("S SELECT INBOX")
    assert b"UIDVALIDITY %s" % m.group(1) in out
    out = await h.send("F FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])")
    line = fetch_lines(out)[1]
    assert b"FLAGS (\\Seen $Work)" in line
    assert b'INTERNALDATE "05-Mar-2021 09:20:30 +0000"' in line
    assert raw in line
    await h.close()


async def test_multiappend_is_atomic(mrt) -> None:  # noqa: ANN001
    h = await session(mrt, mailbox=None)
    out = await h.send(b"A APPEND Archive " + lit(simple(1)) + b" (\\Flagged) " + lit(simple(2)) + b" " + lit(simple(3)) + b"\r\n")
    m = re.search(rb"A OK \[APPENDUID \d+ 1:3\]", out)
    assert m, out
    # the second message has an invalid flag: nothing of the batch is stored
    out = await h.send(b"B APPEND Archive " + lit(simple(4)) + b" (\\Recent) " + lit(simple(5)) + b"\r\n")
    assert tagged(out, "B").startswith(b"B NO")
    out = await h.send("C STATUS Archive (MESSAGES UIDNEXT)")
    assert b"MESSAGES 3" in out and b"UIDNEXT 4" in out
    await h.close()


async def test_multiappend_parses_and_stores_its_bytes_before_the_writer_lane(mrt, monkeypatch) -> None:  # noqa: ANN001
    """The parse, the hash and the bytes' sync of a MULTIAPPEND run on the store's ingest threads; the writer
    lane (where every write of the store waits its turn, under SQLite's one write lock) runs its statements
    only. Before, a MULTIAPPEND parsed and synced its messages on the lane (bench/imap.py --profile append)."""
    where = record_ingest_threads(monkeypatch)
    h = await session(mrt, mailbox=None)
    raws = [simple(i) for i in range(3)]
    out = await h.send(b"A APPEND Archive " + b" ".join(lit(r) for r in raws) + b"\r\n")
    assert re.search(rb"A OK \[APPENDUID \d+ 1:3\]", out), out
    assert len(where) == 4 and not any(map(on_writer_lane, where)), where
    out = await h.send("S SELECT Archive")
    out = await h.send("F FETCH 1:3 (BODY.PEEK[])")
    assert all(r in out for r in raws)
    await h.close()


async def test_append_refusals(mrt) -> None:  # noqa: ANN001
    mrt.config.imap.max_append_size = 1000
    h = await session(mrt, mailbox=None)
    h.session.parser.max_literal = 10_000  # let the literal through so the handler's own check answers
    out = await h.send(b"A APPEND Nope " + lit(simple(1)) + b"\r\n")
    assert tagged(out, "A").startswith(b"A NO [TRYCREATE]")
    out = await h.send(b"B APPEND INBOX " + lit(b"Subject: big\r\n\r\n" + b"x" * 2000) + b"\r\n")
    assert tagged(out, "B").startswith(b"B NO [TOOBIG]")
    out = await h.send(b"C APPEND INBOX " + lit(b"") + b"\r\n")
    assert tagged(out, "C").startswith(b"C NO") or tagged(out, "C").startswith(b"C BAD")
    out = await h.send(b"D APPEND INBOX UTF8 (" + lit(simple(1)) + b")" + b"\r\n")
    assert tagged(out, "D").startswith(b"D BAD")  # UTF8 literals need UTF8=ACCEPT
    await h.close()


async def test_append_utf8_binary_and_deleted(mrt) -> None:  # noqa: ANN001
    h = await session(mrt, mailbox=None, enable="UTF8=ACCEPT")
    eai = "From: Jörg <jörg@bücher.example>\r\nSubject: Grüße\r\n\r\nHällo\r\n".encode()
    out = await h.send(b"A APPEND INBOX UTF8 (" + lit(eai) + b")" + b"\r\n")
    assert re.search(rb"A OK \[APPENDUID \d+ 1\]", out), out
    binary = b"Subject: bin\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02\xff\r\n"
    out = await h.send(b"B APPEND INBOX (\\Deleted) ~{%d+}\r\n%b" % (len(binary), binary) + b"\r\n")
    assert re.search(rb"B OK \[APPENDUID \d+ 2\]", out), out
    await h.send("S SELECT INBOX")
    out = await h.send("F FETCH 1:2 (FLAGS BODY.PEEK[] ENVELOPE)")
    lines = fetch_lines(out)
    assert eai in lines[1] and "Grüße".encode() in lines[1]
    assert binary in lines[2] and b"\\Deleted" in lines[2]
    await h.close()


async def test_append_to_selected_mailbox_announces(mrt) -> None:  # noqa: ANN001
    h = await session(mrt)
    out = await h.send(b"A APPEND INBOX " + lit(simple(1)) + b"\r\n")
    assert b"* 1 EXISTS\r\n" in out
    assert mailbox_id(mrt, "INBOX")
    await h.close()


async def test_append_to_selected_mailbox_claims_recent_in_its_own_transaction(mrt, monkeypatch) -> None:  # noqa: ANN001
    """IMAP4rev1: an APPEND into the session's selected mailbox claims \\Recent (its own message and the ones
    nobody claimed before it) with the message, so announcing it costs no claim of its own; another session
    sees neither as recent, and claims nothing (nor writes) for them."""
    from janusmail.store.writes import writes
    from tests.imap.msg_support import deliver

    a = await session(mrt)
    b = await session(mrt)
    deliver(mrt, [simple(1)])  # nobody has seen it yet
    claims: list[tuple] = []
    real = mrt.store.memberships.claim_recent
    monkeypatch.setattr(mrt.store.memberships, "claim_recent", writes(lambda *x: claims.append(x) or real(*x)))
    out = await a.send(b"A APPEND INBOX " + lit(simple(2)) + b"\r\n")
    assert b"* 2 EXISTS\r\n" in out and b"* 2 RECENT\r\n" in out, out
    assert claims == []
    flags = fetch_lines(await a.send("F FETCH 1:2 (FLAGS)"), keep_recent=True)
    assert all(b"\\Recent" in line for line in flags.values()), flags
    out = await b.send("N NOOP")
    assert b"* 2 EXISTS\r\n" in out and b"* 0 RECENT\r\n" in out, out
    assert claims == []  # B found nothing left to claim in what it read: no write either
    out = await a.send(b"A2 APPEND INBOX " + lit(simple(3)) + b"\r\n")
    assert b"* 3 EXISTS\r\n" in out and b"* 3 RECENT\r\n" in out and claims == [], out
    deliver(mrt, [simple(4)])  # someone else's: A's next look claims it (a claim of its own)
    out = await a.send("N NOOP")
    assert b"* 4 EXISTS\r\n" in out and b"* 4 RECENT\r\n" in out and len(claims) == 1, (out, claims)
    await a.close()
    await b.close()
