"""The reference server as a harness target: its connection handler over a simulated stream.

`ProtocolStream` is an asyncio protocol that is also an anyio byte stream: the
harness's simulated transport feeds it, and `serve_connection` reads and
writes it exactly as it would a TCP stream. Flow control is the transport's:
reading pauses above `HIGH_WATER` unread bytes, and `send` waits while the
transport has paused writing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc

from harness import __version__
from harness.sim.loop import SimLoop
from harness.targets.registry import Setting, TargetEntry, VersionRange
from servers.reference.config import App, Config, Shutdown
from servers.reference.connection import serve_connection

HIGH_WATER = 64 * 1024

TARGET = TargetEntry(
    name="reference",
    adapter="servers.reference.target:ReferenceTarget",
    protocols=("h11",),
    protocol_modules={"h11": "servers.reference.connection"},
    settings=(Setting("keep_alive", (5.0, 1.0), "keep-alive-timeout"),
              # Drawn only in the shutdown family (harness/http/strategies.py).
              Setting("shutdown_grace", (30.0, 1.0), "graceful-timeout")),
    versions=(VersionRange("", "stream", "serve_connection over a ProtocolStream, an asyncio "
                           "protocol that is also an anyio byte stream; shutdown: "
                           "ReferenceTarget.shutdown, as server.py's serve does it"),),
    description="the harness's own reference server (servers/reference/), ground truth",
)


class ProtocolStream(asyncio.Protocol, anyio.abc.ByteStream):
    def __init__(self, app: App, config: Config, shutdown: Shutdown | None = None) -> None:
        self.app = app
        self.config = config
        self.shutdown = shutdown or Shutdown()
        self.task: asyncio.Task[None] | None = None  # serving this connection
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.lost: BaseException | None = None
        self.closed = False
        self.paused = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.task = asyncio.get_running_loop().create_task(
            serve_connection(self, self.app, self.config, self.shutdown))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > HIGH_WATER and self.transport is not None:
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return True  # keep the write side open: the response may still go out

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_writer()

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _wake_writer(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    # -- anyio.abc.ByteStream ---------------------------------------------------------------
    async def receive(self, max_bytes: int = 65536) -> bytes:
        while not self.buffer:
            if self.closed and self.lost is not None:
                raise anyio.BrokenResourceError from self.lost
            if self.eof or self.closed:
                raise anyio.EndOfStream
            self._readable = asyncio.get_running_loop().create_future()
            await self._readable
        data = bytes(self.buffer[:max_bytes])
        del self.buffer[:max_bytes]
        if len(self.buffer) <= HIGH_WATER and self.transport is not None and not self.closed:
            self.transport.resume_reading()
        return data

    async def send(self, item: bytes) -> None:
        if self.closed or self.transport is None or self.transport.is_closing():
            raise anyio.BrokenResourceError
        self.transport.write(item)
        while self.paused and not self.closed:
            self._writable = asyncio.get_running_loop().create_future()
            await self._writable
        if self.closed:
            raise anyio.BrokenResourceError

    async def send_eof(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write_eof()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        # The simulated transport's socket answers setsockopt (SO_LINGER) as a real one.
        return {anyio.abc.SocketAttribute.raw_socket:
                lambda: self.transport.get_extra_info("socket") if self.transport else None}

    async def aclose(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ReferenceTarget:
    name = "reference"
    http = "h11"
    asgi = 3

    def __init__(self, http: str = "h11") -> None:
        if http != self.http:
            raise ValueError(f"the reference server speaks only h11, not {http!r}")
        self.version = __version__

    def settings_space(self) -> dict[str, list[Any]]:
        return TARGET.settings_for(self.version)

    def describe(self) -> dict[str, Any]:
        return {"server": self.name, "version": self.version, "http": self.http,
                "construction": TARGET.versions[0].construction}

    def setting_meanings(self) -> dict[str, str]:
        return {s.name: s.means for s in TARGET.settings}

    async def mount(self, loop: SimLoop, app: Any, settings: dict[str, Any],
                    address: tuple[str, int]) -> None:
        known = {f.name for f in dataclasses.fields(Config)}
        self._config = config = Config(**{k: v for k, v in settings.items() if k in known})
        self._shutdown = Shutdown()
        self._streams: list[ProtocolStream] = []

        def factory() -> ProtocolStream:
            stream = ProtocolStream(app, config, self._shutdown)
            self._streams.append(stream)
            return stream

        self._listener = await loop.create_server(factory, *address)

    def stock_protocol(self, app: Any) -> Callable[[Any], tuple[Any, Any]]:
        """The floor's stock side (harness/tools/floor.py): per loop, a ProtocolStream for
        one connection, its Config built once; nothing to await once the client closed."""
        config, shutdown = Config(), Shutdown()
        return lambda loop: (ProtocolStream(app, config, shutdown), None)

    def shutdown_unsupported(self) -> str | None:
        return None

    async def shutdown(self) -> None:
        """Graceful shutdown, as `serve` (server.py) does it on a real socket: the listener
        closes, idle connections close at once, busy ones finish their response (with
        `Connection: close`) within `shutdown_grace`, then whatever is left is cancelled,
        which answers a pending receive() with http.disconnect and cuts a response visibly."""
        loop = asyncio.get_running_loop()
        self._listener.close()
        self._shutdown.begin()
        grace = self._config.shutdown_grace
        deadline = math.inf if grace is None else loop.time() + grace
        while loop.time() < deadline:
            pending = [s for s in self._streams if s.task is None or not s.task.done()]
            if not pending:
                return
            tasks = [s.task for s in pending if s.task is not None]
            if len(tasks) < len(pending):  # accepted, connection_made still to run
                await asyncio.sleep(0)
                continue
            await asyncio.wait(tasks, timeout=deadline - loop.time(),
                               return_when=asyncio.FIRST_COMPLETED)
        left = [s.task for s in self._streams if s.task is not None and not s.task.done()]
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
