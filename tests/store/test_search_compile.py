"""The one search compiler and its service, below the doors: what SQL a condition becomes on each backend
(where an index is used, when the emails join is skipped), the metadata-only decision, the AST facts the query
cache relies on, and the service's own cache and list arithmetic."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from janusmail.store.model import IngestItem
from janusmail.store.search import ast as q
from janusmail.store.search.compile import EmailSql, like_pattern, mailbox_select, metadata_only
from janusmail.store.search.highlight import highlight_terms
from janusmail.store.search.memory import compile_predicate
from janusmail.store.search.service import SearchError, diff_lists, window
from tests.mailgen import simple


def _sql(stmt: sa.ClauseElement, pg: bool = False) -> str:
    dialect = postgresql.dialect() if pg else sqlite.dialect()
    return str(stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})).lower()


def _box(cond: q.Condition, pg: bool = False) -> str:
    return _sql(mailbox_select(cond, account_id="A", mailbox_id="F", sqlite=not pg, below_uid=10), pg)


def _params(cond: q.Condition) -> list:
    stmt = mailbox_select(cond, account_id="A", mailbox_id="F", sqlite=True)
    return list(stmt.compile(dialect=sqlite.dialect()).params.values())


def test_mailbox_search_joins_emails_only_when_needed() -> None:
    for cond in (q.Contains("text", "x"), q.Contains("body", "xyz"), q.EmailIs("M1"), q.Deleted(), q.Keyword("$junk"),
                 q.UidIn(((1, 5),)), q.ModSeqAtLeast(3), q.InMailbox("F2")):
        assert " join emails" not in _box(cond), cond
    for cond in (q.Keyword("$seen"), q.Address("from", ("x",)), q.Size("gt", 1), q.ThreadIs("T1"),
                 q.Date("sent", "lt", 5), q.Header("x-a", "b")):
        assert " join emails" in _box(cond), cond


def test_substrings_use_the_trigram_index_or_scan_the_mailbox() -> None:
    s = _box(q.Contains("body", "rown fo"))
    assert "email_trgm match" in s and "email_fts" not in s
    assert '{headers body} : "rown fo"' in _params(q.Contains("text", "rown fo"))
    assert 'body : "a""b"' in _params(q.Contains("body", 'a"b'))
    pg = _box(q.Contains("text", "rown fo"), pg=True)
    assert "headers ilike" in pg and "body ilike" in pg and "tsquery" not in pg
    # too short for trigrams (pg_trgm: no 3 word characters in a row): each row's own text, by its id
    for pg, value in ((False, "@x"), (True, "@x"), (True, "a.b.c")):
        scan = _box(q.Contains("text", value), pg=pg)
        assert "match" not in scan and " ilike " not in scan and "exists (select" in scan, (pg, value)
        assert re.search(r"(messages\.email_id = \w+\.email_id|\w+\.email_id = messages\.email_id)", scan), (pg, value)
    assert "trgm" not in _box(q.Contains("text", ""))
    # HEADER: the trigram index of the header text narrows the scan of the cached header lists
    narrow = _box(q.Header("x-a", "abc"))
    assert "email_trgm match" in narrow and "json_each" in narrow
    assert 'headers : "abc"' in _params(q.Header("x-a", "abc"))
    assert "match" not in _box(q.Header("x-a", "ab")) and "ilike" in _box(q.Header("x-a", "abc"), pg=True)
    # JMAP phrases: one lookup, each term a phrase of whole words
    e = EmailSql(True, "A")
    stmt = e.window(q.EmailQuery(q.Text("subject", ("one", 'two "three"'))), 0, 10)
    params = stmt.compile(dialect=sqlite.dialect()).params
    assert 'subject : "one" AND subject : "two ""three"""' in params.values()
    pg_e = _sql(EmailSql(False, "A").window(q.EmailQuery(q.Text("all", ("a b",))), 0, 10), pg=True)
    assert "phraseto_tsquery" in pg_e


def test_address_words_narrow_through_fts_on_sqlite_only() -> None:
    cond = q.Address("from", ("bob",), words=True)
    assert "email_fts" in _sql(EmailSql(True, "A").window(q.EmailQuery(cond), 0, 5))
    assert "email_search" not in _sql(EmailSql(False, "A").window(q.EmailQuery(cond), 0, 5), pg=True)
    assert "email_fts" not in _box(q.Address("from", ("bob",)))  # IMAP: a substring only
    assert "emails.addr_from != ?" in _box(q.Address("from", ("",)))  # "": the field is present


def test_membership_conditions_need_a_mailbox_search() -> None:
    for cond in (q.Deleted(), q.UidIn(((1, 2),)), q.ModSeqAtLeast(1)):
        with pytest.raises(ValueError, match="mailbox search"):
            EmailSql(True, "A").window(q.EmailQuery(cond), 0, 5)


def test_metadata_only_decides_the_row_cache() -> None:
    meta = q.And((q.Not(q.Keyword("$seen")), q.Or((q.UidIn(((1, 9),)), q.Deleted())), q.Size("lt", 5),
                  q.Date("received", "ge", 1), q.EmailIs("M"), q.ThreadIs("T"), q.ModSeqAtLeast(2), q.Nothing()))
    assert metadata_only(meta) and compile_predicate(meta, {}) is not None
    for cond in (q.Date("sent", "lt", 1), q.Text("all", ("x",)), q.Header("a"), q.SubjectContains("x"),
                 q.Address("to", ("x",)), q.InMailbox("F"), q.ThreadKeyword("$seen", "some"),
                 q.HasAttachment(), q.Or((q.All(), q.Header("x-a", "b")))):
        assert not metadata_only(cond), cond
        assert compile_predicate(cond, {}) is None, cond


def test_query_facts() -> None:
    box = q.InMailbox("F")
    assert EmailSql.implies_visible(q.And((box, q.Text("all", ("x",))))) and not EmailSql.implies_visible(q.Or((box,)))
    assert EmailSql.selective(q.And((box, q.Text("all", ("x",))))) and not EmailSql.selective(box)
    assert q.EmailQuery(box).mutable() and not q.EmailQuery(q.Size("lt", 1)).mutable()
    assert q.EmailQuery(q.All(), (q.SortKey("hasKeyword", True, "$seen"),)).mutable()
    assert q.EmailQuery(q.All(), collapse=True).thread_sensitive()
    assert q.EmailQuery(q.Not(q.ThreadKeyword("$seen", "all"))).thread_sensitive()
    assert not q.EmailQuery(box).thread_sensitive()
    assert hash(q.EmailQuery(q.And((box,)))) == hash(q.EmailQuery(q.And((q.InMailbox("F"),))))
    cond = q.And((q.Text("all", ("a",)), q.Text("subject", ("s",)), q.Not(q.Text("body", ("nope",))),
                  q.Not(q.Not(q.Text("body", ("b",))))))
    assert highlight_terms(cond) == (["a", "s"], ["a", "b"])


def test_list_arithmetic() -> None:
    ids = ["a", "b", "c", "d"]
    assert window(ids, 1, 2) == (["b", "c"], 1)
    assert window(ids, -1, 5) == (["d"], 3)
    assert window(ids, 0, 2, anchor="c", anchor_offset=-1) == (["b", "c"], 1)
    with pytest.raises(SearchError) as err:
        window(ids, 0, 1, anchor="zz")
    assert err.value.code == "anchorNotFound"
    removed, added = diff_lists(["a", "b", "c"], ["c", "a", "d"], changed=["a"], mutable=True)
    assert removed == ["b", "a"] and added == [("a", 1), ("d", 2)]
    removed, added = diff_lists(["a"], ["a", "x", "y"], up_to_id="x", mutable=False)
    assert removed == [] and added == [("x", 1)]


def test_like_pattern_escapes() -> None:
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


def test_service_owns_its_cache_and_runs_one_query(store) -> None:  # noqa: ANN001
    acct = store.accounts.create("alice@example.test", "x")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"]).id
    got = store.emails.ingest_many(acct.id, [IngestItem(simple(i, subject=f"quokka {i}"), (inbox,), (), 1000 + i)
                                      for i in range(5)])
    query = q.EmailQuery(q.Text("subject", ("quokka",)))
    store.search.shallow = 0  # the full list, cached
    out = store.search.email_query(acct.id, query, 1, 2, calculate_total=True)
    assert out.ids == [got[3].email_id, got[2].email_id] and out.position == 1 and out.total == 5
    assert store.search.query_cache.get((acct.id, query), out.state) is not None
    with pytest.raises(SearchError):
        store.search.email_query(acct.id, query, 0, 2, anchor="Mnope")
    # a write makes a new state: the old list is never served for it
    store.memberships.store_flags(acct.id, inbox, [(1, 1)], "add", ["$seen"], None)
    again = store.search.email_query(acct.id, query, 0, 10)
    assert again.state > out.state and len(again.ids) == 5
    ch = store.search.query_changes(acct.id, query, out.state)  # the old list is cached: an exact diff
    assert ch.removed == [] and ch.added == [] and ch.total == 5
    store.search.query_cache.clear()  # without it, the change log: the changed email is removed and re-added
    ch = store.search.query_changes(acct.id, query, out.state)
    assert ch.removed == [got[0].email_id] and ch.added == [(got[0].email_id, 4)] and ch.total == 5
    with pytest.raises(SearchError) as err:
        store.search.query_changes(acct.id, query, again.state + 5)
    assert err.value.code == "cannotCalculateChanges"
    # mailbox searches: UIDs with their MODSEQs, below the session's UIDNEXT
    hits = store.search.mailbox_search(acct.id, inbox, q.Keyword("$seen"), below_uid=6)
    assert [u for u, _ in hits] == [1] and hits[0][1] == again.state
    assert store.search.mailbox_search(acct.id, inbox, q.All(), below_uid=3) == [
        (u, m) for u, m in store.search.mailbox_search(acct.id, inbox, q.All()) if u < 3]
    snips, missing = store.search.snippets(acct.id, [got[0].email_id, "Mnope", got[0].email_id],
                                           q.Text("subject", ("quokka",)))
    assert missing == ["Mnope"] and len(snips) == 1 and snips[0].subject == "<mark>quokka</mark> 0"
    assert snips[0].preview is None
