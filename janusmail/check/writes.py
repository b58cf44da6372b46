"""``janusmail check --write``: one flag changed through each door and seen through the other, then the
message's flags put back exactly as they were.

Why ``\\Flagged``: every server keeps it (it is a system flag, always in PERMANENTFLAGS), and it has a fixed
JMAP spelling (``$flagged``), so the round trip tests the mapping and the shared state, not a server's policy on
custom keywords. The change is toggled (set if it was clear, cleared if it was set), made through IMAP and seen
in JMAP, then undone through JMAP and seen in IMAP, so a round trip that works leaves nothing to clean up; the
cleanup (``UID STORE FLAGS`` with the original list) runs anyway, also after a failure or an interrupt, and is
then verified through both doors.

Changes made elsewhere may take a moment to show (a server may apply them asynchronously): each door is asked
again until ``timeout`` seconds have passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from janusmail.client.bridge import JmapAccessError, JmapBridge
from janusmail.client.keywords import flags_to_keywords, normalize_keywords

from .imap_io import ImapProbe, ImapRefused
from .model import Check, not_run
from .rfc8474 import ImapMessage

IMAP_TO_JMAP = "--write: IMAP flag change seen in JMAP"
JMAP_TO_IMAP = "--write: JMAP keyword change seen in IMAP"
RESTORED = "--write: original flags restored"
WRITE_CHECKS = (IMAP_TO_JMAP, JMAP_TO_IMAP, RESTORED)


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Ask again, backing off from 50 ms to 1 s, until ``predicate`` holds or ``timeout`` seconds passed."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _lower(flags: set[str] | None) -> set[str]:
    return {f.lower() for f in flags or ()}


def pick_message(messages: list[ImapMessage], emails: dict[str, dict[str, Any]]) -> ImapMessage | None:
    """A sampled message both doors show in the same mailbox, from INBOX if it has one."""
    usable = [m for m in messages if not m.deleted and m.email_id in emails
              and m.mailbox_id in (emails[m.email_id].get("mailboxIds") or {})]
    return next((m for m in usable if m.mailbox.upper() == "INBOX"), usable[0] if usable else None)


def write_round_trip(probe: ImapProbe, bridge: JmapBridge, messages: list[ImapMessage],
                     emails: dict[str, dict[str, Any]], timeout: float) -> list[Check]:
    """The three write verdicts; a door that refuses a step fails the checks not made yet, with its answer."""
    checks: list[Check] = []
    try:
        _round_trip(probe, bridge, messages, emails, timeout, checks)
    except (ImapRefused, JmapAccessError) as exc:
        _refused(checks, exc, WRITE_CHECKS)
    return checks


def _refused(checks: list[Check], exc: Exception, names: tuple[str, ...]) -> None:
    door = "IMAP" if isinstance(exc, ImapRefused) else "JMAP"
    done = {c.name for c in checks}
    checks += [Check(name, False, f"{door}: {exc}") for name in names if name not in done]


def _round_trip(probe: ImapProbe, bridge: JmapBridge, messages: list[ImapMessage],
                emails: dict[str, dict[str, Any]], timeout: float, checks: list[Check]) -> None:
    msg = pick_message(messages, emails)
    if msg is None or msg.email_id is None:
        why = "no sampled message is visible through both doors (append one to INBOX and run again)"
        checks += [not_run(name, why) for name in WRITE_CHECKS]
        return
    _exists, _id, writable = probe.examine(msg.mailbox, readonly=False)
    if not writable:
        checks += [not_run(name, f"{msg.mailbox} is read-only for this login") for name in WRITE_CHECKS]
        return
    original = probe.flags(msg.uid)
    if original is None:
        checks += [not_run(name, f"{msg.where} disappeared meanwhile") for name in WRITE_CHECKS]
        return
    email_id = msg.email_id

    def keywords() -> set[str]:
        found, _ = bridge.get_emails([email_id], ["keywords"])
        return normalize_keywords(found[email_id].get("keywords")) if email_id in found else set()

    original_keywords = keywords()
    was_flagged = "\\flagged" in _lower(original)
    want = not was_flagged
    what = f"{msg.where} (Email {email_id})"
    try:
        probe.store(msg.uid, "+" if want else "-", ["\\Flagged"])
        seen = wait_until(lambda: ("$flagged" in keywords()) == want, timeout)
        verb = "set" if want else "cleared"
        checks.append(Check(IMAP_TO_JMAP, seen, f"\\Flagged {verb} on {what} through IMAP; JMAP "
                                                 f"{'shows' if seen else f'did not show within {timeout:g} s'} "
                                                 f"$flagged {verb}"))
        bridge.set_keywords(email_id, {"$flagged": was_flagged})
        back = wait_until(lambda: ("\\flagged" in _lower(probe.flags(msg.uid))) == was_flagged, timeout)
        verb = "set" if was_flagged else "cleared"
        checks.append(Check(JMAP_TO_IMAP, back, f"$flagged {verb} on Email {email_id} through JMAP; IMAP "
                                                f"{'shows' if back else f'did not show within {timeout:g} s'} "
                                                f"\\Flagged {verb} on {msg.where}"))
    except (ImapRefused, JmapAccessError) as exc:  # a door refused a step: the steps not made fail with its answer
        _refused(checks, exc, (IMAP_TO_JMAP, JMAP_TO_IMAP))
    finally:  # also on Ctrl-C: the message gets its flags back
        now = probe.flags(msg.uid)
        if now is not None and _lower(now) != _lower(original):
            probe.store(msg.uid, "=", sorted(original))
    checks.append(_restored(probe, msg, original, original_keywords, keywords))


def _shown(flags: set[str]) -> str:
    return " ".join(sorted(flags, key=str.lower))


def _restored(probe: ImapProbe, msg: ImapMessage, original: set[str], original_keywords: set[str],
              keywords: Callable[[], set[str]]) -> Check:
    now = probe.flags(msg.uid)
    now_keywords = keywords()
    problems = []
    if _lower(now) != _lower(original):
        problems.append(f"IMAP FLAGS are ({_shown(now or set())}), were ({_shown(original)})")
    if now_keywords != original_keywords:
        problems.append(f"JMAP keywords are {sorted(now_keywords)}, were {sorted(original_keywords)}")
    if problems:
        return Check(RESTORED, False, f"{msg.where}: " + "; ".join(problems))
    shown = _shown(original) or "no flags"
    same = "" if flags_to_keywords(original) == original_keywords else " (the two doors disagreed before, too)"
    return Check(RESTORED, True, f"{msg.where} has its flags back ({shown}) in both doors{same}")
