"""New connections spread evenly over the workers that share one listening socket (janusmail/workers/balance.py,
issue 10: ten clients landed 7 and 3 on two workers, and the busy worker's event loop bounded the server).

Two :class:`BalancedServer` on duplicates of one listening socket in one event loop stand for two workers: both
are told of each waiting connection in the same loop turn, so which one takes it is decided by the load board
alone (in real workers a sibling that does not answer within ``DEFER`` loses it; that is timing, not tested)."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from janusmail.imap.tls import ensure_self_signed
from janusmail.workers.balance import EMPTY, BalancedServer, DoorLoad, LoadBoard

WAIT = 60.0


class Counted(asyncio.Protocol):
    """A server-side connection that greets and counts itself as live in its worker's set."""

    def __init__(self, live: set[Counted], server: list[BalancedServer]) -> None:
        self.live, self.server = live, server
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.live.add(self)
        self.transport.write(b"hello\n")  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        self.live.discard(self)
        self.server[0].publish()


def test_the_board_is_shared_and_each_worker_writes_its_own_slot() -> None:
    board = LoadBoard.create(3)
    a, b = LoadBoard(os.dup(board.fd), 3, 0), LoadBoard(os.dup(board.fd), 3, 1)
    try:
        assert board.loads() == [EMPTY] * 3  # no worker serves yet: nobody steps back for them
        a.publish(4)
        assert not a.ahead(4)
        b.publish(2)
        assert a.ahead(4) and not b.ahead(2)
        c = LoadBoard(os.dup(board.fd), 3, 2)
        c.publish(0)
        assert board.loads() == [4, 2, 0]
        assert b.ahead(2) and not c.ahead(0)  # slot 2, a worker with none, is the least loaded
        c.close()
        board.clear(2)  # (the supervisor: that worker died) its replacement is not waited for
        assert b.loads() == [4, 2, EMPTY] and not b.ahead(2)
        alone = LoadBoard(os.dup(board.fd), 1, 0)
        assert not alone.ahead(100)  # no sibling to leave connections to
        alone.close()
    finally:
        for x in (a, b, board):
            x.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_connections_go_to_the_least_loaded_worker(tmp_path: Path, tls: bool) -> None:
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server_ctx = client_ctx = None
    if tls:
        pem = ensure_self_signed(tmp_path)
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(str(pem))
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
    board = LoadBoard.create(2)
    lives: list[set[Counted]] = [set(), set()]
    servers: list[BalancedServer] = []
    boards = [LoadBoard(os.dup(board.fd), 2, i) for i in range(2)]
    for i in range(2):
        holder: list[BalancedServer] = []
        live = lives[i]
        load = DoorLoad(boards[i], lambda live=live: len(live))
        load.publish()
        servers.append(BalancedServer(socket.socket(fileno=os.dup(listening.fileno())),
                                      lambda live=live, holder=holder: Counted(live, holder), load,
                                      ssl_context=server_ctx, ssl_handshake_timeout=WAIT if tls else None))
        holder.append(servers[-1])
    clients: list[asyncio.StreamWriter] = []

    async def connect() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                       server_hostname="localhost" if tls else None)
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"hello\n"  # served: counted by now
        clients.append(writer)

    try:
        for _ in range(10):
            await connect()
        assert sorted(len(live) for live in lives) == [5, 5]
        assert board.loads() == [5, 5]
        # four clients of worker 0 leave: the next four connections all go to worker 0
        leaving = [c for c in clients if any(c.get_extra_info("sockname") == p.transport.get_extra_info("peername")
                                              for p in lives[0])][:4]
        for writer in leaving:
            writer.close()
            clients.remove(writer)
        async with asyncio.timeout(WAIT):
            while len(lives[0]) != 1:
                await asyncio.sleep(0.01)
        assert board.loads() == [1, 5]
        for _ in range(4):
            await connect()
        assert [len(live) for live in lives] == [5, 5]
    finally:
        for writer in clients:
            writer.close()
        for s in servers:
            s.close()
            await s.wait_closed()
        for x in (*boards, board):
            x.close()
        listening.close()


class FlakyListener(socket.socket):
    """A listening socket whose accepts fail with ``error``: only the first one (``once``), or while ``failing``."""

    def __init__(self, fileno: int, error: int, once: bool) -> None:
        super().__init__(fileno=fileno)
        self.error, self.once = error, once
        self.failing = True
        self.attempts = 0

    def accept(self) -> tuple[socket.socket, object]:
        self.attempts += 1
        if self.failing:
            self.failing = not self.once
            raise OSError(self.error, "injected")
        return super().accept()


@pytest.mark.parametrize("stepped_back", [False, True], ids=["least-loaded", "ahead-of-a-sibling"])
@pytest.mark.parametrize("error", [errno.EMFILE, errno.EPERM], ids=["EMFILE", "EPERM"])
async def test_an_accept_error_pauses_or_passes_over_and_accepting_goes_on(
        monkeypatch: pytest.MonkeyPatch, error: int, stepped_back: bool) -> None:
    """Out of descriptors: no accept until the pause ends (one failed attempt, not a busy loop of them), then on.
    An error of one connection (EPERM from a firewall, ...): passed over, the listener stays. Both also when the
    worker stepped back first (it was ahead of a sibling that never took the connection). No clock: a step back
    lasts one loop turn here, and the test itself ends the pause."""
    from janusmail.workers import balance

    monkeypatch.setattr(balance, "DEFER", 0.0)
    resumes: list[Callable[[], None]] = []
    real_pause = BalancedServer._pause

    def pause(self: BalancedServer, seconds: float, then: Callable[[], None]) -> None:
        if seconds != balance.ACCEPT_PAUSE:
            real_pause(self, seconds, then)
            return
        resumes.append(then)  # (reading stops as it would; the pause ends when the test says)
        real_pause(self, 3600.0, lambda: None)

    monkeypatch.setattr(BalancedServer, "_pause", pause)
    listening = socket.create_server(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    board = LoadBoard.create(2)
    mine, sibling = LoadBoard(os.dup(board.fd), 2, 0), LoadBoard(os.dup(board.fd), 2, 1)
    sibling.publish(0)  # a sibling with nothing, that never accepts
    live: set[Counted] = set()
    extra = 1 if stepped_back else 0  # (one connection more than the sibling: this worker steps back)
    load = DoorLoad(mine if stepped_back else LoadBoard(os.dup(board.fd), 1, 0), lambda: len(live) + extra)
    flaky = FlakyListener(os.dup(listening.fileno()), error, once=error != errno.EMFILE)
    holder: list[BalancedServer] = []
    server = BalancedServer(flaky, lambda: Counted(live, holder), load)
    holder.append(server)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        if error == errno.EMFILE:
            async with asyncio.timeout(WAIT):
                while not resumes:
                    await asyncio.sleep(0)
            for _ in range(50):  # many loop turns (and step backs) while the process is out of descriptors
                await asyncio.sleep(0)
            assert flaky.attempts == 1 and len(resumes) == 1  # paused: not tried again meanwhile
            flaky.failing = False
            resumes[0]()  # the pause is over
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"hello\n"
        assert flaky.attempts == 2  # the failed one and the one that took the connection
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
        for x in (mine, sibling, board, load.board):
            x.close()
        listening.close()
