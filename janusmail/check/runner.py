"""The order of ``janusmail check``: talk to the server (``imap_io``, ``janusmail.client.JmapBridge``), hand
what it said to the judges (``rfc9698``, ``rfc8474``), collect the verdicts.

1. A first connection, before login: the greeting, CAPABILITY, GETJMAPACCESS (must be refused).
2. Login with the credential: the capability lists after it, GETJMAPACCESS (one quoted URL), GETJMAPACCESS with
   an argument (BAD), and the advertised URL opened over HTTP with the same credential.
3. The same mail through both doors: every mailbox listed, ``sample`` messages from each, compared with JMAP
   (the advertised session, or ``--jmap URL`` when that one does not open). With ``write``, one flag changed
   through each door and seen through the other, then the original flags put back (``writes``).
4. A second connection logs in with a deliberately wrong secret of the same kind (last, so that a server
   which slows down after a failure does not slow the rest): no JMAPACCESS after it.

Connection failures raise :class:`ImapProbeError` (exit status 2); everything the server answers is a verdict.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from janusmail.client.bridge import JmapAccessError, JmapBridge

from . import rfc8474, rfc9698, writes
from .imap_io import ImapProbe, ImapProbeError, ImapRefused, Listed, Security, tls_context
from .model import Check, Credential, Report, not_run
from .rfc8474 import ImapMailbox, ImapMessage
from .rfc9698 import SessionOutcome
from .wire import Exchange, capability_lists

#: Called after each mailbox is sampled: (mailboxes done, mailboxes in all, the mailbox's name, its messages).
Progress = Callable[[int, int, str, int], None]


@dataclass(frozen=True)
class Options:
    host: str
    port: int
    credential: Credential
    security: Security = "plain"
    ca_file: str | None = None
    jmap_url: str | None = None
    sample: int = 20
    write: bool = False
    timeout: float = 30.0

    @cached_property
    def context(self) -> ssl.SSLContext:
        """The one TLS client context of a run (IMAP and JMAP), made when first needed."""
        return tls_context(self.ca_file)

    def connect(self) -> ImapProbe:
        context = self.context if self.security != "plain" else None
        return ImapProbe(self.host, self.port, security=self.security, context=context, timeout=self.timeout)


def open_session(url: str, opts: Options) -> tuple[SessionOutcome, JmapBridge | None]:
    """Open the JMAP session at ``url`` with the check's credential: the outcome, and the bridge if it opened."""
    cred = opts.credential
    auth = {"token": cred.secret} if cred.kind == "token" else {"username": cred.user, "password": cred.secret}
    try:
        bridge = JmapBridge(url, verify=opts.context, timeout=opts.timeout, **auth)
    except JmapAccessError as exc:
        return SessionOutcome(url, False, exc.status, exc.challenge, str(exc)), None
    return SessionOutcome(url, True, 200, username=bridge.username, account_id=bridge.account_id), bridge


def run(opts: Options, progress: Progress | None = None) -> Report:
    report = Report()
    cred = opts.credential
    probe = opts.connect()
    bridges: list[JmapBridge] = []  # every session opened, closed at the end

    def session(url: str) -> tuple[SessionOutcome, JmapBridge | None]:
        outcome, bridge = open_session(url, opts)
        if bridge is not None:
            bridges.append(bridge)
        return outcome, bridge

    try:
        # 1. before login
        before = [probe.starttls] if probe.starttls else []
        capability = probe.exchange("CAPABILITY")
        before.append(capability)
        report.add(rfc9698.judge_preauth(probe.greeting, before, probe.exchange("GETJMAPACCESS")))

        # 2. login, the advertisement, the session
        login = probe.login(cred, _capabilities(probe, capability))
        if login.status != "OK":
            raise ImapProbeError(f"{probe.where} refused the login of {cred.user} with a {cred.described}: "
                                 f"{login.completion or login.transcript()}")
        after = probe.exchange("CAPABILITY")
        extra: SessionOutcome | None = None  # --jmap, asked when nothing was advertised
        extra_bridge: JmapBridge | None = None
        if opts.jmap_url and not any("JMAPACCESS" in c for c in capability_lists(login.lines + after.lines)):
            extra, extra_bridge = session(opts.jmap_url)
        check, advertised = rfc9698.judge_after_login(cred, login, after, rfc9698.silence_note(extra, cred))
        report.add(check)
        check, url = rfc9698.judge_getjmapaccess(probe.exchange("GETJMAPACCESS"), advertised)
        report.add(check)
        report.add(rfc9698.judge_getjmapaccess_args(probe.exchange("GETJMAPACCESS ARGUMENT")))
        outcome, bridge = session(url) if advertised and url else (None, None)
        report.add(rfc9698.judge_session(url, outcome, cred, advertised))

        # 3. the same mail through both doors: the advertised session, else --jmap
        if bridge is None and opts.jmap_url:
            if extra is None:
                extra, extra_bridge = session(opts.jmap_url)
            bridge = extra_bridge
        if bridge is not None:
            _cross_checks(report, probe, bridge, opts, progress)
        else:
            why = "no JMAP session to compare with: " + _no_session_reason(advertised, outcome, extra)
            names = rfc8474.CROSS_CHECKS + (writes.WRITE_CHECKS if opts.write else ())
            report.checks += [not_run(name, why) for name in names]
    finally:
        for b in bridges:
            b.close()
        probe.close()

    # 4. a wrong secret, on a connection of its own; reported second, after "before login"
    report.checks.insert(1, _failed_login(opts))
    return report


def _capabilities(probe: ImapProbe, capability: Exchange) -> frozenset[str]:
    """What the server offers before login (the mechanisms to log in with), from its CAPABILITY answer."""
    lists = capability_lists(capability.lines)
    return frozenset().union(*lists) if lists else frozenset(c.upper() for c in probe.imap.capabilities)


def _no_session_reason(advertised: bool, outcome: SessionOutcome | None, extra: SessionOutcome | None) -> str:
    parts = []
    if not advertised:
        parts.append("JMAPACCESS is not advertised")
    elif outcome is None:
        parts.append("GETJMAPACCESS gave no usable URL")
    else:
        parts.append(f"the advertised URL did not open ({outcome.brief})")
    if extra is not None:
        parts.append(f"--jmap {extra.url} did not open either ({extra.brief})")
    else:
        parts.append("give --jmap URL to compare with JMAP anyway")
    return "; ".join(parts)


def _failed_login(opts: Options) -> Check:
    cred = opts.credential
    wrong = Credential(cred.user, "janus-check-wrong-" + secrets.token_urlsafe(12), cred.kind)
    probe = opts.connect()
    try:
        login = probe.login(wrong, _capabilities(probe, probe.exchange("CAPABILITY")))
        if login.status == "OK":
            return rfc9698.judge_failed_login(cred, login, [], None)
        return rfc9698.judge_failed_login(cred, login, [probe.exchange("CAPABILITY")],
                                          probe.exchange("GETJMAPACCESS"))
    finally:
        probe.close()


def _cross_checks(report: Report, probe: ImapProbe, bridge: JmapBridge, opts: Options,
                  progress: Progress | None) -> None:
    try:
        jmap_boxes = bridge.mailboxes(["name", "parentId", "role"])
    except JmapAccessError as exc:
        for name in rfc8474.CROSS_CHECKS:
            report.add(Check(name, False, f"JMAP Mailbox/get failed: {exc}"))
        return
    try:
        boxes, messages, delimiter = _sample_imap(probe, opts.sample, progress)
    except ImapRefused as exc:  # LIST itself
        for name in rfc8474.CROSS_CHECKS:
            report.add(Check(name, False, f"IMAP {exc}"))
        return
    report.add(rfc8474.judge_mailbox_ids(boxes, jmap_boxes))
    report.add(rfc8474.judge_mailbox_tree(boxes, jmap_boxes, delimiter))
    try:
        emails, _missing = bridge.get_emails([m.email_id for m in messages if m.email_id],
                                             ["threadId", "keywords", "mailboxIds"])
    except JmapAccessError as exc:
        for name in rfc8474.CROSS_CHECKS[2:]:
            report.add(Check(name, False, f"JMAP Email/get failed: {exc}"))
        return
    selectable = sum(1 for b in boxes if b.selectable)
    report.add(rfc8474.judge_email_ids(messages, emails, selectable,
                                       [b.fetch_error for b in boxes if b.fetch_error]))
    report.add(rfc8474.judge_thread_ids(messages, emails))
    report.add(rfc8474.judge_keywords(messages, emails))
    if opts.write:
        report.checks += writes.write_round_trip(probe, bridge, messages, emails, opts.timeout)


def _sample_imap(probe: ImapProbe, sample: int,
                 progress: Progress | None) -> tuple[list[ImapMailbox], list[ImapMessage], str | None]:
    """Every mailbox of the personal namespace with its ids, and ``sample`` messages of each."""
    personal, foreign = probe.namespaces()
    listed = [row for row in probe.list_mailboxes()
              if not any(row.name.startswith(prefix) for prefix in foreign)]
    delimiter = next((row.delimiter for row in listed if row.delimiter), None)
    boxes: list[ImapMailbox] = []
    messages: list[ImapMessage] = []
    for done, row in enumerate(listed, 1):
        box = _sample_mailbox(probe, row, rfc8474.split_name(row.name, row.delimiter, personal), sample, messages)
        boxes.append(box)
        if progress:
            progress(done, len(listed), row.name, box.exists)
    return boxes, messages, delimiter


def _sample_mailbox(probe: ImapProbe, row: Listed, path: tuple[str, ...], sample: int,
                    messages: list[ImapMessage]) -> ImapMailbox:
    """One mailbox's ids (STATUS, EXAMINE) and its sampled messages (appended to ``messages``); what the server
    refused is kept on the mailbox for the verdicts."""
    if not row.selectable:
        return ImapMailbox(row.name, path, False)
    status_id = probe.status_mailboxid(row.name)
    try:
        exists, select_id, _rw = probe.examine(row.name)
    except ImapRefused as exc:
        return ImapMailbox(row.name, path, True, status_id, examine_error=str(exc))
    try:
        fetched = probe.fetch(rfc8474.sample_positions(exists, sample))
    except ImapRefused as exc:
        return ImapMailbox(row.name, path, True, status_id, select_id, exists, fetch_error=f"{row.name}: {exc}")
    messages += [ImapMessage(row.name, status_id, f.uid, f.email_id, f.thread_id, f.thread_sent, f.flags)
                 for f in fetched]
    return ImapMailbox(row.name, path, True, status_id, select_id, exists)
