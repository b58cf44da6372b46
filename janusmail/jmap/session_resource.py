"""The JMAP Session resource (RFC 8620 §2): what a client learns first, and the URL templates it then uses.

Why every URL comes from ``public_url``: behind a reverse proxy the listener's own address is not what the
client sees, and RFC 9698 JMAPACCESS advertises ``public_url + "/.well-known/jmap"``, so the whole session
must live under that same base. Without a configured one, ``public_url`` is the listener's own bound address
(``Config.settle_public_url``), so every URL here names a port that answers. The ``state`` is a digest of the rest: it changes exactly when anything a
client caches from the session changes (RFC 8620 §2: "state ... MUST change if any of the other
properties change").
"""

from __future__ import annotations

import hashlib
import importlib
from typing import Any
from urllib.parse import urlsplit

import orjson

from janusmail.jmap.engine import CORE
from janusmail.jmap.settings import JmapSettings

__all__ = ["MAIL", "PATHS", "Urls", "base_path", "build_session", "email_sort_options", "session_state"]

MAIL = "urn:ietf:params:jmap:mail"

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
_DEFAULT_EMAIL_SORTS = ["receivedAt", "sentAt", "size", "from", "to", "subject"]


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


def email_sort_options() -> list[str]:
    """What ``emailQuerySortOptions`` promises: the Email module's own list when it declares one."""
    try:
        module = importlib.import_module("janusmail.jmap.types.email")
    except ImportError:
        return list(_DEFAULT_EMAIL_SORTS)
    for name in ("EMAIL_QUERY_SORT_OPTIONS", "SORT_OPTIONS"):
        value = getattr(module, name, None)
        if value:
            return sorted(value)
    return list(_DEFAULT_EMAIL_SORTS)


def build_session(
    *,
    account_id: str,
    address: str,
    settings: JmapSettings,
    urls: Urls,
    capabilities: frozenset[str],
    sort_options: list[str],
    session_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Session object for one authenticated principal (its own account only, read-write).
    ``session_extra``: further session-level capabilities (e.g. RFC 8887 WebSocket's ``{url, supportsPush}``)."""
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
