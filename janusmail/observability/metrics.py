"""The metrics facade the doors call: one method per kind of event, nothing of Prometheus in its signature.

Why a facade: the doors (and the store's group commit) must not import prometheus-client, which is loaded only
when ``--metrics`` is on, and must not care how labels are spelled or bounded. With metrics off the runtime
holds this base class, whose methods do nothing (a call costs well under a microsecond); with metrics on it
holds :class:`janusmail.observability.prom.PrometheusMetrics`. Each door calls it from one place: the IMAP
session's command completion, the JMAP engine's method loop, the HTTP middleware, the LMTP and submission
handlers, the outbound runner.

Label values are bounded here or by the caller: doors, kinds and results are the constants below, IMAP
command and JMAP method names are registered ones (the callers pass ``UNKNOWN`` for anything else), HTTP
routes are endpoint names. A client can never mint a new time series.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.config import Config

__all__ = [
    "AUTH_DOORS",
    "AUTH_KINDS",
    "CONNECTION_DOORS",
    "DELIVERY_DOORS",
    "DELIVERY_RESULTS",
    "PUSH_KINDS",
    "Metrics",
    "build_metrics",
    "smtp_result",
]

#: Where connections arrive. For plain JMAP HTTP a "connection" is a request in progress (ASGI sees requests,
#: not TCP connections); EventSource streams and WebSockets are long-lived requests of their own.
CONNECTION_DOORS = ("imap", "jmap_http", "jmap_eventsource", "jmap_websocket", "lmtp", "submission")
#: Doors that log clients in (``admin``: the web admin's login form and HTTP Basic, janusmail/admin).
AUTH_DOORS = ("imap", "jmap", "submission", "admin")
#: What janusmail.auth tells apart about a refused login (the ``kind`` of :meth:`Metrics.auth_failure`).
#: ``bad_credentials`` covers a wrong password, an unknown address, a wrong or revoked app password and a
#: credential kind the policy refuses for that door: the authenticator answers them alike on purpose.
AUTH_KINDS = ("bad_credentials", "token_invalid", "token_expired", "authz_denied", "malformed", "throttled",
              "busy", "unsupported_scheme")
DELIVERY_DOORS = ("lmtp", "local", "remote", "submission")
#: ``accepted`` (2xx), ``refused`` (5xx: permanent), ``deferred`` (4xx: the sender or queue tries again).
DELIVERY_RESULTS = ("accepted", "refused", "deferred")
#: Live push listeners: IMAP sessions in IDLE, EventSource streams, JMAP WebSockets.
PUSH_KINDS = ("imap_idle", "eventsource", "websocket")


def smtp_result(reply: str) -> str:
    """The delivery result an SMTP/LMTP reply stands for."""
    first = reply[:1]
    return "accepted" if first == "2" else "deferred" if first == "4" else "refused"


class Metrics:
    """Metrics off: every method does nothing. See the module docstring; the Prometheus subclass documents
    what each one records."""

    enabled = False

    def connection_opened(self, door: str) -> None:
        pass

    def connection_closed(self, door: str) -> None:
        pass

    def imap_command(self, command: str, status: str, seconds: float | None) -> None:
        """``status``: the tagged response's ``OK``/``NO``/``BAD``; ``seconds`` None for a command that held
        a conversation with the client (IDLE, AUTHENTICATE with challenges): its time is the client's."""

    def jmap_call(self, method: str, result: str, seconds: float) -> None:
        """``result``: ``ok`` or the method error type."""

    def http_request(self, route: str, status: int, seconds: float | None) -> None:
        pass

    def auth_failure(self, door: str, kind: str) -> None:
        pass

    def session_revoked(self, door: str, reason: str) -> None:
        """A logged-in session ended because its credential died (``reason``: janusmail.auth.revocation's)."""

    def delivery(self, door: str, result: str) -> None:
        pass

    def push_subscriber(self, kind: str, delta: int) -> None:
        pass

    def group_commit(self, calls: int, commit_seconds: float, total_seconds: float) -> None:
        """One shared write transaction of the store: its calls, its COMMIT's time, its whole time."""


def build_metrics(config: Config, *, worker: bool) -> Metrics:
    """Prometheus metrics when ``[metrics] listen`` is set (for a worker of ``serve --workers``: in
    prometheus-client's multiprocess mode, summed by the supervisor), else the no-op facade."""
    if not config.metrics.listen:
        return Metrics()
    from .prom import PrometheusMetrics

    return PrometheusMetrics(multiprocess=worker)
