"""The IMAP side of ``janusmail check``: one connection to any server, through imapclient (and the imaplib
object under it for the exchanges RFC 9698 is judged on), turning everything into plain values.

Two ways of talking, on purpose:

* :meth:`ImapProbe.exchange` and :meth:`ImapProbe.login` record *every line* the server answered (a hook on
  imaplib's line reader), so ``rfc9698`` can judge the exact wire: how many ``JMAPACCESS`` responses, quoted or
  not, which capability lists;
* the mailbox and message reads (LIST, NAMESPACE, STATUS, EXAMINE, FETCH, STORE) go through imapclient, which
  parses them properly (modified UTF-7 names, literals, nested lists); nothing there is judged on its spelling.

Every failure of the connection itself (unreachable, TLS, lost) becomes :class:`ImapProbeError` with a message
for the user: the command line turns it into exit status 2, never a traceback.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from .model import Credential
from .wire import Exchange

Security = Literal["plain", "tls", "starttls"]
_ID = re.compile(r"[A-Za-z0-9_-]+")


class ImapProbeError(Exception):
    """The server cannot be talked to (unreachable, TLS, refused login, connection lost): a message, no trace."""


class ImapRefused(Exception):
    """The server answered a read or write with NO or BAD: a verdict for the check that needed it, not the end."""


@dataclass(frozen=True)
class Listed:
    """One LIST answer: attributes (lowercase), hierarchy delimiter, name (decoded from modified UTF-7)."""

    attributes: frozenset[str]
    delimiter: str | None
    name: str

    @property
    def selectable(self) -> bool:
        return not ({"\\noselect", "\\nonexistent"} & self.attributes)


@dataclass(frozen=True)
class Fetched:
    uid: int
    email_id: str | None
    thread_id: str | None  # None: NIL or not sent
    thread_sent: bool  # False: the server ignored THREADID
    flags: tuple[str, ...]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def object_id(value: Any) -> str | None:
    """An RFC 8474 id from imapclient's parse of ``(ID)``, ``ID`` or ``NIL``."""
    if value is None:
        return None
    if isinstance(value, tuple | list):
        return object_id(value[0]) if value else None
    m = _ID.search(_text(value))
    return m.group(0) if m else None


def reason(exc: BaseException) -> str:
    """A short human reason for a socket, TLS or protocol failure."""
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted ({exc.verify_message or exc.reason}); --ca-file trusts a private CA"
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """A verifying client context: the system's CAs, or ``ca_file`` (a private CA or a self-signed certificate).
    Made once per run and shared by IMAP and JMAP: loading CAs is the slowest part of opening a connection."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ImapProbeError(f"cannot use {ca_file} as CA file: {reason(exc)}") from None


class ImapProbe:
    """One connection, connected (and TLS-wrapped) on construction, not logged in."""

    def __init__(self, host: str, port: int, *, security: Security = "plain",
                 context: ssl.SSLContext | None = None, timeout: float = 30.0) -> None:
        """``context``: how to verify the server's certificate for ``tls``/``starttls`` (see :func:`tls_context`)."""
        self.where = f"{host}:{port}"
        self.context = context or (tls_context(None) if security != "plain" else None)
        tls = security == "tls"
        try:
            self.client = IMAPClient(host, port=port, ssl=tls, ssl_context=self.context if tls else None,
                                     timeout=timeout)
        except ssl.SSLError as exc:
            raise ImapProbeError(f"TLS with {self.where} failed: {reason(exc)}") from None
        except (OSError, IMAPClientError) as exc:
            raise ImapProbeError(f"cannot connect to {self.where}: {reason(exc)}") from None
        self.imap = self.client._imap  # the imaplib object: exact exchanges are read from it
        self.greeting: bytes = self.imap.welcome or b""
        self._lines: list[bytes] | None = None
        read_line = self.imap._get_line

        def recording_get_line() -> bytes:
            line = read_line()
            if self._lines is not None:
                self._lines.append(line)
            return line

        self.imap._get_line = recording_get_line  # every response line, as read, for the exchange in progress
        self.starttls: Exchange | None = None
        if security == "starttls":
            self.starttls = self._record("STARTTLS", lambda: self.client.starttls(self.context))
            if self.starttls.status != "OK":
                self.close()
                raise ImapProbeError(f"{self.where} refused STARTTLS: {self.starttls.transcript()}")

    # -- exact exchanges --------------------------------------------------------------------------------

    def _record(self, shown: str, action: Callable[[], Any]) -> Exchange:
        """Run an imaplib/imapclient call and keep every line it read; a NO or BAD is an answer, not an error."""
        self._lines = []
        try:
            action()
        except ssl.SSLError as exc:
            raise ImapProbeError(f"TLS with {self.where} failed during {shown}: {reason(exc)}") from None
        except (self.imap.abort, OSError) as exc:
            raise ImapProbeError(f"the connection to {self.where} was lost during {shown}: {reason(exc)}") from None
        except (self.imap.error, IMAPClientError):
            pass  # the tagged NO/BAD is in the lines
        finally:
            lines, self._lines = self._lines, None
        tagged = next((ln for ln in reversed(lines) if ln[:1] not in (b"*", b"+")), b"")
        return Exchange(shown, tagged.split(b" ", 1)[0].decode("ascii", "replace"), tuple(lines))

    def exchange(self, command: str) -> Exchange:
        """Send one command line as given and read up to its tagged completion."""
        m = self.imap

        def run() -> None:
            tag = m._new_tag()
            m.send(tag + b" " + command.encode("utf-8") + b"\r\n")
            m._get_tagged_response(tag)

        try:
            return self._record(command, run)
        finally:
            m.untagged_responses.clear()  # judged from the lines; nothing left for imapclient to misread

    def login(self, cred: Credential, capabilities: frozenset[str]) -> Exchange:
        """LOGIN with a password (AUTHENTICATE PLAIN when it is not ASCII), AUTHENTICATE OAUTHBEARER (or
        XOAUTH2) with a token. Refused logins are returned, not raised: the caller decides what they mean."""
        m = self.imap
        if cred.kind == "password":
            if "LOGINDISABLED" in capabilities:
                raise ImapProbeError(f"{self.where} takes no password on this connection (LOGINDISABLED): use "
                                     "--tls or --starttls")
            if cred.secret.isascii() and cred.user.isascii():
                ex = self._record(f"LOGIN {cred.user} ***", lambda: m.login(cred.user, cred.secret))
            elif "AUTH=PLAIN" in capabilities:
                payload = f"\0{cred.user}\0{cred.secret}".encode()
                ex = self._record("AUTHENTICATE PLAIN ***", lambda: m.authenticate("PLAIN", lambda _c: payload))
            else:
                raise ImapProbeError(f"the password is not ASCII and {self.where} offers no AUTH=PLAIN to carry it")
        else:
            mech = next((m_ for m_ in ("OAUTHBEARER", "XOAUTH2") if f"AUTH={m_}" in capabilities), None)
            if mech is None:
                raise ImapProbeError(f"{self.where} offers neither AUTH=OAUTHBEARER nor AUTH=XOAUTH2, so a token "
                                     "cannot log in")
            ex = self._record(f"AUTHENTICATE {mech} ***", lambda: m.authenticate(mech, _bearer(mech, cred)))
        m.untagged_responses.clear()
        return ex

    # -- reads through imapclient ---------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (self.imap.abort, OSError) as exc:
            raise ImapProbeError(f"the connection to {self.where} was lost during {what}: {reason(exc)}") from None
        except IMAPClientError as exc:
            raise ImapRefused(f"{what} was refused: {_text(str(exc)).strip() or 'no reason given'}") from None

    def namespaces(self) -> tuple[str, list[str]]:
        """(the personal namespace prefix, the other users' and shared prefixes), from NAMESPACE if offered."""
        try:
            ns = self._call("NAMESPACE", self.client.namespace)
        except ImapRefused:
            return "", []
        personal = _text(ns.personal[0][0]) if ns.personal else ""
        others = [_text(p[0]) for group in (ns.other, ns.shared) if group for p in group if _text(p[0])]
        return personal, others

    def list_mailboxes(self) -> list[Listed]:
        rows = self._call("LIST", lambda: self.client.list_folders("", "*"))
        return [Listed(frozenset(_text(f).lower() for f in flags), _text(delim) if delim else None, _text(name))
                for flags, delim, name in rows]

    def status_mailboxid(self, name: str) -> str | None:
        try:
            status = self._call(f"STATUS {name}", lambda: self.client.folder_status(name, ["MAILBOXID"]))
        except ImapRefused:
            return None
        return object_id(status.get(b"MAILBOXID"))

    def examine(self, name: str, readonly: bool = True) -> tuple[int, str | None, bool]:
        """(EXISTS, the ``[MAILBOXID]`` code of the answer, read-write) of EXAMINE (or SELECT)."""
        info = self._call(f"{'EXAMINE' if readonly else 'SELECT'} {name!r}",
                          lambda: self.client.select_folder(name, readonly=readonly))
        return int(info.get(b"EXISTS", 0)), object_id(info.get(b"MAILBOXID")), bool(info.get(b"READ-WRITE"))

    def fetch(self, seqs: list[int]) -> list[Fetched]:
        """UID, FLAGS, EMAILID and THREADID of these message sequence numbers of the open mailbox (ImapRefused
        when the server will not FETCH them)."""
        if not seqs:
            return []

        def run() -> dict:
            self.client.use_uid = False
            try:
                return self.client.fetch(seqs, ["UID", "FLAGS", "EMAILID", "THREADID"])
            finally:
                self.client.use_uid = True

        out = []
        for data in self._call("FETCH", run).values():
            if b"UID" not in data:
                continue
            out.append(Fetched(int(data[b"UID"]), object_id(data.get(b"EMAILID")), object_id(data.get(b"THREADID")),
                               b"THREADID" in data, tuple(_text(f) for f in data.get(b"FLAGS", ()))))
        return out

    def flags(self, uid: int) -> set[str] | None:
        """The message's flags now (after a NOOP, so changes made elsewhere are seen), without ``\\Recent``;
        None when the message is gone."""
        self._call("NOOP", self.client.noop)
        got = self._call("UID FETCH FLAGS", lambda: self.client.get_flags([uid]))
        if uid not in got:
            return None
        return {_text(f) for f in got[uid] if _text(f).lower() != "\\recent"}

    def store(self, uid: int, op: Literal["+", "-", "="], flags: list[str]) -> None:
        fn = {"+": self.client.add_flags, "-": self.client.remove_flags, "=": self.client.set_flags}[op]
        self._call(f"UID STORE {op}FLAGS", lambda: fn([uid], flags, silent=True))

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - closing a connection that may already be gone
            try:
                self.client.shutdown()
            except Exception:  # noqa: BLE001
                pass


def _bearer(mech: str, cred: Credential) -> Callable[[bytes], bytes]:
    """The client side of OAUTHBEARER (RFC 7628) or XOAUTH2: the token first, then, if the server answers
    with an error challenge, the dummy response that lets it finish with NO."""
    if mech == "OAUTHBEARER":
        user = cred.user.replace("=", "=3D").replace(",", "=2C")
        first = f"n,a={user},\x01auth=Bearer {cred.secret}\x01\x01".encode()
        after = b"\x01"
    else:
        first = f"user={cred.user}\x01auth=Bearer {cred.secret}\x01\x01".encode()
        after = b""
    sent = []

    def respond(_challenge: bytes) -> bytes:
        sent.append(1)
        return first if len(sent) == 1 else after

    return respond
