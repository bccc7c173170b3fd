"""SimServer: what `loop.create_server` returns in simulation.

Accepting mirrors the stock selector loop: the listener becomes readable in a
poll, its callback takes every connection in the backlog, and each one is set
up in its own task (the stock `_accept_connection2`), so `connection_made`
runs a few iterations after the accept, as it does on a real loop.

Closing follows the stock `asyncio.Server` of the running Python: `_waiters`
becomes None once the server is closed and its last connection has ended,
and `wait_closed` differs between 3.11 and 3.12+ (see there). Closing the
listening socket resets the connections still in its backlog (not yet
accepted), as Linux does.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from harness.net.network import Connection, Listener
from harness.sim.runtime import Runtime, as_asyncio
from harness.sim.transport import SimTransport


class SimServer(asyncio.AbstractServer):
    def __init__(
        self,
        loop: Runtime,
        listener: Listener,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._loop = loop
        self._listener = listener
        self._factory = protocol_factory
        self._serving = False
        self._closed = False  # the stock Server's `_sockets is None`
        self._active = 0
        self._waiters: list[asyncio.Future[None]] | None = []
        self._serving_forever_fut: asyncio.Future[None] | None = None
        self.transports: list[SimTransport] = []

    @property
    def address(self) -> tuple[str, int]:
        return self._listener.address

    @property
    def sockets(self) -> tuple[Any, ...]:
        return ()  # No real sockets exist in simulation.

    def _start(self) -> None:
        self._serving = True

    def wants_accept(self) -> bool:
        return self._serving and bool(self._listener.backlog)

    def accept_ready(self) -> None:
        while self._listener.backlog:
            conn = self._listener.backlog.pop(0)
            self._loop.record("accept", f"c{conn.cid}")
            self._loop.create_task(self._accept(conn))

    async def _accept(self, conn: Connection) -> None:
        protocol = self._factory()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._active += 1
        transport = SimTransport(self._loop, conn, "server", protocol, waiter, self._detach)
        self.transports.append(transport)
        try:
            await waiter
        except BaseException:
            transport.close()
            raise

    def _reset_backlog(self) -> None:
        """The listening socket closes: Linux resets each connection still in its accept
        queue (the handshake completed, the server never accepted it)."""
        now = self._loop.time()
        while self._listener.backlog:
            conn = self._listener.backlog.pop(0)
            self._loop.record("refuse", f"c{conn.cid} reset: its listener closed before "
                              "accepting it")
            conn.down.send_rst(now)
            self._loop.network_closed(conn, "server")

    def _detach(self) -> None:
        self._active -= 1
        if self._active == 0 and self._closed:
            self._wakeup()

    def _wakeup(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    # -- AbstractServer ------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._serving = False
        self._listener.closed = True
        self._reset_backlog()
        if self._serving_forever_fut is not None and not self._serving_forever_fut.done():
            self._serving_forever_fut.cancel()
            self._serving_forever_fut = None
        if self._active == 0:
            self._wakeup()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return as_asyncio(self._loop)

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self._start()
        await asyncio.sleep(0)  # As the stock Server: one iteration for add_reader.

    async def serve_forever(self) -> None:
        # As the stock Server: close() cancels the wait, and the CancelledError propagates.
        if self._serving_forever_fut is not None:
            raise RuntimeError(f"server {self!r} is already being awaited on serve_forever()")
        if self._closed:
            raise RuntimeError(f"server {self!r} is closed")
        self._start()
        self._serving_forever_fut = self._loop.create_future()
        try:
            await self._serving_forever_fut
        except asyncio.CancelledError:
            try:
                self.close()
                await self.wait_closed()
            finally:
                raise
        finally:
            self._serving_forever_fut = None

    async def wait_closed(self) -> None:
        # 3.12+: returns once closed and the last connection has ended. Before 3.12 it
        # returns at once after close(), even with connections open (gh-79033).
        if self._waiters is None or (sys.version_info < (3, 12) and self._closed):
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    async def __aenter__(self) -> SimServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()
