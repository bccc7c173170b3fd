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


class FakeTarget:
    """A target serving one asyncio.Protocol class, for tests of what the harness does
    with a server's behaviour. A protocol with an `app` attribute is handed the app."""

    http, asgi, version = "h11", 3, "1.0"

    def __init__(self, protocol: type[asyncio.Protocol]) -> None:
        self.protocol = protocol
        self.name = protocol.__name__.lower()

    def settings_space(self) -> dict[str, list[Any]]:
        return {}

    def setting_meanings(self) -> dict[str, str]:
        return {}

    def describe(self) -> dict[str, Any]:
        return {"server": self.name, "version": self.version, "http": self.http}

    async def mount(self, loop: SimLoop, app: Any, settings: dict[str, Any],
                    address: tuple[str, int]) -> None:
        def protocol() -> asyncio.Protocol:
            server = self.protocol()
            if hasattr(server, "app"):
                server.app = app
            return server

        await loop.create_server(protocol, *address)


class OneAppCall(asyncio.Protocol):
    """A server that calls the app once per connection, for the path of the first
    request line it reads; subclasses say how it talks to the app (run_app)."""

    transport: asyncio.Transport
    app: Any = None  # set by FakeTarget

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.called = transport, False

    def data_received(self, data: bytes) -> None:
        if not self.called:
            self.called = True
            path = data.split(b" ", 2)[1].decode()
            asyncio.get_running_loop().create_task(self.run_app(path))

    async def run_app(self, path: str) -> None:
        raise NotImplementedError

    @staticmethod
    def scope(path: str) -> dict[str, Any]:
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                "query_string": b"", "root_path": "", "headers": [],
                "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000)}


def tighten_search_budget(monkeypatch: Any, polls: int) -> None:
    """Make every run a search draws stop after `polls` loop iterations: the real
    simulation, really cut, so most scenarios end unsettled (not judged)."""
    import dataclasses

    import harness.search.explore

    real = harness.search.explore.run_http

    def tight(scenario: Any, target: Any, source: Any, settings: Any) -> Any:
        return real(scenario, target, source, dataclasses.replace(settings, step_budget=polls))

    monkeypatch.setattr(harness.search.explore, "run_http", tight)
