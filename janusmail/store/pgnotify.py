"""Change events across server nodes sharing one PostgreSQL database (LISTEN/NOTIFY).

The in-process notifier only hears writes made by this process. With PostgreSQL several nodes share the
store, so each write transaction also issues ``NOTIFY`` (delivered by PostgreSQL only if and when it commits),
and every node runs one listener thread that republishes other nodes' events to its local subscribers (IMAP
IDLE, JMAP push). Events from this node are ignored by its own listener: they were published locally already.
Each worker process of ``serve --workers`` is a node of its own here (its own store, node id and listener), so
PostgreSQL needs no change bus between workers. The payload is :mod:`.change_payload`'s, as on that bus.
"""

from __future__ import annotations

import logging
import secrets
import threading
from typing import TYPE_CHECKING

import orjson
import sqlalchemy as sa

from . import change_payload
from .notifier import ChangeEvent

if TYPE_CHECKING:
    from .store import Store

CHANNEL = "janusmail_changes"
log = logging.getLogger("janusmail.store.pgnotify")


def new_node_id() -> str:
    return secrets.token_hex(6)


def notify(conn: sa.Connection, ev: ChangeEvent, node_id: str) -> None:
    """Queue the event inside the write transaction (PostgreSQL sends it at commit)."""
    payload = change_payload.encode(ev, node_id).decode()
    conn.execute(sa.text("SELECT pg_notify(:ch, :p)"), {"ch": CHANNEL, "p": payload})


class Listener:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)
        #: A channel only this listener hears: :meth:`stop` notifies it, so the thread stops at once instead of
        #: at the end of its current wait for notifications (a second on every close of a server's store).
        self._wake = f"janusmail_wake_{secrets.token_hex(8)}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            try:
                with self.store.engine.begin() as conn:
                    conn.execute(sa.text("SELECT pg_notify(:ch, '')"), {"ch": self._wake})
            except Exception:  # noqa: BLE001 - the database is gone: the wait below ends at its timeout anyway
                log.debug("could not wake the change listener", exc_info=True)
        self._thread.join(5)

    def _event(self, payload: dict) -> ChangeEvent:
        return change_payload.decode(payload, self.store)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                raw = self.store.engine.raw_connection()
                try:
                    dbapi = raw.driver_connection
                    dbapi.autocommit = True
                    dbapi.execute(f"LISTEN {CHANNEL}")
                    dbapi.execute(f"LISTEN {self._wake}")
                    while not self._stop.is_set():
                        for note in dbapi.notifies(timeout=1.0):
                            if note.channel == self._wake:
                                break
                            try:
                                payload = orjson.loads(note.payload)
                                if payload.get("n") != self.store.node_id:
                                    self.store.notifier.deliver(self._event(payload))
                            except Exception:  # noqa: BLE001 - one bad payload must not stop the listener
                                log.exception("bad change notification")
                finally:
                    raw.invalidate()
            except Exception:  # noqa: BLE001 - database restart: reconnect after a pause
                log.warning("change listener lost its connection; reconnecting", exc_info=True)
                self._stop.wait(2)
