"""JmapBridge: from an IMAP session to the same mail over JMAP, without rewriting the IMAP code.

What the bridge relies on is exactly what RFC 9698 promises: the ``JMAPACCESS`` capability after login means
the same credentials open the JMAP session whose URL ``GETJMAPACCESS`` gives, and the ids match (RFC 8474
EMAILID/MAILBOXID/THREADID are the JMAP Email/Mailbox/Thread ids). The IMAP session itself grants nothing:
the bridge authenticates again over HTTP with the credentials it is given.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Iterable
from typing import Any

import httpx

JMAP_CORE = "urn:ietf:params:jmap:core"
JMAP_MAIL = "urn:ietf:params:jmap:mail"
_QUOTED = re.compile(rb'^"((?:[^"\\]|\\.)*)"$')


class JmapAccessError(RuntimeError):
    """JMAP was advertised but could not be used (bad URL, refused credentials, malformed session).

    ``status`` is the HTTP status when the server answered (401: the credentials were refused), None when it did
    not answer at all; ``challenge`` is its ``WWW-Authenticate`` header, which names the schemes it would take.
    """

    def __init__(self, message: str, *, status: int | None = None, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.challenge = challenge


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
                 token: str | None = None, client: httpx.Client | None = None,
                 verify: bool | str | ssl.SSLContext = True, timeout: float = 30.0) -> None:
        """Open the JMAP session at ``session_url``: HTTP Basic with ``username``/``password``, or Bearer with
        ``token``. ``verify``: an SSL context, a CA file, or False (tests only). Raises JmapAccessError when
        the URL does not answer, refuses the credentials, or is not a JMAP session resource."""
        if token:
            auth_header = {"Authorization": f"Bearer {token}"}
            auth = None
        elif username is not None and password is not None:
            auth_header = {}
            auth = httpx.BasicAuth(username, password)
        else:
            raise ValueError("give username and password, or a bearer token")
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        owned = client is None  # a client the caller gave stays theirs to close, even when opening fails
        self.http = client or httpx.Client(auth=auth, headers=auth_header, verify=verify, timeout=timeout,
                                           follow_redirects=True)
        try:
            resp = self.http.get(session_url)
        except httpx.HTTPError as exc:
            if owned:
                self.http.close()
            raise JmapAccessError(f"JMAP session at {session_url} did not answer: {_http_reason(exc)}") from None
        if resp.status_code != 200:
            if owned:
                self.http.close()
            raise JmapAccessError(f"JMAP session at {session_url} answered HTTP {resp.status_code}",
                                  status=resp.status_code, challenge=resp.headers.get("www-authenticate"))
        try:
            self.session: dict[str, Any] = resp.json()
            self.api_url: str = self.session["apiUrl"]
            self.account_id: str = self.session["primaryAccounts"][JMAP_MAIL]
        except (ValueError, KeyError, TypeError) as exc:
            if owned:
                self.http.close()
            what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise JmapAccessError(f"JMAP session at {session_url} is malformed: {what}", status=200) from None
        self.session_url = session_url

    @classmethod
    def from_imap(cls, conn: Any, *, username: str | None = None, password: str | None = None,
                  token: str | None = None, verify: bool | str | ssl.SSLContext = True,
                  timeout: float = 30.0) -> JmapBridge | None:
        """Open JMAP for the logged-in IMAP connection if the server says the credentials work there."""
        url = get_jmap_access_url(conn)
        if url is None:
            return None
        return cls(url, username=username, password=password, token=token, verify=verify, timeout=timeout)

    @property
    def username(self) -> str | None:
        """The user the JMAP server says it authenticated (the session's ``username``)."""
        return self.session.get("username")

    @property
    def max_objects_in_get(self) -> int:
        """How many ids one ``/get`` may name (the session's core ``maxObjectsInGet``; 500 if absent)."""
        core = (self.session.get("capabilities") or {}).get(JMAP_CORE) or {}
        value = core.get("maxObjectsInGet")
        return value if isinstance(value, int) and value > 0 else 500

    def request(self, method_calls: list[list[Any]], using: list[str] | None = None) -> list[list[Any]]:
        """One JMAP request; the method responses as the server sent them."""
        body = {"using": using or [JMAP_CORE, JMAP_MAIL], "methodCalls": method_calls}
        try:
            resp = self.http.post(self.api_url, json=body)
        except httpx.HTTPError as exc:
            raise JmapAccessError(f"JMAP API at {self.api_url} did not answer: {_http_reason(exc)}") from None
        if resp.status_code != 200:
            raise JmapAccessError(f"JMAP API answered HTTP {resp.status_code}: {resp.text[:200]}",
                                  status=resp.status_code, challenge=resp.headers.get("www-authenticate"))
        try:
            return resp.json()["methodResponses"]
        except (ValueError, KeyError, TypeError):
            raise JmapAccessError(f"JMAP API answered something that is not a JMAP response: {resp.text[:200]!r}",
                                  status=200) from None

    def call(self, method: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        """One method call in the bridge's account; raises JmapAccessError on a method-level error."""
        arguments = {"accountId": self.account_id, **(args or {})}
        name, result, _ = self.request([[method, arguments, "0"]])[0]
        if name == "error":
            raise JmapAccessError(f"{method}: {result.get('type')}: {result.get('description', '')}")
        return result

    def mailboxes(self, properties: list[str] | None = None) -> list[dict[str, Any]]:
        """Every Mailbox of the account (``Mailbox/get`` with ``ids: null``)."""
        args: dict[str, Any] = {"ids": None}
        if properties is not None:
            args["properties"] = sorted({"id", *properties})
        return list(self.call("Mailbox/get", args)["list"])

    @staticmethod
    def mailbox_paths(mailboxes: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
        """Mailbox id -> its names from the top of the tree down (the ``parentId`` chain), which is what an
        IMAP name splits into at the hierarchy delimiter. A chain that loops or names a missing parent ends
        there rather than raising: callers compare paths, and a broken tree must show up as a difference."""
        by_id = {m["id"]: m for m in mailboxes}
        out: dict[str, list[str]] = {}
        for mid, box in by_id.items():
            names, seen, cur = [], set(), box
            while cur is not None and cur["id"] not in seen:
                seen.add(cur["id"])
                names.append(str(cur.get("name", "")))
                cur = by_id.get(cur.get("parentId")) if cur.get("parentId") else None
            out[mid] = names[::-1]
        return out

    def get_emails(self, ids: Iterable[str], properties: list[str]) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """``Email/get`` of any number of ids, in as many calls as ``maxObjectsInGet`` needs: (found by id,
        ids the server did not find)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        step = self.max_objects_in_get
        props = sorted({"id", *properties})
        for i in range(0, len(wanted), step):
            result = self.call("Email/get", {"ids": wanted[i:i + step], "properties": props})
            for email in result.get("list", []):
                found[email["id"]] = email
            missing += result.get("notFound") or []
        return found, missing

    def set_keywords(self, email_id: str, changes: dict[str, bool]) -> None:
        """Add (True) or remove (False) keywords of one Email with an ``Email/set`` patch, leaving the others
        alone; raises JmapAccessError when the server does not update it."""
        patch = {f"keywords/{kw}": (True if on else None) for kw, on in changes.items()}
        result = self.call("Email/set", {"update": {email_id: patch}})
        if email_id not in (result.get("updated") or {}):
            err = (result.get("notUpdated") or {}).get(email_id) or {}
            raise JmapAccessError(f"Email/set did not update {email_id}: {err.get('type', 'no reason given')} "
                                  f"{err.get('description', '')}".rstrip())

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


def _http_reason(exc: httpx.HTTPError) -> str:
    """A short human reason for a transport failure (refused, unknown host, TLS, timeout)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError):
        return f"TLS failed: {getattr(cause, 'reason', None) or cause}"
    text = re.sub(r"^\[Errno -?\d+\] ", "", str(exc)) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "Name or service not known" in text:
        return "unknown host"
    return text
