"""The I/O half of the reference server: h11 and one `Cycle` per request, over anyio.

`serve_connection` takes any anyio byte stream, so the same code serves a TCP
stream on asyncio or trio. Per request it runs the app beside a reader task:
the reader feeds the body into the cycle (and stops reading while the app has
not consumed `buffer_limit` bytes), notices the client going away, and wakes
the cycle's pending `receive()` through a fresh `anyio.Event` per wait.
The keep-alive timeout only runs while no request is in progress.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
import h11

from servers.reference.cycle import Cycle

logger = logging.getLogger("reference")
App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class Config:
    keep_alive: float = 5.0
    max_header_bytes: int = 16 * 1024
    read_size: int = 64 * 1024
    buffer_limit: int = 64 * 1024  # unconsumed request body before reading pauses


@dataclass
class _Waker:
    event: anyio.Event = field(default_factory=anyio.Event)

    def wake(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        self.event = anyio.Event()  # one event per wait: no wait can eat another's signal
        await self.event.wait()


class _Connection:
    def __init__(self, stream: anyio.abc.ByteStream, app: App, config: Config) -> None:
        self.stream = stream
        self.app = app
        self.config = config
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_bytes)
        self.eof = False

    async def _send(self, event: Any) -> bool:
        data = self.conn.send(event)
        if data:
            try:
                await self.stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return False
        return True

    async def _read(self) -> bool:
        """Read once into h11; True at end of stream."""
        try:
            data = await self.stream.receive(self.config.read_size)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            data = b""
        self.eof = not data
        self.conn.receive_data(data)
        return self.eof

    async def _next_request(self) -> h11.Request | None:
        """The next request head, or None: EOF, a bad request (answered 400), idle timeout."""
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                await self._error_response(exc.error_status_hint, b"Bad Request")
                return None
            if isinstance(event, h11.Request):
                return event
            if event is h11.NEED_DATA:
                idle = not self.conn.trailing_data[0]
                with anyio.move_on_after(self.config.keep_alive if idle else None):
                    await self._read()
                    continue
                return None  # keep-alive timeout while idle
            return None  # ConnectionClosed or PAUSED: nothing more to serve

    async def _error_response(self, status: int, body: bytes) -> None:
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            headers = [("content-type", "text/plain"), ("content-length", str(len(body))),
                       ("connection", "close")]
            await self._send(h11.Response(status_code=status, headers=headers))
            await self._send(h11.Data(data=body))
            await self._send(h11.EndOfMessage())

    async def serve(self) -> None:
        try:
            while True:
                request = await self._next_request()
                if request is None:
                    break
                if not await self._cycle(request):
                    break
                self.conn.start_next_cycle()
        finally:
            await self.stream.aclose()

    def _scope(self, request: h11.Request) -> dict[str, Any]:
        target = request.target.decode("latin-1")
        path, _, query = target.partition("?")
        return {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode(), "method": request.method.decode(),
            "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers],
            "client": None, "server": None,
        }

    async def _cycle(self, request: h11.Request) -> bool:
        """Serve one request; True if the connection can serve another."""
        cycle = Cycle(self._scope(request))
        waker, space = _Waker(), _Waker()

        async def reader() -> None:
            while True:
                if cycle.buffered >= self.config.buffer_limit:
                    await space.wait()
                    continue
                try:
                    event = self.conn.next_event()
                except h11.RemoteProtocolError:
                    cycle.client_gone()
                    waker.wake()
                    return
                if isinstance(event, h11.Data):
                    cycle.add_body(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    cycle.end_body()
                elif event is h11.NEED_DATA:
                    if await self._read() and not cycle.body_done:
                        cycle.client_gone()  # the body can never complete
                else:  # PAUSED (the next pipelined request waits) or ConnectionClosed
                    if self.eof:
                        if not cycle.body_done:
                            cycle.client_gone()
                        waker.wake()
                        return
                    # Keep reading (h11 buffers a pipelined request) to see the client leave.
                    # EOF after a whole request may be a half-close: the client can still
                    # read, so the response goes on; a write failing means it is gone.
                    await self._read()
                waker.wake()

        started: dict[str, Any] = {}

        async def receive() -> dict[str, Any]:
            if self.conn.they_are_waiting_for_100_continue and not started:
                await self._send(h11.InformationalResponse(status_code=100, headers=[]))
            while True:
                message = cycle.next_message()
                if message is not None:
                    space.wake()
                    return message
                await waker.wait()

        async def send(message: dict[str, Any]) -> None:
            if cycle.disconnected or cycle.response_complete:
                return  # ASGI: sends after a disconnect are ignored
            if message["type"] == "http.response.start" and not cycle.response_started:
                cycle.response_started = True
                started.update(message)
                return
            if message["type"] != "http.response.body" or not cycle.response_started:
                raise RuntimeError(f"unexpected ASGI message {message.get('type')!r}")
            if "status" in started:
                headers = [(bytes(k), bytes(v)) for k, v in started.get("headers", [])]
                ok = await self._send(h11.Response(status_code=started.pop("status"),
                                                   headers=headers))
                if not ok:
                    cycle.client_gone()
            body = message.get("body", b"")
            if body and not cycle.disconnected and not await self._send(h11.Data(data=body)):
                cycle.client_gone()
            if not message.get("more_body", False) and not cycle.disconnected:
                await self._send(h11.EndOfMessage())
                cycle.response_complete = True
            waker.wake()

        keep = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(reader)
                try:
                    await self.app(cycle.scope, receive, send)
                except Exception:
                    logger.exception("Exception in ASGI application")
                    if not cycle.response_started:
                        await self._error_response(500, b"Internal Server Error")
                else:
                    if not cycle.response_started and not cycle.disconnected:
                        await self._error_response(500, b"Internal Server Error")
                    keep = (cycle.response_complete and not self.eof
                            and self.conn.our_state is h11.DONE
                            and self.conn.their_state is h11.DONE)
                tg.cancel_scope.cancel()
        finally:
            # Whatever ends the cycle, a receive() still waiting in it (a disconnect
            # watcher the app left behind) gets http.disconnect now.
            if not keep:
                cycle.client_gone()
            waker.wake()
        return keep


async def serve_connection(stream: anyio.abc.ByteStream, app: App,
                           config: Config | None = None) -> None:
    await _Connection(stream, app, config or Config()).serve()


async def serve(app: App, host: str = "127.0.0.1", port: int = 8000,
                config: Config | None = None,
                ready: Callable[[int], None] | None = None) -> None:
    """Serve on a real TCP socket until cancelled; `ready(port)` once listening."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    if ready is not None:
        ready(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await serve_connection(stream, app, config)

    async with listener:
        await listener.serve(handle)
