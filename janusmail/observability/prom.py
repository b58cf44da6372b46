"""The Prometheus side of the metrics facade (imported only when ``[metrics] listen`` is set).

Every metric lives in a registry of this object's own (never prometheus-client's global one): two servers in
one process (tests) keep their numbers apart, and nothing is module state. Labelled children are looked up
once per label set and kept, so a call on a hot path (an IMAP command) is a dictionary lookup, one counter
increment and one histogram observation.

Under ``serve --workers N`` each worker runs in prometheus-client's multiprocess mode (the supervisor set
``PROMETHEUS_MULTIPROC_DIR``): every value is written to that worker's files in the directory, and the
supervisor's :class:`~prometheus_client.multiprocess.MultiProcessCollector` sums them. Gauges of live things
(open connections, push listeners) use the ``livesum`` mode, so a worker that exits stops counting once the
supervisor marks it dead; its counters and histograms stay in the sum.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from janusmail.auth import revocation

from .metrics import (
    AUTH_DOORS,
    AUTH_KINDS,
    CONNECTION_DOORS,
    DELIVERY_DOORS,
    DELIVERY_RESULTS,
    PUSH_KINDS,
    Metrics,
)

__all__ = ["LATENCY_BUCKETS", "PrometheusMetrics"]

#: Seconds: fine at the bottom (most IMAP commands and JMAP methods take a millisecond or two).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: Calls per group commit (janusmail/store/groupcommit.py groups at most MAX_GROUP = 64).
GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

#: janusmail.auth.revocation's reasons, as label values.
REVOCATION_KINDS = {
    revocation.PASSWORD_CHANGED: "password_changed",
    revocation.APP_PASSWORD_REVOKED: "app_password_revoked",
    revocation.TOKEN_EXPIRED: "token_expired",
    revocation.TOKEN_REVOKED: "token_revoked",
    revocation.ACCOUNT_GONE: "account_gone",
    revocation.ACCOUNT_DISABLED: "account_disabled",
}

_STATUS = {"OK": "ok", "NO": "no", "BAD": "bad"}


class PrometheusMetrics(Metrics):
    """See the module docstring; the metric names and labels are listed in the README."""

    enabled = True

    def __init__(self, *, multiprocess: bool = False) -> None:
        if multiprocess and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            raise RuntimeError("a serve --workers worker needs PROMETHEUS_MULTIPROC_DIR (set by its supervisor)")
        self.multiprocess = multiprocess
        # No ``*_created`` series: multiprocess mode has none, and one process should show what N show.
        disable_created_metrics()
        self.registry = r = CollectorRegistry()
        self._open = Gauge("janusmail_connections_open", "Open connections by door (jmap_http: requests in "
                           "progress)", ["door"], registry=r, multiprocess_mode="livesum")
        self._accepted = Counter("janusmail_connections", "Connections accepted by door (jmap_http: requests)",
                                 ["door"], registry=r)
        self._imap_total = Counter("janusmail_imap_commands", "IMAP commands by name and tagged result",
                                   ["command", "result"], registry=r)
        self._imap_seconds = Histogram("janusmail_imap_command_duration_seconds", "IMAP command latency, "
                                       "command to tagged response", ["command"], registry=r,
                                       buckets=LATENCY_BUCKETS)
        self._jmap_total = Counter("janusmail_jmap_method_calls", "JMAP method calls by name and result (ok or "
                                   "the method error type)", ["method", "result"], registry=r)
        self._jmap_seconds = Histogram("janusmail_jmap_method_duration_seconds", "JMAP method call latency",
                                       ["method"], registry=r, buckets=LATENCY_BUCKETS)
        self._http_total = Counter("janusmail_http_requests", "HTTP requests on the JMAP listener by route and "
                                   "status", ["route", "status"], registry=r)
        self._http_seconds = Histogram("janusmail_http_request_duration_seconds", "HTTP request latency by "
                                       "route (push streams and WebSockets excluded)", ["route"], registry=r,
                                       buckets=LATENCY_BUCKETS)
        self._auth = Counter("janusmail_auth_failures", "Refused logins by door and kind", ["door", "kind"],
                             registry=r)
        self._revoked = Counter("janusmail_sessions_revoked", "Logged-in sessions ended because their "
                                "credential died", ["door", "reason"], registry=r)
        self._deliveries = Counter("janusmail_deliveries", "Deliveries per recipient (submission: per message) "
                                   "by door and result", ["door", "result"], registry=r)
        self._push = Gauge("janusmail_push_subscribers", "Live push listeners: IMAP IDLE, EventSource, "
                           "WebSocket", ["kind"], registry=r, multiprocess_mode="livesum")
        self._group_calls = Histogram("janusmail_store_group_commit_calls", "Write calls sharing one "
                                      "transaction and commit", registry=r, buckets=GROUP_BUCKETS)
        self._commit_seconds = Histogram("janusmail_store_commit_duration_seconds", "Time of the COMMIT of "
                                         "one group", registry=r, buckets=LATENCY_BUCKETS)
        self._group_seconds = Histogram("janusmail_store_group_commit_duration_seconds", "Time of one group "
                                        "commit, first call to COMMIT done", registry=r, buckets=LATENCY_BUCKETS)
        # children by label values, made once (labels() costs more than the increment itself)
        self._imap: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._jmap: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._http: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self._doors = {d: (self._open.labels(d), self._accepted.labels(d)) for d in CONNECTION_DOORS}
        self._pushes = {k: self._push.labels(k) for k in PUSH_KINDS}
        # the series an alert is written against exist from the start, at zero
        for door in AUTH_DOORS:
            for kind in AUTH_KINDS:
                self._auth.labels(door, kind)
        for door in DELIVERY_DOORS:
            for result in DELIVERY_RESULTS:
                self._deliveries.labels(door, result)

    def connection_opened(self, door: str) -> None:
        gauge, counter = self._doors[door]
        gauge.inc()
        counter.inc()

    def connection_closed(self, door: str) -> None:
        self._doors[door][0].dec()

    def imap_command(self, command: str, status: str, seconds: float | None) -> None:
        key = (command, status)
        pair = self._imap.get(key)
        if pair is None:
            pair = self._imap[key] = (self._imap_total.labels(command, _STATUS.get(status, status.lower())),
                                      self._imap_seconds.labels(command))
        pair[0].inc()
        if seconds is not None:
            pair[1].observe(seconds)

    def jmap_call(self, method: str, result: str, seconds: float) -> None:
        key = (method, result)
        pair = self._jmap.get(key)
        if pair is None:
            pair = self._jmap[key] = (self._jmap_total.labels(method, result), self._jmap_seconds.labels(method))
        pair[0].inc()
        pair[1].observe(seconds)

    def http_request(self, route: str, status: int, seconds: float | None) -> None:
        key = (route, status)
        pair = self._http.get(key)
        if pair is None:
            pair = self._http[key] = (self._http_total.labels(route, str(status)), self._http_seconds.labels(route))
        pair[0].inc()
        if seconds is not None:
            pair[1].observe(seconds)

    def auth_failure(self, door: str, kind: str) -> None:
        self._auth.labels(door, kind if kind in AUTH_KINDS else "bad_credentials").inc()

    def session_revoked(self, door: str, reason: str) -> None:
        self._revoked.labels(door, REVOCATION_KINDS.get(reason, "other")).inc()

    def delivery(self, door: str, result: str) -> None:
        self._deliveries.labels(door, result).inc()

    def push_subscriber(self, kind: str, delta: int) -> None:
        self._pushes[kind].inc(delta)

    def group_commit(self, calls: int, commit_seconds: float, total_seconds: float) -> None:
        self._group_calls.observe(calls)
        self._commit_seconds.observe(commit_seconds)
        self._group_seconds.observe(total_seconds)
