"""APPEND with ``\\Deleted`` is one all-or-nothing transaction: ``NO`` always means "nothing stored".

The flag used to be set in a second transaction after the message was stored; a disk that filled in between
answered ``NO [UNAVAILABLE]`` for a message that *was* stored, and the client's retry made a duplicate. Now the
flag goes into the ingest with the message. Real server (a thread of this process), real disk-full faults from
tests/store/storage_faults.py, SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.imap.e2e_util import Raw, start_server, use_cheap_argon2
from tests.mailgen import simple
from tests.store.storage_faults import Faults, db_disk_full, every_stored_email

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)
LOGIN = 'LOGIN alice@example.test "correct horse battery staple"'


@pytest.fixture
def srv(tmp_path, db_url):  # noqa: ANN001, ANN201
    s = start_server(tmp_path, db_url, jmap__listen=None, lmtp__listen=None, imap__imaps=None)
    yield s
    s.stop()


def append_cmd(*messages: tuple[bytes, bytes]) -> bytes:
    """``APPEND INBOX (flags) {n+} raw ...`` for (flags, raw) pairs (non-synchronizing literals)."""
    parts = [b"(%s) {%d+}\r\n%s" % (flags, len(raw), raw) for flags, raw in messages]
    return b"APPEND INBOX " + b" ".join(parts)


def flags_of_all(raw: Raw) -> list[bytes]:
    assert raw.cmd("S", "SELECT INBOX")[-1].startswith(b"S OK")
    lines = raw.cmd("F", "UID FETCH 1:* (FLAGS)")
    assert lines[-1].startswith(b"F OK"), lines
    return [ln for ln in lines if ln.startswith(b"* ") and b"FETCH" in ln]


def disk_full_after_the_mail_commit(monkeypatch: pytest.MonkeyPatch, engine: sa.Engine) -> dict[str, int]:
    """The disk fills the moment a transaction storing mail has committed: every later COMMIT fails."""
    seen = {"mail": 0, "refused": 0}
    marked: set[int] = set()

    def mark(conn, cursor, statement, params, context, executemany):  # noqa: ANN001, ANN202
        if statement.startswith("INSERT INTO emails "):
            marked.add(id(conn.connection))

    sa.event.listen(engine, "before_cursor_execute", mark)  # only marks: harmless once the commit is restored
    dialect = engine.dialect
    real_commit = dialect.do_commit

    def commit(dbapi_conn: Any) -> None:
        if seen["mail"]:
            seen["refused"] += 1
            raise db_disk_full(engine)
        real_commit(dbapi_conn)
        if id(dbapi_conn) in marked:
            marked.discard(id(dbapi_conn))
            seen["mail"] += 1

    monkeypatch.setattr(dialect, "do_commit", commit)
    return seen


def test_deleted_flag_is_stored_with_the_message(srv, monkeypatch) -> None:  # noqa: ANN001
    """No write after the message's own transaction: a disk that fills right then does not turn an
    APPEND whose message was stored into a NO (which the client would retry, storing it twice)."""
    raw = Raw(srv.imap_port)
    try:
        assert raw.cmd("L", LOGIN)[-1].startswith(b"L OK")
        seen = disk_full_after_the_mail_commit(monkeypatch, srv.store.engine)
        answer = raw.cmd("A", append_cmd((b"\\Deleted \\Seen", simple(1))))[-1]
        monkeypatch.undo()
        assert seen["mail"] == 1
        assert answer.startswith(b"A OK [APPENDUID "), answer
        assert seen["refused"] == 0  # nothing else was written for it
        fetched = flags_of_all(raw)
        assert len(fetched) == 1 and b"\\Deleted" in fetched[0] and b"\\Seen" in fetched[0], fetched
    finally:
        raw.close()


def test_append_with_deleted_on_a_full_disk_stores_nothing_and_a_retry_stores_once(srv, monkeypatch) -> None:  # noqa: ANN001
    first, second = simple(1), simple(2)
    cmd = append_cmd((b"\\Deleted", first), (b"\\Flagged", second))
    raw = Raw(srv.imap_port)
    try:
        assert raw.cmd("L", LOGIN)[-1].startswith(b"L OK")
        for arm in (lambda f: f.commit_disk_full(srv.store.engine), lambda f: f.short_write_then_enospc()):
            f = Faults(monkeypatch)
            arm(f)
            answer = raw.cmd("A1", append_cmd((b"\\Deleted", first)))[-1]
            assert f.fired == 1 and answer.startswith(b"A1 NO [UNAVAILABLE] "), answer
            monkeypatch.undo()
            assert every_stored_email(srv.store) == []  # NO means nothing was stored
        assert raw.cmd("A2", append_cmd((b"\\Deleted", first)))[-1].startswith(b"A2 OK [APPENDUID ")
        assert raw.cmd("A3", cmd)[-1].startswith(b"A3 OK [APPENDUID ")  # MULTIAPPEND: flags per message
        fetched = flags_of_all(raw)
        assert len(fetched) == 3, fetched
        assert b"\\Deleted" in fetched[0] and b"\\Deleted" in fetched[1] and b"\\Flagged" in fetched[2]
        assert b"\\Deleted" not in fetched[2] and b"\\Flagged" not in fetched[1]
        assert sorted(every_stored_email(srv.store)) == sorted([first, first, second])
    finally:
        raw.close()
