"""RFC 9698 GETJMAPACCESS: where the same mailstore is reachable over JMAP.

One predicate decides both this command and the JMAPACCESS capability (``ImapSession.jmap_access``, which
needs a known JMAP URL and a live credential and asks ``Authenticator.jmap_access_ok`` afresh each time): when it does not hold, the command is refused with BAD
exactly as if it did not exist (R9), so a client never learns more than the capability list told it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from janusmail.imap.codec import Command, responses
from janusmail.observability import logs

from . import handler
from .base import Result

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession

log = logging.getLogger("janusmail.imap")


@handler("GETJMAPACCESS", states=("auth", "selected"))
async def getjmapaccess(s: ImapSession, cmd: Command) -> Result:
    url = s.rt.config.session_url  # None: no JMAP server known (JMAP off here, no public URL), so no JMAPACCESS
    if url is None or not await s.jmap_access():
        return Result.bad("Unknown command GETJMAPACCESS")
    try:
        line = responses.jmapaccess_response(url)
    except ValueError:  # a URL with CR/LF can never be sent as a quoted string
        return Result.no("JMAP access is misconfigured", "SERVERBUG")
    s.write(line)
    # (the line carries this connection's sid and account: the JMAP requests that follow name the account too)
    logs.event(log, logging.INFO, "imap.getjmapaccess", url=url)
    return Result.ok("GETJMAPACCESS completed")
