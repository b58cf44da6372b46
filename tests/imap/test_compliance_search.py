"""Issue 11, failures 2-5, over real sockets (SQLite and PostgreSQL): the SEARCH requests the compliance suite
sends, checked against RFC 9051 §6.4.4.

2.  ``NOT HEADER <field> ""`` is an answer, not a server error: the messages without that field.
3.  TEXT and BODY match any substring ("contains the specified string"): ``sdfghjk`` finds ``asdfghjkl``,
    case-insensitively, in the decoded body (base64 here), through the trigram index, and strings too short
    for trigrams through the mailbox's own rows.
4.  TEXT covers every header field (``X-Header:``), decoded encoded words included; BODY does not.
5.  An address field holding only a group (``To: groupname:;``) is present for ``HEADER TO ""``, and its
    group name is found by ``TO groupname``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.imap.e2e_util import ADDRESS, PASSWORD, Raw, serve, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)

MESSAGES = [
    # 1: the strings inside longer tokens of a plain body
    b"From: user@example.test\r\nTo: other@example.test\r\nSubject: first\r\nX-Extra: yes\r\n\r\n"
    b"asdfghjkl\r\nzxcvbnm\r\n",
    # 2: no Subject, a group as the only recipient, the string only in a header field
    b"From: user@example.test\r\nTo: groupname:;\r\nX-Header: qwertyuiop\r\n\r\nnothing here\r\n",
    # 3: the strings only after decoding (a base64 body, an encoded-word subject)
    b"From: x@example.test\r\nTo: y@example.test\r\nSubject: =?utf-8?b?"
    + base64.b64encode(b"plainhiddenword") + b"?=\r\nX-Extra: no\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"qwertyuiop\r\n") + b"\r\n",
]

CASES = [
    # 2
    ('NOT HEADER SUBJECT ""', {2}),
    ('NOT HEADER X-EXTRA ""', {2}),
    ('HEADER X-EXTRA ""', {1, 3}),
    # 3
    ("TEXT sdfghjk", {1}),
    ("BODY xcvbn", {1}),
    ("BODY wertyuio", {3}),
    ("TEXT SDFGHJK", {1}),
    ("TEXT fg", {1}),  # too short for trigrams: a scan of the mailbox
    ("NOT BODY cv", {2, 3}),
    ('TEXT ""', {1, 2, 3}),
    # 4
    ("TEXT qwertyuiop", {2, 3}),
    ("BODY qwertyuiop", {3}),
    ("TEXT x-header", {2}),
    ("TEXT hiddenwor", {3}),
    ("HEADER X-HEADER wertyu", {2}),
    ("OR TEXT sdfghjk HEADER X-HEADER wertyu", {1, 2}),
    # 5
    ('HEADER TO ""', {1, 2, 3}),
    ("TO groupname", {2}),
    ("TO roupnam", {2}),
    ("NOT TO groupname", {1, 3}),
    ("TO other", {1}),
    ("FROM user@", {1, 2}),
]


@pytest.fixture
def server(tmp_path: Path, db_url: str | None) -> Iterator[ServerThread]:
    yield from serve(tmp_path, db_url)


def _append(c: Raw, raw: bytes) -> None:
    c.send(b"A APPEND INBOX {%d}\r\n" % len(raw))
    assert c.line().startswith(b"+")
    c.send(raw + b"\r\n")
    assert c.until("A")[-1].startswith(b"A OK")


def _search(c: Raw, key: str) -> set[int] | bytes:
    lines = c.cmd("S", f"SEARCH {key}")
    if not lines[-1].startswith(b"S OK"):
        return lines[-1]
    hits = [ln for ln in lines if ln.startswith(b"* SEARCH")]
    assert len(hits) == 1, lines
    return {int(x) for x in hits[0].split()[2:]}


def test_search_is_substring_over_headers_and_body(server: ServerThread) -> None:
    c = Raw(server.imap_port)
    try:
        assert c.cmd("L", f'LOGIN {ADDRESS} "{PASSWORD}"')[-1].startswith(b"L OK")
        for raw in MESSAGES:
            _append(c, raw)
        assert c.cmd("X", "SELECT INBOX")[-1].startswith(b"X OK")
        wrong = [(key, got, want) for key, want in CASES if (got := _search(c, key)) != want]
        assert not wrong, "\n".join(f"SEARCH {k}: got {g!r}, want {w}" for k, g, w in wrong)
        # an expunged message leaves no trace in the index, the others are still found
        assert c.cmd("D", "STORE 1 +FLAGS.SILENT (\\Deleted)")[-1].startswith(b"D OK")
        assert c.cmd("E", "EXPUNGE")[-1].startswith(b"E OK")
        assert _search(c, "TEXT sdfghjk") == set()
        assert _search(c, "TEXT qwertyuiop") == {1, 2}
        assert _search(c, "TO groupname") == {1}
    finally:
        c.close()
