"""SEARCH / UID SEARCH on SQLite and PostgreSQL: every RFC 9051 key through the store's one compiler,
ESEARCH/SEARCHRES/PARTIAL answers, and the metadata evaluator over the row cache agreeing with SQL on random key
trees built into the query AST."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import SequenceSet
from janusmail.imap.codec.searchkeys import (
    AllKey,
    And,
    DateKey,
    EmailIdKey,
    FlagKey,
    ModSeqKey,
    Not,
    Or,
    SequenceKey,
    SizeKey,
    ThreadIdKey,
    WithinKey,
)
from janusmail.imap.search_query import build_condition
from janusmail.store.mailbox_rows import RowCache
from janusmail.store.model import IngestItem
from janusmail.store.rawrows import raw_rows
from janusmail.store.search.compile import like_pattern, mailbox_select, metadata_only
from janusmail.store.search.memory import compile_predicate, run_rows
from tests.imap.msg_support import deliver, runtime_fixture, session, tagged, use_cheap_argon2
from tests.mailgen import simple

DAY = 86400
T0 = 1700000000  # 14-Nov-2023 22:13:20 UTC

MAILS = [
    simple(1, frm="Alice Example <alice@example.test>", to="bob@example.test", subject="Quarterly report",
           body="The quarterly numbers are attached.\nRegards"),
    simple(2, frm="Bob <bob@example.test>", to="alice@example.test", subject="Lunch tomorrow?",
           body="Pizza or sushi? Let me know."),
    (b"From: carol@example.test\r\nTo: alice@example.test\r\nCc: Dave <dave@example.test>\r\n"
     b"Bcc: eve@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-Priority: 1 (Highest)\r\n"
     b"Date: Mon, 13 Nov 2023 23:30:00 -0800\r\n\r\nHerzliche Gr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln\r\n"),
    simple(4, frm="Mallory <mallory@evil.test>", subject="You won a prize", body="Click here " + "x" * 3000),
    b"Subject: no date here\r\nX-Priority: 5\r\n\r\nbody without a date header\r\n",
]


mrt = pytest.fixture(runtime_fixture)
cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


async def _setup(rt):  # noqa: ANN001, ANN202
    """Five messages with distinct dates, sizes, flags and keywords."""
    acct = rt.account
    inbox = rt.store.mailboxes.by_path(acct.id, ["INBOX"])
    kws = [("$seen", "$Work"), ("$flagged",), ("$answered", "$seen", "$Work"), ("$draft",), ()]
    items = [IngestItem(raw, (inbox.id,), kw, T0 + i * DAY) for i, (raw, kw) in enumerate(zip(MAILS, kws, strict=True))]
    got = rt.store.emails.ingest_many(acct.id, items)
    rt.store.memberships.store_flags(acct.id, inbox.id, [(5, 5)], "add", [], True)  # 5 is \Deleted
    return got


async def search(h, text: str) -> list[int]:  # noqa: ANN001
    out = await h.send(f"Q {text}")
    assert tagged(out, "Q").startswith(b"Q OK"), out
    line = [ln for ln in out.split(b"\r\n") if ln.startswith(b"* SEARCH")][0]
    return [int(x) for x in line[len(b"* SEARCH"):].split() if x.isdigit()]


async def test_every_key(mrt) -> None:  # noqa: ANN001
    got = await _setup(mrt)
    h = await session(mrt)
    cases = {
        "ALL": [1, 2, 3, 4, 5],
        "SEEN": [1, 3], "UNSEEN": [2, 4, 5],
        "ANSWERED": [3], "UNANSWERED": [1, 2, 4, 5],
        "FLAGGED": [2], "UNFLAGGED": [1, 3, 4, 5],
        "DRAFT": [4], "UNDRAFT": [1, 2, 3, 5],
        "DELETED": [5], "UNDELETED": [1, 2, 3, 4],
        "KEYWORD $work": [1, 3], "UNKEYWORD $WORK": [2, 4, 5], "KEYWORD $nothing": [],
        "FROM alice": [1], "FROM EXAMPLE.TEST": [1, 2, 3], "FROM \"<bob@\"": [2],
        "TO alice@": [2, 3, 4], "CC dave": [3], "BCC eve@": [3], "CC \"\"": [3],
        "SUBJECT report": [1],
        "HEADER X-Priority highest": [3], "HEADER x-priority \"\"": [3, 5], "HEADER Message-ID msg2@": [2],
        "BODY pizza": [2], "BODY quarterly": [1], "TEXT quarterly": [1], "TEXT \"let me\"": [2],
        "TEXT mallory": [4], "BODY mallory": [], "BODY \"numbers are\"": [1],
        "TEXT \"@\"": [1, 2, 3, 4],
        "LARGER 1000": [4], "SMALLER 200": [5],
        "BEFORE 16-Nov-2023": [1, 2], "ON 15-Nov-2023": [2], "SINCE 17-Nov-2023": [4, 5],
        "SENTON 13-Nov-2023": [3], "SENTBEFORE 14-Nov-2023": [3], "SENTSINCE 27-Nov-2026": [1, 2, 4],
        "SENTON 18-Nov-2023": [5],  # no Date header: the internal date stands in
        "1:2": [1, 2], "2,4:*": [2, 4, 5], "1:100": [1, 2, 3, 4, 5], "UID 3:4": [3, 4], "UID 99": [],
        "NOT SEEN": [2, 4, 5], "OR SEEN FLAGGED": [1, 2, 3], "(SEEN KEYWORD $work)": [1, 3],
        "OR (FROM bob) (NOT ALL)": [2], "NOT (OR DELETED DRAFT)": [1, 2, 3],
        f"EMAILID {got[1].email_id}": [2], f"EMAILID {got[1].email_id.lower()}": [],
        f"THREADID {got[2].thread_id}": [3], "THREADID Tnothing": [],
        "OLD": [], "NEW": [2, 4, 5], "RECENT": [1, 2, 3, 4, 5],  # this SELECT claimed \\Recent
        "SEEN UNSEEN": [], "MODSEQ 1": [1, 2, 3, 4, 5],
        "YOUNGER 1": [], f"OLDER {int(time.time()) - T0 - 2 * DAY}": [1, 2, 3],
    }
    for key, want in cases.items():
        assert await search(h, f"SEARCH {key}") == want, key
    lit = "grüße".encode()
    out = await h.send(b"Q1 SEARCH CHARSET UTF-8 SUBJECT {%d+}\r\n%b" % (len(lit), lit))
    assert b"* SEARCH 3\r\n" in out
    assert await search(h, "UID SEARCH FLAGGED") == [2]
    out = await h.send("Z SEARCH CHARSET KOI8-R TEXT x")
    assert tagged(out, "Z").startswith(b"Z NO [BADCHARSET")
    await h.close()


async def test_utf8_strings(mrt) -> None:  # noqa: ANN001
    await _setup(mrt)
    h = await session(mrt, enable="UTF8=ACCEPT")
    for key, want in {'SUBJECT "grüße"': [3], 'SUBJECT "GRÜSSE"': [], "TEXT \"köln\"": [3],
                      'TEXT "Köln"': [3], 'BODY "herzliche grüße"': [3]}.items():
        assert await search(h, f"SEARCH {key}") == want, key
    await h.close()


async def test_sequence_numbers_follow_snapshot(mrt) -> None:  # noqa: ANN001
    await _setup(mrt)
    h = await session(mrt)
    await h.send("A STORE 5 -FLAGS (\\Deleted)")
    await h.send("A1 STORE 1 +FLAGS (\\Deleted)")
    out = await h.send("B EXPUNGE")
    assert b"* 1 EXPUNGE" in out
    assert await search(h, "SEARCH UNSEEN") == [1, 3, 4]  # uids 2, 4, 5 are now 1, 3, 4
    assert await search(h, "UID SEARCH UNSEEN") == [2, 4, 5]
    deliver(mrt, [simple(9)])  # not announced yet: not in results until the session syncs
    assert await search(h, "UID SEARCH ALL") in ([2, 3, 4, 5], [2, 3, 4, 5, 6])
    await h.send("C NOOP")
    assert await search(h, "UID SEARCH ALL") == [2, 3, 4, 5, 6]
    await h.close()


async def test_esearch_forms(mrt) -> None:  # noqa: ANN001
    await _setup(mrt)
    h = await session(mrt)
    out = await h.send("A SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert b'* ESEARCH (TAG "A") MIN 2 MAX 5 ALL 2,4:5 COUNT 3\r\n' in out
    out = await h.send("B UID SEARCH RETURN () KEYWORD $work")
    assert b'* ESEARCH (TAG "B") UID ALL 1,3\r\n' in out
    out = await h.send("C SEARCH RETURN (COUNT MIN) KEYWORD nope")
    assert b'* ESEARCH (TAG "C") COUNT 0\r\n' in out
    out = await h.send("D SEARCH RETURN (PARTIAL 2:3) ALL")
    assert b'* ESEARCH (TAG "D") PARTIAL (2:3 2:3)\r\n' in out
    out = await h.send("E UID SEARCH RETURN (PARTIAL -1:-2) ALL")
    assert b'* ESEARCH (TAG "E") UID PARTIAL (-1:-2 4:5)\r\n' in out
    out = await h.send("F SEARCH RETURN (PARTIAL 10:20) ALL")
    assert b'* ESEARCH (TAG "F") PARTIAL (10:20 NIL)\r\n' in out
    out = await h.send("G SEARCH RETURN (MAX) MODSEQ 1")
    assert b'* ESEARCH (TAG "G") MAX 5 MODSEQ ' in out
    out = await h.send("H SEARCH MODSEQ 1 1:2")
    assert b"* SEARCH 1 2 (MODSEQ " in out
    await h.close()


async def test_rev2_search_answers_esearch(mrt) -> None:  # noqa: ANN001
    await _setup(mrt)
    h = await session(mrt, enable="IMAP4rev2")
    out = await h.send("A SEARCH UNSEEN")
    assert b'* ESEARCH (TAG "A") ALL 2,4:5\r\n' in out and b"* SEARCH" not in out
    out = await h.send("B SEARCH RECENT")  # no \Recent in IMAP4rev2
    assert b'* ESEARCH (TAG "B")\r\n' in out
    await h.close()


async def test_searchres_saved_result(mrt) -> None:  # noqa: ANN001
    await _setup(mrt)
    h = await session(mrt)
    out = await h.send("A UID SEARCH RETURN (SAVE) KEYWORD $work")
    assert b"ESEARCH" not in out and tagged(out, "A").startswith(b"A OK")
    out = await h.send("B FETCH $ (UID)")
    assert b"* 1 FETCH (UID 1)" in out and b"* 3 FETCH (UID 3)" in out and b"* 2 FETCH" not in out
    assert await search(h, "SEARCH $") == [1, 3]
    assert await search(h, "SEARCH NOT $") == [2, 4, 5]
    out = await h.send("C SEARCH RETURN (SAVE MIN) ALL")
    assert b'* ESEARCH (TAG "C") MIN 1' in out
    assert await search(h, "UID SEARCH UID $") == [1]  # MIN alone saves just the minimum
    out = await h.send("D SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
    assert b"BADCHARSET" in out
    assert await search(h, "SEARCH $") == []  # a failed SAVE empties $
    await h.close()


# -- compiler-level: SQL and the metadata evaluator agree --------------------------------------------------------


def _flag_keys() -> st.SearchStrategy:
    flags = ["\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted", "\\Recent", "$a", "$B", "\\Bogus"]
    return st.builds(FlagKey, st.sampled_from(flags), st.booleans())


def _leaf(ids: list[str], threads: list[str]) -> st.SearchStrategy:
    def seqset(n: int) -> st.SearchStrategy:
        bound = st.one_of(st.none(), st.integers(1, n + 3))
        return st.lists(st.tuples(bound, bound), min_size=1, max_size=3).map(SequenceSet)

    return st.one_of(
        st.just(AllKey()), _flag_keys(),
        st.builds(SizeKey, st.sampled_from(["larger", "smaller"]), st.integers(0, 400)),
        st.builds(SequenceKey, seqset(12), st.booleans()),
        st.builds(ModSeqKey, st.integers(0, 40)),
        st.builds(EmailIdKey, st.sampled_from([*ids, "Mnope"])),
        st.builds(ThreadIdKey, st.sampled_from([*threads, "Tnope"])),
        st.builds(DateKey, st.just("internal"), st.sampled_from(["before", "on", "since"]),
                  st.dates(dt.date(2023, 11, 12), dt.date(2023, 11, 30))),
        st.builds(WithinKey, st.sampled_from(["older", "younger"]), st.integers(1, 30 * DAY)),
    )


def _tree(ids: list[str], threads: list[str]) -> st.SearchStrategy:
    return st.recursive(
        _leaf(ids, threads),
        lambda kids: st.one_of(
            st.builds(Not, kids), st.builds(Or, kids, kids),
            st.lists(kids, min_size=1, max_size=3).map(lambda ks: And(tuple(ks))),
        ),
        max_leaves=6,
    )


def test_sql_and_cache_agree(store) -> None:  # noqa: ANN001
    acct = store.accounts.create("alice@example.test", "x")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"])
    kws = [("$seen", "$a"), ("$flagged",), ("$B", "$answered"), ("$draft", "$seen"), (), ("$a", "$b"),
           ("$seen",), (), ("$flagged", "$seen", "$a"), ()]
    raws = [simple(i, body="x" * (i * 40), subject="Re: same" if i % 3 == 0 else f"s{i}",
                   msgid=f"m{i}@x", references=["m0@x"] if i % 3 == 0 and i else None) for i in range(10)]
    got = store.emails.ingest_many(acct.id, [IngestItem(r, (inbox.id,), k, T0 + i * DAY // 2)
                                      for i, (r, k) in enumerate(zip(raws, kws, strict=True))])
    store.memberships.store_flags(acct.id, inbox.id, [(2, 3)], "add", [], True)
    store.memberships.store_flags(acct.id, inbox.id, [(7, 7)], "add", ["$a"], None)
    store.memberships.expunge(acct.id, inbox.id, [(3, 3)])
    snapshot = [1, 2, 4, 5, 6, 7, 8, 9, 10]
    ids = [d.email_id for d in got]
    threads = sorted({d.thread_id for d in got})

    def resolve(seqset: SequenceSet, uid: bool) -> list[tuple[int, int]]:
        if uid:
            return list(seqset.resolve(snapshot[-1]).ranges)
        return [(snapshot[lo - 1], snapshot[hi - 1]) for lo, hi in seqset.resolve(len(snapshot)).ranges]

    box = RowCache(store.engine)  # a private cache, not the store's own
    import janusmail.store.mailbox_rows as fc

    old_min, fc.MIN_CACHED = fc.MIN_CACHED, 0
    try:
        rows_box = box.get(inbox.id, 10)
    finally:
        fc.MIN_CACHED = old_min
    assert rows_box is not None
    now = T0 + 20 * DAY

    @given(_tree(ids, threads))
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    def check(key) -> None:  # noqa: ANN001
        cond = build_condition(key, resolve, recent=[(6, 10)], now=now)
        assert metadata_only(cond), cond
        with store.engine.connect() as conn:
            sql_hits = raw_rows(conn, mailbox_select(cond, account_id=acct.id, mailbox_id=inbox.id,
                                                     sqlite=store.sqlite, below_uid=11))
        mem_hits = run_rows(rows_box, cond, 11)
        assert mem_hits is not None
        assert [tuple(r) for r in sql_hits] == mem_hits, (key, cond)
        # the service picks the row cache for a big mailbox and SQL for a small one: same answer either way
        assert store.search.mailbox_search(acct.id, inbox.id, cond, below_uid=11, size_hint=1) == mem_hits

    check()


def test_content_keys_are_not_evaluated_in_memory() -> None:
    from janusmail.imap.codec.searchkeys import BodyKey, HeaderKey, TextKey

    for key in (HeaderKey("from", "x"), BodyKey("x"), TextKey("x"), DateKey("sent", "on", dt.date(2020, 1, 1)),
                Or(AllKey(), HeaderKey("x-a", "b"))):
        cond = build_condition(key, lambda s, u: [])
        assert not metadata_only(cond)
        assert compile_predicate(cond, {}) is None


def test_like_pattern_escapes() -> None:
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"
