"""What :class:`~janusmail.imap.codec.parser.CommandParser` hands to the session.

Five event types, all immutable. The session loop is a ``match`` over them; nothing in here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .args import CommandArgs

__all__ = ["Command", "ContinuationRequest", "Event", "LargeLiteral", "Line", "LiteralSink", "ParseError"]


@runtime_checkable
class LiteralSink(Protocol):
    """Where the payload of a :class:`LargeLiteral` goes instead of the parser's memory.

    The parser calls ``write`` with each piece as it arrives, in order, and then puts the sink itself where
    the literal's bytes would be (e.g. ``AppendMessage.data``). ``write`` must not raise: a sink that cannot
    store (disk full) remembers the failure and reports it when the command is executed.
    """

    def write(self, data: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Command:
    """A complete, syntactically valid command.

    ``name`` is upper case; UID-prefixed commands read ``"UID FETCH"``, ``"UID STORE"`` and so on.
    ``args`` is the typed argument dataclass for that command (``NoArgs`` when it takes none).
    """

    tag: str
    name: str
    args: CommandArgs

    @property
    def uid(self) -> bool:
        """True for the ``UID ...`` forms, where sequence sets hold UIDs."""
        return self.name.startswith("UID ")


@dataclass(frozen=True, slots=True)
class ContinuationRequest:
    """A synchronizing literal header ``{n}`` was read: the adapter must now write ``+ text``.

    The session may refuse instead (for example an APPEND over APPENDLIMIT): it writes a tagged NO/BAD
    and calls ``parser.reject_literal()``; the client then sends no data for this command.
    """

    text: str
    tag: str | None = None
    command: str | None = None
    size: int = 0


@dataclass(frozen=True, slots=True)
class LargeLiteral:
    """A literal header announced more octets than the parser keeps in memory (``spool_threshold``).

    The parser has paused before reading any of the data. The session decides, then calls exactly one of:

    * ``parser.accept_literal(sink)``: the data will be streamed into ``sink`` (for a synchronizing literal
      the session also writes ``+``);
    * ``parser.reject_literal()``: the session wrote a tagged NO/BAD. A synchronizing literal's client sends
      nothing more; a non-synchronizing literal's data (already on its way) is read and thrown away, with
      the rest of its command.
    """

    tag: str | None
    command: str | None
    size: int
    sync: bool
    literal8: bool = False


@dataclass(frozen=True, slots=True)
class ParseError:
    """A command that cannot be executed; the session answers ``tag <status> [code] text``.

    ``tag`` is None when even the tag was unreadable (answer with ``* BAD``). ``status`` is ``"BAD"``
    except where the RFCs ask for NO (an unsupported SEARCH charset gets ``NO [BADCHARSET ...]``).
    ``command`` names the command when it was recognised, for logs and error texts.
    """

    tag: str | None
    text: str
    code: str | None = None
    status: str = "BAD"
    command: str | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """One raw line (without its CRLF) read in ``expect_line()`` mode: an AUTHENTICATE continuation
    response or the ``DONE`` that ends IDLE."""

    data: bytes


Event = Command | ContinuationRequest | LargeLiteral | ParseError | Line
