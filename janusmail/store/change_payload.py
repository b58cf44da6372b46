"""The wire form of a :class:`~janusmail.store.notifier.ChangeEvent`, shared by PostgreSQL NOTIFY (other nodes)
and the local change bus (other worker processes of ``serve --workers`` on SQLite).

Why one form: both carry the same hint to the same receiver (``Notifier.deliver``) and both must stay small
(NOTIFY payloads end at 8000 bytes; a bus message is one datagram). A write that touched more than
``MAX_BOXES`` mailboxes sends none of them; the receiver reads them back from the store (the mailboxes
stamped with that modseq). The change log stays the truth: the event only says when to look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa

from .notifier import ChangeEvent

if TYPE_CHECKING:
    from .store import Store

__all__ = ["MAX_BOXES", "decode", "encode"]

#: Mailbox ids sent with an event (NOTIFY payloads are limited to 8000 bytes).
MAX_BOXES = 40


def encode(ev: ChangeEvent, node_id: str) -> bytes:
    """``ev`` as JSON; ``node_id`` names the sending store, so its own listener can skip what it published."""
    boxes = sorted(ev.mailbox_ids)
    return orjson.dumps({"n": node_id, "a": ev.account_id, "m": ev.modseq, "k": sorted(ev.kinds),
                         "b": boxes if len(boxes) <= MAX_BOXES else None})


def decode(payload: dict[str, Any], store: Store) -> ChangeEvent:
    """The event of a decoded payload (the touched mailboxes read back when there were too many to send)."""
    boxes = payload.get("b")
    if boxes is None:
        from .schema import mailboxes

        with store.engine.connect() as conn:
            boxes = [r[0] for r in conn.execute(sa.select(mailboxes.c.id).where(
                mailboxes.c.account_id == payload["a"], mailboxes.c.highest_modseq == payload["m"]))]
    return ChangeEvent(payload["a"], int(payload["m"]), frozenset(payload["k"]), frozenset(boxes))
