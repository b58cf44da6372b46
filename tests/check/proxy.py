"""A tiny IMAP man-in-the-middle for tests: forwards a loopback port to a real server, passing every line the
server sends through ``rewrite`` (the client's bytes go through untouched). It makes a *broken* server out of
a good one, e.g. one whose EMAILID/MAILBOXID are not the JMAP ids, without touching the real one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable


class RewritingProxy:
    def __init__(self, target_port: int, rewrite: Callable[[bytes], bytes]) -> None:
        self.target_port = target_port
        self.rewrite = rewrite
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> RewritingProxy:
        self._thread.start()
        assert self._ready.wait(30), "the proxy did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop and self._stop
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        tasks: set[asyncio.Task] = set()

        async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)

            async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, lines: bool) -> None:
                try:
                    while True:
                        data = await (reader.readline() if lines else reader.read(65536))
                        if not data:
                            break
                        writer.write(self.rewrite(data) if lines else data)
                        await writer.drain()
                except (ConnectionError, asyncio.CancelledError):
                    pass
                finally:
                    writer.close()

            both = [asyncio.ensure_future(pump(server_r, client_w, True)),
                    asyncio.ensure_future(pump(client_r, server_w, False))]
            tasks.update(both)
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
            for t in both:
                t.cancel()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
