"""Issue 11, failures 9-11, over real sockets (SQLite and PostgreSQL): the requests the compliance suite
sends, checked against the RFCs' answers.

9.  ENVELOPE of ``From: user@domain (Real Name)`` names the mailbox "Real Name" (RFC 5322 §3.4 comment as
    the personal name), and Sender/Reply-To, defaulted from From, carry it too.
10. BINARY and BINARY.SIZE of a quoted-printable part delete transport padding and honour ``=`` + padding +
    line end as a soft line break (RFC 2045 §6.7 rule 3).
11. A ``binary`` part appended with a literal8 never reaches a client as NUL inside a plain literal: BODY[1]
    is base64, BINARY[1] is the exact bytes in a literal8 (RFC 9051 §4.3, RFC 3516 §4.3).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.imap.e2e_util import ADDRESS, PASSWORD, Raw, serve, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture
def server(tmp_path: Path, db_url: str | None) -> Iterator[ServerThread]:
    yield from serve(tmp_path, db_url)


_LITERAL = re.compile(rb"(~?)\{(\d+)\}\r\n")


class Client(Raw):
    """The raw client, reading whole responses: literals (``{n}`` and ``~{n}``) are read by length, so
    their bytes can hold CRLF, NUL, or text that looks like a tagged line."""

    def response(self, tag: str) -> bytes:
        out = b""
        while True:
            line = self.line() + b"\r\n"
            out += line
            m = _LITERAL.search(line)
            while m and m.end() == len(line):
                n = int(m.group(2))
                while len(self.buf) < n:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise EOFError(out)
                    self.buf += chunk
                out += self.buf[:n]
                self.buf = self.buf[n:]
                line = self.line() + b"\r\n"
                out += line
                m = _LITERAL.search(line)
            if line.startswith(tag.encode() + b" "):
                return out

    def run(self, tag: str, text: bytes | str) -> bytes:
        self.send(tag.encode() + b" " + (text.encode() if isinstance(text, str) else text) + b"\r\n")
        return self.response(tag)

    def append(self, raw: bytes, literal8: bool = False) -> None:
        """APPEND with a synchronizing literal (``~{n}`` for literal8), waiting for the continuation."""
        self.send(b"A APPEND INBOX %b{%d}\r\n" % (b"~" if literal8 else b"", len(raw)))
        cont = self.line()
        assert cont.startswith(b"+"), cont
        self.send(raw + b"\r\n")
        tail = self.response("A")
        assert tail.splitlines()[-1].startswith(b"A OK"), tail


def connect(srv: ServerThread) -> Client:
    c = Client(srv.imap_port)
    assert c.run("L", f'LOGIN {ADDRESS} "{PASSWORD}"').splitlines()[-1].startswith(b"L OK")
    return c


def item(resp: bytes, key: bytes) -> tuple[bytes, bytes]:
    """(literal marker ``~`` or ``b""``, value) of the literal after ``key`` in a FETCH response."""
    i = resp.index(key + b" ")
    m = _LITERAL.match(resp, i + len(key) + 1)
    assert m, resp[i : i + 80]
    return m.group(1), resp[m.end() : m.end() + int(m.group(2))]


# -- 9: ENVELOPE ---------------------------------------------------------------------------------------------


def test_envelope_takes_the_name_from_a_comment(server: ServerThread) -> None:
    c = connect(server)
    try:
        c.append(b"From: user@domain (Real Name)\r\nTo: Phrase <to@example.test> (ignored)\r\n"
                 b"Subject: comments\r\n\r\nbody\r\n")
        assert c.run("S", "SELECT INBOX").splitlines()[-1].startswith(b"S OK")
        resp = c.run("F", "FETCH 1 ENVELOPE")
        real = b'(("Real Name" NIL "user" "domain"))'
        # from, sender and reply-to (the latter two default to From)
        assert resp.count(real) == 3, resp
        assert b'(("Phrase" NIL "to" "example.test"))' in resp, resp
    finally:
        c.close()


# -- 10: quoted-printable ---------------------------------------------------------------------------------

QP_BODY = (
    b"hello  \r\n"           # padding: deleted
    b"bar\r\n"
    b"foo\tbar\r\n"          # white space inside a line: kept
    b"foo\t \t=\r\n"         # soft break after white space that is data
    b"b\r\n"
    b"foo=20bar \t\r\n"      # an encoded space is data; the padding after it is not
    b"foo b= \r\n"           # "=" then padding: a soft line break
    b"\r\n"
    b"foo=\t\r\n"            # "=" then a tab: a soft line break too
    b"bar\r\n"
    b"foo_bar\r\n"
)
QP_DECODED = b"hello\r\nbar\r\nfoo\tbar\r\nfoo\t \tb\r\nfoo bar\r\nfoo b\r\nfoobar\r\nfoo_bar\r\n"
QP_MESSAGE = (
    b"From: qp@example.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    + QP_BODY
    + b"\r\n--B--\r\n"
)


def test_binary_of_quoted_printable(server: ServerThread) -> None:
    c = connect(server)
    try:
        c.append(QP_MESSAGE)
        assert c.run("S", "SELECT INBOX").splitlines()[-1].startswith(b"S OK")
        resp = c.run("F", "FETCH 1 (BINARY.SIZE[1])")
        assert b"BINARY.SIZE[1] %d)" % len(QP_DECODED) in resp, resp
        resp = c.run("F", "FETCH 1 (BINARY.PEEK[1])")
        assert item(resp, b"BINARY[1]")[1] == QP_DECODED
        for off, length in ((0, 10), (10, 10), (15, 10), (20, 10), (40, 100)):
            resp = c.run("F", f"FETCH 1 (BINARY.PEEK[1]<{off}.{length}>)")
            assert item(resp, b"BINARY[1]<%d>" % off)[1] == QP_DECODED[off : off + length], (off, resp)
        # BODY[1] is the stored, still encoded text
        resp = c.run("F", "FETCH 1 (BODY.PEEK[1])")
        assert item(resp, b"BODY[1]")[1] == QP_BODY
    finally:
        c.close()


# -- 11: NUL in a binary part ---------------------------------------------------------------------------------

PAYLOAD = b"\x00\x01head\r\n" + bytes(range(256)) + b"\x00tail"
BIN_MESSAGE = (
    b"From: bin@example.test\r\nSubject: binary\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
    b"--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    + PAYLOAD
    + b"\r\n--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nno nul here\r\n--B--\r\n"
)


def test_nul_in_binary_part_is_base64_for_body(server: ServerThread) -> None:
    c = connect(server)
    try:
        c.append(BIN_MESSAGE, literal8=True)
        assert c.run("S", "SELECT INBOX").splitlines()[-1].startswith(b"S OK")
        resp = c.run("F", "FETCH 1 (BODY.PEEK[1])")
        marker, value = item(resp, b"BODY[1]")
        assert marker == b"" and b"\x00" not in value, resp
        assert max(len(line) for line in value.split(b"\r\n")) <= 76
        assert base64.b64decode(value) == PAYLOAD
        # a partial of BODY[1] is a slice of what BODY[1] sends
        resp = c.run("F", "FETCH 1 (BODY.PEEK[1]<4.20>)")
        assert item(resp, b"BODY[1]<4>")[1] == value[4:24]
        # BINARY keeps the bytes, in a literal8; BINARY.SIZE counts them
        resp = c.run("F", "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
        assert item(resp, b"BINARY[1]") == (b"~", PAYLOAD), resp
        assert b"BINARY.SIZE[1] %d" % len(PAYLOAD) in resp
        # a binary part without NUL is sent as stored
        resp = c.run("F", "FETCH 1 (BODY.PEEK[2])")
        assert item(resp, b"BODY[2]") == (b"", b"no nul here")
    finally:
        c.close()
