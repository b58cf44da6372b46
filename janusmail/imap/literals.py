"""Large literals of one IMAP session: accepted into a spool file, or refused before their data is read.

The codec (sans-IO) stops at every literal above ``[spool] threshold`` with a
:class:`~janusmail.imap.codec.LargeLiteral` event; this module makes the decision for the session:

* only APPEND messages may be that large (anything else gets ``BAD [TOOBIG]``), and only after login;
* only while the session's credential is still good: a session whose credential was revoked, replaced or
  expired ends here with its ``* BYE [EXPIRED]`` (README, "Sessions end with their credential"), before it can
  fill a spool file and the in-flight budget with data nobody may store (its command would be refused anyway);
* a message over APPENDLIMIT (or the store's maximum) gets ``NO [TOOBIG]`` (``BAD`` for a non-synchronizing
  literal, whose data the codec then reads and throws away, as RFC 7888 lets a server do);
* the server-wide in-flight budget must have room for the announced size, otherwise ``NO [LIMIT]`` before the
  continuation (``BAD [LIMIT]`` for a non-synchronizing literal);
* accepted: a :class:`~janusmail.spool.Spool` becomes the literal's sink and the codec streams the data into
  it; for a synchronizing literal the ``+`` goes out now.

The spools of the command being received are closed (file deleted, budget returned) when the command has been
executed or refused, and when the connection ends, however that happens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from janusmail.imap.codec import LargeLiteral, serializer
from janusmail.spool import Spool, Spooler, spooler_for

if TYPE_CHECKING:  # pragma: no cover
    from janusmail.imap.session import ImapSession

__all__ = ["LiteralSpools"]

MIN_THRESHOLD = 16 * 1024
#: Commands whose literal is a message (APPEND; REPLACE, RFC 8508): only these may be big.
MESSAGE_COMMANDS = frozenset({"APPEND", "REPLACE", "UID REPLACE"})
BUSY_TEXT = "Too much mail is being uploaded to this server right now, try again later"


class LiteralSpools:
    """Per-session owner of large-literal spools (see the module docstring)."""

    def __init__(self, session: ImapSession) -> None:
        self.session = session
        self.spooler: Spooler = spooler_for(session.rt)
        self.active: list[Spool] = []
        parser = session.parser
        # Small literals (a LOGIN password, a search string) are never worth a file, whatever the setting.
        parser.spool_threshold = max(self.spooler.threshold, MIN_THRESHOLD)
        # One command keeps at most this much in memory (its text and small literals); anything beyond is a
        # large literal, which only an APPEND message may be.
        parser.max_memory = max(4 * self.spooler.threshold, 4 * parser.max_line)

    @property
    def stall_timeout(self) -> float:
        return self.spooler.stall_timeout

    async def request(self, ev: LargeLiteral) -> None:
        """Answer a LargeLiteral event: accept it into a new spool, or refuse it (and the whole command)."""
        s = self.session
        if s.state == "nonauth":
            self._refuse(ev, "BAD", None, "Log in first")
            return
        reason = await s.credential_problem()  # one primary-key read, as before every command
        if reason is not None:
            s.end_for_credential(reason)  # * BYE [EXPIRED]: the connection closes, the literal is never read
            s.parser.reject_literal()
            self.release()
            return
        if ev.command not in MESSAGE_COMMANDS:
            self._refuse(ev, "BAD", "TOOBIG", "Literal too large for this command")
            return
        limit = min(int(s.config.max_append_size), int(s.store.max_message_size))
        if ev.size > limit:
            self._refuse(ev, "NO" if ev.sync else "BAD", "TOOBIG", "Message exceeds APPENDLIMIT")
            return
        spool = self.spooler.open(ev.size, to_file=True)  # also a small one past the command's memory share
        if spool is None:
            self._refuse(ev, "NO" if ev.sync else "BAD", "LIMIT", BUSY_TEXT)
            return
        self.active.append(spool)
        s.parser.accept_literal(spool)
        if ev.sync:
            s.write(serializer.continuation("Ready for literal data"))

    def _refuse(self, ev: LargeLiteral, status: str, code: str | None, text: str) -> None:
        self.session.write(serializer.tagged(ev.tag or "*", status, code, text))
        self.session.parser.reject_literal()
        self.release()  # earlier literals of the same command (MULTIAPPEND) are abandoned with it

    async def drain(self) -> None:
        """Move received data toward the spool files (the adapter awaits this after every read)."""
        for spool in self.active:
            await spool.drain()

    def release(self) -> None:
        """The command is over (executed, refused or cut off): drop its spools."""
        spools, self.active = self.active, []
        for spool in spools:
            spool.close()
