"""Sans-IO IMAP codec: command parsing and response serialisation, no sockets, no store.

Reading::

    parser = CommandParser()
    for event in parser.feed(data):
        match event:
            case Command(tag, "UID FETCH", FetchArgs() as args): ...
            case ContinuationRequest(): write(continuation())
            case LargeLiteral(): parser.accept_literal(sink) or parser.reject_literal()  # when spooling
            case ParseError(tag, text, code, status): write(tagged(tag, status, code, text))  # tag None -> "*"
            case Line(data): ...  # only after parser.expect_line()

Writing: :mod:`.serializer` (strings, status lines, response codes, FETCH) and :mod:`.responses`
(ready-made untagged data). Sequence sets: :mod:`.sequence`. Mailbox names: :mod:`.mutf7`.
"""

from . import args, mutf7, responses, searchkeys, serializer
from .args import *  # noqa: F403
from .events import Command, ContinuationRequest, Event, LargeLiteral, Line, LiteralSink, ParseError
from .parser import BARRIER_COMMANDS, CommandParser, decode_sasl_response
from .sequence import MAX_NUMBER, NumberSet, SequenceSet

__all__ = [
    "BARRIER_COMMANDS",
    "MAX_NUMBER",
    "Command",
    "CommandParser",
    "ContinuationRequest",
    "Event",
    "LargeLiteral",
    "Line",
    "LiteralSink",
    "NumberSet",
    "ParseError",
    "SequenceSet",
    "args",
    "decode_sasl_response",
    "mutf7",
    "responses",
    "searchkeys",
    "serializer",
    *args.__all__,
]
