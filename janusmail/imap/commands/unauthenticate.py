"""UNAUTHENTICATE (RFC 8437): back to the not-authenticated state on the same connection.

Everything that belonged to the login goes (:meth:`~janusmail.imap.session.ImapSession.unauthenticate`): the
selected mailbox, the credential and its revocation checks, the change subscription, the per-account connection
slot, and what ENABLE turned on. TLS stays (it belongs to the connection); a COMPRESS layer ends with the
tagged OK, which still goes out compressed (RFC 8437 §4.1: the adapter stops compressing after it). The tagged
OK carries the not-authenticated capability list, for the client's next LOGIN or AUTHENTICATE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap.codec import serializer
from janusmail.imap.commands import Result, handler

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.codec import Command
    from janusmail.imap.session import ImapSession


@handler("UNAUTHENTICATE", states=("auth", "selected"), capabilities=("UNAUTHENTICATE",))
async def unauthenticate(s: ImapSession, cmd: Command) -> Result:
    s.unauthenticate()
    return Result.ok("Not authenticated any more", serializer.capability_code(s.capabilities_preauth()))
