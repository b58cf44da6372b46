"""The IMAP adapter's STARTTLS switch (janusmail/imap/server.py ``_Connection._start_tls``): flow control across
the handshake, when the client's first commands come in the same read as its TLS Finished."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from janusmail.imap import server as imap_server
from tests.imap.e2e_util import Tenant, client_tls_context, serve_shared, use_cheap_argon2
from tests.serverutil import ServerThread

cheap_argon2 = pytest.fixture(autouse=True)(use_cheap_argon2)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    yield from serve_shared(tmp_path_factory)


@pytest.fixture
def server(shared: ServerThread) -> Tenant:
    return Tenant(shared)


class _Transport:
    """What ``_start_tls`` and the flow control use of a transport."""

    def __init__(self) -> None:
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return False


async def test_data_before_start_tls_returns_pauses_the_tls_transport(monkeypatch: pytest.MonkeyPatch):
    """Decrypted bytes can reach ``data_received`` before ``loop.start_tls()`` returns. Pausing the plain
    transport then (the TLS layer's now) left it paused for good: the client's next command was never read."""
    conn = imap_server._Connection(None, False)  # type: ignore[arg-type]  # no session: no task is started
    plain, tls = _Transport(), _Transport()
    conn.transport = plain  # type: ignore[assignment]

    async def start_tls(transport, protocol, ctx, **kwargs):  # noqa: ANN001, ANN003, ANN202
        assert transport is plain and protocol is conn
        protocol.data_received(b"x" * (imap_server.READ_SIZE + 10))  # came with the client's Finished
        return tls

    monkeypatch.setattr(asyncio.get_running_loop(), "start_tls", start_tls)
    await conn._start_tls(None)  # type: ignore[arg-type]
    assert conn.transport is tls and not plain.paused
    assert tls.paused and conn.reading_paused  # a full read waits: the TLS transport holds back
    conn._take()
    assert not tls.paused and not conn.reading_paused and not plain.paused


def test_commands_in_the_handshake_read_then_more(server: Tenant):
    """Real sockets: the client's Finished and > 64 KB of pipelined commands reach the server in one read
    (its loop held while they are sent, a large receive buffer so one read takes them all); every command is
    answered, and so is one sent afterwards."""
    srv = server.server
    for o in gc.get_objects():  # accepted sockets inherit the listening socket's receive buffer
        if isinstance(o, asyncio.base_events.Server):
            for ls in o.sockets:
                if ls.getsockname()[1] == server.imap_port:
                    ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s = socket.create_connection(("127.0.0.1", server.imap_port), timeout=30)
    f = s.makefile("rb")
    assert f.readline().startswith(b"* OK")
    s.sendall(b"a STARTTLS\r\n")
    assert f.readline().startswith(b"a OK")
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_tls_context(server).wrap_bio(inc, out, server_side=False)
    while True:
        try:
            tls.do_handshake()  # done once the server's flight is in: our Finished waits in ``out``
            break
        except ssl.SSLWantReadError:
            if pending := out.read():
                s.sendall(pending)
            data = s.recv(65536)
            assert data
            inc.write(data)
    n = 6500
    tls.write(b"".join(b"t%d NOOP\r\n" % i for i in range(n)))
    burst = out.read()
    assert len(burst) > imap_server.READ_SIZE
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(30)

    assert srv.loop is not None
    srv.loop.call_soon_threadsafe(hold)
    assert held.wait(30)
    try:
        s.sendall(burst)
    finally:
        release.set()
    buf = b""

    def line() -> bytes:
        nonlocal buf
        while b"\r\n" not in buf:
            try:
                buf += tls.read(65536)
            except ssl.SSLWantReadError:
                data = s.recv(65536)
                assert data, "the server closed the connection"
                inc.write(data)
        first, _, buf = buf.partition(b"\r\n")
        return first

    for i in range(n):
        assert line() == b"t%d OK NOOP completed" % i
    tls.write(b"z NOOP\r\n")
    s.sendall(out.read())
    assert line() == b"z OK NOOP completed"  # hung here: the plain socket was paused under TLS
    s.close()


class _Writer(_Transport):
    """What the write-stall guard uses of a transport: ``abort`` (counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.aborted = asyncio.Event()

    def abort(self) -> None:
        self.aborted.set()


async def test_a_client_that_stops_reading_is_dropped(monkeypatch: pytest.MonkeyPatch):
    """Output piled over the high-water mark for WRITE_STALL seconds (a client that stopped reading in the middle
    of a FETCH, or an idler whose updates pile up): the transport is aborted, so the connection stops holding its
    slots; a client that reads again in time (resume_writing) is left alone."""
    monkeypatch.setattr(imap_server, "WRITE_STALL", 0.05)
    conn = imap_server._Connection(None, False)  # type: ignore[arg-type]
    reading = _Writer()
    conn.transport = reading  # type: ignore[assignment]
    conn.pause_writing()
    conn.resume_writing()  # drained in time
    assert conn.stall_timer is None and not reading.aborted.is_set()
    stuck = _Writer()
    conn.transport = stuck  # type: ignore[assignment]
    conn.pause_writing()
    await asyncio.wait_for(stuck.aborted.wait(), 30)
    assert not reading.aborted.is_set() and conn.stall_timer is None


class _Peer:
    """A transport as ``_open`` sees it: addresses, and whether it was aborted."""

    def __init__(self) -> None:
        self.aborted = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("192.0.2.9", 40000), "sockname": ("127.0.0.1", 143)}.get(name, default)

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted = True


@pytest.mark.parametrize("fails", ["session", "registry", "greeting"])
def test_a_connection_that_cannot_start_gives_everything_back(monkeypatch: pytest.MonkeyPatch, fails: str) -> None:
    """Whatever fails while a connection is set up (the session, the live-connection registry, the greeting),
    the per-address slot, the registry entry and the gauge are given back and the socket is dropped: a client
    that can make setup fail must not use up its address's connection cap."""
    from types import SimpleNamespace

    events: list[str] = []

    class Registry:
        def opened(self, *args: object, **kwargs: object) -> int:
            if fails == "registry":
                raise RuntimeError("registry")
            events.append("opened")
            return 7

        def closed(self, ticket: int) -> None:
            events.append(f"closed {ticket}")

    class Metrics:
        def connection_opened(self, door: str) -> None:
            events.append("gauge +1")

        def connection_closed(self, door: str) -> None:
            events.append("gauge -1")

    class Session:
        def __init__(self, *args: object, **kwargs: object) -> None:
            if fails == "session":
                raise RuntimeError("session")

        def greeting(self) -> None:
            raise RuntimeError("greeting")

    monkeypatch.setattr(imap_server, "ImapSession", Session)
    limits = imap_server.ConnectionLimits(per_ip=1, per_account=10)
    listener = imap_server._Listener(SimpleNamespace(connections=Registry(), metrics=Metrics()),  # type: ignore[arg-type]
                                     None, limits)
    peer = _Peer()
    conn = imap_server._Connection(listener, False)  # type: ignore[arg-type]
    conn.connection_made(peer)  # type: ignore[arg-type]
    assert peer.aborted and conn.ended
    assert limits.ips == {} and listener.live == set()
    assert events.count("gauge +1") == events.count("gauge -1")
    assert events.count("opened") == events.count("closed 7")
