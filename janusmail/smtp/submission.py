"""SMTP submission for mail clients (RFC 6409), on aiosmtpd: ``listen`` with STARTTLS (587) and ``listen_tls``
with implicit TLS (RFC 8314, 465).

What it decides, and why:

* **Who.** AUTH runs the shared SASL mechanisms (janusmail.auth.sasl: PLAIN, LOGIN, OAUTHBEARER, XOAUTH2,
  SCRAM-SHA-256) under protocol ``smtp``, so the policy (account password allowed for smtp or not), app
  passwords granted ``smtp``, tokens with the ``smtp`` scope and the failed-login throttle are exactly IMAP's.
  aiosmtpd's own AUTH is replaced: its authenticator hook is synchronous and would verify argon2 on the loop.
* **Not in the clear.** Off loopback, no AUTH is offered or accepted before TLS (``538 5.7.11``) and no mail
  transaction starts (``530 5.7.0``): the rule is the policy's ``smtp_plaintext_without_tls``
  (``[submission] plaintext_auth``, "loopback" by default), decided by :func:`plaintext_ok`.
* **Only while the credential holds.** Each MAIL asks janusmail.auth.revocation, as IMAP does before every
  command: after a password change, an app password's revocation or a token's expiry the connection must
  authenticate again (``530 5.7.0``).
* **Only your own addresses.** AUTH comes before MAIL; MAIL FROM and every From: address must be the
  account's address or one of its aliases (``553 5.7.1`` / ``550 5.7.1``).
* **Into the one outbound queue.** The message is filed in the account's Sent mailbox (``$seen``, bytes as
  received; the sender strips Bcc when it sends) and one EmailSubmission references it, envelope = MAIL FROM /
  RCPT TO, in ONE store write (``Submissions.create_with_email``); ``250`` only after that commit. Clients see
  it through JMAP EmailSubmission/query like any other; the commit wakes this process's sender.
* **Bounded memory.** DATA is read line by line into a spool (janusmail.spool, the same budget and load gate as
  IMAP literals and JMAP uploads): a big message lives in a temporary file and reaches the store as a read-only
  map. The limit is ``[lmtp] max_message_size`` (``552 5.3.4``); over quota is ``552 5.2.2``.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import logging
import ssl
import time
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from janusmail.auth import revocation
from janusmail.auth.authenticator import AuthResult
from janusmail.auth.policy import AuthPolicy, is_loopback
from janusmail.auth.sasl import (
    MECHANISMS,
    Challenge,
    Failure,
    Mechanism,
    SaslDecodeError,
    SaslServer,
    Success,
    decode_response,
)
from janusmail.mime.recipients import envelope_addresses
from janusmail.observability import logs
from janusmail.observability.metrics import smtp_result
from janusmail.spool import FLUSH_BYTES, Spool
from janusmail.store.model import IngestItem, NotFound, OverQuota, StorageUnavailable, StoreError, TooLarge
from janusmail.store.submissions import Envelope as QueueEnvelope

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.runtime import Runtime
    from janusmail.store.store import Store

__all__ = ["MAX_RECIPIENTS", "SubmissionServer", "plaintext_ok", "start_submission"]

log = logging.getLogger("janusmail.submission")

#: Recipients of one message (JMAP EmailSubmission allows as many); RFC 5321 §4.5.3.1.8 asks for at least 100.
MAX_RECIPIENTS = 100
#: RFC 4954 §4: an AUTH command line (with its initial response) may be up to 12288 octets.
AUTH_LINE = 12288
#: Longest line read at all (commands, SASL responses, message lines); longer DATA lines are refused.
LINE_LIMIT = AUTH_LINE + 2
#: How much of a message is searched for its header section (the sender checks read only that part).
HEADER_LIMIT = 1024 * 1024
HANDSHAKE_TIMEOUT = 30.0
COMMAND_TIMEOUT = 300.0

OK_AUTH = "235 2.7.0 Authentication successful"
BAD_AUTH = "535 5.7.8 Authentication credentials invalid"
NEED_TLS = "530 5.7.0 Must issue a STARTTLS command first"
NO_ROOM = "452 4.3.1 Insufficient system storage, try again later"
IO_ERROR = "451 4.3.0 Mail store I/O error, try again later"
TEMP_FAIL = "451 4.3.0 Temporary failure, try again later"


def plaintext_ok(policy: AuthPolicy, tls_active: bool, peer: str | None) -> bool:
    """May this connection authenticate with a secret and send mail? Always over TLS; without TLS only as
    ``smtp_plaintext_without_tls`` says (default: the peer is on loopback, for local tools and tests)."""
    return policy.plaintext_allowed("smtp", tls_active, is_loopback(peer))


def _peer_host(peer: Any) -> str | None:
    """The client's IP address from a socket peer name (IPv4 pair or IPv6 4-tuple)."""
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


def _header_block(raw: Any) -> bytes:
    """The header section of ``raw`` (bytes or a spool's map) as bytes, without copying the body (a message
    without one is read up to ``HEADER_LIMIT``: its From is near the top or nowhere)."""
    end = raw.find(b"\r\n\r\n", 0, HEADER_LIMIT)
    return bytes(raw[: end + 4]) if end >= 0 else bytes(raw[:HEADER_LIMIT])


def _mail_facts(store: Store, result: AuthResult, baseline: int, now: float, grace: float
                ) -> tuple[revocation.Verdict, list[str]]:
    """On a store thread, one hop for MAIL: is the credential still good, and the account's own addresses."""
    verdict = revocation.check(store, result, baseline, now=now, grace=grace)
    own = [] if verdict.reason else [a.lower() for a in store.identities.addresses(result.account_id)]
    return verdict, own


def _sender_facts(store: Store, account_id: str) -> tuple[list[str], list[tuple[str, str]], str | None]:
    """On a store thread, one hop: the account's own addresses (lowercased), its identities as (id, email),
    and its Sent mailbox (role ``sent``; else a top-level "Sent") or None."""
    own = [a.lower() for a in store.identities.addresses(account_id)]
    identities = [(i.id, i.email.lower()) for i in store.identities.list(account_id)]
    boxes = store.mailboxes.list(account_id)
    sent = next((b.id for b in boxes if b.role == "sent"), None)
    if sent is None:
        sent = next((b.id for b in boxes if b.parent_id is None and b.name.lower() == "sent"), None)
    return own, identities, sent


class SubmissionHandler:
    """aiosmtpd hooks: EHLO's AUTH line, MAIL and RCPT checks, and storing a received message."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.store = rt.store

    async def handle_EHLO(self, server: SubmissionServer, session: Session, envelope: Envelope,  # noqa: N802
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname  # (aiosmtpd leaves it to this hook)
        out = [r for r in responses if not r.startswith("250-AUTH")]
        mechanisms = server.mechanisms()
        if mechanisms:
            out.insert(len(out) - 1, "250-AUTH " + " ".join(mechanisms))
        return out

    async def handle_exception(self, error: Exception) -> str:
        """A fault of ours in some command: logged, and a plain temporary failure for the client (aiosmtpd's
        default reply would show it the exception's text)."""
        log.error("submission command failed", exc_info=error)
        return "451 4.3.0 Internal error, try again later"

    async def handle_MAIL(self, server: SubmissionServer, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, mail_options: list[str]) -> str:
        result = server.auth_result
        assert result is not None and server.credential_epoch is not None  # check_auth_needed ran first
        sender = address.strip().lower()
        tokens = self.rt.auth.tokens
        grace = float(tokens.grace(result.issuer)) if tokens is not None else 0.0
        try:
            verdict, own = await self.store.call(_mail_facts, self.store, result, server.credential_epoch,
                                                 time.time(), grace)
        except StoreError:
            return TEMP_FAIL
        if verdict.reason is not None:
            server.forget_login()
            self.rt.metrics.session_revoked("submission", verdict.reason)
            return f"530 5.7.0 {verdict.reason}"
        server.credential_epoch = verdict.baseline
        if sender not in own:
            return f"553 5.7.1 Sender address <{sender}> is not one of your addresses"
        envelope.mail_from = sender
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(self, server: SubmissionServer, session: Session, envelope: Envelope,  # noqa: N802
                          address: str, rcpt_options: list[str]) -> str:
        rcpt = address.strip().lower()
        if "@" not in rcpt:
            return "553 5.1.3 Recipient address must be user@domain"
        if rcpt in envelope.rcpt_tos:
            return "250 2.1.5 Recipient OK (duplicate)"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 Too many recipients (at most {MAX_RECIPIENTS} per message)"
        envelope.rcpt_tos.append(rcpt)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    async def submit(self, result: AuthResult, envelope: Envelope, spool: Spool) -> str:
        """Check and store one received message; the SMTP reply. Never raises for the message's own faults."""
        store = self.store
        try:
            (raw,) = await self.rt.spooler.load([spool])
            senders, _ = envelope_addresses(_header_block(raw))
            own, identities, sent = await store.call(_sender_facts, store, result.account_id)
            if not senders:
                return "550 5.7.1 The message has no From: address"
            foreign = [a for a in senders if a not in own]
            if foreign:
                return f"550 5.7.1 From: <{foreign[0]}> is not one of your addresses"
            if sent is None:
                sent = (await store.call(store.mailboxes.create, result.account_id, "Sent", role="sent")).id
            # the identity whose email is the From address; an alias without one goes out as the account
            identity_id = next((i for i, e in identities if e == senders[0]),
                               store.identities.default_id(result.account_id))
            item = IngestItem(raw, (sent,), ("$seen",))
            prepared = await store.call(store.emails.prepare, item)  # parsing off the writer lane
            queue_envelope = QueueEnvelope(str(envelope.mail_from), tuple(envelope.rcpt_tos))
            _, made = await store.call(store.submissions.create_with_email, result.account_id, identity_id,
                                       prepared, queue_envelope)
        except TooLarge:
            return "552 5.3.4 Message too big for system"
        except OverQuota:
            return "552 5.2.2 Mailbox full: quota exceeded"
        except StorageUnavailable as exc:
            log.warning("submission from %s deferred: %s", result.address, exc)
            return NO_ROOM if exc.full else IO_ERROR
        except NotFound:  # the Sent mailbox was removed between the look and the write
            return TEMP_FAIL
        except StoreError as exc:
            log.warning("submission from %s failed: %s", result.address, exc)
            return TEMP_FAIL
        except Exception:  # never acknowledge what we could not store, never drop the connection over it
            log.exception("submission from %s failed", result.address)
            return TEMP_FAIL
        log.info("submission %s from %s to %d recipient(s)", made.id, envelope.mail_from, len(envelope.rcpt_tos))
        return f"250 2.0.0 Queued as {made.id}"


class SubmissionServer(SMTP):
    """One client connection. aiosmtpd's protocol with AUTH and DATA of our own (see the module docstring)."""

    line_length_limit = LINE_LIMIT  # the stream reader's limit: an AUTH line with a token must fit

    def __init__(self, rt: Runtime, handler: SubmissionHandler, *, implicit_tls: bool,
                 tls_context: ssl.SSLContext | None) -> None:
        super().__init__(handler, data_size_limit=int(rt.config.lmtp.max_message_size), enable_SMTPUTF8=True,
                         decode_data=False, hostname=rt.config.hostname or "localhost",
                         ident="Janus Mail ESMTP submission", tls_context=None if implicit_tls else tls_context,
                         timeout=COMMAND_TIMEOUT)  # AUTH, and that it comes first: ours (below)
        self.rt = rt
        self.implicit_tls = implicit_tls
        #: The store-wide credential epoch read before the login was verified (janusmail.auth.revocation).
        self.credential_epoch: int | None = None
        # per connection (aiosmtpd's default is one dict shared by every instance, grown by each EHLO)
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit, {"AUTH": AUTH_LINE})
        self._counted = False  # this connection is in the metrics' open connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._counted:  # (aiosmtpd calls it again after STARTTLS: still the same connection)
            self._counted = True
            self.rt.metrics.connection_opened("submission")
            # (a callback's own context, copied into the connection's task that aiosmtpd starts here)
            logs.bind(sid=logs.new_id("smtp"))
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.rt.metrics.connection_closed("submission")
        super().connection_lost(error)

    def _create_session(self) -> Session:
        """A new session (the connection's start, and again after STARTTLS, RFC 3207 §4.2): no login."""
        self.credential_epoch = None
        return super()._create_session()

    # -- connection facts ---------------------------------------------------------------------------------

    @property
    def tls_active(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    @property
    def client_ip(self) -> str | None:
        return _peer_host(self.session.peer if self.session is not None else None)

    @property
    def transport_ok(self) -> bool:
        return plaintext_ok(self.rt.auth.policy, self.tls_active, self.client_ip)

    @property
    def auth_result(self) -> AuthResult | None:
        data = self.session.auth_data if self.session is not None else None
        return data if isinstance(data, AuthResult) else None

    def forget_login(self) -> None:
        """The credential died (revoked, replaced, expired): the connection must authenticate again."""
        assert self.session is not None
        self.session.authenticated = False
        self.session.auth_data = None
        self.credential_epoch = None

    def mechanisms(self) -> list[str]:
        """What EHLO offers: nothing before TLS off loopback (not even SCRAM, which exposes no secret: no mail
        transaction could follow anyway), else the shared SASL menu for ``smtp``."""
        if not self.transport_ok:
            return []
        return SaslServer(self.rt.auth, "smtp").mechanisms(self.tls_active, is_loopback(self.client_ip))

    async def check_auth_needed(self, caller_method: str) -> bool:
        """No mail transaction before TLS off loopback, and none before AUTH."""
        if not self.transport_ok:
            await self.push(NEED_TLS)
            return True
        if self.auth_result is None or self.credential_epoch is None:
            await self.push("530 5.7.0 Authentication required")
            return True
        return False

    # -- AUTH (RFC 4954) ----------------------------------------------------------------------------------

    @syntax("AUTH <mechanism> [initial-response]")
    async def smtp_AUTH(self, arg: str | None) -> None:  # noqa: N802
        if await self.check_helo_needed("EHLO"):
            return
        assert self.session is not None and self.envelope is not None
        if not self.session.extended_smtp:
            await self.push("500 5.5.1 Error: command 'AUTH' not recognized")
            return
        if self.session.authenticated:
            await self.push("503 5.5.1 Already authenticated")
            return
        if self.envelope.mail_from:
            await self.push("503 5.5.1 AUTH is not allowed during a mail transaction")
            return
        words = (arg or "").split()
        if not words or len(words) > 2:
            await self.push("501 5.5.4 Syntax: AUTH mechanism [initial-response]")
            return
        name = words[0].upper()
        if not self.transport_ok:
            await self.push("538 5.7.11 Encryption required for requested authentication mechanism"
                            if name in MECHANISMS else NEED_TLS)
            return
        peer = self.client_ip
        mech = SaslServer(self.rt.auth, "smtp", client_ip=peer).create(name, self.tls_active, is_loopback(peer))
        if mech is None:
            await self.push("504 5.5.4 Unrecognized authentication type")
            return
        initial: bytes | None = None
        if len(words) == 2:
            try:
                initial = decode_response(words[1].encode("ascii", "replace"), initial=True)
            except SaslDecodeError:
                await self.push("501 5.5.2 Cannot decode the initial response")
                return
        try:  # before any verification, so no credential change in between is missed
            epoch = await self.rt.store.call(self.rt.store.credentials.sequence)
        except StoreError:
            await self.push("454 4.7.0 Temporary authentication failure, try again later")
            return
        status = await self._sasl(mech, initial)
        if self.auth_result is not None:
            self.credential_epoch = epoch
        await self.push(status)

    async def _sasl(self, mech: Mechanism, initial: bytes | None) -> str:
        """Run one exchange to its end; the final reply."""
        auth = self.rt.auth
        step = await auth.run(mech.start, initial)
        while isinstance(step, Challenge):
            response = await self._response(step.data)
            if isinstance(response, str):
                mech.cancel()
                return response
            step = await auth.run(mech.step, response)
        if isinstance(step, Success):
            if step.final_data is not None:  # SCRAM's server-final: a last challenge, answered empty
                response = await self._response(step.final_data)
                if isinstance(response, str):
                    return response
                if response:
                    self._auth_failed("malformed", None)
                    return await self._failed(None)
            return self._succeeded(step.result)
        assert isinstance(step, Failure)
        if step.code != "CANCELLED":
            self._auth_failed(step.kind, step.address)
        if step.refusal is not None:  # not checked at all (throttled pair, hashing busy): no failure counted
            await auth.throttle.pause(step.refusal.retry_after)
            if step.refusal.kind == "busy":
                return "454 4.7.0 Temporary authentication failure, try again shortly"
            return BAD_AUTH
        if step.code == "CANCELLED":
            return "501 5.7.0 Authentication cancelled"
        return await self._failed(step.address)

    async def _response(self, challenge: bytes) -> bytes | str:
        """Send ``334 <base64>`` and read the client's line: its decoded bytes, or the reply that ends the
        exchange (``*`` cancels, bad base64, a line too long)."""
        await self.push(b"334 " + base64.b64encode(challenge))
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            await self._skip_line(exc.consumed)
            return "500 5.5.6 Authentication exchange line is too long"
        except asyncio.IncompleteReadError:
            raise ConnectionResetError("connection closed during AUTH") from None
        line = line.strip()
        if line == b"*":
            return "501 5.7.0 Authentication cancelled"
        try:
            return decode_response(line)
        except SaslDecodeError:
            return "501 5.5.2 Cannot decode the response"

    async def _skip_line(self, consumed: int) -> None:
        """Drop the rest of an overlong line, so none of it is read as a command."""
        await self._reader.read(consumed)
        while True:
            try:
                await self._reader.readuntil(b"\n")
                return
            except asyncio.LimitOverrunError as exc:
                await self._reader.read(exc.consumed)
            except asyncio.IncompleteReadError:
                raise ConnectionResetError("connection closed during AUTH") from None

    def _auth_failed(self, kind: str, address: str | None) -> None:
        """Count and log a refused AUTH (never its secret: the kind, the client, the name it gave)."""
        self.rt.metrics.auth_failure("submission", kind)
        logs.event(log, logging.INFO, "auth.failure", door="submission", kind=kind, peer=self.client_ip,
                   user=address)

    async def _failed(self, address: str | None) -> str:
        throttle = self.rt.auth.throttle
        await throttle.pause(throttle.failed(self.client_ip or "?", address))
        return BAD_AUTH

    def _succeeded(self, result: AuthResult) -> str:
        assert self.session is not None
        self.rt.auth.throttle.succeeded(self.client_ip or "?", result.address)
        logs.bind(account=result.account_id)
        logs.event(log, logging.INFO, "submission.login", method=result.method, peer=self.client_ip)
        self.session.authenticated = True
        self.session.auth_data = result
        return OK_AUTH

    # -- DATA: spooled, then stored ---------------------------------------------------------------------

    @syntax("DATA")
    async def smtp_DATA(self, arg: str | None) -> None:  # noqa: N802
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        spool = self.rt.spooler.open(None)
        if spool is None:  # the server's in-flight budget is spent: come back later
            await self.push(NO_ROOM)
            return
        try:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            status = await self._receive(spool)
            if status is None:
                result = self.auth_result
                assert result is not None
                status = await self.event_handler.submit(result, self.envelope, spool)
        except StorageUnavailable as exc:  # the spool's disk refused part of the body
            status = NO_ROOM if exc.full else IO_ERROR
        finally:
            spool.close()
        self._set_post_data_state()
        self.rt.metrics.delivery("submission", smtp_result(status))
        await self.push(status)

    async def _receive(self, spool: Spool) -> str | None:
        """Read the message up to the lone dot into ``spool`` (dot-unstuffed); an error reply when it must be
        refused (read to its end all the same, RFC 5321 §4.2.5), else None."""
        limit = self.data_size_limit or 0
        size = 0
        refusal: str | None = None
        continuing = False  # the line so far was longer than the reader's limit
        while True:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:
                await self._reader.read(exc.consumed)
                continuing = True
                refusal = refusal or "500 5.5.2 Line too long"
                continue
            except asyncio.IncompleteReadError:
                raise ConnectionResetError("connection closed during DATA") from None
            if continuing:
                continuing = False
                continue
            if line == b".\r\n":
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line)
            if refusal is not None:
                continue
            if limit and size > limit:
                refusal = "552 5.3.4 Message too big for system"
            elif not spool.reserve_more(len(line)):
                refusal = NO_ROOM
            else:
                spool.write(line)
                if spool.buffered >= FLUSH_BYTES:
                    await spool.drain()
                    self._reset_timeout()  # a big message may take longer than one command's timeout
        if refusal is None:
            await spool.finish()
        return refusal


async def start_submission(rt: Runtime) -> None:
    """Open the submission listeners ``[submission]`` names (``submission``: STARTTLS, ``submissions``:
    implicit TLS); a server starter, like LMTP's."""
    from janusmail.imap import tls  # the certificate IMAP uses (configured, or self-signed in the data dir)

    cfg = rt.config.submission
    if not cfg.listen and not cfg.listen_tls:
        return
    ctx = tls.server_context(rt.config)
    handler = SubmissionHandler(rt)
    loop = asyncio.get_running_loop()
    servers: list[asyncio.base_events.Server] = []

    def factory(implicit: bool) -> Any:
        return lambda: SubmissionServer(rt, handler, implicit_tls=implicit, tls_context=ctx)

    try:
        if cfg.listen:
            server = await loop.create_server(factory(False), **rt.listen_args("submission", cfg.listen))
            servers.append(server)
            rt.bound["submission"] = server.sockets[0].getsockname()[:2]
        if cfg.listen_tls:
            if ctx is None:
                log.warning("no TLS certificate configured; not listening for SMTP submission on %s", cfg.listen_tls)
            else:
                server = await loop.create_server(factory(True), **rt.listen_args("submissions", cfg.listen_tls),
                                                  ssl=ctx, ssl_handshake_timeout=HANDSHAKE_TIMEOUT)
                servers.append(server)
                rt.bound["submissions"] = server.sockets[0].getsockname()[:2]
    except BaseException:
        for server in servers:
            server.close()
        raise

    async def close() -> None:
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)

    rt.closers.append(close)
