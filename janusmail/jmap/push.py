"""JMAP push over EventSource (RFC 8620 §7.3), driven by the store's change notifier.

Why the notifier and not polling: every committed write (LMTP delivery, IMAP STORE, JMAP /set, CLI) publishes
one ChangeEvent carrying its modseq and the kinds it touched, after commit. A type's state is the modseq of
its newest change, so the event alone says the new state of each kind it names: no database read per event.

Event ids encode the full state of all push types (``"<Mailbox>.<Email>.<Thread>.<EmailDelivery>.<Identity>.<EmailSubmission>.<Quota>.<VacationResponse>"``),
so a client reconnecting with ``Last-Event-ID`` gets one catch-up ``state`` event naming whatever moved meanwhile.
The ``EmailDelivery`` state is the modseq of the newest email creation; live, it moves only on events the
store marks as deliveries.

The sans-IO part (query parsing, event formatting, state arithmetic) is plain functions; ``event_stream`` is
the async generator the HTTP route streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.jmap.credential_watch import CredentialWatch

__all__ = [
    "PUSH_TYPES",
    "EventSourceParams",
    "PushEvent",
    "current_states",
    "decode_event_id",
    "encode_event_id",
    "event_stream",
    "format_event",
    "parse_params",
    "state_change",
    "watch",
]

#: Only ever appended to: an event id of an older server is then a prefix of today's (see ``decode_event_id``).
PUSH_TYPES = ("Mailbox", "Email", "Thread", "EmailDelivery", "Identity", "EmailSubmission", "Quota",
              "VacationResponse")
#: How many states the oldest event ids still accepted carry (ids issued before VacationResponse was pushed).
OLDEST_EVENT_ID_PARTS = 7


class BadParams(ValueError):
    """The query string is not a valid EventSource request (answered 400)."""


@dataclass(frozen=True, slots=True)
class EventSourceParams:
    types: frozenset[str]
    close_after_state: bool
    #: Seconds between pings when nothing else is sent; 0 = never.
    ping: int


def parse_params(query: dict[str, str], min_ping: int, max_ping: int) -> EventSourceParams:
    """Read ``types``, ``closeafter`` and ``ping``; unknown type names are ignored (they may be types this
    server does not have), ``*`` or an absent ``types`` means all."""
    raw_types = query.get("types", "*")
    if raw_types.strip() == "*":
        types = frozenset(PUSH_TYPES)
    else:
        types = frozenset(t.strip() for t in raw_types.split(",") if t.strip() in PUSH_TYPES)
    closeafter = query.get("closeafter", "no")
    if closeafter not in ("state", "no"):
        raise BadParams("closeafter must be 'state' or 'no'")
    raw_ping = query.get("ping", "0")
    if not raw_ping.isascii() or not raw_ping.isdigit() or len(raw_ping) > 9:
        raise BadParams("ping must be a non-negative integer")
    ping = int(raw_ping)
    if ping:
        ping = min(max(ping, min_ping, 1), max_ping)
    return EventSourceParams(types, closeafter == "state", ping)


def current_states(store: Any, account_id: str) -> dict[str, int]:
    """Each push type's current state (modseq) for the account (runs on a store worker). The push types are
    the store's change kinds plus EmailDelivery: the snapshot reads them on one connection, and a kind it does
    not (yet) cover is read on its own."""
    states = store.changes.snapshot(account_id)
    for kind in PUSH_TYPES:
        if kind not in states:
            states[kind] = store.changes.kind_state(account_id, kind)
    return states


def encode_event_id(states: dict[str, int]) -> str:
    return ".".join(str(states.get(t, 0)) for t in PUSH_TYPES)


def decode_event_id(value: str | None) -> dict[str, int] | None:
    if not value:
        return None
    parts = value.strip().split(".")
    if not OLDEST_EVENT_ID_PARTS <= len(parts) <= len(PUSH_TYPES):
        return None
    if not all(p.isascii() and p.isdigit() and len(p) <= 19 for p in parts):
        return None
    # An id from before a type was added lacks its state: 0, so the catch-up reports that type if it ever
    # changed (over-reporting once, which RFC 8620 §7.1 allows; never missing a change).
    states = dict.fromkeys(PUSH_TYPES, 0)
    states.update(zip(PUSH_TYPES, (int(p) for p in parts), strict=False))
    return states


def state_change(account_id: str, states: dict[str, int], kinds: set[str]) -> dict[str, Any]:
    return {"@type": "StateChange", "changed": {account_id: {k: str(states[k]) for k in PUSH_TYPES if k in kinds}}}


def format_event(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One server-sent event. orjson never emits a raw newline, so ``data`` is a single line."""
    out = b"event: " + event.encode() + b"\n"
    if event_id is not None:
        out += b"id: " + event_id.encode() + b"\n"
    return out + b"data: " + orjson.dumps(data) + b"\n\n"


@dataclass(frozen=True, slots=True)
class PushEvent:
    """What ``watch`` yields: ``open`` once subscribed, then ``state`` (with the StateChange) or ``ping``."""

    kind: str
    states: dict[str, int]
    change: dict[str, Any] | None = None


async def watch(
    store: Any,
    account_id: str,
    types: frozenset[str],
    *,
    previous: dict[str, int] | None = None,
    ping: int = 0,
    closing: asyncio.Event | None = None,
    expires_at: float | None = None,
    credential: CredentialWatch | None = None,
) -> AsyncIterator[PushEvent]:
    """Push events for one account until the server closes or the credential expires, or (with ``credential``)
    is revoked or replaced: the subscription's ``Credential`` events are checked, no second subscription
    needed. The consumer stops iterating for everything else. With ``previous`` states, a catch-up ``state``
    event comes first."""
    sub = store.notifier.subscribe(account_id)  # before reading the states: no change can fall between
    closing_wait: asyncio.Future[Any] | None = asyncio.ensure_future(closing.wait()) if closing else None
    try:
        states = await store.call(current_states, store, account_id)
        if credential is not None and await credential.problem() is not None:
            return  # died between authentication and subscribing: its event came before we listened
        yield PushEvent("open", dict(states))
        if previous is not None:
            moved = {t for t in types if states[t] != previous.get(t)}
            if moved:
                yield PushEvent("state", dict(states), state_change(account_id, states, moved))
        while True:
            timeout: float | None = ping or None
            if expires_at is not None:
                left = expires_at - time.time()
                if left <= 0:
                    return
                timeout = left if timeout is None else min(timeout, left)
            waiter = asyncio.ensure_future(sub.wait())
            waits: set[asyncio.Future[Any]] = {waiter}
            if closing_wait is not None:
                waits.add(closing_wait)
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if waiter not in done:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter
            if closing_wait is not None and closing_wait in done:
                return
            if waiter in done:
                events = waiter.result()
                if credential is not None and await credential.hears(events) is not None:
                    return
                moved = set()
                for ev in events:
                    for kind in ev.kinds:
                        if kind in states and ev.modseq > states[kind]:
                            states[kind] = ev.modseq
                            if kind in types:
                                moved.add(kind)
                if moved:
                    yield PushEvent("state", dict(states), state_change(account_id, states, moved))
                continue
            if ping and (expires_at is None or expires_at > time.time()):
                yield PushEvent("ping", dict(states))
    finally:
        sub.close()
        if closing_wait is not None:
            closing_wait.cancel()


async def event_stream(
    store: Any,
    account_id: str,
    params: EventSourceParams,
    *,
    last_event_id: str | None = None,
    closing: asyncio.Event | None = None,
    expires_at: float | None = None,
    credential: CredentialWatch | None = None,
) -> AsyncIterator[bytes]:
    """Yield SSE bytes until the client goes away, the server closes, the credential expires or dies (see
    ``watch``), or (with ``closeafter=state``) one state event was sent. A dead credential just ends the
    response: RFC 8620 defines no event for it, and the client's reconnection then meets a 401."""
    events = watch(
        store, account_id, params.types, previous=decode_event_id(last_event_id), ping=params.ping,
        closing=closing, expires_at=expires_at, credential=credential,
    )  # fmt: skip
    try:
        async for ev in events:
            if ev.kind == "open":
                # A comment line first: proxies and clients see the stream open at once.
                yield b": janus push\n\n"
            elif ev.kind == "ping":
                yield format_event("ping", {"interval": params.ping})
            else:
                yield format_event("state", ev.change, encode_event_id(ev.states))
                if params.close_after_state:
                    return
    finally:
        await events.aclose()
