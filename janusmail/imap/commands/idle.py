"""IDLE (RFC 2177, RFC 9051 §6.3.13): ``+ idling``, live updates, ``DONE``. The machinery is in the session,
which owns the parser's line mode and the notifier subscription."""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap.codec import Command

from . import handler
from .base import Result

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession


@handler("IDLE", states=("auth", "selected"))
async def idle(s: ImapSession, cmd: Command) -> Result | None:
    await s.start_idle(cmd)
    return None  # completed by DONE (the session writes the tagged OK)
