"""The sender: works through the outbound queue (``store.submissions``) and delivers each message.

Recipients with an account (or alias) here get the message in their Inbox through the store, as LMTP would
deliver it, exactly once: the copy and the submission's note that the recipient has it are one transaction.
Everyone else goes through the configured smarthost (``[outbound] relay``) with aiosmtplib, or, with no relay,
straight to the mail servers of each recipient domain (its MX hosts, janusmail/smtp/mx.py): one connection per
domain, the domains in parallel, each MX host in turn until one answers, STARTTLS whenever offered. What
leaves is DKIM-signed (janusmail/smtp/dkimsign.py) after the Bcc field is taken out, so the signature covers
the bytes sent. Per recipient the answer decides: 2xx delivered, 5xx (and a domain that does not exist or
takes no mail) failed for good, 4xx, no answer or a DNS failure tried again later (``retry_base`` seconds,
doubling) until ``max_age``. Recipients that failed for good are reported to the sender with a delivery
status notification (RFC 3464) in the sender's Inbox, whose blob id the submission lists in ``dsnBlobIds``.

When it runs: a new EmailSubmission wakes it at once (the notifier's ``on_commit`` observers, in the process
that took the submission); otherwise it sleeps until the next attempt is due, at most ``POLL`` seconds, so rows
queued by another process are picked up too. Each attempt claims its row with a lease first (the due rows of
an account at once: ``Submissions.claim_many``), so several workers or nodes share the queue without sending a
row twice at once; what the attempts found is recorded in batches (``Submissions.record_attempts``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTP
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiosmtplib

from janusmail.mime.recipients import without_bcc
from janusmail.observability.metrics import Metrics
from janusmail.smtp import dkimsign, mx
from janusmail.store.model import BlobLocation, IngestItem, NotFound, StoreError, TooLarge
from janusmail.store.notifier import ChangeEvent
from janusmail.store.submissions import KIND, LOCAL_REPLY, OUTBOX, Attempt, Submission

from . import vacation

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.runtime import Runtime
    from janusmail.store.store import Store

__all__ = ["Outbound", "dsn_message", "parse_relay", "start_outbound"]

log = logging.getLogger("janusmail.smtp.outbound")

#: Longest sleep between looks at the queue (rows queued by another process, retries that came due).
POLL = 30.0
#: Longest wait between two attempts of one message, however many failed before.
MAX_BACKOFF = 4 * 3600
SMTP_TIMEOUT = 60.0
#: Rows one look at the queue takes (Submissions.due's limit); a full batch means: look again at once.
DUE_BATCH = 50
#: How long an attempt holds its row (``Submissions.claim``'s lease), and how long its relay part may take:
#: well inside the lease, or another worker could claim the row and send it again while this one still talks
#: to a slow relay. An attempt cut short is retried like any temporary failure.
LEASE = 600
RELAY_DEADLINE = LEASE - 120
#: How long before its lease runs out an attempt's network part must have ended; rows claimed together (one
#: ``claim_many``) share one lease, so each attempt gets what is left of it, and with less than
#: ``MIN_ATTEMPT`` seconds left the rest are released and claimed afresh (by the same pass, at once).
LEASE_MARGIN = LEASE - RELAY_DEADLINE
MIN_ATTEMPT = 60
#: Attempt records written together (``_Records``): at most this many, the oldest at most this long unwritten
#: (a record lost with the process costs a resend of its message after the lease, never a lost one).
RECORD_BATCH = 20
RECORD_WAIT = 0.5
#: Recipient domains of one message delivered at once (each over its own connection) on the MX path.
MX_PARALLEL = 8

Result = tuple[str, str]  # (delivered: "yes" | "no" | "queued", SMTP reply text)


async def _give_back(store: Store, account_id: str, claim: asyncio.Future[list[Submission]]) -> None:
    """The leases of a claim its pass no longer wants, once the claim has committed (shielded by the caller as
    one piece: a second cancel at shutdown must not stop it between the claim and the release)."""
    await _release(store, account_id, await claim)


async def _release(store: Store, account_id: str, subs: list[Submission]) -> None:
    """Give back the leases of ``subs`` (claimed together: one lease each, the same for all of a claim), only
    where they are still ours: a row whose lease ran out and that another process claimed keeps its new one."""
    by_lease: dict[int | None, list[str]] = {}
    for sub in subs:
        by_lease.setdefault(sub.lease_until, []).append(sub.id)
    for held, ids in by_lease.items():
        await store.call(store.submissions.release_many, account_id, ids, held=held)


def parse_relay(url: str) -> tuple[str, int, bool]:
    """``smtp://HOST:PORT`` -> (host, port, implicit TLS False); ``smtps://HOST[:465]`` -> TLS True."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("outbound.relay must be smtp://HOST:PORT or smtps://HOST:PORT")
    implicit = parts.scheme == "smtps"
    return parts.hostname, parts.port or (465 if implicit else 587), implicit


def dsn_message(hostname: str, submission: Submission, original: bytes, failed: dict[str, str]) -> bytes:
    """A delivery status notification (RFC 3464): ``multipart/report`` with a human part, the
    ``message/delivery-status`` fields (one block for the message, one per failed recipient) and the
    original's header section."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = f"Mail Delivery System <MAILER-DAEMON@{hostname}>"
    report["To"] = submission.envelope.mail_from
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Date"] = formatdate(localtime=False)
    report["Message-ID"] = make_msgid(domain=hostname)
    report["Auto-Submitted"] = "auto-replied"  # RFC 3834: no auto-reply to this
    # a reply is the remote server's text, often several lines: one line each, or its continuation lines
    # would become header fields of their own in the delivery-status part
    failed = {rcpt: " ".join(reply.split()) for rcpt, reply in failed.items()}
    human = [f"Your message could not be delivered to {len(failed)} recipient(s):", ""]
    human += [f"  {rcpt}: {reply}" for rcpt, reply in failed.items()]
    text = "\n".join(human) + "\n"
    report.attach(MIMEText(text, "plain", "us-ascii" if text.isascii() else "utf-8"))
    per_message = Message()
    per_message["Reporting-MTA"] = f"dns; {hostname}"
    per_message["Arrival-Date"] = formatdate(submission.created_at)
    blocks = [per_message]
    for rcpt, reply in failed.items():
        words = reply.split(" ", 2)
        enhanced = words[1] if len(words) > 1 and words[1][:1] in "45" and words[1].count(".") == 2 else "5.0.0"
        block = Message()
        block["Final-Recipient"] = f"rfc822; {rcpt}"
        block["Action"] = "failed"
        block["Status"] = enhanced
        block["Diagnostic-Code"] = f"smtp; {reply}"
        blocks.append(block)
    status = Message()
    status.set_type("message/delivery-status")
    status.set_payload(blocks)
    report.attach(status)
    headers = MIMEText("", "rfc822-headers")
    headers.set_payload(original.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace") + "\r\n")
    report.attach(headers)
    return report.as_bytes(policy=SMTP)


class _Records:
    """Attempt records on their way to the store, written in batches (one write per account,
    ``Submissions.record_attempts``) by a task of their own while the sender goes on with the next messages: a
    batch leaves once ``RECORD_BATCH`` records gathered, the oldest waited ``RECORD_WAIT`` seconds, or the claimed
    batch was done, so a pass of N messages costs a few commits, not N. A record the store refuses is lost, as
    one refused before: its row keeps its lease until that runs out and is then tried again (a local recipient
    is never served twice, see ``Submissions.deliver_local``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[str, Attempt]] = []
        self._since = 0.0  # when the oldest pending record was added (time.monotonic)
        self._task: asyncio.Task[None] | None = None

    def add(self, account_id: str, attempt: Attempt) -> None:
        if not self._pending:
            self._since = time.monotonic()
        self._pending.append((account_id, attempt))
        if len(self._pending) >= RECORD_BATCH or time.monotonic() - self._since >= RECORD_WAIT:
            self.kick()

    def kick(self) -> None:
        """Start writing what is pending, unless a write is under way (the next ``add`` or ``kick`` after it
        takes the rest)."""
        if self._pending and (self._task is None or self._task.done()):
            batch, self._pending = self._pending, []
            self._task = asyncio.create_task(self._write(batch), name="outbound-records")

    async def flush(self) -> None:
        """Wait until every record added so far is written (or refused)."""
        while True:
            if self._task is not None and not self._task.done():
                await asyncio.shield(self._task)
            elif self._pending:
                self.kick()
            else:
                return

    async def _write(self, batch: list[tuple[str, Attempt]]) -> None:
        by_account: dict[str, list[Attempt]] = {}
        for account_id, attempt in batch:
            by_account.setdefault(account_id, []).append(attempt)
        for account_id, attempts in by_account.items():
            try:
                await self._record(account_id, attempts)
            except Exception:  # noqa: BLE001 - the writer must outlive a bug; the rows are retried later
                log.exception("outbound: recording %d attempts failed", len(attempts))

    async def _record(self, account_id: str, attempts: list[Attempt]) -> None:
        store = self.store
        try:
            await store.call(store.submissions.record_attempts, account_id, attempts)
            return
        except StoreError:
            if len(attempts) == 1:
                log.warning("outbound %s: store refused the attempt record", attempts[0].submission_id,
                            exc_info=True)
                return
        for attempt in attempts:  # one refused batch: each record on its own, so one bad row costs only itself
            try:
                await store.call(store.submissions.record_attempts, account_id, [attempt])
            except StoreError:
                log.warning("outbound %s: store refused the attempt record", attempt.submission_id, exc_info=True)


class Outbound:
    """The queue runner of one process (see the module docstring)."""

    def __init__(self, store: Store, config: Any, metrics: Metrics | None = None) -> None:
        self.store = store
        self.config = config  # the whole Config: outbound section and hostname
        self.metrics = metrics or Metrics()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._password: str | None = None
        self._smtp: aiosmtplib.SMTP | None = None
        self._resolver: Any = None  # dns.asyncresolver.Resolver of the MX path (no relay)
        self._records = _Records(store)

    async def start(self) -> None:
        cfg = self.config.outbound
        # bad settings stop the server at start, not at the first send
        if cfg.relay:
            parse_relay(cfg.relay)
        else:
            try:
                self._resolver = mx.make_resolver(list(cfg.nameservers), cfg.dns_timeout)
            except ValueError as exc:
                raise ValueError(f"outbound.nameservers: {exc}") from None
            except Exception:  # noqa: BLE001 - no /etc/resolv.conf: local delivery still works
                log.exception("outbound: no DNS resolver; mail to other domains stays queued")
        if cfg.dkim:
            dkimsign.check_selector(cfg.dkim_selector)
        if cfg.relay_password_file:
            self._password = Path(cfg.relay_password_file).read_text().strip()
        self._loop = asyncio.get_running_loop()
        self.store.notifier.on_commit.append(self._observe)
        self._task = asyncio.create_task(self._run(), name="outbound")

    async def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.store.notifier.on_commit.remove(self._observe)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._records.flush()  # what was attempted is recorded before the store closes

    def _observe(self, ev: ChangeEvent) -> None:
        if (KIND in ev.kinds or OUTBOX in ev.kinds) and self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_due()
                next_due = await self.store.call(self.store.submissions.next_due)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the runner must outlive a bad row or a full disk
                log.exception("outbound queue pass failed")
                next_due = None
            wait = POLL if next_due is None else max(0.0, min(POLL, next_due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def run_due(self) -> int:
        """One pass: every row due now, each account's share of a look claimed at once (one write), attempted one
        after the other and recorded in batches while the next ones run (``_Records``), the relay connection
        shared by the pass (one TCP/TLS handshake and AUTH per pass, not per message). Returns how many were
        attempted."""
        done = 0
        try:
            while True:
                due = await self.store.call(self.store.submissions.due)
                if not due:
                    break
                by_account: dict[str, list[str]] = {}
                for account_id, sub_id in due:
                    by_account.setdefault(account_id, []).append(sub_id)
                released = False
                for account_id, sub_ids in by_account.items():
                    attempted, left = await self._attempt_batch(account_id, sub_ids)
                    done, released = done + attempted, released or left
                if len(due) < DUE_BATCH and not released:
                    break
        finally:
            try:
                await self._records.flush()
            finally:
                await self._hang_up()
        return done

    async def _attempt_batch(self, account_id: str, sub_ids: list[str]) -> tuple[int, bool]:
        """Claim one account's due rows in one write and attempt them in turn: (how many were attempted, whether
        some were released unattempted). Every attempt's network part ends ``LEASE_MARGIN`` before the batch's
        leases run out; when too little is left for the next one, the rest are released for the next look at the
        queue to claim afresh."""
        store = self.store
        lease_end = time.monotonic() + LEASE - LEASE_MARGIN  # (measured before the claim: never later than it)
        claim = asyncio.ensure_future(store.call(store.submissions.claim_many, account_id, sub_ids, lease=LEASE))
        try:
            subs = await asyncio.shield(claim)
        except asyncio.CancelledError:  # the server stops mid-claim: the claim still commits on its thread, and
            with contextlib.suppress(Exception):  # its leases would keep the rows from the next start for LEASE s
                await asyncio.shield(_give_back(store, account_id, claim))
            raise
        if not subs:
            return 0, False
        # one store hop for the batch: where each message's bytes are, and every recipient's account here if any
        try:
            locations, targets = await store.call(_batch_inputs, store, account_id, subs)
        except BaseException:  # (a read refused, the server stopping) the rows are due again at once
            with contextlib.suppress(Exception):
                await asyncio.shield(_release(store, account_id, subs))
            raise
        done = 0
        for k, sub in enumerate(subs):
            budget = lease_end - time.monotonic()
            if k and budget < MIN_ATTEMPT:  # (the first always goes: every batch makes progress)
                await _release(store, account_id, subs[k:])
                self._records.kick()
                return done, True
            try:
                attempt = await self.attempt(sub, locations.get(sub.blob_id), targets, min(RELAY_DEADLINE, budget))
            except asyncio.CancelledError:  # the server stops: let the next start take the rows at once
                with contextlib.suppress(Exception):
                    await asyncio.shield(_release(store, account_id, subs[k:]))
                raise
            except StoreError:  # its row keeps the lease until it runs out, then it is tried again
                log.warning("outbound %s: the store refused the attempt", sub.id, exc_info=True)
            else:
                self._records.add(sub.account_id, attempt)
            done += 1
        self._records.kick()  # the batch's last records, written while the next look at the queue runs
        return done, False

    # -- one attempt ----------------------------------------------------------------------------------------

    async def attempt(self, sub: Submission, location: BlobLocation | None,
                      targets: dict[str, tuple[str, str] | None], deadline: float = RELAY_DEADLINE) -> Attempt:
        """Deliver the message (at ``location``) to its recipients still queued, those with an account here
        (``targets``: address -> (account id, INBOX id)) into their Inbox, the others within ``deadline``
        seconds; returns what to record (``Submissions.record_attempts``, written by the caller)."""
        store = self.store
        if location is None:
            raise NotFound(sub.blob_id)
        todo = [r for r in sub.envelope.rcpt_to if sub.delivery.get(r, {}).get("delivered") == "queued"]
        # the Bcc field names recipients the others must not see: it never leaves with the message
        raw = without_bcc(await store.call(store.blobs.read_location, location))
        results: dict[str, Result] = {}
        remote: list[str] = []
        for rcpt in todo:
            target = targets[rcpt]
            if target is None:
                remote.append(rcpt)
            else:
                results[rcpt] = await self._deliver_local(*target, sub, raw, rcpt)
        if remote:
            # what finished before a deadline or a bug stays recorded: only the others are tried again
            try:
                signed = await self._signed(sub, raw)  # once for every domain, before the network's deadline
                async with asyncio.timeout(deadline):
                    await self._remote(sub, remote, signed, results)
            except TimeoutError:
                client, self._smtp = self._smtp, None
                if client is not None:
                    client.close()  # mid-command: no QUIT, the session's state is unknown
                results.update({r: ("queued", "451 4.4.2 Remote delivery too slow, attempt abandoned")
                                for r in remote if r not in results})
            except Exception:  # noqa: BLE001 - a bug must not lose the local deliveries already made
                log.exception("outbound %s: remote delivery attempt failed", sub.id)
                await self._hang_up()
                results.update({r: ("queued", "451 4.3.0 Internal error, will retry")
                                for r in remote if r not in results})
        now = int(time.time())
        cfg = self.config.outbound
        expired = now - sub.send_at >= cfg.max_age
        for rcpt, (state, reply) in list(results.items()):
            if state == "queued" and expired:
                results[rcpt] = ("no", f"550 5.4.7 Delivery time expired ({reply})")
        for rcpt, (state, _) in results.items():
            self.metrics.delivery("remote" if rcpt in remote else "local", _RESULTS[state])
        failed = {r: reply for r, (state, reply) in results.items() if state == "no"}
        dsn_ids: list[str] = []
        if failed and sub.envelope.mail_from:  # a null return path gets no bounce (RFC 5321 §4.5.5)
            dsn_ids = await self._bounce(sub, raw, failed)
        retry = any(state == "queued" for state, _ in results.values())
        next_attempt = now + min(MAX_BACKOFF, cfg.retry_base * 2 ** sub.attempts) if retry else None
        return Attempt(sub.id, results, next_attempt, tuple(dsn_ids))

    async def _deliver_local(self, account_id: str, inbox_id: str, sub: Submission, raw: bytes, rcpt: str
                             ) -> Result:
        """Into the recipient's Inbox, in one transaction with the submission's note that ``rcpt`` has it
        (``Submissions.deliver_local``): a retry after a lost record never delivers a second copy."""
        store = self.store
        message = b"Return-Path: <" + sub.envelope.mail_from.encode() + b">\r\n" + raw
        try:
            # inbound: an MDN or DSN one account sends another here is linked to the recipient's submission
            prepared = await store.call(store.emails.prepare, IngestItem(message, (inbox_id,), inbound=True))
            delivered = await store.call(store.submissions.deliver_local, account_id, prepared, sub.account_id,
                                         sub.id, rcpt)
        except TooLarge:  # the same message will never fit: a bounce now, not after max_age of retries
            return "no", "552 5.3.4 Message too big for the recipient's mailbox"
        except StoreError as exc:  # full disk, quota: try again later (a full mailbox may empty)
            return "queued", f"452 4.2.2 {exc}"
        if delivered is not None:  # (None: an earlier attempt delivered it, and answered already)
            await vacation.after_delivery(store, account_id, sub.envelope.mail_from, raw)  # best effort
        return "yes", LOCAL_REPLY

    async def _signed(self, sub: Submission, raw: bytes) -> bytes:
        """``raw`` DKIM-signed by its From domain, when ``[outbound] dkim`` is on. A message that cannot be
        signed (no usable domain, an unreadable key) leaves unsigned rather than not at all."""
        cfg = self.config.outbound
        if not cfg.dkim:
            return raw
        domain = dkimsign.signing_domain(raw, sub.envelope.mail_from)
        if domain is None:
            log.warning("outbound %s: no domain to DKIM-sign for; sent unsigned", sub.id)
            return raw

        def sign() -> bytes:  # key file I/O, maybe RSA key generation, pure-Python RSA: off the event loop
            pem = dkimsign.ensure_key(self.config.data_dir, domain, cfg.dkim_selector)
            return dkimsign.sign(raw, domain, cfg.dkim_selector, pem)

        try:
            return await asyncio.to_thread(sign)
        except (OSError, ValueError, dkimsign.dkim.DKIMException):
            log.warning("outbound %s: DKIM signing for %s failed; sent unsigned", sub.id, domain, exc_info=True)
            return raw

    async def _remote(self, sub: Submission, rcpts: list[str], raw: bytes, results: dict[str, Result]) -> None:
        """Deliver to recipients elsewhere, through the relay or each domain's MX, into ``results`` as each
        domain finishes (so a deadline keeps the domains already done)."""
        if self.config.outbound.relay:
            results.update(await self._relay(sub, rcpts, raw))
            return
        by_domain: dict[str, list[str]] = {}
        for rcpt in rcpts:
            by_domain.setdefault(rcpt.rpartition("@")[2].lower(), []).append(rcpt)
        gate = asyncio.Semaphore(MX_PARALLEL)

        async def one(domain: str, group: list[str]) -> None:
            async with gate:
                results.update(await self._direct(sub, domain, group, raw))

        async with asyncio.TaskGroup() as tg:
            for domain, group in by_domain.items():
                tg.create_task(one(domain, group))

    async def _direct(self, sub: Submission, domain: str, rcpts: list[str], raw: bytes) -> dict[str, Result]:
        """One domain's recipients over one connection to the first of its mail servers that answers."""
        if self._resolver is None:
            return {r: ("queued", "451 4.4.3 No DNS resolver configured") for r in rcpts}
        tried: list[str] = []
        try:
            async with contextlib.aclosing(mx.candidates(self._resolver, domain)) as hosts:
                async for host, address in hosts:
                    try:
                        client = await self._open_mx(host, address)
                    except (aiosmtplib.SMTPException, OSError) as exc:  # refused, unreachable, 4xx/5xx greeting
                        tried.append(f"{host}[{address}]: {' '.join(str(exc).split())}")
                        continue
                    try:
                        out, _ = await _sendmail(client, sub.envelope.mail_from, rcpts, raw, f"by {host}")
                    except BaseException:
                        client.close()
                        raise
                    await _quit(client)
                    return out
        except mx.NoRoute as exc:
            return {r: ("no" if exc.permanent else "queued", exc.reply) for r in rcpts}
        reply = f"451 4.4.1 No mail server of {domain} answered ({'; '.join(tried[-3:])})"
        return {r: ("queued", reply) for r in rcpts}

    async def _open_mx(self, host: str, address: str) -> aiosmtplib.SMTP:
        """A session with one MX address, upgraded with STARTTLS when offered. Unverified by default (as
        between MTAs); with ``mx_tls_verify`` the certificate must name ``host``, else this host counts as
        failed. Unverified, a session whose EHLO or TLS handshake fails is opened once more in plain text (as
        MTAs do), where sendmail says EHLO, or HELO to a server that knows no EHLO."""
        cfg = self.config.outbound
        for tls in (True, False):
            client = aiosmtplib.SMTP(hostname=address, port=cfg.mx_port, start_tls=False, timeout=SMTP_TIMEOUT,
                                     validate_certs=cfg.mx_tls_verify, local_hostname=self.config.hostname)
            await client.connect()  # refused, unreachable, a 4xx/5xx greeting: this address failed
            if not tls:
                return client
            try:
                await client.ehlo()
                if client.supports_extension("starttls"):
                    await client.starttls(server_hostname=host)
                return client
            except (aiosmtplib.SMTPException, OSError):
                client.close()
                if cfg.mx_tls_verify:
                    raise
            except BaseException:
                client.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _relay(self, sub: Submission, rcpts: list[str], raw: bytes) -> dict[str, Result]:
        try:
            client = await self._connection()
        except (aiosmtplib.SMTPException, OSError) as exc:  # unreachable, TLS, AUTH refused: try again later
            await self._hang_up()
            return {r: ("queued", f"451 4.4.1 Relay unavailable: {exc}") for r in rcpts}
        out, reusable = await _sendmail(client, sub.envelope.mail_from, rcpts, raw, "by the relay")
        if not reusable:
            await self._hang_up()  # the session's state is unknown now: the next message gets a fresh one
        return out

    async def _connection(self) -> aiosmtplib.SMTP:
        """The relay session of this pass, opened (TLS, AUTH) on first use."""
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        cfg = self.config.outbound
        host, port, implicit = parse_relay(cfg.relay)
        # STARTTLS when offered; REQUIRED before a password is sent (None would fall back to plain text when
        # the relay, or anyone between, leaves STARTTLS out of EHLO, and AUTH would give the password away)
        starttls = False if implicit else (True if cfg.relay_username else None)
        client = aiosmtplib.SMTP(hostname=host, port=port, use_tls=implicit, start_tls=starttls,
                                 validate_certs=cfg.relay_tls_verify, timeout=SMTP_TIMEOUT,
                                 local_hostname=self.config.hostname)
        await client.connect()
        try:
            if cfg.relay_username:
                await client.login(cfg.relay_username, self._password or "")
        except BaseException:
            client.close()
            raise
        self._smtp = client
        return client

    async def _hang_up(self) -> None:
        client, self._smtp = self._smtp, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

    async def _bounce(self, sub: Submission, raw: bytes, failed: dict[str, str]) -> list[str]:
        store = self.store
        inbox = await store.call(store.mailboxes.by_path, sub.account_id, ["INBOX"])
        if inbox is None:
            return []
        report = dsn_message(self.config.hostname, sub, bytes(raw), failed)
        try:
            delivered = await store.deliver(sub.account_id, report, (inbox.id,))
        except StoreError:
            log.warning("outbound %s: could not store the bounce", sub.id, exc_info=True)
            return []
        return [delivered.blob_id]


async def _sendmail(client: aiosmtplib.SMTP, mail_from: str, rcpts: list[str], raw: bytes,
                    via: str) -> tuple[dict[str, Result], bool]:
    """One transaction: (result per recipient, whether the session can carry another message)."""
    try:
        errors, _ = await client.sendmail(mail_from, rcpts, raw)
    except aiosmtplib.SMTPRecipientsRefused as exc:  # every RCPT refused: nothing was sent
        return {e.recipient: _classify(e.code, e.message) for e in exc.recipients}, True
    except aiosmtplib.SMTPResponseException as exc:  # refused at MAIL or DATA: the same for everyone
        return {r: _classify(exc.code, exc.message) for r in rcpts}, False
    except (aiosmtplib.SMTPException, OSError) as exc:  # the connection broke or timed out: try again later
        return {r: ("queued", f"451 4.4.2 Connection lost: {exc}") for r in rcpts}, False
    out = {r: ("yes", f"250 2.0.0 Accepted {via}") for r in rcpts}
    for rcpt, resp in errors.items():
        out[rcpt] = _classify(resp.code, resp.message)
    return out, True


async def _quit(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


#: A recipient's state after an attempt, as a delivery result of the metrics.
_RESULTS = {"yes": "accepted", "no": "refused", "queued": "deferred"}


def _classify(code: int, message: str) -> Result:
    reply = f"{code} {message}".strip()
    if 200 <= code < 300:
        return "yes", reply
    return ("no" if code >= 500 else "queued"), reply


def _batch_inputs(store: Store, account_id: str, subs: list[Submission]
                  ) -> tuple[dict[str, BlobLocation], dict[str, tuple[str, str] | None]]:
    """On a store thread, what a batch of attempts needs (one query for the messages, not one each): where each
    message's bytes are, and the (account id, INBOX id) of each queued recipient delivered here, None for the
    others. Read when the batch is claimed: an address whose account was made since is found at the next look."""
    rcpts = {r for sub in subs for r in sub.envelope.rcpt_to if sub.delivery.get(r, {}).get("delivered") == "queued"}
    with store.shared_read():
        locations = store.blobs.locations(account_id, [sub.blob_id for sub in subs])
        return locations, store.accounts.recipients(sorted(rcpts))


async def start_outbound(rt: Runtime) -> None:
    """Start this process's queue runner and register its closer (a server starter, like start_lmtp)."""
    runner = Outbound(rt.store, rt.config, rt.metrics)
    await runner.start()
    rt.closers.append(runner.close)
