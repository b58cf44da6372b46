"""Email/query results at a new state patched from the change log (janusmail/store/search/result_patch.py)
equal the results listed again by the database, on both backends, for random arrivals (replies join threads),
keyword changes, moves, expunges and destroys, with many equal receivedAt and size values; and the patch is
really taken (on SQLite always, for these integer sorts), so the test fails if a patch goes wrong."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from janusmail.store.emails import EmailUpdate
from janusmail.store.model import IngestItem
from janusmail.store.rawrows import raw_rows
from janusmail.store.search import ast as q
from janusmail.store.search import result_patch, service
from janusmail.store.search.compile import EmailSql
from tests.mailgen import simple

_accounts = itertools.count()

_ops = st.lists(st.one_of(
    st.tuples(st.just("arrive"), st.integers(0, 40), st.integers(0, 6), st.booleans()),
    st.tuples(st.just("keyword"), st.integers(0, 40), st.sampled_from(["$seen", "$flagged"]), st.booleans()),
    st.tuples(st.just("move"), st.integers(0, 40), st.integers(0, 1)),
    st.tuples(st.just("expunge"), st.integers(0, 40)),
    st.tuples(st.just("destroy"), st.integers(0, 40)),
), min_size=1, max_size=14)


def _queries(inbox: str) -> list[q.EmailQuery]:
    desc, asc = q.SortKey("receivedAt", False), q.SortKey("receivedAt", True)
    return [
        q.EmailQuery(q.InMailbox(inbox), (desc,), collapse=True),
        q.EmailQuery(q.InMailbox(inbox), (desc,)),
        q.EmailQuery(q.All(), (q.SortKey("size", True),)),
        q.EmailQuery(q.Keyword("$flagged"), (asc,)),
        q.EmailQuery(q.All(), (q.SortKey("hasKeyword", False, "$seen"), desc), collapse=True),
        q.EmailQuery(q.ThreadKeyword("$flagged", "some"), (q.SortKey("sentAt", False),), collapse=True),
        q.EmailQuery(q.All(), (q.SortKey("someInThreadHaveKeyword", True, "$seen"), asc)),
        q.EmailQuery(q.All(), (q.SortKey("subject", True),), collapse=True),  # strings: listed again, never patched
    ]


@pytest.fixture
def patches(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each patch the service tried came out exact."""
    seen: list[bool] = []

    def counting(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        out = result_patch.patch(*args, **kwargs)
        seen.append(out is not None)
        return out

    monkeypatch.setattr(service, "patch", counting)
    return seen


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops, seed_times=st.lists(st.integers(0, 6), min_size=3, max_size=12))
def test_patched_results_equal_listed_results(store, backend: str, patches: list[bool], ops: list,
                                              seed_times: list[int]) -> None:  # noqa: ANN001
    patches.clear()
    acct = store.accounts.create(f"patch{next(_accounts)}@example.test", "x")
    inbox = store.mailboxes.by_path(acct.id, ["INBOX"]).id
    other = store.mailboxes.create(acct.id, "Other").id
    boxes = [inbox, other]
    search = store.search
    search.shallow = 0  # every query goes through the full (cached, patched) list
    made: list[tuple[str, str, str]] = []  # (email id, Message-ID, thread's subject)

    def arrive(n: int, reply_to: int | None, when: int, flagged: bool) -> None:
        msgid = f"m{n}.{acct.id}@example.test"
        if reply_to is not None and made:  # a reply joins its parent's thread (same base subject)
            _, parent, topic = made[reply_to % len(made)]
            raw = simple(n, msgid=msgid, in_reply_to=parent, subject=f"Re: {topic}", body="x" * (n % 3))
        else:
            parent, topic = None, f"Topic {n}"
            raw = simple(n, msgid=msgid, subject=topic, body="x" * (n % 3))  # sizes repeat
        got = store.emails.ingest_many(acct.id, [IngestItem(raw, (inbox,), ("$flagged",) if flagged else (),
                                                            1_000 + when)])
        made.append((got[0].email_id, msgid, topic))

    for n, when in enumerate(seed_times):
        arrive(n, n - 1 if n % 2 else None, when, n % 3 == 0)
    queries = _queries(inbox)

    states: set[int] = set()

    def check() -> None:
        for query in queries:
            got = search.email_query(acct.id, query, 0, None)
            states.add(got.state)
            sql = EmailSql(store.sqlite, acct.id)
            with store.engine.connect() as conn:
                listed = [r[0] for r in raw_rows(conn, sql.keyed_list(query))]
            assert got.ids == listed, query

    check()
    for n, op in enumerate(ops, start=len(seed_times)):
        kind = op[0]
        live = [m[0] for m in made]
        if kind == "arrive":
            arrive(n, op[1] if op[3] else None, op[2], op[3])
        elif live:
            email = live[op[1] % len(live)]
            if kind == "keyword":
                change = EmailUpdate(add_keywords=[op[2]]) if op[3] else EmailUpdate(remove_keywords=[op[2]])
                store.emails.update(acct.id, {email: change})
            elif kind == "move":
                store.emails.update(acct.id, {email: EmailUpdate(mailbox_ids=[boxes[op[2]]])})
            elif kind == "expunge":
                store.emails.update(acct.id, {email: EmailUpdate(mailbox_ids=[other])})
                store.memberships.store_flags(acct.id, other, [(1, 2**32 - 1)], "add", [], True)
                store.memberships.expunge(acct.id, other)
            else:
                store.emails.destroy(acct.id, [email])
            if kind in ("expunge", "destroy"):
                made = [m for m in made if m[0] != email]
        check()
    assert patches or len(states) == 1, "the state changed but no patch was tried"
    if backend == "sqlite":
        assert all(patches)
