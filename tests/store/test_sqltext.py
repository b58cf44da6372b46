"""Statements built once and run on the driver's cursor (``Store.sql``, janusmail/store/sqltext.py), on both
backends: expanding ``IN`` lists (padded to a power of two, empty ones matching nothing), fixed values,
RETURNING, executemany, and driver errors leaving as SQLAlchemy's exceptions (what ``faults.mapped`` and the
callers' ``IntegrityError`` handlers expect)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from janusmail.store import faults
from janusmail.store.schema import mailboxes, vanished

_P = sa.bindparam
_NAMES = (sa.select(mailboxes.c.name)
          .where(mailboxes.c.account_id == _P("account_id"), mailboxes.c.name.in_(_P("names", expanding=True)),
                 mailboxes.c.id.in_(_P("ids", expanding=True)))
          .order_by(mailboxes.c.name))
_TOUCH = (sa.update(mailboxes).where(mailboxes.c.id.in_(_P("ids", expanding=True)))
          .values(highest_modseq=_P("modseq"), uidnext=mailboxes.c.uidnext + 0)
          .returning(mailboxes.c.name, mailboxes.c.highest_modseq))
_RESET = sa.update(mailboxes).where(mailboxes.c.account_id == _P("a")).values(uidnext=5)
_VANISHED = sa.insert(vanished).values(mailbox_id=_P("mailbox_id"), uid=_P("uid"), modseq=_P("modseq"))


def test_expanding_lists_fixed_values_and_returning(store, account) -> None:  # noqa: ANN001
    boxes = {b.name: b.id for b in store.mailboxes.list(account.id)}
    sql = store.sql
    ids = list(boxes.values())
    with store.engine.connect() as conn, conn.begin():
        for names in (["INBOX"], ["INBOX", "Sent", "Trash"], ["Trash", "Sent", "INBOX", "Drafts", "Junk"]):
            # 3 and 5 names are padded to 4 and 8 placeholders: the repeats change nothing
            assert sql.column(conn, _NAMES, {"account_id": account.id, "names": names, "ids": ids}) == sorted(names)
        assert sql.run(conn, _NAMES, {"account_id": account.id, "names": [], "ids": ids}) == []
        assert sql.column(conn, _NAMES, {"account_id": account.id, "names": ["Sent"], "ids": [boxes["INBOX"]]}) == []
        touched = sql.run(conn, _TOUCH, {"ids": [boxes["Sent"], boxes["Trash"], boxes["Sent"]], "modseq": 77})
        assert sorted(touched) == [("Sent", 77), ("Trash", 77)]
        assert sql.count(conn, _RESET, {"a": account.id}) == len(boxes)
    texts = {k: v for k, v in sql._stmts.items() if v.stmt is _NAMES}
    pad = 1 << (len(ids) - 1).bit_length()
    assert set(next(iter(texts.values())).by_sizes) == {(1, pad), (4, pad), (8, pad), (0, pad), (1, 1)}


def test_executemany_and_driver_errors_keep_sqlalchemys_exceptions(store, account) -> None:  # noqa: ANN001
    inbox = store.mailboxes.by_path(account.id, ["INBOX"])
    sql = store.sql
    with store.engine.connect() as conn, conn.begin():
        sql.many(conn, _VANISHED, [{"mailbox_id": inbox.id, "uid": u, "modseq": 1} for u in (7, 8, 9)])
        sql.many(conn, _VANISHED, [])  # nothing to do
        assert sorted(sql.column(conn, sa.select(vanished.c.uid).where(vanished.c.mailbox_id == _P("m")),
                                 {"m": inbox.id})) == [7, 8, 9]
        with pytest.raises(sa.exc.IntegrityError), faults.mapped():  # not a storage fault: stays what it is
            sql.many(conn, _VANISHED, [{"mailbox_id": inbox.id, "uid": 7, "modseq": 2}])
