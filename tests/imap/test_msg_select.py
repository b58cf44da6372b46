"""SELECT / EXAMINE through the real session on SQLite and PostgreSQL, reading through ``store.messages``:
a mailbox deleted between the name lookup and the snapshot, EXAMINE's unclaimed \\Recent, and QRESYNC's
VANISHED (EARLIER) plus changed FLAGS since a known MODSEQ."""

from __future__ import annotations

import pytest

from tests.imap.msg_support import (
    deliver,
    fetch_lines,
    mailbox_id,
    runtime_fixture,
    session,
    tagged,
    use_cheap_argon2,
)
from tests.mailgen import simple

mrt = pytest.fixture(runtime_fixture)
cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


async def test_select_of_a_mailbox_that_just_went_is_nonexistent(mrt, monkeypatch) -> None:  # noqa: ANN001
    h = await session(mrt, None)
    monkeypatch.setattr(mrt.store.messages, "mailbox_snapshot", lambda *a, **k: None)
    out = await h.send("S SELECT INBOX")
    assert tagged(out, "S").startswith(b"S NO [NONEXISTENT]")
    assert b"BYE" not in out and h.session.selected is None
    out = await h.send("N NOOP")
    assert tagged(out, "N").startswith(b"N OK")
    await h.close()


async def test_examine_shows_recent_without_claiming(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(i) for i in range(3)])
    looker = await session(mrt, examine=True)
    assert looker.session.selected.recent_count() == 3
    out = await looker.send("F FETCH 1 FLAGS")
    assert b"\\Recent" in out
    claimer = await session(mrt)  # SELECT claims them: EXAMINE did not
    assert claimer.session.selected.recent_count() == 3
    again = await session(mrt, examine=True)
    assert again.session.selected.recent_count() == 0
    for h in (looker, claimer, again):
        await h.close()


async def test_qresync_select_reports_vanished_and_changed(mrt) -> None:  # noqa: ANN001
    deliver(mrt, [simple(i) for i in range(4)])
    box = mrt.store.mailboxes.get(mrt.account.id, mailbox_id(mrt))
    base = box.highest_modseq
    writer = await session(mrt)
    await writer.send("A STORE 2 +FLAGS ($Green)")
    await writer.send("B STORE 3 +FLAGS (\\Deleted)")
    await writer.send("C EXPUNGE")
    h = await session(mrt, None, enable="QRESYNC")
    out = await h.send(f"S SELECT INBOX (QRESYNC ({box.uidvalidity} {base}))")
    assert tagged(out, "S").startswith(b"S OK")
    assert b"* VANISHED (EARLIER) 3\r\n" in out
    lines = fetch_lines(out)
    assert list(lines) == [2] and b"UID 2" in lines[2] and b"$Green" in lines[2] and b"MODSEQ (" in lines[2]
    assert out.index(b"* FLAGS (") < out.index(b"$Green")  # the keyword was announced before FETCH shows it
    for x in (writer, h):
        await x.close()
