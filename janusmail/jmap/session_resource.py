"""The JMAP Session resource (RFC 8620 §2): what a client learns first, and the URL templates it then uses.

Why every URL comes from ``public_url``: behind a reverse proxy the listener's own address is not what the
client sees, and RFC 9698 JMAPACCESS advertises ``public_url + "/.well-known/jmap"``, so the whole session
must live under that same base. Without a configured one, ``public_url`` is the listener's own bound address
(``Config.settle_public_url``), so every URL here names a port that answers. The ``state`` is a digest of the rest: it changes exactly when anything a
client caches from the session changes (RFC 8620 §2: "state ... MUST change if any of the other
properties change").
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from janusmail.jmap.engine import CORE
from janusmail.jmap.settings import JmapSettings

__all__ = [
    "MAIL", "PATHS", "QUOTA", "SUBMISSION", "VACATION", "SessionDocument", "SessionDocuments", "Urls", "base_path",
    "build_session", "session_state", "submission_account_capability",
]  # fmt: skip

MAIL = "urn:ietf:params:jmap:mail"
SUBMISSION = "urn:ietf:params:jmap:submission"
QUOTA = "urn:ietf:params:jmap:quota"  # RFC 9425: empty objects at both levels
VACATION = "urn:ietf:params:jmap:vacationresponse"  # RFC 8621 §1.3.3: empty objects at both levels

#: Route paths relative to the public URL's path (the app mounts them there and at the root).
PATHS = {
    "well_known": "/.well-known/jmap",
    "session": "/jmap/session",
    "api": "/jmap/api",
    "upload": "/jmap/upload/{accountId}",
    "download": "/jmap/download/{accountId}/{blobId}/{name}",
    "eventsource": "/jmap/eventsource",
    "jwks": "/.well-known/jwks.json",
    "openid": "/.well-known/openid-configuration",
    "websocket": "/jmap/ws",
}

#: Sort properties Email/query supports, used when the Email module does not say (RFC 8621 §4.4.2).


def base_path(public_url: str) -> str:
    """The path part of the public URL without a trailing slash ("" for a bare host)."""
    return urlsplit(public_url).path.rstrip("/")


class Urls:
    """The absolute URLs and templates of the session, built once per server from ``public_url``."""

    def __init__(self, public_url: str | None) -> None:
        if not public_url:
            raise ValueError("the JMAP session needs a public URL (configured, or settled from the listener)")
        base = public_url.rstrip("/")
        self.session = base + PATHS["well_known"]
        self.api = base + PATHS["api"]
        self.upload = base + PATHS["upload"]
        self.download = base + PATHS["download"] + "?type={type}"
        self.eventsource = base + PATHS["eventsource"] + "?types={types}&closeafter={closeafter}&ping={ping}"
        self.jwks = base + PATHS["jwks"]
        scheme, _, rest = base.partition("://")
        self.websocket = ("wss" if scheme == "https" else "ws") + "://" + rest + PATHS["websocket"]


#: Longest a submission may be held for later (FUTURERELEASE HOLDFOR/HOLDUNTIL, RFC 4865), in seconds.
MAX_DELAYED_SEND = 7 * 24 * 3600


def today() -> dt.date:
    """The UTC date the session's dated values are built for (see :func:`submission_account_capability`)."""
    return dt.datetime.now(dt.UTC).date()


def submission_account_capability(day: dt.date | None = None) -> dict[str, Any]:
    """RFC 8621 §1.3.2: EmailSubmission may hold a message up to ``MAX_DELAYED_SEND`` seconds (the
    FUTURERELEASE parameters of mailFrom, RFC 4865; undo-send until then), and that is the one SMTP extension
    a client can use in the envelope: the sender passes no other parameter on (janusmail/smtp/outbound.py
    sends plain MAIL/RCPT), so the JMAP door refuses the others.

    Its EHLO arguments (RFC 4865 §3) are the longest interval and the latest date-time a hold may reach. The
    true latest moves with the clock; the one shown is ``MAX_DELAYED_SEND`` after the start of ``day`` (UTC),
    never later than what the queue accepts, so the Session (and its state) changes once a day, not on every
    request."""
    start = dt.datetime.combine(day or today(), dt.time(), dt.UTC)
    latest = (start + dt.timedelta(seconds=MAX_DELAYED_SEND)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"maxDelayedSend": MAX_DELAYED_SEND,
            "submissionExtensions": {"FUTURERELEASE": [str(MAX_DELAYED_SEND), latest]}}


def build_session(
    *,
    account_id: str,
    address: str,
    settings: JmapSettings,
    urls: Urls,
    capabilities: frozenset[str],
    sort_options: list[str],
    session_extra: dict[str, Any] | None = None,
    day: dt.date | None = None,
) -> dict[str, Any]:
    """The Session object for one authenticated principal (its own account only, read-write).
    ``session_extra``: further session-level capabilities (e.g. RFC 8887 WebSocket's ``{url, supportsPush}``);
    ``day``: the UTC date dated values are for (today by default)."""
    mail_account = {
        "maxMailboxesPerEmail": None,
        "maxMailboxDepth": None,
        "maxSizeMailboxName": 255,
        "maxSizeAttachmentsPerEmail": settings.max_size_attachments_per_email,
        "emailQuerySortOptions": sort_options,
        "mayCreateTopLevelMailbox": True,
    }
    session_caps: dict[str, Any] = {CORE: settings.core_capability(), **(session_extra or {})}
    account_caps: dict[str, Any] = {CORE: {}}
    if MAIL in capabilities:
        session_caps[MAIL] = {}
        account_caps[MAIL] = mail_account
    if SUBMISSION in capabilities:
        session_caps[SUBMISSION] = {}
        account_caps[SUBMISSION] = submission_account_capability(day)
    if QUOTA in capabilities:
        session_caps[QUOTA] = {}
        account_caps[QUOTA] = {}
    if VACATION in capabilities:
        session_caps[VACATION] = {}
        account_caps[VACATION] = {}
    session: dict[str, Any] = {
        "capabilities": session_caps,
        "accounts": {
            account_id: {
                "name": address,
                "isPersonal": True,
                "isReadOnly": False,
                "accountCapabilities": account_caps,
            }
        },
        "primaryAccounts": {cap: account_id for cap in account_caps if cap != CORE},
        "username": address,
        "apiUrl": urls.api,
        "downloadUrl": urls.download,
        "uploadUrl": urls.upload,
        "eventSourceUrl": urls.eventsource,
    }
    session["state"] = session_state(session)
    return session


def session_state(session: dict[str, Any]) -> str:
    """A short digest of everything in the session but its state."""
    body = orjson.dumps({k: v for k, v in session.items() if k != "state"}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class SessionDocument:
    """One principal's Session object, built once: ``data`` (shared: never mutate it), its ``state`` and its
    JSON ``body`` (what GET /jmap/session answers)."""

    data: dict[str, Any]
    state: str
    body: bytes


class SessionDocuments:
    """The Session documents of the principals one JMAP app serves, built and hashed once each.

    Why a cache: every API response carries ``sessionState``, and building the document plus hashing it was a
    per-request cost for an answer that almost never changes. What a document holds (see
    :func:`build_session`): the server's limits, URLs, capabilities and sort options, and the principal's
    account id and address -- no mailbox, email or credential state. So the key is (account id, address) and
    what can change under a key is the capability set and the date: ``capabilities`` (the engine's) and the
    UTC day (the submission capability's FUTURERELEASE date moves with it) are compared on every read, and
    :meth:`add_session_capability` drops everything. The JMAP app owns one instance (no module-level state);
    at most ``limit`` documents are kept, least recently used go first.
    """

    def __init__(
        self,
        *,
        settings: JmapSettings,
        urls: Urls,
        capabilities: Callable[[], frozenset[str]],
        sort_options: list[str],
        limit: int = 10_000,
        clock: Callable[[], dt.date] = today,
    ) -> None:
        self.settings = settings
        self.urls = urls
        self.sort_options = sort_options
        self._capabilities = capabilities
        self._extra: dict[str, Any] = {}
        self._limit = max(1, limit)
        self._docs: OrderedDict[tuple[str, str], SessionDocument] = OrderedDict()
        self._built_for: frozenset[str] = capabilities()
        self._clock = clock
        self._day = clock()
        #: Documents built (not served from the cache): tests use it to see the cache work.
        self.builds = 0

    @property
    def extra(self) -> dict[str, Any]:
        """Session-level capabilities beyond core and mail (a copy: change them with add_session_capability)."""
        return dict(self._extra)

    def add_session_capability(self, name: str, value: Any) -> None:
        """Advertise a further session-level capability (e.g. RFC 8887's ``{url, supportsPush}``)."""
        self._extra[name] = value
        self._docs.clear()

    def get(self, account_id: str, address: str) -> SessionDocument:
        """The current document for this principal (built now if the cache has none or it is outdated)."""
        caps, day = self._capabilities(), self._clock()
        if caps != self._built_for or day != self._day:
            self._docs.clear()
            self._built_for, self._day = caps, day
        key = (account_id, address)
        doc = self._docs.get(key)
        if doc is not None:
            self._docs.move_to_end(key)
            return doc
        data = build_session(
            account_id=account_id,
            address=address,
            settings=self.settings,
            urls=self.urls,
            capabilities=caps,
            sort_options=self.sort_options,
            session_extra=self._extra,
            day=day,
        )
        doc = SessionDocument(data, data["state"], orjson.dumps(data))
        self.builds += 1
        self._docs[key] = doc
        if len(self._docs) > self._limit:
            self._docs.popitem(last=False)
        return doc
