"""An account with every kind of mail an export or a migration must carry, and its state read back through
the store API, so that two accounts (before and after) compare with one ``==``."""

from __future__ import annotations

from janusmail.cli.export import imap_paths
from janusmail.store.mailbox_rows import DELETED, EMAIL_ID, FLAGS, RECEIVED
from janusmail.store.model import IngestItem
from tests.mailgen import corpus

#: Messages an mbox cannot hold without care: "From " lines (first line too), quoted ones, no final newline,
#: 8-bit bodies, CRLF, trailing blank lines, no body at all.
ODD = [
    b"From: a@example.test\nSubject: from lines\n\nFrom here\n>From there\n>>From everywhere\nFrom\nFrom \n",
    b"From the first line\nSubject: starts like a separator\n\nno final newline",
    b"Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\nFrom Gr\xfc\xdf\r\n",
    b"Subject: trailing blank lines\n\nbody\n\n\n",
    b"Subject: no body",
    b"Subject: bare CR at the end\r\n\r\nbody\r",
]
#: More keywords than the 26 letters a Maildir folder has (the rest go to the export's manifest).
MANY = [f"k{i:02d}" for i in range(30)]


def _keywords(i: int) -> tuple[str, ...]:
    kws = []
    if i % 2:
        kws.append("$seen")
    if i % 3 == 0:
        kws.append("$answered")
    if i % 5 == 0:
        kws.append("$flagged")
    if i % 7 == 0:
        kws.append("$draft")
    kws += [["$Forwarded"], ["Work-Tag", "NonJunk"], [], ["$Junk"]][i % 4]
    return tuple(kws)


def seed(store, account_id: str, *, inbox: int = 40) -> None:  # noqa: ANN001
    """Nested folders (INBOX's children too, a dotted name), an empty mailbox, an unsubscribed one, the five
    system flags, keywords (30 in one mailbox), \\Deleted memberships, distinct internal dates, odd messages."""
    boxes = store.mailboxes
    inbox_id = boxes.by_path(account_id, ["INBOX"]).id
    work = boxes.create(account_id, "Work").id
    projects = boxes.create(account_id, "Projects", work).id
    year = boxes.create(account_id, "2026", projects).id
    sub = boxes.create(account_id, "Sub", inbox_id).id
    dotted = boxes.create(account_id, "dots.in\\name").id
    boxes.create(account_id, "Empty", subscribed=False)
    sent = boxes.by_path(account_id, ["Sent"]).id
    plan: list[tuple[str, bytes]] = [(inbox_id, raw) for raw in corpus(inbox)]
    plan += [(inbox_id, raw) for raw in ODD]
    plan += [(work, raw) for raw in corpus(12, seed=2)] + [(projects, raw) for raw in ODD[:3]]
    plan += [(year, b"Subject: deep\n\nin 2026\n"), (sub, b"Subject: inbox child\n\nhi\n"),
             (dotted, b"Subject: dotted\n\nx\n"), (sent, b"Subject: sent one\n\nbye\n")]
    items = []
    for i, (box, raw) in enumerate(plan):
        kws = _keywords(i)
        if box == projects:
            kws += tuple(MANY[i % 3 :: 3])  # 30 keywords between the three messages
        items.append(IngestItem(raw, (box,), kws, 1_600_000_000 + i * 3601, deleted=i % 11 == 0))
    store.emails.ingest_many(account_id, items)


def state(store, account_id: str) -> dict:  # noqa: ANN001
    """Mailbox -> role, subscription and messages (bytes, keywords lowercased, \\Deleted, internal date), the
    messages sorted (UIDs and ids differ between accounts). Mailboxes with a role are keyed by it, the others
    by their IMAP path."""
    out = {}
    boxes = store.mailboxes.list(account_id)
    paths = imap_paths(boxes)
    for box in boxes:
        snap = store.messages.mailbox_snapshot(account_id, box.id)
        msgs = []
        if snap.uids:
            fr = store.messages.fetch_rows(box.id, [(1, snap.uidnext)], keywords=True, blob=True)
            for row in fr.rows:
                kws = {k.lower() for k in fr.keywords.get(row[EMAIL_ID], ())}
                kws |= {k for k, bit in (("$seen", 1), ("$answered", 2), ("$flagged", 4), ("$draft", 8))
                        if row[FLAGS] & bit}
                raw = store.blobs.read_location(fr.locations[row[EMAIL_ID]])
                msgs.append((raw, tuple(sorted(kws)), bool(row[DELETED]), int(row[RECEIVED])))
        key = ("role", box.role) if box.role else tuple(paths[box.id])
        out[key] = {"subscribed": box.subscribed, "messages": sorted(msgs)}
    return out
