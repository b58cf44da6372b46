"""One IMAP connection as a state machine: bytes in (through the codec), bytes out (through ``write``).

The asyncio adapter (:mod:`janusmail.imap.server`) only moves bytes: it calls :meth:`ImapSession.feed` with
what the client sent and hands the session a sink for its output, so the same object runs under a real
socket or a unit test's list. The session owns the protocol rules that cut across commands:

* states (``nonauth`` -> ``auth`` -> ``selected`` -> ``logout``) and dispatch through the command registry
  (:mod:`janusmail.imap.commands`), with the state check done once here;
* the capability list (registered handlers + extension flags + the per-login JMAPACCESS predicate);
* AUTHENTICATE's continuation exchange, IDLE, STARTTLS (the adapter does the handshake when
  :attr:`starttls_pending` is set);
* after every command in selected state, the catch-up with changes made elsewhere
  (:meth:`SelectedMailbox.sync`), with EXPUNGE held back after FETCH/STORE/SEARCH (RFC 9051 §7.5.1);
* mailbox names: modified UTF-7 unless the client enabled UTF-8 (IMAP4rev2 or UTF8=ACCEPT);
* sessions end with their credential: before every command after login (and while IDLE, on the store's
  ``Credential`` events and at a token's expiry) :func:`janusmail.auth.revocation.check` asks whether the
  password, app password or token this session logged in with was replaced, revoked or expired; if so the
  client gets ``* BYE [EXPIRED] <reason>`` and the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import unicodedata
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from janusmail.auth import revocation
from janusmail.auth.policy import is_loopback
from janusmail.auth.sasl import Challenge, Failure, SaslServer, Success
from janusmail.imap import commands, search_updates
from janusmail.imap import notify as notifications
from janusmail.imap.codec import (
    NO_ARGS,
    Command,
    CommandParser,
    ContinuationRequest,
    LargeLiteral,
    Line,
    ParseError,
    decode_sasl_response,
    mutf7,
    responses,
    serializer,
)
from janusmail.imap.commands.base import Result
from janusmail.imap.literals import LiteralSpools
from janusmail.imap.selected import BadSequence, MailboxGone, SelectedMailbox
from janusmail.imap.store_access import CredentialExpired, SessionStore
from janusmail.observability import logs
from janusmail.store import model as store_model
from janusmail.store.credentials import is_credential_event

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.auth.authenticator import AuthResult
    from janusmail.auth.sasl import Mechanism
    from janusmail.auth.throttle import LoginRefused
    from janusmail.runtime import Runtime

log = logging.getLogger("janusmail.imap")

__all__ = ["BadMailboxName", "ImapSession", "NO_EXPUNGE_COMMANDS"]

DELIMITER = "/"
#: Commands during which EXPUNGE must not be sent (RFC 9051 §7.5.1): sequence numbers must stay put.
NO_EXPUNGE_COMMANDS = frozenset({"FETCH", "STORE", "SEARCH", "COPY", "MOVE", "SORT", "THREAD"})
#: Commands that poll the store even without a notifier wake-up (clients use them to ask "anything new?").
POLL_COMMANDS = frozenset({"NOOP", "CHECK", "IDLE"})
#: Commands whose credential check runs on its own before the handler (not on the command's first store call:
#: IDLE's store calls run in a task of their own, after the continuation has been sent).
EAGER_CHECK_COMMANDS = frozenset({"IDLE"})
#: Capabilities every session has, whatever is registered.
CORE_CAPABILITIES = ("IMAP4rev2", "IMAP4rev1")
EXTENSION_CAPABILITIES = (
    "LITERAL+", "SASL-IR", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE",
    "STATUS=SIZE", "UTF8=ACCEPT", "OBJECTID", "CONDSTORE", "QRESYNC",
    "SAVEDATE",  # RFC 8514: FETCH SAVEDATE, SEARCH SAVED* (issue 11)
)  # fmt: skip
#: A registered command name implies these capabilities.
COMMAND_CAPABILITIES: dict[str, tuple[str, ...]] = {
    "ENABLE": ("ENABLE",),
    "IDLE": ("IDLE",),
    "NAMESPACE": ("NAMESPACE",),
    "UNSELECT": ("UNSELECT",),
    "UID EXPUNGE": ("UIDPLUS",),
    "MOVE": ("MOVE",),
    "ID": ("ID",),
    "SEARCH": ("ESEARCH", "SEARCHRES"),
}
PREAUTH_MAX_LITERAL = 16 * 1024
MAX_CONSECUTIVE_ERRORS = 20

STORE_ERROR_CODES: dict[type, str] = {
    store_model.NotFound: "NONEXISTENT",
    store_model.AlreadyExists: "ALREADYEXISTS",
    store_model.InvalidName: "CANNOT",
    store_model.RoleTaken: "USEATTR",
    store_model.HasChildren: "HASCHILDREN",
    store_model.HasEmails: "CANNOT",
    store_model.Forbidden: "NOPERM",
    store_model.TooManyKeywords: "LIMIT",
    store_model.InvalidKeyword: "CLIENTBUG",
    store_model.TooLarge: "TOOBIG",
    store_model.StorageUnavailable: "UNAVAILABLE",
    store_model.OverQuota: "OVERQUOTA",  # RFC 9208: APPEND, COPY (janusmail/store/quotas.py)
}


class BadMailboxName(ValueError):
    """A mailbox name the client sent that cannot be a name (broken modified UTF-7, empty component)."""


class ImapSession:
    """Per-connection state; see the module docstring. Handlers use the attributes listed in
    ``notes/IMAP_CONTRACT.md``: store, rt, config, account_id, auth_result, state, utf8, rev2, condstore,
    qresync, selected, write(), mailbox_name(), parse_mailbox()."""

    # Slots, not a per-instance dict: a server holds one session per open connection, most of them idle (a
    # thousand IDLE sessions are the scale aim), and a dict of ~50 attributes costs about 1.5 KB per session.
    __slots__ = (
        "rt", "store", "config", "peer", "peer_loopback", "local", "tls_active", "tls_context", "limits", "parser",
        "literals", "state", "account_id", "auth_result", "utf8", "rev2", "condstore", "qresync", "selected",
        "client_id", "notify", "starttls_pending", "compress_pending", "compressed", "uncompress_pending",
        "_buffer", "_out", "_drain", "_sub", "_sasl", "_sasl_final", "_sasl_success", "_idle_tag", "_idle_task",
        "_errors", "_account_slot", "_hangup", "_login_epoch", "_credential_epoch", "_check_due",
        "_credential_dead", "_credential_signal", "_checked_command", "_held", "clock", "_started",
    )

    def __init__(
        self,
        rt: Runtime,
        *,
        peer: str | None = None,
        tls_active: bool = False,
        tls_context: Any = None,
        out: Callable[[bytes], None] | None = None,
        drain: Callable[[], Awaitable[None]] | None = None,
        limits: Any = None,
        hangup: Callable[[], None] | None = None,
        local: tuple[str, int] | None = None,
    ) -> None:
        commands.load_all()
        self.rt = rt
        #: The Store for handlers; its ``call`` runs the command's credential check first (imap.store_access).
        self.store: Any = SessionStore(rt.store, self)
        self.config = rt.config.imap
        self.peer = peer
        self.peer_loopback = is_loopback(peer)
        #: The address and port the client connected to (this server, as it named it: CATENATE URLs' host part)
        self.local = local
        self.tls_active = tls_active
        #: SSLContext for STARTTLS; None means STARTTLS is not offered.
        self.tls_context = tls_context
        self.limits = limits
        self.parser = CommandParser(max_literal=PREAUTH_MAX_LITERAL)
        #: Big APPEND literals go to spool files, never into the parser's memory (janusmail.imap.literals).
        self.literals = LiteralSpools(self)
        self.state = "nonauth"
        self.account_id: str | None = None
        self.auth_result: AuthResult | None = None
        self.utf8 = False
        self.rev2 = False
        self.condstore = False
        self.qresync = False
        self.selected: SelectedMailbox | None = None
        self.client_id: dict[str, str | None] | None = None
        #: NOTIFY SET in force (janusmail/imap/notify.py), None without one.
        self.notify: notifications.NotifyState | None = None
        #: The adapter must run the TLS handshake now, then call :meth:`tls_started`.
        self.starttls_pending = False
        #: COMPRESS=DEFLATE answered OK: the adapter must compress both ways from here on, then call
        #: :meth:`compression_started` (RFC 4978; the transform lives in the adapter, janusmail.imap.server).
        self.compress_pending = False
        #: Compression is on (a second COMPRESS gets NO [COMPRESSIONACTIVE]).
        self.compressed = False
        #: UNAUTHENTICATE ended the COMPRESS layer (RFC 8437 §4.1): after its tagged OK, which still goes out
        #: compressed, the adapter stops compressing both ways, then calls :meth:`compression_ended`.
        self.uncompress_pending = False
        self._buffer: list[bytes] = []
        self._out = out if out is not None else self._buffer.append
        self._drain = drain
        self._sub: Any = None
        self._sasl: tuple[str, Mechanism] | None = None
        self._sasl_final = False
        self._sasl_success: AuthResult | None = None
        self._idle_tag: str | None = None
        self._idle_task: asyncio.Task[None] | None = None
        self._errors = 0
        self._account_slot = False
        #: Closes the transport (the adapter's): an IDLE session told BYE is not reading commands any more.
        self._hangup = hangup
        #: Store-wide credential epoch read before the login's credentials were verified (store.credentials).
        self._login_epoch: int | None = None
        #: What the session's credential is checked against before each command (None: not logged in).
        self._credential_epoch: int | None = None
        #: The running command's credential check has not run yet (it rides on its first store call).
        self._check_due = False
        #: Why the credential died, once a check said so (it never comes back to life).
        self._credential_dead: str | None = None
        #: The store's credential signal as read before the last good check (None: none yet, or no signal):
        #: while the signal still shows it, no credential changed anywhere and the check is skipped
        #: (janusmail.store.credential_signal).
        self._credential_signal: int | None = None
        #: The running command is one the credential check applies to (after login, not LOGOUT).
        self._checked_command = False
        #: Output of the running command held back until its credential check passed (None: not holding):
        #: a dead credential's client sees nothing of the command, only ``* BYE [EXPIRED]``.
        self._held: list[bytes] | None = None
        self.clock: Callable[[], float] = time.time
        #: When the running command arrived (perf_counter), for its latency; None while a command holds a
        #: conversation with the client (IDLE, AUTHENTICATE's challenges), whose time is the client's.
        self._started: float | None = None

    # -- output ------------------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue protocol output (complete lines, CRLF-terminated)."""
        if self._held is not None:
            self._held.append(data)
        else:
            self._out(data)

    def _release_held(self) -> None:
        """The credential check passed: send what the command wrote meanwhile, and stop holding."""
        held, self._held = self._held, None
        for data in held or ():
            self._out(data)

    def enable_condstore(self) -> None:
        """A CONDSTORE enabling command ran (RFC 7162 §3.1: FETCH MODSEQ/CHANGEDSINCE, SEARCH MODSEQ, STORE
        UNCHANGEDSINCE, STATUS HIGHESTMODSEQ). The first one with a mailbox selected must be followed by
        ``* OK [HIGHESTMODSEQ n]``: the client has not been told the mailbox's mod-sequence yet."""
        if self.condstore:
            return
        self.condstore = True
        if self.selected is not None:
            code = serializer.highestmodseq_code(self.selected.known_modseq)
            self.write(serializer.untagged_status("OK", code, "Highest"))

    async def flush(self) -> None:
        """Wait until the transport has taken the queued output (back-pressure for big FETCH answers)."""
        if self._drain is not None:
            await self._drain()

    def take_output(self) -> bytes:
        """Everything written so far when no sink was given (unit tests)."""
        data = b"".join(self._buffer)
        self._buffer.clear()
        return data

    @property
    def timeout(self) -> float:
        """Seconds of client silence before autologout: short before login, long after (and in IDLE)."""
        return float(self.config.login_timeout if self.state == "nonauth" else self.config.idle_timeout)

    @property
    def closed(self) -> bool:
        return self.state == "logout"

    # -- start and stop ------------------------------------------------------------------------------------

    def greeting(self) -> None:
        caps = self.capabilities_preauth()
        self.write(serializer.untagged_status("OK", serializer.capability_code(caps), "Janus Mail IMAP ready"))

    async def close(self) -> None:
        """Release everything the connection holds (called by the adapter on any disconnect)."""
        if self._idle_task is not None:
            self._idle_task.cancel()
            with contextlib.suppress(BaseException):
                await self._idle_task
            self._idle_task = None
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        self.literals.release()
        if self._account_slot and self.limits is not None and self.account_id:
            self.limits.release_account(self.account_id)
            self._account_slot = False
        self.selected = None
        self.state = "logout"

    def autologout(self) -> None:
        self.write(serializer.untagged_status("BYE", None, "Autologout; idle for too long"))
        self.state = "logout"

    def tls_started(self) -> None:
        """The adapter finished the STARTTLS handshake: read commands again (RFC 9051 §6.2.1)."""
        self.starttls_pending = False
        self.tls_active = True
        self.parser.resume()

    def compression_started(self) -> None:
        """The adapter compresses both ways now: read (decompressed) commands again (RFC 4978 §3)."""
        self.compress_pending = False
        self.compressed = True
        self.parser.resume()

    def compression_ended(self) -> None:
        """The adapter stopped compressing (after UNAUTHENTICATE): read plain commands again."""
        self.uncompress_pending = False
        self.compressed = False
        self.parser.resume()

    @property
    def layer_pending(self) -> bool:
        """The adapter must change the connection's layers (TLS, compression) before more input is read."""
        return self.starttls_pending or self.compress_pending or self.uncompress_pending

    @property
    def idling(self) -> bool:
        """In IDLE: the adapter may drop per-connection buffers it can rebuild (the deflate state)."""
        return self._idle_tag is not None

    # -- capabilities ----------------------------------------------------------------------------------------

    def plaintext_ok(self) -> bool:
        """May secrets travel on this connection as it is (LOGIN, AUTH=PLAIN)?"""
        return self.rt.auth.policy.plaintext_allowed("imap", self.tls_active, self.peer_loopback)

    def sasl_mechanisms(self) -> list[str]:
        return SaslServer(self.rt.auth, "imap").mechanisms(self.tls_active, self.peer_loopback)

    def _common_capabilities(self) -> list[str]:
        caps: dict[str, None] = {}
        for name, implied in COMMAND_CAPABILITIES.items():
            if commands.lookup(name) is not None:
                for c in implied:
                    caps.setdefault(c, None)
        for c in EXTENSION_CAPABILITIES:
            caps.setdefault(c, None)
        for c in commands.registered_capabilities():
            caps.setdefault(c, None)
        caps.setdefault(f"APPENDLIMIT={int(self.config.max_append_size)}", None)
        return list(caps)

    def capabilities_preauth(self) -> list[str]:
        caps = list(CORE_CAPABILITIES)
        if not self.tls_active and self.tls_context is not None:
            caps.append("STARTTLS")
        if not self.plaintext_ok():
            caps.append("LOGINDISABLED")
        caps.extend(f"AUTH={m}" for m in self.sasl_mechanisms())
        caps.extend(self._common_capabilities())
        return caps

    async def jmap_access(self) -> bool:
        """RFC 9698: would JMAP accept the credentials this session logged in with? Re-asked every time."""
        if self.auth_result is None or self.rt.config.session_url is None:
            return False  # no JMAP server known to point at (JMAP off here, no public URL): nothing to offer
        if await self.credential_problem() is not None:
            return False  # the credential died: the next command ends the session; until then, no promises
        try:
            return bool(await asyncio.to_thread(self.rt.auth.jmap_access_ok, self.auth_result))
        except Exception:  # a broken predicate must not break CAPABILITY; silence is the safe answer
            log.exception("jmap_access_ok failed")
            return False

    async def capabilities(self, jmap: bool | None = None) -> list[str]:
        """The capability list for the current state (JMAPACCESS only when authenticated and the predicate
        holds; ``jmap`` passes an already computed predicate)."""
        if self.state == "nonauth":
            return self.capabilities_preauth()
        caps = [*CORE_CAPABILITIES, *self._common_capabilities()]
        if jmap is None:
            jmap = await self.jmap_access()
        if jmap:
            caps.append("JMAPACCESS")
        return caps

    # -- mailbox names ------------------------------------------------------------------------------------

    def mailbox_name(self, path: list[str]) -> str:
        """The IMAP name (Unicode) for path components; the INBOX component is spelled ``INBOX``. Render it
        for the wire with ``serializer.mailbox_name(name, s.utf8)`` (modified UTF-7 for older clients)."""
        if path and path[0].upper() == "INBOX":
            path = ["INBOX", *path[1:]]
        return DELIMITER.join(path)

    def decode_name(self, name: str) -> str:
        """Wire name -> Unicode IMAP name (modified UTF-7 decoded unless UTF-8 is on); INBOX canonical."""
        if not self.utf8:
            try:
                name = mutf7.decode(name)
            except ValueError as exc:
                raise BadMailboxName(f"invalid modified UTF-7 mailbox name: {exc}") from None
        name = unicodedata.normalize("NFC", name)
        head, sep, rest = name.partition(DELIMITER)
        if head.upper() == "INBOX":
            name = "INBOX" + sep + rest
        return name

    def parse_mailbox(self, name: str) -> list[str]:
        """Wire name -> path components. Raises :class:`BadMailboxName` (the session answers NO [NONEXISTENT])."""
        text = self.decode_name(name)
        parts = text.split(DELIMITER)
        if not text or any(p == "" for p in parts):
            raise BadMailboxName("empty mailbox name component")
        return parts

    # -- input ------------------------------------------------------------------------------------------------

    async def feed(self, data: bytes) -> None:
        """Process bytes from the client: runs every complete command (in order) before returning."""
        events = self.parser.feed(data)
        while events:
            for ev in events:
                if self.state == "logout" or self.layer_pending:
                    return
                await self._event(ev)
            if self.state == "logout" or self.layer_pending or self.parser.paused:
                return
            events = self.parser.feed(b"")

    async def _event(self, ev: object) -> None:
        if isinstance(ev, Command):
            await self._command(ev)
        elif isinstance(ev, Line):
            await self._line(ev.data)
        elif isinstance(ev, ContinuationRequest):
            self._continuation(ev)
        elif isinstance(ev, ParseError):
            await self._parse_error(ev)
        elif isinstance(ev, LargeLiteral):
            await self.literals.request(ev)
        if isinstance(ev, Command | ParseError):
            self.literals.release()  # that command is over: its spooled literals are not needed any more
        self._after_event()

    def _after_event(self) -> None:
        """Un-pause the parser after a barrier command or a raw line, unless a sub-conversation goes on."""
        if self.parser.paused and not self.layer_pending and self.state != "logout":
            if self._sasl is not None or self._idle_tag is not None:
                self.parser.expect_line()
            else:
                self.parser.resume()

    def _continuation(self, ev: ContinuationRequest) -> None:
        if self.state == "nonauth" and ev.command not in (None, "LOGIN", "AUTHENTICATE"):
            self.write(serializer.tagged(ev.tag or "*", "BAD", None, "Log in first"))
            self.parser.reject_literal()
            return
        if ev.command in ("APPEND", "REPLACE", "UID REPLACE") and ev.size > self.config.max_append_size:
            self.write(serializer.tagged(ev.tag or "*", "NO", "TOOBIG", "Message exceeds APPENDLIMIT"))
            self.parser.reject_literal()
            return
        self.write(serializer.continuation(ev.text))

    async def _parse_error(self, ev: ParseError) -> None:
        if self._sasl is not None:
            tag, _ = self._sasl
            self._sasl = None
            self.write(serializer.tagged(tag, "BAD", ev.code, ev.text))
            return
        if self._idle_tag is not None:
            await self._end_idle(ok=False, text=ev.text)
            return
        if ev.tag is None:
            self.write(serializer.untagged_status("BAD", ev.code, ev.text))
        else:
            self._started = None
            self._observe(ev.command or "UNKNOWN", ev.status)
            self.write(serializer.tagged(ev.tag, ev.status, ev.code, ev.text))
        self._count_error(True)

    def _observe(self, name: str, status: str) -> None:
        """The tagged response of command ``name`` is being written: count it (janusmail.observability)."""
        started, self._started = self._started, None
        seconds = None if started is None else time.perf_counter() - started
        if commands.lookup(name) is None:
            name = "UNKNOWN"  # a client's made-up name never becomes a metric label
        self.rt.metrics.imap_command(name, status, seconds)
        if log.isEnabledFor(logging.DEBUG):
            logs.event(log, logging.DEBUG, "imap.command", command=name, result=status,
                       ms=None if seconds is None else round(seconds * 1000, 3))

    def _count_error(self, bad: bool) -> None:
        self._errors = self._errors + 1 if bad else 0
        if self._errors >= MAX_CONSECUTIVE_ERRORS:
            self.write(serializer.untagged_status("BYE", None, "Too many invalid commands"))
            self.state = "logout"

    # -- commands ---------------------------------------------------------------------------------------------

    async def _command(self, cmd: Command) -> None:
        self._started = time.perf_counter()
        self._absorb_events()
        self._checked_command = self._check_due = False
        self._release_held()
        if self.state in ("auth", "selected") and cmd.name != "LOGOUT":
            if cmd.name in EAGER_CHECK_COMMANDS:
                reason = await self.credential_problem()
                if reason is not None:
                    self.end_for_credential(reason)
                    return
            else:
                self._check_due = True  # run by the command's first store call, or by _finish
                self._checked_command = True
                self._held = []
        elif self.state == "nonauth" and cmd.name in ("LOGIN", "AUTHENTICATE"):
            self._login_epoch = await self._credential_sequence()  # before any verification: no change missed
        h = commands.lookup(cmd.name)
        if h is None:
            await self._finish(cmd, Result.bad(f"Unknown command {cmd.name}"), sync=False)
            return
        if self.state not in h.states:
            text = "Log in first" if self.state == "nonauth" else f"{cmd.name} is not valid in this state"
            if cmd.name in ("LOGIN", "AUTHENTICATE") and self.state != "nonauth":
                text = "Already authenticated"
            await self._finish(cmd, Result.bad(text), sync=False)
            return
        before = self.selected
        try:
            result = await h.fn(self, cmd)
        except BadSequence as exc:
            result = Result.bad(str(exc) or "Invalid message sequence number")
        except BadMailboxName as exc:
            # A name that cannot be decoded (broken modified UTF-7, empty component) is well-formed syntax
            # naming no mailbox: NO, not BAD (issue 11 #8). CREATE/RENAME decide for themselves (NO [CANNOT]).
            result = Result.no(f"No such mailbox ({exc})", "NONEXISTENT")
        except MailboxGone:
            await self._mailbox_gone()
            return
        except CredentialExpired as exc:
            self.end_for_credential(exc.reason)
            return
        except store_model.StoreError as exc:
            code = STORE_ERROR_CODES.get(type(exc), "CANNOT")
            result = Result.no(_store_error_text(exc), code)
        except Exception:
            log.exception("IMAP %s failed", cmd.name)
            result = Result.no("Internal server error", "SERVERBUG")
        if result is None:  # the handler took over the conversation (AUTHENTICATE, IDLE, STARTTLS)
            self._check_due = False  # (only IDLE does that after login, and it was checked before)
            if self._sasl is None and self._idle_tag is None:
                self._observe(cmd.name, "OK")  # it answered OK itself (STARTTLS, COMPRESS)
            self._started = None  # (the rest is the client's time)
            return
        await self._finish(cmd, result, sync=self.selected is not None and self.selected is before)

    async def _finish(self, cmd: Command, result: Result, *, sync: bool) -> None:
        if sync and self.state == "selected" and self.selected is not None:
            self._absorb_events()  # includes the command's own writes (APPEND/COPY into this mailbox)
            uid_form = cmd.name.startswith("UID ")
            expunges = uid_form or cmd.name not in NO_EXPUNGE_COMMANDS
            if self.notify is not None and self.notify.spec.immediate_expunge:
                expunges = True  # RFC 5465 §5.3: the client asked for expunges as they happen (and uses UIDs)
            try:
                await self._sync_selected(expunges=expunges, force=cmd.name in POLL_COMMANDS)
            except MailboxGone:
                await self._mailbox_gone()
                return
            except CredentialExpired as exc:
                self.end_for_credential(exc.reason)
                return
        if self.notify is not None and self.state in ("auth", "selected"):
            try:
                await notifications.flush(self)
            except CredentialExpired as exc:
                self.end_for_credential(exc.reason)
                return
        checked, self._checked_command = self._checked_command, False
        if checked and (self._check_due or self._credential_dead) and self.state != "logout":
            # the command never called the store (check now), or a check it made said the credential is dead
            reason = await self.credential_problem()
            if reason is not None:
                self.end_for_credential(reason)
                return
        self._release_held()
        if self.state == "logout" and cmd.name != "LOGOUT":
            return
        self._observe(cmd.name, result.status)
        self.write(serializer.tagged(cmd.tag, result.status, result.code, result.text))
        self._count_error(result.status == "BAD")

    async def _mailbox_gone(self) -> None:
        self._release_held()  # (a store call said so: the command's credential check has passed)
        self.write(serializer.untagged_status("BYE", None, "The selected mailbox was deleted"))
        self.selected = None
        self.state = "logout"

    def _absorb_events(self) -> None:
        """Turn pending notifier events into the selected mailbox's dirty flag (no queries here)."""
        sub = self._sub
        if sub is None:
            return
        events = sub.drain()
        if self.notify is not None and events:
            self.notify.absorb(events)
        sel = self.selected
        if sel is None or not events:
            return
        if _concerns(sel, events):
            sel.dirty = True

    # -- the credential's life ---------------------------------------------------------------------------

    async def _credential_sequence(self) -> int | None:
        try:
            return await self.rt.store.call(self.rt.store.credentials.sequence)
        except Exception:  # noqa: BLE001 - the login then fails with UNAVAILABLE instead of crashing
            log.warning("could not read the credential epoch", exc_info=True)
            return None

    def _grace(self) -> float:
        tokens = self.rt.auth.tokens
        result = self.auth_result
        return float(tokens.grace(result.issuer)) if tokens is not None and result is not None else 0.0

    async def credential_problem(self) -> str | None:
        """Why this session's credential is no longer good (revoked, replaced, expired, account gone), or
        ``None``. One primary-key read (see :mod:`janusmail.auth.revocation`) in a thread hop of its own (a
        command's check normally rides on its first store call: :mod:`janusmail.imap.store_access`); a store
        that cannot answer is not taken as a revocation (the command itself will meet the same trouble and say
        so)."""
        self._check_due = False
        result, epoch = self.auth_result, self._credential_epoch
        if self._credential_dead is not None:
            return self._credential_dead
        if result is None or epoch is None:
            self._release_held()
            return None
        skip, signal = self._unchanged_signal()
        if skip:
            self._release_held()
            return None
        store = self.rt.store
        try:
            verdict = await store.read_inline(revocation.check, store, result, epoch, now=self.clock(), grace=self._grace())
        except Exception:  # noqa: BLE001
            log.warning("credential check failed", exc_info=True)
            self.credential_checked(None)
            return None
        self.credential_checked(verdict, signal)
        return verdict.reason

    def _unchanged_signal(self) -> tuple[bool, int | None]:
        """(may the check be skipped, the store's credential signal now). Skipped when the signal shows what it
        showed before this session's last good check (no credential changed anywhere since) and the credential
        has not expired by the clock; otherwise the value (None: no signal) is remembered once the check that
        follows finds the credential good."""
        now = self.rt.store.credential_signal.read()
        if now is None or now != self._credential_signal:
            return False, now
        end = self.credential_deadline()
        return end is None or self.clock() < end, now

    def check_is_due(self) -> bool:
        """Has the running command's credential check not run yet?"""
        return self._check_due and self.auth_result is not None and self._credential_epoch is not None

    def take_due_check(self) -> tuple[Any, ...] | None:
        """The arguments of the running command's credential check if it has not run yet (and mark it run):
        :class:`~janusmail.imap.store_access.SessionStore` runs it with the command's first store call."""
        if not self._check_due:
            return None
        self._check_due = False
        if self.auth_result is None or self._credential_epoch is None:
            return None
        skip, signal = self._unchanged_signal()
        if skip:  # nothing changed since the last good check: the command goes on without one
            self._release_held()
            return None
        return (self.rt.store, self.auth_result, self._credential_epoch, self.clock(), self._grace(), signal)

    def credential_checked(self, verdict: revocation.Verdict | None, signal: int | None = None) -> None:
        """A check gave this verdict (None: the store could not answer, which is no revocation): compare with
        its baseline next time; a reason is final. A good verdict lets the command's held output go, and
        ``signal`` (the credential signal read before the check) lets the next commands skip theirs while it
        stays."""
        if verdict is None:
            self._release_held()
            return
        self._credential_epoch = verdict.baseline
        if verdict.reason is not None:
            self._credential_dead = verdict.reason
        else:
            if signal is not None:
                self._credential_signal = signal
            self._release_held()

    def credential_deadline(self) -> float | None:
        """Clock time at which the credential expires by itself (bearer tokens), else ``None``."""
        if self.auth_result is None:
            return None
        return revocation.deadline(self.auth_result, self._grace())

    def end_for_credential(self, reason: str) -> None:
        """``* BYE [EXPIRED] reason`` (RFC 5530: access is no longer permitted with that credential) and close."""
        log.info("ending IMAP session of %s: %s", self.account_id, reason)
        self.rt.metrics.session_revoked("imap", reason)
        self._check_due = False
        self._held = None  # what the command wrote before its check failed is never sent
        self.write(serializer.untagged_status("BYE", "EXPIRED", reason))
        self.selected = None
        self.state = "logout"

    # -- authentication ---------------------------------------------------------------------------------

    def _auth_failed(self, kind: str, address: str | None) -> None:
        """Count and log a refused login: its kind, the client, the name it gave; never the secret."""
        self.rt.metrics.auth_failure("imap", kind)
        logs.event(log, logging.INFO, "auth.failure", door="imap", kind=kind, peer=self.peer, user=address)

    async def login_failed(self, address: str | None, code: str = "AUTHENTICATIONFAILED",
                           text: str = "Authentication failed", *, kind: str = "bad_credentials") -> Result:
        """Wait out the failed-login delay (the throttle's verdict), then NO."""
        self._auth_failed(kind, address)
        throttle = self.rt.auth.throttle
        delay = throttle.failed(self.peer or "?", address)
        if delay > 0:
            await self.flush()
            await throttle.pause(delay)
        return Result.no(text, code)

    async def login_refused(self, exc: LoginRefused) -> Result:
        """The authenticator did not check the attempt (janusmail.auth.throttle): no failure is counted. A
        throttled pair hears NO [AUTHENTICATIONFAILED] when its penalty is over; a full hashing queue
        NO [UNAVAILABLE] (the client retries instead of asking for a password) after a short pause, so a flood
        cannot turn refusals into a busy loop. Holding the answer costs us nothing (no thread, no hashing)."""
        self._auth_failed(exc.kind, None)
        await self.flush()
        await self.rt.auth.throttle.pause(exc.retry_after)
        return Result.no(exc.reason, exc.code)

    async def _auth_call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A blocking login step, on the authenticator's own threads (Authenticator.run)."""
        return await self.rt.auth.run(fn, *args)

    async def login_succeeded(self, result: AuthResult) -> Result:
        """Enter authenticated state; the tagged OK carries [CAPABILITY ...] (and JMAPACCESS when it holds)."""
        # The baseline must have been read BEFORE the credentials were verified: read now, it would miss a change
        # committed in between (the credential could already be dead and the session would never learn it).
        # Without one we could not tell when this credential dies: no session.
        epoch, self._login_epoch = self._login_epoch, None
        if epoch is None:
            return Result.no("The account store is unavailable; try again later", "UNAVAILABLE")
        if self.limits is not None and not self.limits.acquire_account(result.account_id):
            return Result.no("Too many connections for this account", "LIMIT")
        self._account_slot = self.limits is not None
        self.rt.auth.throttle.succeeded(self.peer or "?", result.address)
        self.account_id = result.account_id
        self.auth_result = result
        self._credential_epoch = epoch
        self._credential_signal = None  # the first command after login asks the store
        self.state = "auth"
        logs.bind(account=result.account_id)  # every later line of this connection names the account
        logs.event(log, logging.INFO, "imap.login", method=result.method, peer=self.peer)
        self.parser.max_literal = max(int(self.config.max_append_size), PREAUTH_MAX_LITERAL)
        self.parser.max_command = max(4 * self.parser.max_literal, self.parser.max_line)
        try:
            self._sub = self.store.notifier.subscribe(result.account_id)
        except RuntimeError:  # no running loop (pure unit tests)
            self._sub = None
        jmap = await self.jmap_access()
        caps = await self.capabilities(jmap)
        if self.config.jmapaccess_draft_response_code:
            if jmap:
                self.write(responses.capability_response(caps))
                url = self.rt.config.session_url
                return Result.ok("Logged in", "JMAPACCESS " + serializer.quoted(url).decode("utf-8"))
            reason = await asyncio.to_thread(_jmap_denial_reason, self.rt, result)
            self.write(serializer.untagged_status(
                "OK", "DEBUGGING " + serializer.quoted(reason).decode("utf-8"), "JMAP access is not available"
            ))
        return Result.ok("Logged in", serializer.capability_code(caps))

    def unauthenticate(self) -> None:
        """UNAUTHENTICATE (RFC 8437): forget the login as if the connection were new, except for what belongs
        to the connection (TLS, ID): no selected mailbox, no credential (nor its checks), no change subscription,
        the account's connection slot given back, ENABLEd extensions off, pre-login literal limits, and the
        COMPRESS layer ends after the tagged OK (RFC 8437 §4.1)."""
        self.deselect()
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self._account_slot and self.limits is not None and self.account_id:
            self.limits.release_account(self.account_id)
        self._account_slot = False
        self.account_id = None
        self.auth_result = None
        logs.bind(account=None)
        self.notify = None  # NOTIFY watches the account's mailboxes: it ends with the login
        self._credential_epoch = self._login_epoch = None
        self._credential_dead = self._credential_signal = None
        self._check_due = False
        self.utf8 = self.rev2 = self.condstore = self.qresync = False
        self.parser.max_literal = PREAUTH_MAX_LITERAL
        self.parser.max_command = max(4 * PREAUTH_MAX_LITERAL, self.parser.max_line)
        self.state = "nonauth"
        if self.compressed:  # RFC 8437 §4.1: COMPRESS ends with the tagged OK; TLS stays
            self.uncompress_pending = True

    async def start_sasl(self, cmd: Command, mech: Mechanism, initial: bytes | None) -> Result | None:
        """Run the first SASL step; a challenge continues in :meth:`_line` with the client's responses."""
        step = await self._auth_call(mech.start, initial)
        return await self._sasl_step(cmd.tag, mech, step)

    async def _sasl_step(self, tag: str, mech: Mechanism, step: object) -> Result | None:
        if isinstance(step, Challenge):
            self._sasl = (tag, mech)
            self.write(serializer.continuation_data(step.data))
            return None
        self._sasl = None
        if isinstance(step, Success):
            if step.final_data is not None and not self._sasl_final:
                # RFC 9051 §6.2.2: success data goes in a last challenge, answered by an empty response.
                self._sasl = (tag, mech)
                self._sasl_final = True
                self._sasl_success = step.result
                self.write(serializer.continuation_data(step.final_data))
                return None
            return await self.login_succeeded(step.result)
        assert isinstance(step, Failure)
        if step.refusal is not None:
            return await self.login_refused(step.refusal)
        if step.code == "CANCELLED":
            return Result.bad("Authentication cancelled", None)
        code = step.code if step.code in ("AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED") else None
        if step.code == "PROTOCOL":
            return await self.login_failed(step.address, "AUTHENTICATIONFAILED", step.reason, kind=step.kind)
        return await self.login_failed(step.address, code or "AUTHENTICATIONFAILED", kind=step.kind)

    async def _line(self, data: bytes) -> None:
        if self._idle_tag is not None:
            if data.strip().upper() == b"DONE":
                await self._end_idle(ok=True)
            else:
                await self._end_idle(ok=False, text="Expected DONE")
            return
        if self._sasl is None:  # pragma: no cover - the parser only emits lines when asked
            return
        tag, mech = self._sasl
        if self._sasl_final:
            self._sasl = None
            self._sasl_final = False
            if data.strip() in (b"", b"="):
                assert self._sasl_success is not None
                result = await self.login_succeeded(self._sasl_success)
            elif data.strip() == b"*":
                result = Result.bad("Authentication cancelled")
            else:
                result = await self.login_failed(None, kind="malformed")
            await self._write_tagged(tag, result)
            return
        try:
            decoded = decode_sasl_response(data)
        except ValueError:
            self._sasl = None
            await self._write_tagged(tag, Result.bad("Invalid base64 in SASL response"))
            return
        if decoded is None:
            self._sasl = None
            mech.cancel()
            await self._write_tagged(tag, Result.bad("Authentication cancelled"))
            return
        step = await self._auth_call(mech.step, decoded)
        result = await self._sasl_step(tag, mech, step)
        if result is not None:
            await self._write_tagged(tag, result)

    async def _write_tagged(self, tag: str, result: Result) -> None:
        """The end of an AUTHENTICATE exchange that went through challenges."""
        self._observe("AUTHENTICATE", result.status)
        self.write(serializer.tagged(tag, result.status, result.code, result.text))
        self._count_error(result.status == "BAD")

    # -- IDLE -----------------------------------------------------------------------------------------------

    async def start_idle(self, cmd: Command) -> None:
        """``+ idling``, then push changes as they happen until the client sends DONE."""
        self._idle_tag = cmd.tag
        self.write(serializer.continuation("idling"))
        self._idle_task = asyncio.create_task(self._idle_loop(cmd.tag))

    async def _idle_loop(self, tag: str) -> None:
        """Push updates while idling: one forced check at the start, then one sync per notifier wake-up, and a
        cheap poll every ``idle_poll_interval`` seconds for writers outside this process.

        The IDLE ends when ``_idle_tag`` stops being ``tag`` (DONE: :meth:`_end_idle` clears it, then interrupts
        the subscription's wait), so an idling session needs no Event of its own (an Event and its waiter queue
        cost about 850 bytes, paid by each of a thousand idlers)."""
        poll = float(self.config.idle_poll_interval)
        force = True
        self.rt.metrics.push_subscriber("imap_idle", 1)
        try:
            while True:
                if self.selected is not None:
                    await self._sync_selected(expunges=True, force=force)
                if self.notify is not None:
                    await notifications.flush(self)
                await self.flush()
                if self._idle_tag != tag or self.state == "logout":
                    return
                if self._sub is None:  # nothing can wake us (no running loop at login: unit tests): DONE ends it
                    return
                timeout = poll
                deadline = self.credential_deadline()
                if deadline is not None:  # wake at the token's expiry, not up to a poll interval later
                    timeout = max(0.0, min(timeout, deadline - self.clock() + 0.05))
                # DONE interrupts this wait (``_end_idle``): one future per wake-up, no helper tasks
                events = await self._sub.wait(timeout)
                if self.notify is not None and events:
                    self.notify.absorb(events)
                sel = self.selected
                if sel is not None and _concerns(sel, events):
                    sel.dirty = True
                if self._idle_tag != tag:
                    return  # the command's own completion syncs what is left
                if not events or any(is_credential_event(ev) for ev in events):
                    # a credential changed somewhere (or the poll / expiry timer fired): is ours still good?
                    reason = await self.credential_problem()
                    if reason is not None and self._idle_tag == tag and self.state != "logout":
                        self.end_for_credential(reason)
                        await self.flush()
                        if self._hangup is not None:
                            self._hangup()
                        return
                force = not events
        except MailboxGone:
            await self._mailbox_gone()
            await self.flush()
            if self._hangup is not None:  # (no command will come to end it: the connection closes now)
                self._hangup()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("IDLE update failed")
        finally:
            self.rt.metrics.push_subscriber("imap_idle", -1)

    async def _end_idle(self, *, ok: bool, text: str = "IDLE terminated") -> None:
        tag = self._idle_tag
        self._idle_tag = None  # the idle loop's signal to stop
        if self._sub is not None:
            self._sub.interrupt()
        if self._idle_task is not None:
            with contextlib.suppress(Exception):
                await self._idle_task
            self._idle_task = None
        if self.state == "logout":
            return
        assert tag is not None
        cmd = Command(tag, "IDLE", NO_ARGS)
        await self._finish(cmd, Result.ok("IDLE terminated") if ok else Result.bad(text),
                           sync=self.selected is not None)

    # -- selection -----------------------------------------------------------------------------------------

    async def _sync_selected(self, *, expunges: bool, force: bool) -> None:
        """The selected mailbox's updates, plus the fetch attributes a NOTIFY SELECTED MessageNew asked for
        about each new message (RFC 5465 §5.2)."""
        sel = self.selected
        assert sel is not None
        last = sel.uids[-1] if sel.uids else 0
        before = (sel.exists, sel.known_modseq, last)
        await sel.sync(self, expunges=expunges, force=force)
        after = (sel.exists, sel.known_modseq, sel.uids[-1] if sel.uids else 0)
        if sel.update_contexts and self.selected is sel and after != before:
            await search_updates.refresh(self, sel)  # RFC 5267: ADDTO / REMOVEFROM after EXISTS
        spec = self.notify.spec if self.notify is not None else None
        if spec is not None and spec.new_fetch and self.selected is sel and sel.uids and sel.uids[-1] > last:
            await notifications.fetch_new(self, sel.uids_in([(last + 1, sel.uids[-1])]), spec.new_fetch)

    def deselect(self) -> None:
        self.selected = None
        if self.state == "selected":
            self.state = "auth"


def _concerns(sel: SelectedMailbox, events: list[Any]) -> bool:
    """Could these change events affect the selected mailbox? Writes that touched mailboxes name them;
    mailbox-tree changes (rename, delete) name none, and are checked with one cheap query."""
    return any(
        sel.mailbox_id in ev.mailbox_ids or (not ev.mailbox_ids and not is_credential_event(ev)) for ev in events
    )


def _store_error_text(exc: store_model.StoreError) -> str:
    names = {
        "notFound": "No such mailbox",
        "alreadyExists": "Mailbox already exists",
        "invalidName": "Invalid mailbox name",
        "roleTaken": "That special-use attribute is already in use",
        "hasChildren": "Mailbox has children",
        "forbidden": "Not permitted",
        "tooLarge": "Too large",
        "overQuota": "Quota exceeded",
    }
    base = names.get(exc.code, "Operation failed")
    detail = str(exc)
    if exc.code == "invalidName" and detail:
        return f"{base}: {detail}"
    return base


def _jmap_denial_reason(rt: Runtime, result: AuthResult) -> str:
    """Draft -04 DEBUGGING text: why JMAP would not take these credentials, safe to show a client developer
    (names the kind of credential or setting, never the account, address or secret)."""
    policy = rt.auth.policy
    try:
        acct = rt.store.accounts.get(result.account_id)
    except Exception:  # pragma: no cover
        acct = None
    if acct is not None and not acct.jmap_enabled:
        return "JMAP access is disabled for this account"
    method = result.method
    if method in ("password", "scram"):
        if not policy.allows("password", "jmap"):
            return "JMAP does not accept passwords"
    elif method == "app_password":
        if not policy.allows("app_password", "jmap"):
            return "JMAP does not accept app passwords"
        if "jmap" not in result.scopes:
            return "This app password is not valid for JMAP"
    elif method == "bearer":
        if not policy.allows("bearer", "jmap"):
            return "JMAP does not accept bearer tokens"
        if "jmap" not in result.scopes:
            return "This token is not valid for JMAP"
    return "JMAP does not accept this kind of credential"
