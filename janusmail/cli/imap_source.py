"""The source side of ``janusmail migrate``: another IMAP server read through imapclient, read-only.

Why its own module: everything that speaks IMAP to the source (connecting, TLS, login, the mailbox list with
special-use attributes, the personal namespace prefix, EXAMINE, UID SEARCH, batched UID FETCH) is here, and
turned into plain values (mailbox paths, roles, keywords, epoch seconds); ``migrate.py`` only decides what to
copy and hands batches to the store. Mailboxes are EXAMINEd and bodies fetched with ``BODY.PEEK[]``, so the
migration never changes the source (no ``\\Seen`` set, no ``\\Recent`` taken).
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from janusmail.store import keywords as kwmod
from janusmail.store.model import InvalidKeyword

#: RFC 6154 special-use attribute (lowercase) -> the store's role (JMAP's names, RFC 8621 §2).
ATTR_ROLES: dict[str, str] = {
    "\\all": "all", "\\archive": "archive", "\\drafts": "drafts", "\\flagged": "flagged", "\\junk": "junk",
    "\\sent": "sent", "\\trash": "trash", "\\important": "important",
}
#: IMAP system flags (lowercase) -> keywords.
SYSTEM_FLAGS: dict[str, str] = {"\\seen": "$seen", "\\answered": "$answered", "\\flagged": "$flagged",
                                "\\draft": "$draft"}
FETCH_ITEMS = [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE"]


class SourceError(Exception):
    """The source server cannot be used (unreachable, TLS, login refused): a message for the user, no trace."""


@dataclass(frozen=True)
class SourceMailbox:
    name: str  # as the source names it (what SELECT takes, and what the progress is kept under)
    path: list[str]  # components in the target, the personal namespace prefix taken off
    role: str | None
    subscribed: bool = True


@dataclass(frozen=True)
class SourceMessage:
    uid: int
    raw: bytes
    keywords: tuple[str, ...]
    deleted: bool
    internal_date: int | None
    dropped_keywords: tuple[str, ...] = ()  # flags the store cannot keep as keywords (not valid atoms)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def convert_flags(flags: tuple) -> tuple[tuple[str, ...], bool, tuple[str, ...]]:
    """(keywords, \\Deleted, flags dropped) of a FETCH FLAGS list: system flags become ``$seen``...,
    ``\\Recent`` and unknown system flags are left, keywords the store refuses are dropped and named."""
    kws: list[str] = []
    dropped: list[str] = []
    deleted = False
    for raw in flags:
        flag = _text(raw)
        low = flag.lower()
        if low == "\\deleted":
            deleted = True
        elif low in SYSTEM_FLAGS:
            kws.append(SYSTEM_FLAGS[low])
        elif low.startswith("\\"):
            continue
        else:
            try:
                kwmod.validate(flag)
            except InvalidKeyword:
                dropped.append(flag)
                continue
            kws.append(flag)
    return tuple(dict.fromkeys(kws)), deleted, tuple(dropped)


class ImapSource:
    """One logged-in connection to the source server."""

    def __init__(self, host: str, port: int, user: str, password: str, *, tls: bool = False,
                 starttls: bool = False, cafile: str | None = None, timeout: float = 120.0) -> None:
        """``cafile``: trust this CA (or self-signed certificate) instead of the system's."""
        self.host, self.port, self.user = host, port, user
        where = f"{host}:{port}"
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (OSError, ssl.SSLError) as exc:
            raise SourceError(f"cannot use {cafile} as CA file: {_reason(exc)}") from None
        try:
            self.client = IMAPClient(host, port=port, ssl=tls, ssl_context=context if tls else None, timeout=timeout)
        except ssl.SSLError as exc:
            raise SourceError(f"TLS with {where} failed: {exc.reason or exc}") from None
        except (OSError, IMAPClientError) as exc:
            raise SourceError(f"cannot connect to {where}: {_reason(exc)}") from None
        try:
            if starttls:
                self.client.starttls(context)
            self.client.login(user, password)
        except LoginError as exc:
            self.close()
            raise SourceError(f"{where} refused the login of {user}: {_text(str(exc)).strip() or 'no reason given'}"
                              ) from None
        except ssl.SSLError as exc:
            self.close()
            raise SourceError(f"STARTTLS with {where} failed: {exc.reason or exc}") from None
        except (OSError, IMAPClientError) as exc:
            self.close()
            raise SourceError(f"{where}: {_reason(exc)}") from None
        self.client.normalise_times = False  # INTERNALDATE with its zone: exact epoch seconds

    @property
    def key(self) -> str:
        """What the store keeps progress under: the same server and login is the same source."""
        return f"{self.host.lower()}:{self.port}/{self.user}"

    def close(self) -> None:
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - closing a connection that may already be gone
            try:
                self.client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def _listing(self) -> list[tuple]:
        """LIST "" "*", asking for special-use attributes (RFC 6154 RETURN (SPECIAL-USE)) when offered; many
        servers add them to a plain LIST anyway, which is the fallback."""
        c = self.client
        if c.has_capability("SPECIAL-USE") and c.has_capability("LIST-EXTENDED"):
            try:
                data = c._raw_command_untagged(b"LIST", [b'""', b'"*"', b"RETURN", b"(SPECIAL-USE)"], uid=False)
                return c._proc_folder_list(data)
            except IMAPClientError:
                pass
        return c.list_folders()

    def _prefix(self) -> str:
        """The personal namespace prefix (``INBOX.`` on Courier-style servers), taken off every name."""
        if not self.client.has_capability("NAMESPACE"):
            return ""
        try:
            personal = self.client.namespace().personal or ()
        except IMAPClientError:
            return ""
        return _text(personal[0][0]) if personal else ""

    def _subscribed(self) -> set[str] | None:
        try:
            return {_text(name) for _flags, _delim, name in self.client.list_sub_folders()}
        except IMAPClientError:
            return None  # no LSUB here: every mailbox counts as subscribed

    def mailboxes(self) -> list[SourceMailbox]:
        prefix = self._prefix()
        subscribed = self._subscribed()
        out: list[SourceMailbox] = []
        for flags, delim, name in self._listing():
            attrs = {_text(f).lower() for f in flags}
            if "\\noselect" in attrs or "\\nonexistent" in attrs:
                continue  # no messages; its children bring it along
            name = _text(name)
            delimiter = _text(delim) if delim else None
            if name.upper() == "INBOX":
                out.append(SourceMailbox(name, ["INBOX"], "inbox"))
                continue
            local = name[len(prefix):] if prefix and name.startswith(prefix) else name
            path = [p for p in (local.split(delimiter) if delimiter else [local]) if p]
            role = next((ATTR_ROLES[a] for a in sorted(attrs) if a in ATTR_ROLES), None)
            out.append(SourceMailbox(name, path or [name], role, subscribed is None or name in subscribed))
        return out

    def examine(self, name: str, after_uid: int) -> tuple[int, list[int]]:
        """(UIDVALIDITY, the UIDs above ``after_uid``, ascending) of a mailbox, opened read-only."""
        info = self.client.select_folder(name, readonly=True)
        if b"UIDVALIDITY" not in info:
            raise SourceError(f"{name}: the source gave no UIDVALIDITY, so copies could not be tracked")
        uidvalidity = int(info[b"UIDVALIDITY"])
        if not int(info.get(b"EXISTS", 1)):
            return uidvalidity, []
        uids = self.client.search(["UID", f"{after_uid + 1}:*"])
        return uidvalidity, sorted(u for u in uids if u > after_uid)  # n:* always matches the last UID

    def fetch(self, uids: list[int]) -> dict[int, SourceMessage]:
        """One UID FETCH of these UIDs of the open mailbox; UIDs expunged meanwhile are absent."""
        out: dict[int, SourceMessage] = {}
        for uid, data in self.client.fetch(uids, FETCH_ITEMS).items():
            raw = data.get(b"BODY[]")
            if raw is None:
                continue
            kws, deleted, dropped = convert_flags(data.get(b"FLAGS", ()))
            when = data.get(b"INTERNALDATE")
            out[int(uid)] = SourceMessage(int(uid), bytes(raw), kws, deleted,
                                          int(when.timestamp()) if when is not None else None, dropped)
        return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
