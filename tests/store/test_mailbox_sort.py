"""store.search.mailbox_sort / mailbox_thread (janusmail/store/search/sort.py) on both backends: every RFC 5256 /
RFC 5957 sort key in both directions, with and without a search condition, by the per-request path (small
mailbox) and the per-state path over the row cache (big mailbox), against orders computed here from the
messages' own header values."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from janusmail.store.mailbox_rows import MIN_CACHED
from janusmail.store.search import ast as q

T0 = 1_700_000_000

#: (From, To, Cc, Subject, Date offset in hours or None for no Date header, received offset in hours)
HEADERS = [
    ("Zed Last <alpha@x.test>", "Bob <zulu@x.test>", "", "Re: banana split", 5, 1),
    ("adam@x.test", "carol@x.test", "Dave <mike@x.test>", "apple pie", 2, 7),
    ("\"Émile\" <echo@x.test>", "", "alpha@x.test", "[list] Cherry", None, 3),
    ("Bea <bravo@x.test>", "yankee@x.test", "", "Fwd: Apple pie", 9, 2),
    ("", "Ann <x-ray@x.test>", "Zoe <delta@x.test>", "(no subject)", 1, 9),
    ("Carl <charlie@x.test>", "alan@x.test, bob@x.test", "", "banana split (fwd)", 5, 4),
    ("bob <BRAVO@x.test>", "Al <alan@x.test>", "", "RE: [list] cherry", 3, 5),
]


def raw(i: int, frm: str, to: str, cc: str, subject: str, date: int | None) -> bytes:
    lines = [f"Message-ID: <s{i}@x.test>", f"Subject: {subject}"]
    if frm:
        lines.append(f"From: {frm}")
    if to:
        lines.append(f"To: {to}")
    if cc:
        lines.append(f"Cc: {cc}")
    if date is not None:
        lines.append("Date: " + format_datetime(datetime.fromtimestamp(T0 + date * 3600, UTC)))
    body = "x" * (10 * ((i * 7) % 5))  # sizes differ, with ties
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def local(addr: str) -> str:
    if not addr:
        return ""
    first = addr.split(",")[0]
    email = first.split("<")[1].rstrip(">") if "<" in first else first.strip()
    return email.split("@")[0].upper()


def display(addr: str) -> str:
    if not addr:
        return ""
    first = addr.split(",")[0]
    if "<" in first:
        name = first.split("<")[0].strip().strip('"')
        if name:
            return name.upper().replace("É", "E\u0301")  # i;unicode-casemap decomposes
        return first.split("<")[1].rstrip(">").upper()
    return first.strip().upper()


BASE = ["BANANA SPLIT", "APPLE PIE", "CHERRY", "APPLE PIE", "(NO SUBJECT)", "BANANA SPLIT", "CHERRY"]


@pytest.fixture
def box(store, account):  # noqa: ANN001, ANN201
    inbox = store.mailboxes.by_path(account.id, ["INBOX"])
    sizes = []
    for i, (frm, to, cc, subject, date, received) in enumerate(HEADERS, start=1):
        data = raw(i, frm, to, cc, subject, date)
        sizes.append(len(data))
        store.emails.ingest(account.id, data, [inbox.id], ("$seen",) if i % 2 else (), T0 + received * 3600)
    return store, account.id, inbox.id, sizes


def expected_keys(sizes: list[int]) -> dict[str, list]:
    return {
        "receivedAt": [r for *_, r in HEADERS],
        "sentAt": [T0 + (d if d is not None else r) * 3600 for *_, d, r in HEADERS],
        "size": sizes,
        "subject": BASE,
        "fromMailbox": [local(h[0]) for h in HEADERS],
        "toMailbox": [local(h[1]) for h in HEADERS],
        "ccMailbox": [local(h[2]) for h in HEADERS],
        "from": [display(h[0]) for h in HEADERS],
        "to": [display(h[1]) for h in HEADERS],
    }


def expected(keys: dict[str, list], criteria: list[q.SortKey], uids: list[int]) -> list[int]:
    out = list(uids)
    for k in reversed(criteria):
        out.sort(key=lambda u: keys[k.prop][u - 1], reverse=not k.ascending)
    return out


@pytest.mark.parametrize("big", [False, True], ids=["per-request", "row-cache"])
def test_every_sort_key_both_directions(box, big: bool):  # noqa: ANN001
    store, account_id, mailbox_id, sizes = box
    keys = expected_keys(sizes)
    hint = MIN_CACHED if big else 0
    everything = list(range(1, len(HEADERS) + 1))
    for prop in keys:
        for ascending in (True, False):
            crit = [q.SortKey(prop, ascending)]  # type: ignore[arg-type]
            uids, modseqs = store.search.mailbox_sort(account_id, mailbox_id, q.All(), crit, size_hint=hint,
                                                      with_modseq=ascending)
            assert uids == expected(keys, crit, everything), (prop, ascending)
            assert modseqs is None if not ascending else len(modseqs) == len(uids) and all(m > 0 for m in modseqs)
    # several criteria, ties by UID whatever the direction, a metadata condition and a content condition
    crit = [q.SortKey("subject", False), q.SortKey("sentAt", True)]
    uids, _ = store.search.mailbox_sort(account_id, mailbox_id, q.All(), crit, size_hint=hint)
    assert uids == expected(keys, crit, everything)
    seen = [u for u in everything if u % 2]
    uids, modseqs = store.search.mailbox_sort(account_id, mailbox_id, q.Keyword("$seen"),
                                              [q.SortKey("size", False)], size_hint=hint, with_modseq=True)
    assert uids == expected(keys, [q.SortKey("size", False)], seen) and len(modseqs) == len(uids)
    uids, _ = store.search.mailbox_sort(account_id, mailbox_id, q.SubjectContains("pie"), [q.SortKey("fromMailbox")],
                                        size_hint=hint)
    assert uids == expected(keys, [q.SortKey("fromMailbox")], [2, 4])
    uids, _ = store.search.mailbox_sort(account_id, mailbox_id, q.All(), [q.SortKey("receivedAt")], below_uid=4,
                                        size_hint=hint)
    assert uids == expected(keys, [q.SortKey("receivedAt")], [1, 2, 3])


def test_row_cache_order_follows_appends_and_expunges(box):  # noqa: ANN001
    store, account_id, mailbox_id, sizes = box
    crit = [q.SortKey("subject")]
    first, _ = store.search.mailbox_sort(account_id, mailbox_id, q.All(), crit, size_hint=MIN_CACHED)
    store.emails.ingest(account_id, raw(8, "a@x.test", "", "", "!!! first", 1), [mailbox_id])
    store.memberships.store_flags(account_id, mailbox_id, [(2, 2)], "add", [], deleted=True)
    assert store.memberships.expunge(account_id, mailbox_id, [(2, 2)]) == [2]
    again, _ = store.search.mailbox_sort(account_id, mailbox_id, q.All(), crit, size_hint=MIN_CACHED)
    assert again == [8] + [u for u in first if u != 2]


@pytest.mark.parametrize("big", [False, True], ids=["per-request", "row-cache"])
def test_threads_from_stored_headers(store, account, big: bool):  # noqa: ANN001
    inbox = store.mailboxes.by_path(account.id, ["INBOX"])

    def msg(i: int, subject: str, refs: str = "", irt: str = "") -> bytes:
        extra = (f"References: {refs}\r\n" if refs else "") + (f"In-Reply-To: {irt}\r\n" if irt else "")
        date = format_datetime(datetime.fromtimestamp(T0 + i * 60, UTC))
        return (f"Message-ID: <t{i}@x>\r\nSubject: {subject}\r\nDate: {date}\r\n{extra}\r\nbody\r\n").encode()

    for i, data in enumerate([
        msg(1, "Plan"),
        msg(2, "Re: Plan", refs="<t1@x>"),
        msg(3, "Re: Plan", irt="<t2@x> <t1@x>"),  # no References: the first In-Reply-To id
        msg(4, "Other"),
        msg(5, "Re: Other", refs='<"t4"@x>'),  # quoting normalized
        msg(6, "Re: lost", refs="<gone@x>"),
        msg(7, "Re: lost", refs="<gone@x>"),
        msg(8, "Plan"),  # same subject, no references: merged under a dummy with thread 1
    ], start=1):
        store.emails.ingest(account.id, data, [inbox.id], (), T0 + i)
    hint = MIN_CACHED if big else 0
    trees = store.search.mailbox_thread(account.id, inbox.id, q.All(), "references", size_hint=hint)

    def shape(nodes):  # noqa: ANN001, ANN202
        return [(n.uid, shape(n.children)) for n in nodes]

    assert shape(trees) == [
        (0, [(1, [(2, [(3, [])])]), (8, [])]),
        (4, [(5, [])]),
        (0, [(6, []), (7, [])]),
    ]
    trees = store.search.mailbox_thread(account.id, inbox.id, q.Not(q.UidIn(((8, 8),))), "orderedsubject",
                                        size_hint=hint)
    assert shape(trees) == [(1, [(2, []), (3, [])]), (4, [(5, [])]), (6, [(7, [])])]


def test_nul_in_cached_headers_does_not_break_the_key_reads(store, account):  # noqa: ANN001
    """A NUL in an address or a References id reaches the cache JSON as \\u0000: reading keys must not fail
    the statement (PostgreSQL cannot turn that escape into text)."""
    inbox = store.mailboxes.by_path(account.id, ["INBOX"])
    store.emails.ingest(account.id, b"From: nu\x00l@x.test\r\nReferences: <r\x00@x>\r\nSubject: a\r\n\r\nx\r\n",
                        [inbox.id])
    store.emails.ingest(account.id, b"From: b@x.test\r\nSubject: b\r\n\r\nx\r\n", [inbox.id])
    uids, _ = store.search.mailbox_sort(account.id, inbox.id, q.All(), [q.SortKey("fromMailbox", False)])
    assert sorted(uids) == [1, 2]
    trees = store.search.mailbox_thread(account.id, inbox.id, q.All(), "references")
    assert sorted(n.uid for n in trees) == [1, 2]
