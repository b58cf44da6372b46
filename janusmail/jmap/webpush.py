"""JMAP push to PushSubscription URLs (RFC 8620 §7.2), encrypted per RFC 8291 when the client gave keys.

How a change travels: a committed write calls the notifier's ``on_commit`` observers on its own thread (only in
the process that made it, so several workers or nodes never POST one change twice); the dispatcher hands the
event to the event loop, merges the events of one account that arrive within ``BATCH_WINDOW`` into one
StateChange (type -> newest state), reads the account's verified, unexpired subscriptions (one indexed query)
and POSTs to each, with retries and backoff for temporary failures. A push service that answers 404 or 410
says the subscription is gone: the subscription is destroyed (RFC 8030 §7.3).

The payload parts (StateChange, PushVerification, URL rules, RFC 8291 encryption via ``http_ece``) are plain
functions; :class:`PushDispatcher` is the asyncio part, started and stopped with the JMAP listener.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import http_ece
import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from janusmail.auth import revocation
from janusmail.auth.authenticator import AuthResult
from janusmail.jmap.push import PUSH_TYPES
from janusmail.store.notifier import ChangeEvent
from janusmail.store.push_subscriptions import PushSubscription

__all__ = [
    "BadPushUrl",
    "PushDispatcher",
    "check_keys",
    "check_url",
    "encrypt",
    "state_change_body",
    "verification_body",
]

log = logging.getLogger("janusmail.jmap.webpush")

#: Events of one account arriving this close together become one StateChange (a delivery touches Email,
#: Mailbox and Thread in one event; an IMAP client flagging 100 messages one by one makes 100 events).
BATCH_WINDOW = 0.05
#: Attempts per POST (the first included) and the first backoff; a failure after the last is dropped (the
#: client catches up from its states at the next change or when it comes back).
ATTEMPTS = 4
BACKOFF = 0.5
#: RFC 8030 §5.2: how long the push service may keep the message for an offline device, in seconds.
TTL = 86_400
TIMEOUT = 10.0

if TYPE_CHECKING:  # pragma: no cover
    import httpx


class BadPushUrl(ValueError):
    """A push URL the server will not POST to."""


def check_url(url: Any) -> str:
    """The URL if it may receive pushes: https, or http to a loopback address (tests, local bridges). A push
    URL is an address the server connects to on the client's word, so nothing else is accepted."""
    if type(url) is not str or not url or len(url) > 2048:
        raise BadPushUrl("url must be an https URL")
    parts = urlsplit(url)
    try:
        literal = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        literal = None
    if parts.scheme == "https" and parts.hostname:
        if literal is not None and not literal.is_global and not literal.is_loopback:
            # a private, link-local (cloud metadata) or reserved address: not a push service
            raise BadPushUrl("url must not name a private or reserved address")
        return url
    if parts.scheme == "http" and parts.hostname:
        host = parts.hostname
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return url
    raise BadPushUrl("url must be https (plain http only to a loopback address)")


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def check_keys(keys: Any) -> tuple[str, str] | None:
    """RFC 8291 keys ``{"p256dh": ..., "auth": ...}`` (base64url): a P-256 public point and a 16-octet
    secret. Raises ValueError when they cannot be used (the client would never be able to read a push)."""
    if keys is None:
        return None
    if type(keys) is not dict or set(keys) != {"p256dh", "auth"}:
        raise ValueError("keys must be null or {p256dh, auth}")
    p256dh, auth = keys["p256dh"], keys["auth"]
    if type(p256dh) is not str or type(auth) is not str:
        raise ValueError("keys must be base64url strings")
    try:
        point = _b64url_decode(p256dh)
        secret = _b64url_decode(auth)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"keys are not a P-256 public key and secret: {exc}") from None
    if len(secret) != 16:
        raise ValueError("keys.auth must be 16 octets")
    return p256dh, auth


def state_change_body(changed: dict[str, dict[str, int]]) -> bytes:
    """A StateChange (RFC 8620 §7.1) for {account id: {type: state}}."""
    out = {acct: {t: str(s) for t, s in types.items()} for acct, types in changed.items()}
    return orjson.dumps({"@type": "StateChange", "changed": out})


def verification_body(subscription_id: str, code: str) -> bytes:
    """The PushVerification POSTed once, at creation (RFC 8620 §7.2.2)."""
    return orjson.dumps({"@type": "PushVerification", "pushSubscriptionId": subscription_id, "verificationCode": code})


def encrypt(body: bytes, keys: tuple[str, str]) -> bytes:
    """RFC 8291 message encryption (aes128gcm, RFC 8188) for the user agent's keys, with a fresh
    application-server key pair per message (its public key rides in the record header's keyid)."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    p256dh, auth = keys
    # keyid left out: http_ece then puts the server key's public point there, as RFC 8291 §4 requires
    return http_ece.encrypt(
        body, private_key=server_key, dh=_b64url_decode(p256dh), auth_secret=_b64url_decode(auth), version="aes128gcm"
    )


def request_parts(body: bytes, keys: tuple[str, str] | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one push POST."""
    headers = {"TTL": str(TTL), "Content-Type": "application/json"}
    if keys is None:
        return body, headers
    headers["Content-Encoding"] = "aes128gcm"
    headers["Content-Type"] = "application/octet-stream"
    return encrypt(body, keys), headers


def live_subscriptions(store: Any, account_id: str) -> tuple[list[PushSubscription], list[PushSubscription]]:
    """On a store thread: (subscriptions to POST to, subscriptions whose credential died). RFC 8620 §7.2: a
    subscription is tied to the credential that created it, and dies when that is revoked or replaced; the
    same check as an IMAP session's (janusmail.auth.revocation), against the epoch when it was made."""
    live: list[PushSubscription] = []
    dead: list[PushSubscription] = []
    now = time.time()
    for sub in store.push_subscriptions.deliverable(account_id):
        made_by = AuthResult(sub.account_id, "", sub.credential.method, sub.credential.credential_id)
        verdict = revocation.check(store, made_by, sub.credential.baseline, now=now)
        (live if verdict.reason is None else dead).append(sub)
    return live, dead


class PushDispatcher:
    """Batches this process's committed changes per account and POSTs StateChanges to the subscriptions."""

    def __init__(self, store: Any, *, client: httpx.AsyncClient | None = None) -> None:
        self.store = store
        self._client = client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, dict[str, int]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- life --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.store.notifier.on_commit.append(self._observe)
        with contextlib.suppress(Exception):  # a sweep that fails (disk full) is retried at the next start
            await self.store.call(self.store.push_subscriptions.sweep)

    async def close(self) -> None:
        self._closed = True
        with contextlib.suppress(ValueError):
            self.store.notifier.on_commit.remove(self._observe)
        for task in [*self._flushers.values(), *self._sends]:
            task.cancel()
        for task in [*self._flushers.values(), *self._sends]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._client is not None:
            await self._client.aclose()

    # -- verification (called by PushSubscription/set) ----------------------------------------------------

    def verify_soon(self, sub: PushSubscription) -> None:
        """POST the PushVerification in the background: /set answers without waiting on the client's URL."""
        self._spawn(self._post(sub, verification_body(sub.id, sub.verification_code), verification=True))

    # -- changes ------------------------------------------------------------------------------------------

    def _observe(self, ev: ChangeEvent) -> None:
        """On the committing thread: hand the event to the loop (cheap; no I/O here)."""
        loop = self._loop
        if loop is None or self._closed or not (ev.kinds & set(PUSH_TYPES)):
            return
        with contextlib.suppress(RuntimeError):  # loop closed: the server is stopping
            loop.call_soon_threadsafe(self._absorb, ev)

    def _absorb(self, ev: ChangeEvent) -> None:
        states = self._pending.setdefault(ev.account_id, {})
        for kind in ev.kinds:
            if kind in PUSH_TYPES and ev.modseq > states.get(kind, 0):
                states[kind] = ev.modseq
        if ev.account_id not in self._flushers:
            self._flushers[ev.account_id] = asyncio.ensure_future(self._flush_later(ev.account_id))

    async def _flush_later(self, account_id: str) -> None:
        try:
            await asyncio.sleep(BATCH_WINDOW)  # the batching window, not a wait for an event
        finally:
            self._flushers.pop(account_id, None)
        states = self._pending.pop(account_id, {})
        if not states:
            return
        try:
            subs, dead = await self.store.call(live_subscriptions, self.store, account_id)
        except Exception:  # noqa: BLE001 - a failed read drops one notification, never the dispatcher
            log.warning("could not read push subscriptions of %s", account_id, exc_info=True)
            return
        for sub in dead:
            await self._forget(sub)
        for sub in subs:
            wanted = {t: s for t, s in states.items() if sub.wants(t)}
            if wanted:
                self._spawn(self._post(sub, state_change_body({account_id: wanted})))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def _post(self, sub: PushSubscription, body: bytes, *, verification: bool = False) -> None:
        import httpx  # at the first push, not at every server start: its import cost every process start

        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False)
        delay = BACKOFF
        for attempt in range(ATTEMPTS):
            try:
                content, headers = request_parts(body, sub.keys)
                resp = await self._client.post(sub.url, content=content, headers=headers)
            except (httpx.HTTPError, OSError) as exc:
                status, why = None, str(exc) or type(exc).__name__
            else:
                status, why = resp.status_code, resp.reason_phrase
                if 200 <= status < 300:
                    return
                if status in (404, 410):  # RFC 8030 §7.3: the subscription is gone at the push service
                    await self._forget(sub)
                    return
                if 400 <= status < 500 and status not in (408, 425, 429):
                    log.info("push to %s refused (%s %s)", sub.id, status, why)
                    return
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(delay)  # backoff before a retry
                delay *= 2
        log.info("push to %s failed after %d attempts (%s)%s", sub.id, ATTEMPTS, why,
                 " (verification)" if verification else "")

    async def _forget(self, sub: PushSubscription) -> None:
        with contextlib.suppress(Exception):
            await self.store.call(self.store.push_subscriptions.destroy, sub.account_id, sub.id)


