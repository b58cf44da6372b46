"""Large literals: with ``spool_threshold`` the parser stops before their data (LargeLiteral), streams the data into
the session's sink piece by piece, and never gathers it in memory; refused ones are skipped exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from janusmail.imap.codec import (
    AppendArgs,
    Command,
    CommandParser,
    ContinuationRequest,
    LargeLiteral,
    LiteralSink,
    ParseError,
)


class Sink:
    """A LiteralSink that records what it was given, piece by piece."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.pieces.append(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.pieces)


def parser(threshold: int = 100, **kw) -> CommandParser:  # noqa: ANN003
    return CommandParser(spool_threshold=threshold, **kw)


def test_sink_protocol_is_runtime_checkable() -> None:
    assert isinstance(Sink(), LiteralSink)


def test_non_sync_large_literal_pauses_before_its_data_then_streams_into_the_sink() -> None:
    p = parser()
    body = b"Subject: x\r\n\r\n" + b"y" * 1000
    events = p.feed(b"a APPEND INBOX {%d+}\r\n" % len(body) + body[:300])
    assert events == [LargeLiteral("a", "APPEND", len(body), False, False)]
    assert p.paused and p.in_literal_command
    assert p.buffered == 300  # nothing of the data was taken before the session decided
    sink = Sink()
    p.accept_literal(sink)
    assert p.feed(b"") == []
    assert sink.data == body[:300] and p.buffered == 0
    for i in range(300, len(body), 128):  # the rest arrives in pieces; each goes straight to the sink
        assert p.feed(body[i : i + 128]) == []
        assert p.buffered == 0
    assert sink.data == body
    events = p.feed(b"\r\nb NOOP\r\n")
    assert [type(e) for e in events] == [Command, Command]
    args = events[0].args
    assert isinstance(args, AppendArgs) and args.messages[0].data is sink
    assert not p.in_literal_command


def test_sync_large_literal_has_no_continuation_of_its_own() -> None:
    p = parser()
    events = p.feed(b"a APPEND INBOX (\\Seen) ~{500}\r\n")
    assert events == [LargeLiteral("a", "APPEND", 500, True, True)]  # the session writes "+" on accept
    sink = Sink()
    p.accept_literal(sink)
    events = p.feed(b"z" * 500 + b"\r\n")
    assert len(events) == 1 and isinstance(events[0], Command)
    msg = events[0].args.messages[0]
    assert msg.data is sink and msg.binary and msg.flags == ("\\Seen",)
    assert sink.data == b"z" * 500


def test_small_literals_stay_bytes() -> None:
    p = parser()
    events = p.feed(b"a APPEND INBOX {100+}\r\n" + b"x" * 100 + b"\r\n")
    assert len(events) == 1 and events[0].args.messages[0].data == b"x" * 100


def test_refused_sync_large_literal_sends_nothing_and_the_next_command_parses() -> None:
    p = parser()
    assert isinstance(p.feed(b"a APPEND INBOX {5000}\r\n")[0], LargeLiteral)
    p.reject_literal()
    assert not p.paused and not p.in_literal_command
    events = p.feed(b"b NOOP\r\n")
    assert [(e.tag, e.name) for e in events] == [("b", "NOOP")]


def test_refused_non_sync_large_literal_is_skipped_with_the_rest_of_its_command() -> None:
    p = parser()
    evil = b"c LOGOUT\r\n" * 50  # looks like commands, must never be executed
    events = p.feed(b"a APPEND INBOX {%d+}\r\n" % len(evil) + evil[:123])
    assert events == [LargeLiteral("a", "APPEND", len(evil), False, False)]
    p.reject_literal()
    assert p.feed(b"") == []
    assert p.feed(evil[123:]) == []
    assert p.feed(b" (\\Seen) {3+}\r\nxyz\r\n") == []  # the rest of the refused command (a MULTIAPPEND)
    events = p.feed(b"b NOOP\r\n")
    assert [(e.tag, e.name) for e in events] == [("b", "NOOP")]


def test_resume_without_a_decision_refuses() -> None:
    p = parser()
    assert isinstance(p.feed(b"a APPEND INBOX {1000+}\r\n")[0], LargeLiteral)
    p.resume()
    assert p.feed(b"q" * 1000 + b"\r\nb NOOP\r\n")[0].name == "NOOP"


def test_multiappend_mixes_gathered_and_streamed_literals() -> None:
    p = parser()
    small, big = b"s" * 50, b"B" * 400
    events = p.feed(b"a APPEND INBOX {50+}\r\n" + small + b" {400+}\r\n")
    assert events == [LargeLiteral("a", "APPEND", 400, False, False)]
    sink = Sink()
    p.accept_literal(sink)
    events = p.feed(big + b" {50+}\r\n" + small + b"\r\n")
    assert len(events) == 1
    data = [m.data for m in events[0].args.messages]
    assert data == [small, sink, small] and sink.data == big


def test_memory_budget_of_one_command_turns_small_literals_large() -> None:
    # each literal is under the threshold, but together they would pass max_memory
    p = parser(threshold=100, max_memory=250)
    events = p.feed(b"a APPEND INBOX {90+}\r\n" + b"1" * 90 + b" {90+}\r\n" + b"2" * 90 + b" {90+}\r\n")
    assert events == [LargeLiteral("a", "APPEND", 90, False, False)]


def test_memory_budget_without_spooling_refuses() -> None:
    p = CommandParser(max_literal=100, max_memory=250)
    data = b"a SEARCH TEXT {90+}\r\n" + b"1" * 90 + b" TEXT {90+}\r\n" + b"2" * 90 + b" TEXT {90+}\r\n"
    events = p.feed(data + b"3" * 90 + b"\r\nb NOOP\r\n")
    assert [(type(e), e.tag, getattr(e, "code", None)) for e in events] == [
        (ParseError, "a", "TOOBIG"),
        (Command, "b", None),
    ]


def test_sink_where_a_string_is_expected_is_a_clean_bad() -> None:
    p = parser()
    events = p.feed(b"a APPEND {200+}\r\n")  # a 200-octet mailbox name
    p.accept_literal(Sink())
    events = p.feed(b"n" * 200 + b" {3+}\r\nabc\r\n")
    assert len(events) == 1 and isinstance(events[0], ParseError)
    assert events[0].tag == "a" and events[0].code != "SERVERBUG"


def test_broken_command_is_refused_before_a_large_literal() -> None:
    p = parser()
    events = p.feed(b"a APPEND INBOX (\\Bogus( {5000}\r\n")
    assert len(events) == 1 and isinstance(events[0], ParseError)
    assert not p.paused


def test_oversize_literal_is_toobig_before_any_large_literal_event() -> None:
    p = parser(max_literal=1000)
    events = p.feed(b"a APPEND INBOX {1001}\r\n")
    assert len(events) == 1 and isinstance(events[0], ParseError) and events[0].code == "TOOBIG"
    assert not p.paused


def test_without_threshold_nothing_changes() -> None:
    p = CommandParser()
    events = p.feed(b"a APPEND INBOX {5000}\r\n")
    assert events == [ContinuationRequest("Ready for literal data", "a", "APPEND", 5000)]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    body=st.binary(min_size=0, max_size=3000),
    cuts=st.lists(st.integers(min_value=1, max_value=700), max_size=12),
    sync=st.booleans(),
)
def test_any_chunking_delivers_the_same_bytes_to_the_sink(body: bytes, cuts: list[int], sync: bool) -> None:
    header = b"a APPEND INBOX {%d%s}\r\n" % (len(body), b"" if sync else b"+")
    stream = header + body + b"\r\nb NOOP\r\n"
    p = parser(threshold=64)
    sink = Sink()
    events = []
    pos = 0
    for cut in [*cuts, len(stream)]:
        piece, pos = stream[pos : pos + cut], pos + cut
        for ev in p.feed(piece):
            if isinstance(ev, LargeLiteral):
                p.accept_literal(sink)
                events += p.feed(b"")
            else:
                events.append(ev)
        if pos >= len(stream):
            break
    commands = [e for e in events if isinstance(e, Command)]
    assert [c.name for c in commands] == ["APPEND", "NOOP"]
    data = commands[0].args.messages[0].data
    if len(body) > 64:
        assert data is sink and sink.data == body
    else:
        assert data == body and sink.pieces == []
