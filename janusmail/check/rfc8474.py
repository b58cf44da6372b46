"""Verdicts on "the same mail through both doors" (RFC 8474 ids as RFC 9698 §3 promises them, RFC 8621 §4.1.1
keywords, the mailbox tree), from what IMAP listed and fetched and what JMAP returned: pure functions.

The IMAP side is sampled (``--sample N`` messages per mailbox, spread evenly from the first to the last, so a
large mailbox costs one FETCH, not one per message); the JMAP side is asked about exactly those ids.

A message marked ``\\Deleted`` in an IMAP mailbox is, per RFC 8621 §4.1.1, not visible in that mailbox over
JMAP (and not at all if every copy is deleted): for those the checks require that, instead of a match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from janusmail.client.bridge import JmapBridge
from janusmail.client.keywords import flags_to_keywords, is_deleted, normalize_keywords

from .model import Check, summarize

MAILBOX_IDS = "IMAP = JMAP: MAILBOXID is the Mailbox id"
MAILBOX_TREE = "IMAP = JMAP: mailbox tree and names"
EMAIL_IDS = "IMAP = JMAP: EMAILID is the Email id"
THREAD_IDS = "IMAP = JMAP: THREADID is the threadId"
KEYWORDS = "IMAP = JMAP: flags are keywords"
CROSS_CHECKS = (MAILBOX_IDS, MAILBOX_TREE, EMAIL_IDS, THREAD_IDS, KEYWORDS)


@dataclass(frozen=True)
class ImapMailbox:
    name: str  # as IMAP lists it
    path: tuple[str, ...]  # the name split at the delimiter, the personal namespace prefix taken off
    selectable: bool
    status_id: str | None = None  # STATUS (MAILBOXID)
    select_id: str | None = None  # the [MAILBOXID] code of EXAMINE's answer
    exists: int = 0
    examine_error: str | None = None  # EXAMINE refused
    fetch_error: str | None = None  # FETCH (UID FLAGS EMAILID THREADID) refused


@dataclass(frozen=True)
class ImapMessage:
    mailbox: str
    mailbox_id: str | None
    uid: int
    email_id: str | None
    thread_id: str | None
    thread_sent: bool
    flags: tuple[str, ...]

    @property
    def deleted(self) -> bool:
        return is_deleted(self.flags)

    @property
    def where(self) -> str:
        return f"{self.mailbox} UID {self.uid}"


def sample_positions(exists: int, n: int) -> list[int]:
    """``n`` message sequence numbers spread evenly over ``1..exists``, first and last included (all of them
    when the mailbox holds no more than ``n``)."""
    if exists <= n:
        return list(range(1, exists + 1))
    if n == 1:
        return [1]
    return sorted({1 + round(i * (exists - 1) / (n - 1)) for i in range(n)})


def split_name(name: str, delimiter: str | None, personal_prefix: str) -> tuple[str, ...]:
    """An IMAP name as tree components; INBOX (any case) is one name, as RFC 9051 makes it."""
    if name.upper() == "INBOX":
        return ("INBOX",)
    if personal_prefix and name.startswith(personal_prefix):
        name = name[len(personal_prefix):]
    parts = name.split(delimiter) if delimiter else [name]
    if parts and parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return tuple(parts)


def jmap_paths(mailboxes: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """Mailbox id -> names down the parentId chain; the role-inbox mailbox is called INBOX whatever its JMAP
    name (RFC 8621 leaves its display name to the server, IMAP fixes it)."""
    renamed = [dict(m, name="INBOX") if m.get("role") == "inbox" else m for m in mailboxes]
    return {mid: tuple(names) for mid, names in JmapBridge.mailbox_paths(renamed).items()}


_UNPAIRED = "no sampled message could be paired with a JMAP Email by its EMAILID"


def _pairable(messages: list[ImapMessage]) -> bool:
    """Whether some sampled message should be visible over JMAP (one that is not \\Deleted)."""
    return any(not m.deleted for m in messages)


def judge_mailbox_ids(boxes: list[ImapMailbox], jmap_boxes: list[dict[str, Any]]) -> Check:
    jmap_ids = {m["id"] for m in jmap_boxes}
    paths = jmap_paths(jmap_boxes)
    problems: list[str] = []
    owners: dict[str, list[str]] = defaultdict(list)
    selectable = [b for b in boxes if b.selectable]
    for box in selectable:
        if box.status_id is None:
            problems.append(f"{box.name}: STATUS gives no MAILBOXID")
            continue
        owners[box.status_id].append(box.name)
        if box.examine_error:
            problems.append(f"{box.name}: {box.examine_error}")
        elif box.select_id is None:
            problems.append(f"{box.name}: EXAMINE's answer has no [MAILBOXID] code (RFC 8474 §4.1)")
        elif box.select_id != box.status_id:
            problems.append(f"{box.name}: EXAMINE says MAILBOXID {box.select_id}, STATUS says {box.status_id}")
        if box.status_id not in jmap_ids:
            problems.append(f"{box.name}: MAILBOXID {box.status_id} is no JMAP Mailbox id")
    for mid, names in owners.items():
        if len(names) > 1:
            problems.append(f"{' and '.join(names)} share MAILBOXID {mid}")
    unlisted = {b.path for b in boxes if not b.selectable}
    for mid in sorted(jmap_ids - set(owners)):
        if paths.get(mid) not in unlisted:  # a \Noselect IMAP mailbox has no MAILBOXID to match
            problems.append(f"JMAP Mailbox {mid} ({'/'.join(paths.get(mid, ()))}) has no IMAP mailbox with that "
                            "MAILBOXID")
    if problems:
        return Check(MAILBOX_IDS, False, summarize(problems))
    return Check(MAILBOX_IDS, True, f"{len(selectable)} mailboxes: each MAILBOXID (STATUS and EXAMINE) is a JMAP "
                                    f"Mailbox id, and each of the {len(jmap_ids)} JMAP Mailboxes has its IMAP mailbox")


def judge_mailbox_tree(boxes: list[ImapMailbox], jmap_boxes: list[dict[str, Any]], delimiter: str | None) -> Check:
    paths = jmap_paths(jmap_boxes)
    problems: list[str] = []
    compared = 0
    for box in boxes:
        if not box.selectable or box.status_id not in paths:
            continue  # no id to pair it by: judged (and reported) by the MAILBOXID check
        compared += 1
        jpath = paths[box.status_id]
        if jpath != box.path:
            problems.append(f"IMAP {box.name!r} is {'/'.join(jpath)!r} in JMAP (names down the parentId chain)")
    if not compared and any(b.selectable for b in boxes):
        problems.append("no IMAP mailbox could be paired with a JMAP Mailbox by its MAILBOXID")
    if problems:
        return Check(MAILBOX_TREE, False, summarize(problems))
    sep = f", split at {delimiter!r}," if delimiter else " (no hierarchy delimiter)"
    return Check(MAILBOX_TREE, True, f"{compared} mailboxes: each IMAP name{sep} equals the JMAP Mailbox names "
                                     "along the parentId chain")


def judge_email_ids(messages: list[ImapMessage], emails: dict[str, dict[str, Any]], mailboxes: int,
                    fetch_errors: Sequence[str] = ()) -> Check:
    """``fetch_errors``: mailboxes whose sample could not be fetched at all (the server refused the FETCH)."""
    problems: list[str] = list(fetch_errors)
    deleted = 0
    for msg in messages:
        if msg.email_id is None:
            problems.append(f"{msg.where}: FETCH gave no EMAILID")
            continue
        email = emails.get(msg.email_id)
        in_box = email is not None and msg.mailbox_id in (email.get("mailboxIds") or {})
        if msg.deleted:
            deleted += 1
            if in_box:
                problems.append(f"{msg.where} is \\Deleted, yet JMAP shows Email {msg.email_id} in that mailbox "
                                "(RFC 8621 §4.1.1: not visible)")
        elif email is None:
            problems.append(f"{msg.where}: EMAILID {msg.email_id} is no JMAP Email")
        elif not in_box:
            problems.append(f"{msg.where}: JMAP Email {msg.email_id} is not in Mailbox {msg.mailbox_id}")
    if problems:
        return Check(EMAIL_IDS, False, summarize(problems))
    if not messages:
        return Check(EMAIL_IDS, True, f"no messages to compare: all {mailboxes} mailboxes are empty")
    note = f"; {deleted} \\Deleted ones are rightly not visible there" if deleted else ""
    return Check(EMAIL_IDS, True, f"{len(messages)} messages sampled in {mailboxes} mailboxes: each EMAILID is a "
                                  f"JMAP Email in the same mailbox{note}")


def judge_thread_ids(messages: list[ImapMessage], emails: dict[str, dict[str, Any]]) -> Check:
    problems: list[str] = []
    compared = nil = 0
    for msg in messages:
        email = emails.get(msg.email_id or "")
        if email is None:
            continue  # not visible over JMAP: the EMAILID check says whether that is right
        if not msg.thread_sent:
            problems.append(f"{msg.where}: FETCH THREADID was not answered")
            continue
        if msg.thread_id is None:
            nil += 1  # RFC 8474 §5.2: NIL when the server does not thread over IMAP
            continue
        compared += 1
        if msg.thread_id != email.get("threadId"):
            problems.append(f"{msg.where}: THREADID {msg.thread_id}, JMAP threadId {email.get('threadId')}")
    if not compared and not nil and _pairable(messages):
        problems.append(_UNPAIRED)
    if problems:
        return Check(THREAD_IDS, False, summarize(problems))
    note = f"; {nil} have THREADID NIL (no threads over IMAP)" if nil else ""
    return Check(THREAD_IDS, True, f"{compared} messages: THREADID is the JMAP Email's threadId{note}")


def judge_keywords(messages: list[ImapMessage], emails: dict[str, dict[str, Any]]) -> Check:
    problems: list[str] = []
    compared = 0
    for msg in messages:
        email = emails.get(msg.email_id or "")
        if email is None:
            continue
        compared += 1
        imap = flags_to_keywords(msg.flags)
        jmap = normalize_keywords(email.get("keywords"))
        if imap != jmap:
            diff = []
            if imap - jmap:
                diff.append(f"only in IMAP: {' '.join(sorted(imap - jmap))}")
            if jmap - imap:
                diff.append(f"only in JMAP: {' '.join(sorted(jmap - imap))}")
            problems.append(f"{msg.where} ({', '.join(diff)})")
    if not compared and _pairable(messages):
        problems.append(_UNPAIRED)
    if problems:
        return Check(KEYWORDS, False, summarize(problems))
    return Check(KEYWORDS, True, f"{compared} messages: FLAGS are the JMAP keywords (\\Seen = $seen ..., "
                                 "\\Recent and \\Deleted left out)")
