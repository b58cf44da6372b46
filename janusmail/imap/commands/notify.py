"""NOTIFY (RFC 5465): ``NOTIFY NONE`` and ``NOTIFY SET [STATUS] (filter events) ...``. The rules and the
notifications are in janusmail/imap/notify.py; the session sends them at the end of each command and while
idling (janusmail/imap/session.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap import notify as notify_mod
from janusmail.imap.codec import Command
from janusmail.imap.codec.args import NotifyArgs

from . import handler
from .base import Result

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession


@handler("NOTIFY", states=("auth", "selected"), capabilities=("NOTIFY",))
async def notify(s: ImapSession, cmd: Command) -> Result:
    args = cmd.args
    assert isinstance(args, NotifyArgs)
    if args.none:
        s.notify = None
        return Result.ok("NOTIFY completed")
    try:
        spec = notify_mod.compile_spec(args, lambda wire: "/".join(s.parse_mailbox(wire)))
    except notify_mod.NotifyError as exc:
        return Result(exc.status, exc.text, exc.code)  # type: ignore[arg-type]
    s.notify = await notify_mod.start(s, spec, send_status=args.status)
    return Result.ok("NOTIFY completed")
