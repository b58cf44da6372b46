"""JmapBridge: from an IMAP session to the same mail over JMAP, without rewriting the IMAP code.

What the bridge relies on is exactly what RFC 9698 promises: the ``JMAPACCESS`` capability after login means
the same credentials open the JMAP session whose URL ``GETJMAPACCESS`` gives, and the ids match (RFC 8474
EMAILID/MAILBOXID/THREADID are the JMAP Email/Mailbox/Thread ids). The IMAP session itself grants nothing:
the bridge authenticates again over HTTP with the credentials it is given.
"""

from __future__ import annotations

import imaplib
import re
from typing import Any

import httpx

JMAP_CORE = "urn:ietf:params:jmap:core"
JMAP_MAIL = "urn:ietf:params:jmap:mail"
_QUOTED = re.compile(rb'^"((?:[^"\\]|\\.)*)"$')


class JmapAccessError(RuntimeError):
    """JMAP was advertised but could not be used (bad URL, refused credentials, malformed session)."""


def _imaplib(conn: Any) -> imaplib.IMAP4:
    """The imaplib object behind an imaplib or imapclient connection."""
    if isinstance(conn, imaplib.IMAP4):
        return conn
    inner = getattr(conn, "_imap", None)
    if isinstance(inner, imaplib.IMAP4):
        return inner
    raise TypeError("expected an imaplib.IMAP4 or imapclient.IMAPClient connection")


def imap_capabilities(conn: Any) -> set[str]:
    """The server's capabilities as seen now (asks again: they change at login)."""
    m = _imaplib(conn)
    typ, data = m.capability()
    if typ != "OK" or not data or data[-1] is None:
        return set()
    return {c.upper() for c in data[-1].decode("ascii", "replace").split()}


def _unquote(raw: bytes) -> str:
    match = _QUOTED.match(raw.strip())
    if not match:
        raise JmapAccessError(f"JMAPACCESS response is not a quoted string: {raw[:80]!r}")
    return re.sub(rb"\\(.)", rb"\1", match.group(1)).decode("utf-8")


def get_jmap_access_url(conn: Any) -> str | None:
    """The JMAP session URL from GETJMAPACCESS, or None when the server does not offer JMAPACCESS."""
    m = _imaplib(conn)
    if "JMAPACCESS" not in imap_capabilities(m):
        return None
    imaplib.Commands.setdefault("GETJMAPACCESS", ("AUTH", "SELECTED"))
    typ, data = m._simple_command("GETJMAPACCESS")
    if typ != "OK":
        return None
    typ, data = m._untagged_response(typ, data, "JMAPACCESS")
    if not data or data[-1] is None:
        raise JmapAccessError("GETJMAPACCESS returned OK without a JMAPACCESS response")
    return _unquote(data[-1])


class JmapBridge:
    """An open JMAP session for the account an IMAP connection is logged in to."""

    def __init__(self, session_url: str, *, username: str | None = None, password: str | None = None,
                 token: str | None = None, client: httpx.Client | None = None, verify: bool | str = True) -> None:
        if token:
            auth_header = {"Authorization": f"Bearer {token}"}
            auth = None
        elif username is not None and password is not None:
            auth_header = {}
            auth = httpx.BasicAuth(username, password)
        else:
            raise ValueError("give username and password, or a bearer token")
        self.http = client or httpx.Client(auth=auth, headers=auth_header, verify=verify, timeout=30,
                                           follow_redirects=True)
        resp = self.http.get(session_url)
        if resp.status_code != 200:
            raise JmapAccessError(f"JMAP session at {session_url} answered HTTP {resp.status_code}")
        try:
            self.session: dict[str, Any] = resp.json()
            self.api_url: str = self.session["apiUrl"]
            self.account_id: str = self.session["primaryAccounts"][JMAP_MAIL]
        except (ValueError, KeyError, TypeError) as exc:
            raise JmapAccessError(f"malformed JMAP session: {exc}") from None
        self.session_url = session_url

    @classmethod
    def from_imap(cls, conn: Any, *, username: str | None = None, password: str | None = None,
                  token: str | None = None, verify: bool | str = True) -> JmapBridge | None:
        """Open JMAP for the logged-in IMAP connection if the server says the credentials work there."""
        url = get_jmap_access_url(conn)
        if url is None:
            return None
        return cls(url, username=username, password=password, token=token, verify=verify)

    def request(self, method_calls: list[list[Any]], using: list[str] | None = None) -> list[list[Any]]:
        body = {"using": using or [JMAP_CORE, JMAP_MAIL], "methodCalls": method_calls}
        resp = self.http.post(self.api_url, json=body)
        if resp.status_code != 200:
            raise JmapAccessError(f"JMAP API answered HTTP {resp.status_code}: {resp.text[:200]}")
        return resp.json()["methodResponses"]

    def call(self, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One method call in the bridge's account; raises JmapAccessError on a method-level error."""
        arguments = {"accountId": self.account_id, **(args or {})}
        name, result, _ = self.request([[method, arguments, "0"]])[0]
        if name == "error":
            raise JmapAccessError(f"{method}: {result.get('type')}: {result.get('description', '')}")
        return result

    @staticmethod
    def email_ids(conn: Any, uids: list[int]) -> dict[int, str]:
        """IMAP UID (in the connection's selected mailbox) -> JMAP Email id, via FETCH EMAILID."""
        if not uids:
            return {}
        m = _imaplib(conn)
        typ, data = m.uid("FETCH", ",".join(str(u) for u in uids), "(UID EMAILID)")
        if typ != "OK":
            raise JmapAccessError("UID FETCH EMAILID failed")
        out: dict[int, str] = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not line:
                continue
            text = line.decode("ascii", "replace")
            uid = re.search(r"\bUID (\d+)", text)
            emailid = re.search(r"\bEMAILID \(([A-Za-z0-9_-]+)\)", text)
            if uid and emailid:
                out[int(uid.group(1))] = emailid.group(1)
        return out

    @staticmethod
    def mailbox_id(conn: Any, mailbox: str) -> str | None:
        """The MAILBOXID (= JMAP Mailbox id) of a mailbox, via STATUS (selection unchanged)."""
        m = _imaplib(conn)
        typ, data = m.status(mailbox if mailbox.startswith('"') else f'"{mailbox}"', "(MAILBOXID)")
        if typ != "OK" or not data or not data[0]:
            return None
        found = re.search(rb"MAILBOXID \(([A-Za-z0-9_-]+)\)", data[0])
        return found.group(1).decode() if found else None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> JmapBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
