"""Small programs the harness's own tests run on the simulated loop."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.net.peer import PeerConnection
from harness.sim.loop import SimLoop

ADDRESS = ("127.0.0.1", 8000)


class Upper(asyncio.Protocol):
    """Echoes each chunk upper-cased after a short virtual delay; closes on EOF."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        asyncio.get_running_loop().create_task(self._reply(data))

    async def _reply(self, data: bytes) -> None:
        async with self.lock:
            await asyncio.sleep(0.01 * (len(data) % 3))
            assert self.transport is not None
            if not self.transport.is_closing():
                self.transport.write(data.upper())

    def eof_received(self) -> bool:
        asyncio.get_running_loop().create_task(self._close_after_replies())
        return True

    async def _close_after_replies(self) -> None:
        async with self.lock:
            assert self.transport is not None
            self.transport.close()


async def busy_echo(loop: SimLoop, params: dict[str, Any]) -> None:
    """Several clients, split writes, timers, locks, half-closes and one reset.

    Non-trivial on purpose: it exercises every choice point the poller has."""
    await loop.create_server(Upper, *ADDRESS)
    clients = int(params.get("clients", 3))
    for i in range(clients):
        peer = PeerConnection(loop, ADDRESS)
        for j in range(3):
            loop.network.at(0.005 * (i + j), lambda p=peer, j=j: p.send(b"msg%d;" % j))
        if i == clients - 1 and params.get("reset_last", True):
            loop.network.at(0.02, peer.reset)
        else:
            loop.network.at(0.05 + 0.01 * i, peer.shutdown_write)
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks < 5:
            loop.call_later(0.007, tick)

    loop.call_later(0.007, tick)
