"""Incremental, sans-IO IMAP command parser: bytes in, events out.

The work is split in two layers:

* **Framing** (this module) finds command boundaries: lines, literal headers (``{n}``, ``{n+}``,
  ``~{n}``), literal payloads. It enforces the size limits and, when it refuses something, skips exactly
  what the client will still send (a non-synchronizing literal's data, the rest of the command) so the
  connection stays usable.
* **Grammar** (:mod:`.grammar`) parses a fully framed command into typed arguments. When a literal header
  arrives it also checks the command so far, so a broken command is refused before its literal is read.

After AUTHENTICATE, IDLE, STARTTLS, COMPRESS and UNAUTHENTICATE the parser *pauses*: following bytes stay
buffered, because they may belong to a different conversation (SASL lines, ``DONE``, a TLS handshake,
compressed data, or uncompressed data again once UNAUTHENTICATE ended compression). The session then calls :meth:`CommandParser.expect_line`, :meth:`~CommandParser.resume` or
:meth:`~CommandParser.take_buffer`, and ``feed(b"")`` to continue.

Large literals (memory): with ``spool_threshold`` set, a literal bigger than that, or one that would take the
command's in-memory bytes past ``max_memory``, is never gathered here. The parser emits
:class:`~.events.LargeLiteral` and pauses *before* reading its data; the session either hands over a
:class:`~.events.LiteralSink` (:meth:`CommandParser.accept_literal`), which then receives the data piece by
piece as it arrives and stands in for the bytes in the parsed command, or refuses it
(:meth:`CommandParser.reject_literal`). The parser itself stays free of I/O: what the sink does with the
pieces (a temporary file) is the session's business. Without ``spool_threshold`` every literal is
gathered in memory as before, up to ``max_literal`` / ``max_command``.
"""

from __future__ import annotations

import base64
import binascii
import re

from .events import Command, ContinuationRequest, Event, LargeLiteral, Line, LiteralSink, ParseError
from .grammar import parse_command

__all__ = ["BARRIER_COMMANDS", "CommandParser", "decode_sasl_response"]

#: Commands after which the parser stops reading until the session says how to read what follows.
BARRIER_COMMANDS = frozenset({"AUTHENTICATE", "IDLE", "STARTTLS", "COMPRESS", "UNAUTHENTICATE"})

#: Validate the command so far at its first literal and at each synchronizing one among its first N literals
#: (bounded re-parsing; see ``_step_command``).
_EARLY_CHECKS = 32
_HINT_RE = re.compile(rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+) ((?:[Uu][Ii][Dd] )?[A-Za-z]+)')
_TAG_ONLY_RE = re.compile(rb'([^\x00-\x20\x7f-\xff(){%*"\\+]+) ')

_COMMAND, _LITERAL, _SKIP, _DISCARD, _LINE, _LINE_DISCARD = range(6)


def _literal_header(content: bytes) -> tuple[int, int, bool, bool] | None:
    """If ``content`` (a line without CRLF) ends with a literal header, return
    (start index, size, synchronizing, literal8). Sizes too large to matter come back as -1."""
    if not content.endswith(b"}"):
        return None
    brace = content.rfind(b"{")
    if brace < 0:
        return None
    inner = content[brace + 1 : -1]
    sync = True
    if inner.endswith(b"+"):
        inner = inner[:-1]
        sync = False
    if not inner or not inner.isdigit():
        return None
    lit8 = brace > 0 and content[brace - 1] == 0x7E  # "~"
    start = brace - 1 if lit8 else brace
    size = int(inner) if len(inner) <= 19 else -1
    return start, size, sync, lit8


def _strip_eol(line: bytes) -> bytes:
    return line[:-2] if line.endswith(b"\r\n") else line[:-1]


class CommandParser:
    """Feed it bytes from the client; it returns :data:`~.events.Event` objects. Never raises.

    ``max_line`` bounds each line of command text, ``max_literal`` each literal, ``max_command`` the whole
    command (text plus literals; default four literals' worth), ``max_depth`` parenthesis/NOT/OR nesting.
    ``spool_threshold`` (None: never) makes literals above it :class:`~.events.LargeLiteral` events, and
    ``max_memory`` (default ``max_command``) bounds what one command may hold in memory (its text and the
    literals gathered here): a literal that would pass it is a LargeLiteral too (when spooling) or refused.
    """

    def __init__(
        self,
        max_line: int = 64 * 1024,
        max_literal: int = 64 * 1024 * 1024,
        max_depth: int = 32,
        *,
        max_command: int | None = None,
        spool_threshold: int | None = None,
        max_memory: int | None = None,
    ) -> None:
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_depth = max_depth
        self.max_command = max_command if max_command is not None else max(4 * max_literal, max_line)
        self.spool_threshold = spool_threshold
        self._max_memory = max_memory
        self._buf = bytearray()
        self._pos = 0  # first unconsumed byte
        self._scan = 0  # where to resume looking for LF
        self._state = _COMMAND
        self._paused = False
        self._texts: list[bytes] = []
        self._lits: list[tuple[bytes | LiteralSink, bool]] = []
        self._size = 0
        self._need = 0
        self._lit8 = False
        self._chunks: list[bytes] = []
        self._tail = b""
        self._mem = 0  # bytes of the current command held here (text + gathered literals)
        self._sink: LiteralSink | None = None  # where the current literal's data goes, if not to _chunks
        self._awaiting_sink = False  # paused after a LargeLiteral until accept_literal / reject_literal
        self._sync = True  # the current literal is synchronizing

    @property
    def max_memory(self) -> int:
        return self._max_memory if self._max_memory is not None else self.max_command

    @max_memory.setter
    def max_memory(self, value: int | None) -> None:
        self._max_memory = value

    # -- session controls -----------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        """True after a barrier command (or a Line) until the session calls resume/expect_line."""
        return self._paused

    @property
    def buffered(self) -> int:
        """Unconsumed bytes held by the parser."""
        return len(self._buf) - self._pos

    @property
    def in_literal_command(self) -> bool:
        """True while a command with a literal is partly received (a literal's data, or the text after it,
        is still to come): the adapter applies its shorter stall timeout then."""
        return bool(self._lits) or self._state in (_LITERAL, _SKIP)

    def expect_line(self) -> None:
        """Read the next line raw and emit it as :class:`Line` (SASL response, IDLE's ``DONE``).
        The parser pauses again after that line. Call ``feed(b"")`` to process buffered input."""
        self._reset_command()
        self._state = _LINE
        self._paused = False

    def resume(self) -> None:
        """Go back to reading commands. Call ``feed(b"")`` to process buffered input."""
        if self._awaiting_sink:  # nobody took the large literal: it is refused
            self.reject_literal()
            return
        if self._state == _LINE:
            self._state = _COMMAND
        self._paused = False

    def accept_literal(self, sink: LiteralSink) -> None:
        """After a :class:`LargeLiteral`: stream its data into ``sink`` (which then stands in for the bytes
        in the parsed command). For a synchronizing literal the session writes ``+`` as well. Call
        ``feed(b"")`` to process buffered input."""
        if not self._awaiting_sink:
            raise RuntimeError("accept_literal() without a pending LargeLiteral")
        self._awaiting_sink = False
        self._sink = sink
        self._paused = False

    def take_buffer(self) -> bytes:
        """Remove and return the unconsumed input. After STARTTLS the session discards it (plaintext
        injected before the handshake must not be executed); after COMPRESS it is compressed data."""
        data = bytes(self._buf[self._pos :])
        self._buf.clear()
        self._pos = self._scan = 0
        return data

    def reject_literal(self) -> None:
        """The session answered a :class:`ContinuationRequest` or a :class:`LargeLiteral` with NO/BAD instead
        of ``+``: forget the command. A refused non-synchronizing large literal's data is read and thrown
        away with the rest of its command (RFC 7888 lets the server do that or close the connection). A
        client that sent a synchronizing literal's data anyway is skipped like a non-synchronizing literal."""
        if self._state != _LITERAL:
            return
        if self._awaiting_sink:
            self._awaiting_sink = False
            self._paused = False
            if not self._sync:
                need = self._need
                self._reset_command()
                self._need = need
                self._state = _SKIP
                return
        early = self._chunks or self._pos < len(self._buf)
        self._reset_command()
        if early:
            self._state = _SKIP
        else:
            self._state = _COMMAND
            self._need = 0

    # -- feeding --------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        if data:
            self._buf += data
        events: list[Event] = []
        try:
            while not self._paused and self._step(events):
                pass
        except Exception as exc:  # a bug here must cost one command, not the connection's server task
            self._buf.clear()
            self._pos = self._scan = 0
            self._reset_command()
            self._state = _COMMAND
            events.append(ParseError(None, f"Internal parser error ({type(exc).__name__})", "SERVERBUG"))
        if self._pos:
            del self._buf[: self._pos]
            self._scan = max(0, self._scan - self._pos)
            self._pos = 0
        return events

    def _step(self, events: list[Event]) -> bool:
        state = self._state
        if state == _COMMAND:
            return self._step_command(events)
        if state == _LITERAL or state == _SKIP:
            return self._step_literal()
        if state == _DISCARD or state == _LINE_DISCARD:
            return self._step_discard(events)
        return self._step_line(events)

    # -- states ---------------------------------------------------------------------------------------

    def _find_line(self) -> int:
        nl = self._buf.find(b"\n", self._scan)
        if nl < 0:
            self._scan = len(self._buf)
        return nl

    def _step_command(self, events: list[Event]) -> bool:
        nl = self._find_line()
        if nl < 0:
            if len(self._buf) - self._pos <= self.max_line:
                return False
            # An endless line: refuse now, then throw bytes away until its end.
            events.append(
                self._error("Command line too long", "TOOBIG", self._buf[self._pos : self._pos + 200])
            )
            self._tail = bytes(self._buf[-64:])
            self._pos = self._scan = len(self._buf)
            self._reset_command()
            self._state = _DISCARD
            return True
        line = bytes(self._buf[self._pos : nl + 1])
        self._pos = self._scan = nl + 1
        content = _strip_eol(line)
        if not self._texts and not content:
            return True  # tolerate stray empty lines between commands
        header = _literal_header(content)
        if len(line) > self.max_line:
            events.append(self._error("Command line too long", "TOOBIG", content))
            self._abandon(header)
            return True
        text = content[: header[0]] if header else content
        if b"\x00" in text:
            events.append(self._error("NUL octet in command", "CLIENTBUG", content))
            self._abandon(header)
            return True
        self._texts.append(text)
        self._size += len(content)
        self._mem += len(content)
        if header is None:
            result = parse_command(b"\x00".join(self._texts), self._lits, max_depth=self.max_depth)
            self._reset_command()
            if result is not None:
                events.append(result)
                if isinstance(result, Command) and result.name in BARRIER_COMMANDS:
                    self._paused = True
            return True
        _, size, sync, lit8 = header
        if size < 0 or size > self.max_literal or self._size + size > self.max_command:
            events.append(self._error("Literal too big", "TOOBIG", self._texts[0]))
            self._abandon(header)
            return True
        large = self.spool_threshold is not None and (
            size > self.spool_threshold or self._mem + size > self.max_memory
        )
        if self._mem > self.max_memory or (not large and self._mem + size > self.max_memory):
            events.append(self._error("Command too long", "TOOBIG", self._texts[0]))
            self._abandon(header)
            return True
        # The command so far is checked before its literal is read where that changes what happens: at a
        # synchronizing literal the client waits for our "+" (a broken command gets its BAD instead), and at the
        # first literal (a command that cannot be right is refused before any data is gathered). Not at the
        # later non-synchronizing ones: their data comes anyway, the full parse at the end refuses the same
        # faults, and re-parsing the growing prefix at each one made a 20-message MULTIAPPEND (LITERAL+) parse
        # 210 message headers instead of 20: 11% of the IMAP process's CPU under the APPEND profile (issue 10).
        if len(self._lits) < _EARLY_CHECKS and (sync or not self._lits):
            verdict = parse_command(
                b"\x00".join(self._texts) + b"\x00",
                [*self._lits, (b"", lit8)],
                partial=True,
                max_depth=self.max_depth,
            )
            if verdict is not None:
                events.append(verdict)
                self._abandon(header)
                return True
        self._size += size
        self._need = size
        self._lit8 = lit8
        self._sync = sync
        self._state = _LITERAL
        if large:
            # Stop before the data: the session must say where it goes (or refuse it) first.
            tag, name = self._hints(self._texts[0])
            self._awaiting_sink = True
            self._paused = True
            events.append(LargeLiteral(tag, name, size, sync, lit8))
            return True
        self._mem += size
        if sync:
            tag, name = self._hints(self._texts[0])
            events.append(ContinuationRequest("Ready for literal data", tag, name, size))
        return True

    def _step_literal(self) -> bool:
        if self._need:
            avail = len(self._buf) - self._pos
            if not avail:
                return False
            take = min(avail, self._need)
            if self._state == _LITERAL:
                piece = bytes(self._buf[self._pos : self._pos + take])
                if self._sink is not None:
                    self._sink.write(piece)
                else:
                    self._chunks.append(piece)
            self._pos += take
            self._need -= take
            if self._need:
                return True
        self._scan = self._pos
        if self._state == _LITERAL:
            value: bytes | LiteralSink = b"".join(self._chunks) if self._sink is None else self._sink
            self._lits.append((value, self._lit8))
            self._chunks = []
            self._sink = None
            self._state = _COMMAND
        else:
            self._tail = b""
            self._state = _DISCARD  # the rest of the refused command follows the literal
        return True

    def _step_discard(self, events: list[Event]) -> bool:
        nl = self._find_line()
        if nl < 0:
            if self._pos == len(self._buf):
                return False
            self._tail = (self._tail + bytes(self._buf[self._pos :]))[-64:]
            self._pos = self._scan = len(self._buf)
            return False
        line_end = (self._tail + bytes(self._buf[self._pos : nl + 1]))[-66:]
        self._pos = self._scan = nl + 1
        self._tail = b""
        if self._state == _LINE_DISCARD:
            events.append(ParseError(None, "Line too long", "TOOBIG"))
            self._state = _COMMAND
            self._paused = True
            return True
        header = _literal_header(_strip_eol(line_end))
        if header is not None and not header[2]:
            self._need = header[1] if header[1] >= 0 else 2**63
            self._state = _SKIP
        else:
            self._state = _COMMAND
        return True

    def _step_line(self, events: list[Event]) -> bool:
        nl = self._find_line()
        if nl < 0:
            if len(self._buf) - self._pos > self.max_line:
                self._tail = b""
                self._pos = self._scan = len(self._buf)
                self._state = _LINE_DISCARD
                return True
            return False
        line = bytes(self._buf[self._pos : nl + 1])
        self._pos = self._scan = nl + 1
        self._state = _COMMAND
        self._paused = True
        if len(line) > self.max_line:
            events.append(ParseError(None, "Line too long", "TOOBIG"))
        else:
            events.append(Line(_strip_eol(line)))
        return True

    # -- helpers --------------------------------------------------------------------------------------

    def _abandon(self, header: tuple[int, int, bool, bool] | None) -> None:
        """Drop the current command. A refused non-synchronizing literal is still coming: skip it and
        the rest of its command. After a synchronizing one the client waits for ``+`` and gives up."""
        self._reset_command()
        if header is not None and not header[2]:
            self._need = header[1] if header[1] >= 0 else 2**63
            self._state = _SKIP
        else:
            self._state = _COMMAND

    def _reset_command(self) -> None:
        self._texts = []
        self._lits = []
        self._chunks = []
        self._size = 0
        self._need = 0
        self._mem = 0
        self._sink = None
        self._awaiting_sink = False

    def _error(self, text: str, code: str, fallback: bytes | bytearray) -> ParseError:
        first = self._texts[0] if self._texts else bytes(fallback)
        tag, name = self._hints(first)
        return ParseError(tag, text, code, command=name)

    @staticmethod
    def _hints(first: bytes) -> tuple[str | None, str | None]:
        m = _HINT_RE.match(first)
        if m is not None:
            return m.group(1).decode("ascii"), m.group(2).decode("ascii").upper()
        m = _TAG_ONLY_RE.match(first)
        return (m.group(1).decode("ascii") if m else None), None


def decode_sasl_response(line: bytes) -> bytes | None:
    """Decode an AUTHENTICATE continuation line (a :class:`Line`): None when the client cancelled
    with ``*``; raises ValueError for invalid base64 (answer BAD)."""
    line = line.strip(b" ")
    if line == b"*":
        return None
    try:
        return base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64 in SASL response") from exc
