"""The JMAP front's numbers: one object read from the config, used both to advertise and to enforce.

Why one object: RFC 8620 §2 makes the Session's core capability a promise ("maxSizeUpload", ...). If the
advertised figure and the enforced one came from different places they would drift. The config may set any
of these under ``[jmap]`` (e.g. ``max_size_upload = 20000000``); absent keys take the defaults below, which
meet or beat the RFC's suggested minimums.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from janusmail.jmap.engine import Limits
from janusmail.jmap.slots import AccountSlots

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.config import Config

__all__ = ["COLLATIONS", "JmapSettings"]

#: RFC 4790 collations the server implements for /query sorts and string filters (see collation.py).
COLLATIONS = ("i;ascii-numeric", "i;ascii-casemap", "i;unicode-casemap")


@dataclass(frozen=True, slots=True)
class JmapSettings:
    max_size_upload: int = 50_000_000
    max_concurrent_upload: int = 4
    max_size_request: int = 10_000_000
    #: Requests of one account running at once (0: no cap). Why 6: a request's method calls run on the store's
    #: reader threads (6, ``Store(workers=6)``; writes on the one writer thread on SQLite), so one account
    #: alone can keep every reader busy, and a 7th request of the same account would only wait in the shared
    #: executor queue, in front of other accounts. Beyond the limit a request waits in its account's own
    #: queue (below) instead of being refused (janusmail/jmap/slots.py).
    max_concurrent_requests: int = 6
    #: How many requests (and uploads) of one account may wait for a slot, and for how long (milliseconds),
    #: before the next is refused with 429: a burst of a few more parallel requests than advertised is
    #: slowed down, not refused; a client that floods still meets a bound (memory, sockets).
    max_queued_requests: int = 64
    queue_wait_ms: int = 5_000
    max_calls_in_request: int = 16
    max_objects_in_get: int = 500
    max_objects_in_set: int = 500
    max_size_attachments_per_email: int = 50_000_000
    #: EventSource ``ping`` clamping (RFC 8620 §7.3: the minimum must be <= 30 s, the maximum >= 300 s).
    min_ping: int = 30
    max_ping: int = 300
    #: Open EventSource connections one principal may hold at once.
    max_event_sources: int = 16

    @classmethod
    def from_config(cls, config: Config) -> JmapSettings:
        """Read ``config.jmap.<field>`` for every field here (``None``: the default above). Every field has its
        key in :class:`janusmail.config.JmapConfig`: a missing one fails here, at start, not silently."""
        section = config.jmap
        values: dict[str, Any] = {}
        for f in fields(cls):
            value = getattr(section, f.name)
            if value is not None:
                if type(value) is not int or value < 0:
                    raise ValueError(f"jmap.{f.name} must be a non-negative integer")
                values[f.name] = value
        settings = cls(**values)
        if settings.min_ping > 30 or settings.max_ping < 300 or settings.min_ping > settings.max_ping:
            raise ValueError("jmap ping bounds must satisfy min_ping <= 30 and max_ping >= 300")
        return settings

    def slots(self, limit: int) -> AccountSlots:
        """Per-account slots for ``limit`` (``max_concurrent_requests`` or ``max_concurrent_upload``) with
        this configuration's queue bounds."""
        return AccountSlots(limit, max_queue=self.max_queued_requests, wait=self.queue_wait_ms / 1000)

    def limits(self) -> Limits:
        """The engine's Limits built from the same numbers the Session advertises."""
        return Limits(
            max_size_request=self.max_size_request,
            max_calls_in_request=self.max_calls_in_request,
            max_objects_in_get=self.max_objects_in_get,
            max_objects_in_set=self.max_objects_in_set,
        )

    def core_capability(self) -> dict[str, Any]:
        """The Session's ``urn:ietf:params:jmap:core`` object."""
        return {
            "maxSizeUpload": self.max_size_upload,
            "maxConcurrentUpload": self.max_concurrent_upload,
            **self.limits().capability(),
            "maxConcurrentRequests": self.max_concurrent_requests,
            "collationAlgorithms": list(COLLATIONS),
        }
