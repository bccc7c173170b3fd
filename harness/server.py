"""SimServer: what `loop.create_server` returns in simulation.

Accepting mirrors the stock selector loop: the listener becomes readable in a
poll, its callback takes every connection in the backlog, and each one is set
up in its own task (the stock `_accept_connection2`), so `connection_made`
runs a few iterations after the accept, as it does on a real loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.network import Connection, Listener
from harness.transport import SimTransport

if TYPE_CHECKING:
    from harness.loop import SimLoop


class SimServer(asyncio.AbstractServer):
    def __init__(
        self,
        loop: SimLoop,
        listener: Listener,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
    ) -> None:
        self._loop = loop
        self._listener = listener
        self._factory = protocol_factory
        self._serving = False
        self._active = 0
        self._closed_waiters: list[asyncio.Future[None]] = []
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

    def _detach(self) -> None:
        self._active -= 1
        self._wake_if_done()

    def _wake_if_done(self) -> None:
        if not self._serving and self._active == 0:
            for waiter in self._closed_waiters:
                if not waiter.done():
                    waiter.set_result(None)
            self._closed_waiters.clear()

    # -- AbstractServer ------------------------------------------------------
    def close(self) -> None:
        self._serving = False
        self._listener.closed = True
        self._wake_if_done()

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        self._start()

    async def serve_forever(self) -> None:
        self._start()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        # 3.12+ semantics: returns once closed and every connection has ended.
        if not self._serving and self._active == 0:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._closed_waiters.append(waiter)
        await waiter

    async def __aenter__(self) -> SimServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        await self.wait_closed()
