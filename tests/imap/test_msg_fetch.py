"""FETCH / UID FETCH through the real session, sans-IO, on SQLite and PostgreSQL: every item, sections and
partials sliced from the stored bytes, BINARY decoding, the implicit \\Seen, CONDSTORE/QRESYNC modifiers, and
the shared row cache staying exact while flags change, messages arrive and go."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec.structure import body_structure, envelope
from janusmail.imap.commands import fetch as fetch_mod
from janusmail.imap.fetchbody import filter_header_fields
from janusmail.imap.fetchdata import RenderCaches, _envelope_only, fast_envelope, internal_date
from janusmail.mime.parse import parse_message
from janusmail.store.memo import Memo, Memos
from tests.imap.msg_support import deliver, fetch_lines, runtime_fixture, session, tagged, use_cheap_argon2
from tests.mailgen import simple

BIN = bytes(range(256))
MULTI = (
    b"From: =?utf-8?q?J=C3=B6rg?= <j@example.test>\r\n"
    b"To: Alice <alice@example.test>, bob@example.test\r\n"
    b"Cc: carol@example.test\r\n"
    b"Subject: multi part\r\n"
    b"X-Extra: first\r\n"
    b"  folded\r\n"
    b"Message-ID: <multi@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="OUT"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--OUT\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n"
    b"--OUT\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"From: inner@example.test\r\n"
    b'Content-Type: multipart/alternative; boundary="IN"\r\n'
    b"\r\n"
    b"--IN\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"inner plain\r\n"
    b"--IN\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>inner html</p>\r\n"
    b"--IN--\r\n"
    b"\r\n"
    b"--OUT\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.encodebytes(BIN).replace(b"\n", b"\r\n") + b"--OUT\r\n"
    b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=E9 cr=E8me=\r\n"
    b" br=FBl=E9e\r\n"
    b"--OUT\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 x\r\n"
    b"--OUT--\r\n"
)


mrt = pytest.fixture(runtime_fixture)
cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


def literal_of(body: bytes, key: bytes) -> bytes:
    """The literal value of ``key`` in a FETCH body (``KEY {n}\\r\\n<n octets>``)."""
    i = body.index(key + b" ")
    m = re.match(rb"~?\{(\d+)\}\r\n", body[i + len(key) + 1 :])
    assert m, body[i : i + 80]
    start = i + len(key) + 1 + m.end()
    return body[start : start + int(m.group(1))]


async def one(h, cmd: str, tag: str = "F") -> tuple[dict[int, bytes], bytes]:  # noqa: ANN001
    out = await h.send(f"{tag} {cmd}")
    return fetch_lines(out), tagged(out, tag)


async def test_metadata_items(mrt) -> None:  # noqa: ANN001
    d = deliver(mrt, [MULTI, simple(2)], keywords=["$Work"], received_at=1700000000)
    h = await session(mrt)
    lines, ok = await one(h, "FETCH 1:2 (FLAGS INTERNALDATE RFC822.SIZE UID EMAILID THREADID)")
    assert ok.startswith(b"F OK")
    b1 = lines[1]
    assert b"FLAGS ($Work)" in b1
    assert b'INTERNALDATE "14-Nov-2023 22:13:20 +0000"' in b1
    assert b"RFC822.SIZE %d" % len(MULTI) in b1
    assert b"UID 1" in b1
    assert b"EMAILID (%s)" % d[0].email_id.encode() in b1
    assert b"THREADID (%s)" % d[0].thread_id.encode() in b1
    await h.close()


async def test_envelope_and_structure_from_cache(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [MULTI])
    cache = parse_message(MULTI)
    h = await session(mrt)
    lines, _ = await one(h, "FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)")
    assert b"ENVELOPE " + envelope(cache["envelope"]) in lines[1]
    assert b"BODYSTRUCTURE " + body_structure(cache["part"], extended=True) in lines[1]
    assert b"BODY " + body_structure(cache["part"], extended=False) in lines[1]
    # again: now served from the rendered-structure cache, same bytes
    again, _ = await one(h, "FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)", "G")
    assert again == lines
    await h.close()


async def test_macros(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(1)])
    h = await session(mrt)
    for macro, names in (("FAST", [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"]),
                         ("ALL", [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE"]),
                         ("FULL", [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE", b"BODY"])):
        lines, ok = await one(h, f"FETCH 1 {macro}")
        assert ok.startswith(b"F OK")
        for n in names:
            assert n + b" " in lines[1], (macro, n)
        assert b"BODYSTRUCTURE" not in lines[1]
    await h.close()


async def test_body_sections_byte_exact(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [MULTI])
    cache = parse_message(MULTI)
    h = await session(mrt)
    lines, ok = await one(h, "FETCH 1 (BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT] BODY.PEEK[1] BODY.PEEK[1.MIME])")
    assert ok.startswith(b"F OK")
    b = lines[1]
    assert literal_of(b, b"BODY[]") == MULTI
    hdr_end = cache["part"]["header_end"]
    assert literal_of(b, b"BODY[HEADER]") == MULTI[:hdr_end]
    assert literal_of(b, b"BODY[TEXT]") == MULTI[hdr_end:]
    assert literal_of(b, b"BODY[1]") == "Grüße aus Köln".encode()
    assert literal_of(b, b"BODY[1.MIME]") == b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    assert b"FLAGS" not in b  # PEEK: no \Seen, no FLAGS
    await h.close()


async def test_nested_message_sections(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [MULTI])
    h = await session(mrt)
    lines, _ = await one(h, "FETCH 1 (BODY.PEEK[2] BODY.PEEK[2.HEADER] BODY.PEEK[2.TEXT] BODY.PEEK[2.1] "
                            "BODY.PEEK[2.2.MIME] BODY.PEEK[2.HEADER.FIELDS (subject)] BODY.PEEK[9] BODY.PEEK[1.HEADER])")
    b = lines[1]
    whole = literal_of(b, b"BODY[2]")
    assert whole.startswith(b"Subject: inner\r\n") and whole.endswith(b"--IN--\r\n")
    assert literal_of(b, b"BODY[2.HEADER]").endswith(b"boundary=\"IN\"\r\n\r\n")
    assert literal_of(b, b"BODY[2.TEXT]").startswith(b"--IN\r\n")
    assert literal_of(b, b"BODY[2.1]") == b"inner plain"
    assert literal_of(b, b"BODY[2.2.MIME]") == b"Content-Type: text/html\r\n\r\n"
    assert literal_of(b, b"BODY[2.HEADER.FIELDS (subject)]") == b"Subject: inner\r\n\r\n"
    assert b"BODY[9] NIL" in b  # no such part
    assert b'BODY[1.HEADER] ""' in b or literal_of(b, b"BODY[1.HEADER]") == b""  # not a message/rfc822 part
    await h.close()


async def test_header_fields_and_not(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [MULTI])
    h = await session(mrt)
    lines, _ = await one(h, "FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT x-extra)] BODY.PEEK[HEADER.FIELDS.NOT (to cc from subject x-extra message-id mime-version content-type)])")
    b = lines[1]
    assert literal_of(b, b"BODY[HEADER.FIELDS (SUBJECT x-extra)]") == (
        b"Subject: multi part\r\nX-Extra: first\r\n  folded\r\n\r\n")
    assert literal_of(b, b"BODY[HEADER.FIELDS.NOT (to cc from subject x-extra message-id mime-version content-type)]") == b"\r\n"
    await h.close()


async def test_partials(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [MULTI])
    h = await session(mrt)
    lines, _ = await one(h, "FETCH 1 (BODY.PEEK[]<0.10> BODY.PEEK[1]<3.4> BODY.PEEK[TEXT]<100000.5> "
                            "BODY.PEEK[HEADER.FIELDS (subject)]<2.5> BINARY.PEEK[3]<250.100>)")
    b = lines[1]
    assert literal_of(b, b"BODY[]<0>") == MULTI[:10]
    assert literal_of(b, b"BODY[1]<3>") == "Grüße aus Köln".encode()[3:7]
    assert b'BODY[TEXT]<100000> ""' in b or literal_of(b, b"BODY[TEXT]<100000>") == b""
    assert literal_of(b, b"BODY[HEADER.FIELDS (subject)]<2>") == b"bject"
    assert literal_of(b, b"BINARY[3]<250>") == BIN[250:]
    await h.close()


async def test_binary_decoding(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [MULTI])
    h = await session(mrt)
    lines, ok = await one(h, "FETCH 1 (BINARY.PEEK[3] BINARY.PEEK[4] BINARY.SIZE[3] BINARY.SIZE[4] BINARY.PEEK[1] BINARY.SIZE[1])")
    assert ok.startswith(b"F OK")
    b = lines[1]
    assert b"BINARY[3] ~{256}\r\n" in b  # NUL inside: literal8
    assert literal_of(b, b"BINARY[3]") == BIN
    assert literal_of(b, b"BINARY[4]") == "café crème brûlée".encode("latin-1")
    assert b"BINARY.SIZE[3] 256" in b
    assert b"BINARY.SIZE[4] %d" % len("café crème brûlée") in b
    assert literal_of(b, b"BINARY[1]") == "Grüße aus Köln".encode()
    assert b"BINARY.SIZE[1] %d" % len("Grüße aus Köln".encode()) in b
    out = await h.send("G FETCH 1 (BINARY.PEEK[5])")
    assert tagged(out, "G").startswith(b"G NO [UNKNOWN-CTE]")
    await h.close()


async def test_rfc822_aliases_and_seen(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [MULTI, simple(2), simple(3)])
    h = await session(mrt)
    lines, _ = await one(h, "FETCH 1 (RFC822.HEADER)")
    hdr_end = parse_message(MULTI)["part"]["header_end"]
    assert literal_of(lines[1], b"RFC822.HEADER") == MULTI[:hdr_end]
    assert b"FLAGS" not in lines[1]  # RFC822.HEADER is a peek
    lines, _ = await one(h, "FETCH 1 (RFC822.TEXT)")
    assert literal_of(lines[1], b"RFC822.TEXT") == MULTI[hdr_end:]
    assert b"FLAGS (\\Seen)" in lines[1]  # implicit \Seen reported
    lines, _ = await one(h, "FETCH 2 RFC822")
    assert literal_of(lines[2], b"RFC822") == simple(2)
    assert b"FLAGS (\\Seen)" in lines[2]
    lines, _ = await one(h, "FETCH 3 (BODY[TEXT] FLAGS)")
    assert lines[3].count(b"FLAGS") == 1 and b"FLAGS (\\Seen)" in lines[3]
    lines, _ = await one(h, "FETCH 1:3 (FLAGS)")
    assert all(b"\\Seen" in v for v in lines.values())
    await h.close()


async def test_examine_never_sets_seen(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(1)])
    h = await session(mrt, examine=True)
    lines, _ = await one(h, "FETCH 1 (BODY[])")
    assert b"FLAGS" not in lines[1]
    lines, _ = await one(h, "FETCH 1 (FLAGS)")
    assert lines[1].strip() == b"FLAGS ())"
    await h.close()


async def test_uid_fetch_always_has_uid(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(i) for i in range(5)])
    h = await session(mrt)
    lines, _ = await one(h, "UID FETCH 2:4 (FLAGS)")
    assert sorted(lines) == [2, 3, 4]
    assert all(v.startswith(b"UID %d " % seq) for seq, v in lines.items())
    lines, _ = await one(h, "UID FETCH 4:* (UID)")
    assert sorted(lines) == [4, 5]
    lines, ok = await one(h, "UID FETCH 99 (FLAGS)")
    assert lines == {} and ok.startswith(b"F OK")
    out = await h.send("G FETCH 9 (FLAGS)")
    assert tagged(out, "G").startswith(b"G BAD")
    await h.close()


async def test_8bit_and_nul_messages_byte_exact(mrt) -> None:  # noqa: ANN001
    raws = [
        "From: Jörg <j@example.test>\nSubject: Grüße ☃\n\nHällo wörld\n".encode(),
        b"Subject: caf\xe9\r\n\r\nna\xefve \x80\xff\r\n",
        b"Subject: nul\r\n\r\nbefore\x00after\r\n",
    ]
    deliver(mrt, raws)
    h = await session(mrt)
    lines, _ = await one(h, "FETCH 1:3 (BODY.PEEK[] RFC822.SIZE)")
    for i, raw in enumerate(raws, 1):
        assert literal_of(lines[i], b"BODY[]") == raw
        assert b"RFC822.SIZE %d" % len(raw) in lines[i]
    await h.close()


async def test_modseq_changedsince_and_vanished(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(i) for i in range(4)])
    h = await session(mrt, enable="QRESYNC")
    lines, _ = await one(h, "FETCH 1:* (MODSEQ)")
    base = max(int(re.search(rb"MODSEQ \((\d+)\)", v).group(1)) for v in lines.values())
    out = await h.send("A STORE 2 +FLAGS.SILENT (\\Flagged)")
    out = await h.send("B STORE 4 +FLAGS.SILENT (\\Deleted)")
    out = await h.send("C UID EXPUNGE 4")
    assert b"* VANISHED 4" in out
    out = await h.send(f"D UID FETCH 1:* (FLAGS) (CHANGEDSINCE {base} VANISHED)")
    assert b"* VANISHED (EARLIER) 4" in out
    lines = fetch_lines(out)
    assert list(lines) == [2]
    assert b"FLAGS (\\Flagged)" in lines[2] and b"MODSEQ (" in lines[2] and b"UID 2" in lines[2]
    out = await h.send("E FETCH 1:* (FLAGS) (CHANGEDSINCE 0 VANISHED)")
    assert tagged(out, "E").startswith(b"E BAD")  # VANISHED only with UID FETCH
    await h.close()


async def test_row_cache_stays_exact(mrt, monkeypatch) -> None:  # noqa: ANN001
    """Metadata FETCHes served from the shared row cache follow every change (flags, arrivals, expunges,
    keywords set through another mailbox's copy)."""
    monkeypatch.setattr("janusmail.store.mailbox_rows.MIN_CACHED", 1)
    monkeypatch.setattr("janusmail.store.message_views.SQL_ROWS", 0)  # (small reads otherwise go to SQL)
    deliver(mrt, [simple(i) for i in range(40)])
    h = await session(mrt)
    other = await session(mrt)
    lines, _ = await one(h, "UID FETCH 1:* (FLAGS)")
    assert len(lines) == 40 and mrt.store.mailbox_rows.cached(h.session.selected.mailbox_id)
    await other.send("A STORE 1 +FLAGS (\\Seen $Red)")
    await other.send("B COPY 2 Archive")
    await h.send("C NOOP")
    arch = await session(mrt, "Archive")
    await arch.send("D STORE 1 +FLAGS ($Blue)")  # keywords are per email: the INBOX copy changes too
    await other.send("E STORE 3 +FLAGS (\\Deleted)")
    await other.send("F EXPUNGE")
    deliver(mrt, [simple(9)])
    await h.send("G NOOP")
    lines, _ = await one(h, "UID FETCH 1:* (UID FLAGS)")
    by_uid = {int(re.search(rb"UID (\d+)", v).group(1)): v for v in lines.values()}
    assert sorted(by_uid) == [1, 2, *range(4, 42)]
    assert b"\\Seen $Red" in by_uid[1]
    assert b"$Blue" in by_uid[2]
    assert b"FLAGS ()" in by_uid[41]
    assert mrt.store.mailbox_rows.refreshes >= 1
    for x in (h, other, arch):
        await x.close()


@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=10, max_size=10),
       st.lists(st.lists(st.one_of(st.none(), st.text(max_size=6)), min_size=4, max_size=4), max_size=3),
       st.booleans())
@settings(max_examples=200, deadline=None)
def test_fast_envelope_matches_codec(strings: list, addrs: list, utf8: bool) -> None:
    env = list(strings)
    for i in (2, 3, 4, 5, 6, 7):
        env[i] = addrs or None
    assert fast_envelope(env, utf8) == envelope(env, utf8)
    memo: Memo[tuple, bytes] = Memo(1000)
    for _ in range(2):  # filling the memo, then served from it
        assert fast_envelope(env, utf8, memo) == envelope(env, utf8)


def test_internal_date_memo_and_render_caches_are_per_store() -> None:
    days: Memo[int, bytes] = Memo(10)
    for ts in (0, 1700000000, 1700000001, 951868799):
        assert internal_date(ts, days) == internal_date(ts)
    assert len(days) == 3
    a, b = RenderCaches.using(Memos()), RenderCaches.using(Memos())
    a.structs.put(("e1", "ENVELOPE", False), b"(NIL)")
    assert b.structs.get(("e1", "ENVELOPE", False)) is None


async def test_envelope_rendered_into_the_stores_own_cache(mrt) -> None:  # noqa: ANN001
    """A FETCH ENVELOPE fills the runtime's Store memo (no process-wide cache), and the second FETCH, served
    from it, says the same."""
    d = deliver(mrt, [MULTI])
    h = await session(mrt)
    first, _ = await one(h, "FETCH 1 (ENVELOPE BODYSTRUCTURE)")
    caches = RenderCaches.of(mrt.store)
    assert caches.structs.get((d[0].email_id, "ENVELOPE", False)) is not None
    assert caches.structs.get((d[0].email_id, "BODYSTRUCTURE", False)) is not None
    again, _ = await one(h, "FETCH 1 (ENVELOPE BODYSTRUCTURE)")
    assert again == first and b"multi part" in first[1]
    await h.close()


def test_envelope_slice_matches_full_parse() -> None:
    import orjson

    for raw in (MULTI, simple(1), b"no header at all\r\n", b'Subject: "part": x\r\nX-Y: ,"part":{\r\n\r\nb\r\n'):
        cache = parse_message(raw)
        cache.pop("search_text")
        blob = orjson.dumps(cache)
        assert _envelope_only(blob) == cache["envelope"]


@given(st.lists(st.tuples(st.sampled_from(["Subject", "X-A", "x-b", "From"]), st.text(alphabet="ab c", max_size=8),
                          st.booleans()), max_size=6),
       st.lists(st.sampled_from(["subject", "x-a", "X-B", "to"]), min_size=1, max_size=3), st.booleans())
def test_header_fields_filter(fields: list, names: list, exclude: bool) -> None:
    block = b""
    for name, value, folded in fields:
        block += f"{name}: {value}\r\n".encode() + (b"  more\r\n" if folded else b"")
    block += b"\r\n"
    out = filter_header_fields(block, names, exclude)
    assert out.endswith(b"\r\n")
    wanted = {n.lower() for n in names}
    expect = b"".join(f"{n}: {v}\r\n".encode() + (b"  more\r\n" if f else b"")
                      for n, v, f in fields if (n.lower() in wanted) != exclude) + b"\r\n"
    assert out == expect


def test_internal_date_format() -> None:
    assert internal_date(0) == b'"01-Jan-1970 00:00:00 +0000"'
    assert internal_date(1700000000) == b'"14-Nov-2023 22:13:20 +0000"'
    assert internal_date(951868799) == b'"29-Feb-2000 23:59:59 +0000"'


@pytest.mark.parametrize("n", [0, 1])
def test_number_rows_skips_unknown(n: int) -> None:
    rows = [(1,), (3,), (4,), (9,)]
    out, seqs = fetch_mod.number_rows(rows, [1, 2, 4, 9, 10][n:])
    assert [r[0] for r in out] == ([1, 4, 9] if n == 0 else [4, 9])
    assert seqs == ([1, 3, 4] if n == 0 else [2, 3])
