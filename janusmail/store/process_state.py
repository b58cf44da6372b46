"""What every server process sees live, as store facts (``store.process_state``): its open connections and its
recent failed logins, so that the web admin of one worker or node shows those of all of them.

Why the store: with ``serve --workers N`` (and with several nodes on one PostgreSQL database) each process has
its own connection registry (janusmail/connections.py) and its own failed-login throttle
(janusmail/auth/throttle.py), and the doors never talk to each other. The store is the one thing they all
share, on both backends, so each process publishes a snapshot of both as one row (one document per process: a
page view needs all of it, never one entry) and the admin reads every row whose heartbeat is fresh. A process
that dies without withdrawing its row stops refreshing it, so its row stops counting after
:data:`STALE_AFTER` and is deleted by the next publish after :data:`FORGET_AFTER`.

Freshness: a publisher looks at its registry and throttle every few seconds and writes only when something
changed, or to renew the heartbeat (janusmail.connections.publish_forever); the admin reads its own process
live. Times are stored absolute (unix seconds), so a row read later still ages correctly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import orjson
import sqlalchemy as sa

from .schema import metadata
from .writes import writes

__all__ = ["FORGET_AFTER", "STALE_AFTER", "ConnectionInfo", "FailedLogins", "ProcessReport", "ProcessState",
           "process_state_table"]

#: A row whose heartbeat is older than this many seconds is a process that stopped publishing: not shown.
STALE_AFTER = 90
#: ... and older than this, deleted (by any process's next publish).
FORGET_AFTER = 3600

# The table of migration 0018, declared beside the only code that reads and writes it.
process_state_table = sa.Table(
    "process_state",
    metadata,
    sa.Column("process", sa.String(64), primary_key=True),  # the publishing Store's node id
    sa.Column("label", sa.String(200), nullable=False),  # host and pid, for the operator
    sa.Column("heartbeat", sa.BigInteger, nullable=False),  # unix seconds of the last publish
    sa.Column("connections", sa.Text, nullable=False),  # JSON: a list of ConnectionInfo fields
    sa.Column("failed_logins", sa.Text, nullable=False),  # JSON: a list of FailedLogins fields
)
_t = process_state_table


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One open connection as the admin sees it; ``account_id`` etc. are ``None`` before login. ``id`` is the
    registry's ticket, unique within its process; ``where`` names that process ("" for the reading one)."""

    id: int
    door: str
    peer: str
    opened_at: float
    tls: bool
    account_id: str | None
    address: str | None
    method: str | None
    credential_id: str | None
    where: str = ""


@dataclass(frozen=True, slots=True)
class FailedLogins:
    """Recent failed logins of one client for one account in one process's throttle: ``last_at`` the last
    failure, ``refused_until`` when the pair is heard again (the past when it is not refused)."""

    client: str
    account: str
    failures: int
    last_at: float
    refused_until: float
    where: str = ""


@dataclass(frozen=True, slots=True)
class ProcessReport:
    """What one other process published: its label, when, its connections and failed logins (each with
    ``where`` set to the label)."""

    process: str
    label: str
    heartbeat: int
    connections: tuple[ConnectionInfo, ...]
    failed_logins: tuple[FailedLogins, ...]


def _encode(entries: list) -> str:
    return orjson.dumps([asdict(e) for e in entries]).decode()


def _decode(kind: type, text: str, label: str) -> tuple:
    """The published items as ``kind``; fields this version does not know are left out (another node of a shared
    PostgreSQL may run a newer version during a rolling upgrade: its row must not break this node's admin view)."""
    known = kind.__dataclass_fields__
    return tuple(kind(**{**{k: v for k, v in item.items() if k in known}, "where": label})
                 for item in orjson.loads(text))


class ProcessState:
    def __init__(self, store) -> None:  # noqa: ANN001 - the Store (import cycle)
        self._store = store

    @writes
    def publish(self, process: str, label: str, connections: list[ConnectionInfo],
                failed_logins: list[FailedLogins], now: int) -> None:
        """Replace ``process``'s row, heartbeat ``now``; rows silent since :data:`FORGET_AFTER` go too. No mail
        change: a plain small write, no modseq, no event."""
        with self._store.transaction() as conn:
            conn.execute(sa.delete(_t).where(sa.or_(_t.c.process == process, _t.c.heartbeat < now - FORGET_AFTER)))
            conn.execute(sa.insert(_t).values(process=process, label=label[:200], heartbeat=now,
                                              connections=_encode(connections),
                                              failed_logins=_encode(failed_logins)))

    @writes
    def withdraw(self, process: str) -> None:
        """``process`` is stopping: what it saw is gone with it."""
        with self._store.transaction() as conn:
            conn.execute(sa.delete(_t).where(_t.c.process == process))

    def others(self, process: str, now: int) -> list[ProcessReport]:
        """The fresh rows of every process but ``process`` (the reader's own, which it reads live), by label."""
        q = (sa.select(_t).where(_t.c.process != process, _t.c.heartbeat >= now - STALE_AFTER)
             .order_by(_t.c.label, _t.c.process))
        with self._store.read() as conn:
            rows = conn.execute(q).all()
        return [ProcessReport(r.process, r.label, int(r.heartbeat), _decode(ConnectionInfo, r.connections, r.label),
                              _decode(FailedLogins, r.failed_logins, r.label)) for r in rows]
