"""Hot-path queries stay bounded by their account's and mailbox's indexes (issue 10 item 1).

Each test runs one operation of the hot path through the store's public methods, captures every SQL statement
the database is asked to run, and asks the database how it would run each of them: SQLite's ``EXPLAIN QUERY
PLAN``, PostgreSQL's ``EXPLAIN (FORMAT JSON)`` with sequential scans priced out (``enable_seqscan = off``, so
the planner picks an index whenever one can serve the query, and a sequential scan in the plan means none
can). A full scan of a table (SQLite ``SCAN t``, PostgreSQL ``Seq Scan`` or an index scan with no index
condition) is work that grows with the whole store, not with the mailbox the command is about: the test
names the statement and fails.

Why capture at the driver: bulk reads bypass SQLAlchemy's execution events (``janusmail.store.rawrows``,
``sqltext``), so on SQLite every statement comes from the connection's trace callback (with its values
inlined) and on PostgreSQL from a recording cursor class installed on each new driver connection.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from janusmail.store import schema
from janusmail.store.emails import EmailUpdate
from janusmail.store.model import IngestItem
from janusmail.store.search import ast as q
from janusmail.store.store import Store
from tests.mailgen import simple

#: Tables whose full scan grows with the store: every real table of the schema, and SQLite's ``email_text``
#: (migration 0004; the full-text tables themselves are virtual: their plans say how they search).
TABLES = frozenset(schema.metadata.tables) | {"email_text"}
#: What a statement that may need a plan starts with (BEGIN, PRAGMA, SAVEPOINT, ... are left out).
_PLANNED = re.compile(r"^\s*(SELECT|WITH|UPDATE|DELETE|INSERT\s+INTO\s+\S+\s*(\([^)]*\))?\s*(SELECT|WITH))",
                      re.IGNORECASE | re.DOTALL)
_SQLITE_SCAN = re.compile(r"^SCAN (\w+)")
#: a skip-scan (``SEARCH t USING INDEX i (ANY(a) AND b=?)``) reads every value of the index's first column
_SQLITE_SKIP_SCAN = re.compile(r"^SEARCH (\w+) .*\(ANY\(")
#: an FTS5 table read with no MATCH and no rowid constraint (empty index string), in no rowid order: all of it
_SQLITE_FTS_SCAN = re.compile(r"^SCAN (email_fts|email_trgm) VIRTUAL TABLE INDEX 0:$")
#: a lookup of listed keys (``id IN (...)``) that walks its whole account instead: bounded by the account, but
#: a 100k account made Email/import's blob lookup 125 ms and Thread/get's 230 ms. An account's mailboxes are
#: few by design (a walk of them is a lookup), so they are left out.
_SQLITE_ACCOUNT_WALK = re.compile(r"^SEARCH (\w+) USING (?:COVERING )?INDEX \w+ \(account_id=\?\)$")
_KEY_LIST = re.compile(r"\b(id|email_id|thread_id)\s+IN\s*\(", re.IGNORECASE)


class Capture:
    """Statements run on the store's connections while :meth:`recording` is open."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.active = False
        self.statements: list[tuple[str, Any]] = []
        engine = store.engine
        if store.sqlite:
            def on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.set_trace_callback(self._on_sqlite)
        else:
            import psycopg

            capture = self

            class RecordingCursor(psycopg.Cursor):
                def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
                    capture._on_pg(query, params, self.connection)
                    return super().execute(query, params, **kw)

                def executemany(self, query: Any, params_seq: Any, **kw: Any) -> Any:
                    params_seq = list(params_seq)
                    if params_seq:
                        capture._on_pg(query, params_seq[0], self.connection)
                    return super().executemany(query, params_seq, **kw)

            def on_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.cursor_factory = RecordingCursor

        sa.event.listen(engine, "connect", on_connect)
        engine.dispose()  # every connection from now on is a new one, with the hook

    def _on_sqlite(self, statement: str) -> None:
        if self.active:
            self.statements.append((statement, None))

    def _on_pg(self, query: Any, params: Any, conn: Any) -> None:
        if self.active:
            text = query if isinstance(query, str) else query.as_string(conn)
            self.statements.append((text, params))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.active = True
        try:
            yield self.statements
        finally:
            self.active = False


def full_scans(store: Any, statements: list[tuple[str, Any]]) -> list[str]:
    """``"<table>: <statement>"`` for every full table scan in the plans of ``statements``."""
    found: list[str] = []
    planned = [(sql, params) for sql, params in statements if _PLANNED.match(sql)]
    assert planned, "no statement was captured: the capture is broken"
    raw = store.engine.raw_connection()
    try:
        if store.sqlite:
            cur = raw.cursor()
            for sql, _ in planned:
                for row in cur.execute("EXPLAIN QUERY PLAN " + sql).fetchall():
                    m = _SQLITE_SCAN.match(row[3]) or _SQLITE_SKIP_SCAN.match(row[3])
                    if m and (m.group(1) in TABLES or _SQLITE_FTS_SCAN.match(row[3])):
                        found.append(f"{m.group(1)} ({row[3]}): {_short(sql)}")
                    walk = _SQLITE_ACCOUNT_WALK.match(row[3])
                    if walk and walk.group(1) != "mailboxes" and _KEY_LIST.search(sql):
                        found.append(f"{walk.group(1)} (walks the account: {row[3]}): {_short(sql)}")
        else:
            import psycopg

            dbapi = raw.driver_connection
            with psycopg.ClientCursor(dbapi) as cur:
                cur.execute(_LEADING_COLUMNS)
                leading = dict(cur.fetchall())
                for setting in _PG_INDEXED_ONLY:
                    cur.execute(f"SET LOCAL {setting} = off")
                for sql, params in planned:
                    cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
                    plan = cur.fetchone()[0][0]["Plan"]
                    for table, node in _pg_scans(plan, leading):
                        found.append(f"{table} ({node}): {_short(sql)}")
            dbapi.rollback()
    finally:
        raw.close()
    return found


#: Sequential scans, and the joins that read a whole table or index to merge or hash it, priced out: what is
#: left is the plan through index lookups, if the query has one (the planner falls back to a priced-out path
#: only when nothing else can run the query, and that path is what the test reports).
_PG_INDEXED_ONLY = ("enable_seqscan", "enable_mergejoin", "enable_hashjoin")
#: index name -> its first column (None for an expression), for the tables this test's schema sees.
_LEADING_COLUMNS = """
    SELECT c.relname, a.attname FROM pg_index i
    JOIN pg_class c ON c.oid = i.indexrelid
    LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE pg_table_is_visible(c.oid)
"""


def _pg_scans(node: dict[str, Any], leading: dict[str, str | None], table: str | None = None,
              limited: bool = False) -> Iterator[tuple[str, str]]:
    """Full scans in a PostgreSQL plan: a ``Seq Scan``, or an index scan whose condition does not constrain
    the index's first column (that walks the whole index, e.g. ``size > 0`` on a multi-column index). An
    index scan right under a ``Limit`` (``max(col)`` read from the end of an index) stops at its first rows."""
    kind = node.get("Node Type", "")
    table = node.get("Relation Name") or table
    if table in TABLES and not (limited and kind != "Seq Scan"):
        if kind == "Seq Scan":
            yield table, kind
        elif kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan"):
            index = node.get("Index Name", "")
            cond = node.get("Index Cond", "")
            first = leading.get(index)
            if not cond or (first and not re.search(rf"\b{first}\b\)?(::[\w ]+)?\s*(=|<|>|~)", cond)):
                yield table, f"{kind} {index} on {cond or 'no condition'}"
    for child in node.get("Plans", ()):
        yield from _pg_scans(child, leading, table if kind == "Bitmap Heap Scan" else None, kind == "Limit")


def _short(sql: str) -> str:
    return " ".join(sql.split())[:300]


# -- a store with something in it -----------------------------------------------------------------------------


#: Rows of other accounts' mail written straight into the tables (no parsing: only the planner looks at them),
#: so that PostgreSQL's statistics describe a store where the target mailbox is a small part of the whole and
#: a plan through indexes is the planner's own choice, not an accident of near-empty tables.
FILL_EMAILS = 4_000
FILL_BOXES = 40


def _fill(store: Any, account_id: str, box_ids: list[str]) -> None:
    n = FILL_EMAILS
    emails = [{"id": f"Mfill{i}", "account_id": account_id, "blob_id": f"Bfill{i}", "thread_id": f"Tfill{i // 4}",
               "size": 1000 + i, "received_at": 1_600_000_000 + i, "flags": i % 2, "cache": b"{}",
               "addr_from": f"filler {i} <f{i}@example.test>", "created_modseq": 1, "modseq": 1 + i % 50}
              for i in range(n)]
    members = [{"mailbox_id": box_ids[i % len(box_ids)], "uid": i + 1, "email_id": f"Mfill{i}", "modseq": 1}
               for i in range(n)]
    keywords = [{"email_id": f"Mfill{i}", "keyword": "$custom", "display": "$custom"} for i in range(0, n, 2)]
    refs = [{"account_id": account_id, "msgid": f"fill{i}@example.test", "thread_id": f"Tfill{i // 4}"}
            for i in range(n)]
    changes = [{"account_id": account_id, "modseq": 1 + i // 10, "kind": "Email", "object_id": f"Mfill{i}",
                "op": "c"} for i in range(n)]
    threads = [{"id": f"Tfill{i}", "account_id": account_id, "modseq": 1} for i in range(n // 4)]
    with store.engine.begin() as conn:
        for table, rows in ((schema.emails, emails), (schema.messages, members), (schema.email_keywords, keywords),
                            (schema.thread_refs, refs), (schema.changes, changes), (schema.threads, threads)):
            conn.execute(sa.insert(table), rows)


def fill_others(store: Any) -> None:
    """Another account with mail of its own: a query that reads it is reading beyond its account."""
    other = store.accounts.create("other@example.test", "x")
    other_box = store.mailboxes.create(other.id, "Lists")
    store.emails.ingest_many(other.id, [IngestItem(simple(1000 + i), (other_box.id,)) for i in range(20)])
    _fill(store, other.id, [store.mailboxes.create(other.id, f"Bulk {i}").id for i in range(FILL_BOXES)])


class Seeded:
    """The account a test works on, made for that test in the module's filled store (so tests stay
    independent of each other), with fresh planner statistics."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.address = f"alice-{uuid.uuid4().hex[:12]}@example.test"
        acct = store.accounts.create(self.address, "x")
        self.account_id = acct.id
        self.box = store.mailboxes.create(acct.id, "Work").id
        self.other_box = store.mailboxes.create(acct.id, "Later").id
        items = []
        for i in range(30):
            reply = {"in_reply_to": f"<m{i - 1}@example.test>", "references": [f"<m{i - 1}@example.test>"]} \
                if i % 3 else {}
            raw = simple(i, msgid=f"<m{i}@example.test>", body=f"word{i} quarterly report {i}", **reply)
            items.append(IngestItem(raw, (self.box,), ("$seen", "$custom") if i % 2 else (), 1_700_000_000 + i))
        store.emails.ingest_many(acct.id, items)
        store.emails.ingest_many(acct.id, [IngestItem(simple(500 + i), (self.other_box,)) for i in range(5)])
        self.email_ids = self.store.search.email_query(self.account_id, q.EmailQuery(q.InMailbox(self.box)),
                                                       0, 100).ids
        store.refresh_statistics()


@pytest.fixture(scope="module")
def filled_store(module_db_url: str | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The store with everyone else's mail, filled once per backend for the module (thousands of rows)."""
    store = Store.open(tmp_path_factory.mktemp("plans") / "data", module_db_url)
    try:
        fill_others(store)
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def module_capture(filled_store: Any) -> Capture:
    return Capture(filled_store)


@pytest.fixture
def seeded(filled_store: Any) -> Seeded:
    return Seeded(filled_store)


@pytest.fixture
def capture(seeded: Seeded, module_capture: Capture) -> Capture:
    return module_capture


def assert_bounded(capture: Capture, operation: Callable[[], Any]) -> Any:
    with capture.recording() as statements:
        result = operation()
    scans = full_scans(capture.store, statements)
    assert not scans, "full table scans:\n  " + "\n  ".join(scans)
    return result


# -- IMAP -----------------------------------------------------------------------------------------------------


def test_status_and_list_status_counts(seeded: Seeded, capture: Capture) -> None:
    s, a = seeded.store, seeded.account_id

    def status() -> Any:
        boxes = s.mailboxes.list(a)
        return boxes, s.mailboxes.counts(a, [seeded.box]), s.messages.recent_counts([seeded.box])

    _, counts, _ = assert_bounded(capture, status)
    assert counts[seeded.box].messages == 30
    every = assert_bounded(capture, lambda: s.mailboxes.counts(a, [b.id for b in s.mailboxes.list(a)]))
    assert every[seeded.other_box].messages == 5


def test_login_and_list(seeded: Seeded, capture: Capture) -> None:
    s, a = seeded.store, seeded.account_id
    login = assert_bounded(capture, lambda: s.credentials.login_account(address=seeded.address))
    assert login is not None
    assert_bounded(capture, lambda: (s.credentials.epochs(a), s.credentials.sequence()))
    boxes, _ = assert_bounded(capture, lambda: (s.mailboxes.list(a), s.subscriptions.names(a)))
    assert {b.name for b in boxes} >= {"Work", "Later"}


def test_select_snapshot_and_catch_up(seeded: Seeded, capture: Capture) -> None:
    s, a = seeded.store, seeded.account_id
    snap = assert_bounded(capture, lambda: s.messages.mailbox_snapshot(a, seeded.box, claim_recent=True,
                                                                         first_unseen=True))
    assert snap is not None
    box = s.mailboxes.get(a, seeded.box)
    s.memberships.store_flags(a, seeded.box, [(1, 2)], "add", ["$flagged"], None)
    delta = assert_bounded(capture, lambda: s.messages.mailbox_delta(
        seeded.box, uidvalidity=box.uidvalidity, uidnext=box.uidnext, modseq=box.highest_modseq))
    assert delta is not None
    assert_bounded(capture, lambda: s.keywords.in_mailbox(a, seeded.box))
    assert_bounded(capture, lambda: s.messages.flag_changes(seeded.box, 1, box.highest_modseq + 10, box.uidnext))


def plan_texts(store: Any, statements: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    """``(statement, how its tables are searched)`` for each planned statement: SQLite's plan lines, or
    PostgreSQL's index names and conditions (sequential scans priced out, as in :func:`full_scans`)."""
    out: list[tuple[str, str]] = []
    raw = store.engine.raw_connection()
    try:
        if store.sqlite:
            cur = raw.cursor()
            for sql, _ in statements:
                if _PLANNED.match(sql):
                    out.append((sql, " | ".join(r[3] for r in cur.execute("EXPLAIN QUERY PLAN " + sql))))
        else:
            import psycopg

            def walk(node: dict[str, Any]) -> Iterator[str]:
                yield f"{node.get('Node Type')} {node.get('Index Name', '')} {node.get('Index Cond', '')}"
                for child in node.get("Plans", ()):
                    yield from walk(child)

            dbapi = raw.driver_connection
            with psycopg.ClientCursor(dbapi) as cur:
                for setting in _PG_INDEXED_ONLY:
                    cur.execute(f"SET LOCAL {setting} = off")
                for sql, params in statements:
                    if _PLANNED.match(sql):
                        cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
                        out.append((sql, " | ".join(walk(cur.fetchone()[0][0]["Plan"]))))
            dbapi.rollback()
    finally:
        raw.close()
    return out


def test_catch_up_reads_what_changed_not_the_mailbox(seeded: Seeded, capture: Capture) -> None:
    """A session's catch-up after a flag change and expunges (every IMAP command runs one while others write
    its mailbox) finds the changed memberships and the vanished UIDs by their (mailbox, modseq) indexes. Bounded
    by UIDNEXT too, SQLite walked the mailbox's (mailbox, uid) key instead: every message, and every vanished
    row the mailbox ever had, on each command."""
    s, a = seeded.store, seeded.account_id
    for uid in (1, 2, 3):
        s.memberships.store_flags(a, seeded.box, [(uid, uid)], "add", [], True)
        s.memberships.expunge(a, seeded.box)
    box = s.mailboxes.get(a, seeded.box)
    s.memberships.store_flags(a, seeded.box, [(7, 7)], "add", ["$flagged"], None)
    s.memberships.store_flags(a, seeded.box, [(8, 8)], "add", [], True)
    s.memberships.expunge(a, seeded.box)
    with capture.recording() as statements:
        delta = s.messages.mailbox_delta(seeded.box, uidvalidity=box.uidvalidity, uidnext=box.uidnext,
                                         modseq=box.highest_modseq)
        changes = s.messages.flag_changes(seeded.box, box.highest_modseq, box.highest_modseq + 10, box.uidnext)
    assert delta is not None and delta.vanished == [8] and [c.uid for c in delta.changed] == [7]
    assert changes.vanished == [8] and [c.uid for c in changes.changed] == [7]
    ranged = [(sql, plan) for sql, plan in plan_texts(s, statements)
              if re.search(r"\b(vanished|messages)\b", sql) and re.search(r"modseq\s*>", sql)]
    assert len(ranged) == 2, statements  # the catch-up's one statement, the QRESYNC answer's (the same one)
    assert not full_scans(s, statements)
    if not s.sqlite:
        return  # PostgreSQL weighs statistics: for a mailbox with four vanished rows its key serves as well
    for sql, plan in ranged:
        if re.search(r"vanished\.modseq\s*>", sql):
            assert "ix_vanished_mailbox_modseq" in plan, f"{_short(sql)}: {plan}"
        if re.search(r"messages\.modseq\s*>", sql):
            assert "ix_messages_mailbox_modseq" in plan, f"{_short(sql)}: {plan}"


def test_first_unseen_stops_at_the_first_unseen_and_is_not_looked_for_when_all_are_seen(
        seeded: Seeded, capture: Capture) -> None:
    """IMAP4rev1's SELECT answers [UNSEEN n]. As ``min(uid)`` over the join it read every membership of the
    mailbox (a mailbox whose mail is all read: each one, on each SELECT after a change); walking the (mailbox,
    uid) key in order it stops at the first unseen one, and with the unseen counter at 0 nothing is read."""
    s, a = seeded.store, seeded.account_id
    with capture.recording() as statements:
        snap = s.messages.mailbox_snapshot(a, seeded.box, first_unseen=True)
    assert snap is not None and snap.first_unseen == 1  # messages 0, 2, 4... (UIDs 1, 3, 5...) are unseen
    firsts = [(sql, plan) for sql, plan in plan_texts(s, statements) if "LIMIT" in sql and "flags" in sql]
    assert len(firsts) == 1, statements
    assert not full_scans(s, statements)
    if s.sqlite:
        assert "TEMP B-TREE" not in firsts[0][1] and "messages" in firsts[0][1], firsts[0]
    s.memberships.store_flags(a, seeded.box, [(1, 1_000_000)], "add", ["$seen"], None)
    with capture.recording() as statements:
        snap = s.messages.mailbox_snapshot(a, seeded.box, first_unseen=True)
    assert snap is not None and snap.first_unseen is None
    assert not [sql for sql, _ in statements if "LIMIT" in sql and "flags" in sql], statements


def test_fetch_flags_rows(seeded: Seeded, capture: Capture) -> None:
    s = seeded.store
    rows = assert_bounded(capture, lambda: s.messages.fetch_rows(seeded.box, [(1, 1_000_000)], keywords=True))
    assert len(rows.rows) == 30
    assert_bounded(capture, lambda: s.messages.fetch_rows(seeded.box, [(3, 7)], blob=True, part_offsets=True))


def test_uid_search(seeded: Seeded, capture: Capture) -> None:
    s = seeded.store
    for condition in (q.Not(q.Keyword("$seen")), q.Address("from", ("sender",)), q.Text("all", ("quarterly",)),
                      q.Keyword("$custom"), q.And((q.Keyword("$seen"), q.SubjectContains("number")))):
        hits = assert_bounded(capture, lambda c=condition: s.search.mailbox_search(seeded.account_id, seeded.box, c))
        assert hits, condition


def test_store_expunge_and_append(seeded: Seeded, capture: Capture) -> None:
    s, a = seeded.store, seeded.account_id
    assert_bounded(capture, lambda: s.memberships.store_flags(a, seeded.box, [(1, 5)], "add",
                                                              ["$seen", "$custom2"], None))
    assert_bounded(capture, lambda: s.memberships.store_flags(a, seeded.box, [(2, 2)], "replace", [], True))
    assert assert_bounded(capture, lambda: s.memberships.expunge(a, seeded.box)) == [2]
    # the last copies of a whole thread (messages 27-29: UIDs 28-30): the emails and their thread destroyed
    s.memberships.store_flags(a, seeded.box, [(28, 30)], "add", [], True)
    assert assert_bounded(capture, lambda: s.memberships.expunge(a, seeded.box, [(28, 30)])) == [28, 29, 30]
    assert_bounded(capture, lambda: s.memberships.copy(a, seeded.box, [(3, 4)], seeded.other_box))
    # APPEND of a reply: the thread lookup (References, base subject) and the blob dedup lookup.
    reply = simple(99, msgid="<new@example.test>", in_reply_to="<m4@example.test>",
                   references=["<m3@example.test>", "<m4@example.test>"])
    delivered = assert_bounded(capture, lambda: s.emails.ingest(a, reply, (seeded.box,), ("$draft",)))
    again = assert_bounded(capture, lambda: s.emails.ingest(a, reply, (seeded.other_box,)))
    assert again.blob_id == delivered.blob_id
    sha = s.blobs.location(a, delivered.blob_id).sha256
    present = assert_bounded(capture, lambda: s.emails.digests_present(a, [sha], [seeded.box]))
    assert present == {(sha, seeded.box)}
    # a batch (the import and delivery path) with a new thread and a reply to a message that never came
    batch = [IngestItem(simple(200, msgid="<b1@example.test>"), (seeded.box,)),
             IngestItem(simple(201, in_reply_to="<missing@example.test>"), (seeded.box,), ("$seen",))]
    assert len(assert_bounded(capture, lambda: s.emails.ingest_many(a, batch))) == 2


# -- JMAP -----------------------------------------------------------------------------------------------------


def test_email_query_in_mailbox_sorted(seeded: Seeded, capture: Capture) -> None:
    s, a = seeded.store, seeded.account_id
    newest = (q.SortKey("receivedAt", ascending=False),)
    for collapse in (False, True):
        query = q.EmailQuery(q.InMailbox(seeded.box), newest, collapse)
        s.search.query_cache.clear()
        out = assert_bounded(capture, lambda query=query: s.search.email_query(a, query, 0, 10,
                                                                               calculate_total=True))
        assert out.ids and out.total


def test_email_get_and_mailbox_get(seeded: Seeded, capture: Capture) -> None:
    s, a = seeded.store, seeded.account_id
    ids = seeded.email_ids[:10]
    rows = assert_bounded(capture, lambda: s.visible_emails.rows(a, ids, keywords=True, location=True))
    assert len(rows) == 10
    assert_bounded(capture, lambda: s.visible_emails.thread_members(a, [r.thread_id for r in rows]))
    counts = assert_bounded(capture, lambda: (s.mailboxes.list(a), s.mailboxes.counts(a)))[1]
    assert counts[seeded.box].total_emails == 30


def test_blob_lookups_by_id(seeded: Seeded, capture: Capture) -> None:
    """Email/import reads its hundred uploads' locations by blob id, never by walking the account's blobs; another
    account's ids are simply not found."""
    s, a = seeded.store, seeded.account_id
    ids = [s.blobs.upload(a, simple(900 + i), "message/rfc822")[0] for i in range(100)]
    found = assert_bounded(capture, lambda: s.blobs.locations(a, ids))
    assert sorted(found) == sorted(ids)
    assert s.blobs.locations("Anobody", ids) == {}


def test_email_set_keywords_and_changes_since(seeded: Seeded, capture: Capture) -> None:
    s, a = seeded.store, seeded.account_id
    since = s.changes.highest_modseq(a)
    updates = {i: EmailUpdate(add_keywords=["$flagged"]) for i in seeded.email_ids[:5]}
    assert_bounded(capture, lambda: s.visible_emails.apply(a, updates))
    changed = assert_bounded(capture, lambda: s.changes.since(a, "Email", since))
    assert {c.object_id for c in changed} == set(updates)
    assert_bounded(capture, lambda: (s.changes.snapshot(a), s.changes.kind_state(a, "Mailbox")))
    query = q.EmailQuery(q.InMailbox(seeded.box), (q.SortKey("receivedAt", ascending=False),))
    state = s.search.email_query(a, query, 0, 10).state
    s.visible_emails.apply(a, {seeded.email_ids[0]: EmailUpdate(add_keywords=["$answered"])})
    assert_bounded(capture, lambda: s.search.query_changes(a, query, state))


# -- the check itself can fail --------------------------------------------------------------------------------


def test_a_full_scan_is_reported(seeded: Seeded, capture: Capture) -> None:
    def unindexed() -> Any:
        with seeded.store.engine.connect() as conn:
            return conn.execute(sa.select(schema.emails.c.id).where(schema.emails.c.size > 0)).all()

    with capture.recording() as statements:
        unindexed()
    scans = full_scans(seeded.store, statements)
    assert scans and scans[0].startswith("emails")


def test_every_foreign_key_is_indexed(store: Any) -> None:
    """Deleting a parent row looks up its children by the referencing column (SQLite's foreign-key checks and
    PostgreSQL's ON DELETE CASCADE alike), in statements no EXPLAIN shows: without an index led by that
    column, every delete of an email or a mailbox would read the whole child table."""
    inspector = sa.inspect(store.engine)
    missing = []
    for table in inspector.get_table_names():
        leading = {tuple(ix["column_names"][:1]) for ix in inspector.get_indexes(table)}
        leading |= {tuple(u["column_names"][:1]) for u in inspector.get_unique_constraints(table)}
        leading.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"][:1]))
        if store.sqlite:  # the indexes SQLite makes for UNIQUE columns are not in the inspector's lists
            with store.engine.connect() as conn:
                for index in conn.exec_driver_sql(f'PRAGMA index_list("{table}")').all():
                    first = conn.exec_driver_sql(f'PRAGMA index_info("{index[1]}")').first()
                    if first is not None:
                        leading.add((first[2],))
        for fk in inspector.get_foreign_keys(table):
            if tuple(fk["constrained_columns"][:1]) not in leading:
                missing.append(f"{table}.{fk['constrained_columns']} -> {fk['referred_table']}")
    assert not missing, missing


def test_select_snapshot_brought_forward(seeded: Seeded, capture: Capture) -> None:
    """SELECT's remembered snapshot (janusmail.store.mailbox_snapshots) brought forward after an arrival, and
    after a flag change and an expunge: the reads are bounded by what changed, or by the mailbox."""
    s, a = seeded.store, seeded.account_id
    assert s.messages.mailbox_snapshot(a, seeded.box) is not None
    s.emails.ingest(a, simple(900), (seeded.box,), ("Todo",))
    snap = assert_bounded(capture, lambda: s.messages.mailbox_snapshot(a, seeded.box, first_unseen=True))
    assert snap is not None and "Todo" in snap.keywords and len(snap.uids) == 31
    s.memberships.store_flags(a, seeded.box, [(1, 1)], "add", [], True)
    s.memberships.expunge(a, seeded.box)
    snap = assert_bounded(capture, lambda: s.messages.mailbox_snapshot(a, seeded.box, first_unseen=True))
    assert snap is not None and 1 not in snap.uids and len(snap.uids) == 30


def test_delivered_report_finds_its_submission(seeded: Seeded, capture: Capture) -> None:
    """A delivered MDN or DSN looks up the submissions it answers (janusmail/store/report_links.py) by the
    account's (account_id, message_id) index, whatever the other accounts or the mailbox hold."""
    from janusmail.store.submissions import Envelope
    from tests.reportgen import dsn, mdn

    s, a = seeded.store, seeded.account_id
    msgid = f"{uuid.uuid4().hex}@example.test"
    sent = s.emails.ingest(a, simple(950, msgid=msgid), (seeded.other_box,))
    sub = s.submissions.create(a, "I1", sent.email_id, Envelope(seeded.address, ("x@remote.test",)))
    batch = [IngestItem(mdn(msgid), (seeded.box,), inbound=True), IngestItem(dsn(msgid), (seeded.box,), inbound=True)]
    done = assert_bounded(capture, lambda: s.emails.ingest_many(a, batch))
    got = s.submissions.list(a, [sub.id])[0]
    assert (got.mdn_blob_ids, got.dsn_blob_ids) == ((done[0].blob_id,), (done[1].blob_id,))
