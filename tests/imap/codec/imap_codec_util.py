"""Helpers shared by the IMAP codec tests (a plain module: this test directory is not a package)."""

from __future__ import annotations

from janusmail.imap.codec import Command, CommandParser, ContinuationRequest, Event, ParseError


def feed_all(data: bytes, parser: CommandParser | None = None, *, resume: bool = True) -> list[Event]:
    """Feed ``data`` in one go; resume automatically after barrier commands (IDLE, AUTHENTICATE...)."""
    parser = parser or CommandParser()
    events = parser.feed(data)
    while resume and parser.paused:
        parser.resume()
        events += parser.feed(b"")
    return events


def feed_chunks(chunks: list[bytes], parser: CommandParser | None = None) -> list[Event]:
    """Feed chunk by chunk, resuming after barriers, as a session loop would."""
    parser = parser or CommandParser()
    events: list[Event] = []
    for chunk in chunks:
        events += parser.feed(chunk)
        while parser.paused:
            parser.resume()
            events += parser.feed(b"")
    return events


def without_continuations(events: list[Event]) -> list[Event]:
    return [e for e in events if not isinstance(e, ContinuationRequest)]


def parse_one(line: bytes | str) -> Command | ParseError:
    """Parse exactly one command given without its final CRLF (literals in the text are fed along);
    fail unless that yields exactly one Command or ParseError."""
    data = (line.encode() if isinstance(line, str) else line) + b"\r\n"
    events = without_continuations(feed_all(data))
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, (Command, ParseError)), event
    return event


def cmd(line: bytes | str) -> Command:
    event = parse_one(line)
    assert isinstance(event, Command), event
    return event


def bad(line: bytes | str) -> ParseError:
    event = parse_one(line)
    assert isinstance(event, ParseError), event
    return event
