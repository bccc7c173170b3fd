"""The I/O half of the reference server: h11 and one `Cycle` per request, over anyio.

`serve_connection` takes any anyio byte stream, so the same code serves a TCP
stream on asyncio or trio and a simulated stream in the harness. Per request
an `_Exchange` runs the app beside a reader task: the reader feeds the body
into the cycle (and stops reading while the app has not consumed
`buffer_limit` bytes), notices the client going away, and wakes the cycle's
pending `receive()` through a fresh `anyio.Event` per wait. The keep-alive
timeout only runs while no request is in progress. See README.md for the
invariants and where each is kept.
"""

from __future__ import annotations

import contextlib
import http
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
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
    keep_alive: float = 5.0  # seconds an idle connection waits for its next request
    max_header_bytes: int = 16 * 1024  # a longer request head is answered 431
    max_body_bytes: int = 1024 * 1024  # a longer request body is answered 413
    read_size: int = 64 * 1024
    buffer_limit: int = 64 * 1024  # unconsumed request bytes before reading pauses
    shutdown_grace: float = 30.0  # seconds in-flight requests get once shutdown begins


class Shutdown:
    """Shared by one server's connections. Once begun, idle connections close at once
    and busy ones answer `Connection: close` and close after their response."""

    def __init__(self) -> None:
        self.begun = False
        self._idle: set[anyio.CancelScope] = set()

    def begin(self) -> None:
        self.begun = True
        for scope in list(self._idle):
            scope.cancel()

    @contextmanager
    def cancels(self, scope: anyio.CancelScope) -> Iterator[None]:
        """While inside, beginning the shutdown cancels `scope` (an idle wait)."""
        self._idle.add(scope)
        try:
            yield
        finally:
            self._idle.discard(scope)


@dataclass
class _Waker:
    event: anyio.Event = field(default_factory=anyio.Event)

    def wake(self) -> None:
        self.event.set()

    async def wait(self) -> None:
        self.event = anyio.Event()  # one event per wait: no wait can eat another's signal
        await self.event.wait()


def _status_line(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _set_linger_zero(stream: anyio.abc.ByteStream) -> None:
    """Make the coming close a reset (RST) rather than an orderly FIN."""
    abort = getattr(stream, "abort", None)  # the simulated stream (target.py)
    if abort is not None:
        abort()
        return
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _head_size(request: h11.Request) -> int:
    line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
    return line + sum(len(k) + len(v) + len(b": \r\n") for k, v in request.headers) + 2


class _Connection:
    def __init__(self, stream: anyio.abc.ByteStream, app: App, config: Config,
                 shutdown: Shutdown) -> None:
        self.stream = stream
        self.app = app
        self.config = config
        self.shutdown = shutdown
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_bytes)
        self.eof = False

    async def write(self, *events: Any) -> bool:
        """Send h11 events as one write; False if the client is gone.

        The events are framed before the first await, so two tasks writing (the app and
        the reader answering 413) can never interleave inside one message."""
        data = b"".join(self.conn.send(event) or b"" for event in events)
        if data:
            try:
                await self.stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return False
        return True

    async def read(self) -> bool:
        """Read once into h11; True at end of stream."""
        try:
            data = await self.stream.receive(self.config.read_size)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            data = b""
        self.eof = not data
        self.conn.receive_data(data)
        return self.eof

    def error_events(self, status: int) -> list[Any]:
        """A whole plain-text error response that ends the connection."""
        body = _status_line(status) or b"Error"
        headers = [("content-type", "text/plain"), ("content-length", str(len(body))),
                   ("connection", "close")]
        return [h11.Response(status_code=status, headers=headers, reason=_status_line(status)),
                h11.Data(data=body), h11.EndOfMessage()]

    async def next_request(self) -> h11.Request | None:
        """The next request head, or None: EOF, a bad request (answered 400 or 431),
        the keep-alive timeout, or shutdown while idle."""
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self.write(*self.error_events(exc.error_status_hint))
                return None
            if isinstance(event, h11.Request):
                if _head_size(event) <= self.config.max_header_bytes:
                    return event
                # h11 bounds only a head still incomplete; one that came whole is checked here.
                await self.write(*self.error_events(431))
                return None
            if event is not h11.NEED_DATA:
                return None  # ConnectionClosed: nothing more to serve
            if self.conn.trailing_data[0]:
                await self.read()  # part of the next request is here: no idle timer
                continue
            if self.shutdown.begun:
                return None
            with anyio.move_on_after(self.config.keep_alive) as idle, \
                    self.shutdown.cancels(idle):
                await self.read()
            if idle.cancelled_caught:
                return None  # keep-alive timeout, or shutdown, while idle

    async def serve(self) -> None:
        try:
            while (request := await self.next_request()) is not None:
                if not await _Exchange(self, request).run():
                    break
                self.conn.start_next_cycle()
        finally:
            if self.conn.our_state is h11.SEND_BODY:
                # A response cut short must not look complete: a close-delimited body
                # (HTTP/1.0) ending in FIN would. Reset instead, where the stream can.
                _set_linger_zero(self.stream)
            await self.stream.aclose()

    def scope(self, request: h11.Request) -> dict[str, Any]:
        target = request.target.decode("latin-1")
        path, _, query = target.partition("?")
        client = self.stream.extra(anyio.abc.SocketAttribute.remote_address, None)
        server = self.stream.extra(anyio.abc.SocketAttribute.local_address, None)
        return {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode(), "method": request.method.decode(),
            "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers],
            "client": list(client) if isinstance(client, tuple) else None,
            "server": list(server) if isinstance(server, tuple) else None,
        }


class _Exchange:
    """One request cycle: the app, its receive() and send(), and the reader beside it."""

    def __init__(self, connection: _Connection, request: h11.Request) -> None:
        self.c = connection
        self.request = request
        self.cycle = Cycle(connection.scope(request))
        self.waker = _Waker()  # a pending receive() of this cycle, and only of this cycle
        self.space = _Waker()  # the reader, paused until the app consumes body
        self.start: dict[str, Any] | None = None  # http.response.start, not yet on the wire
        self.head_sent = False
        self.body_bytes = 0

    async def run(self) -> bool:
        """Serve the request; True if the connection can serve another."""
        c, cycle = self.c, self.cycle
        declared = self._declared_length()
        if declared is not None and declared > c.config.max_body_bytes:
            await self._reject(413)  # before the app runs: nothing of the body is read
            return False
        returned = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._reader)
                try:
                    await c.app(cycle.scope, self.receive, self.send)
                    returned = True
                except Exception:
                    logger.exception("Exception in ASGI application")
                if not self.head_sent and not cycle.disconnected:
                    await self._reject(500)  # raised, or returned without a response
                tg.cancel_scope.cancel()
        finally:
            # Decided once the reader has stopped, so an EOF it read last counts.
            keep = (returned and cycle.response_complete and not c.eof
                    and not c.shutdown.begun
                    and c.conn.our_state is h11.DONE and c.conn.their_state is h11.DONE)
            # Whatever ends the cycle, a receive() still waiting in it (a disconnect
            # watcher the app left behind) gets http.disconnect now.
            if not keep:
                cycle.client_gone()
            self.waker.wake()
        return keep

    def _declared_length(self) -> int | None:
        for name, value in self.request.headers:
            if name.lower() == b"content-length":
                return int(value)  # h11 has checked it is a number
        return None

    async def _reject(self, status: int) -> None:
        """Answer with an error status instead of the app, if nothing of its response is out."""
        if self.head_sent or self.c.conn.our_state is not h11.SEND_RESPONSE:
            return
        self.head_sent = True
        self.cycle.response_started = self.cycle.response_complete = True
        await self.c.write(*self.c.error_events(status))

    async def _reader(self) -> None:
        c, cycle = self.c, self.cycle
        while True:
            if cycle.buffered >= c.config.buffer_limit:
                await self.space.wait()
                continue
            try:
                event = c.conn.next_event()
            except h11.RemoteProtocolError as exc:
                if c.eof:
                    cycle.body_lost()  # cut short by end of stream: not an error to answer
                else:
                    await self._reject(exc.error_status_hint)  # a malformed body
                    cycle.client_gone()
                self.waker.wake()
                return
            if isinstance(event, h11.Data):
                self.body_bytes += len(event.data)
                if self.body_bytes > c.config.max_body_bytes:
                    await self._reject(413)  # a chunked body past the limit
                    cycle.client_gone()
                    self.waker.wake()
                    return
                cycle.add_body(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                cycle.end_body()
            elif event is h11.NEED_DATA:
                await c.read()  # at end of stream, h11 says next whether the body was whole
            else:  # PAUSED (a pipelined request waits its turn) or ConnectionClosed
                if c.eof:
                    if not cycle.body_done:
                        cycle.body_lost()
                    self.waker.wake()
                    return
                if len(c.conn.trailing_data[0]) >= c.config.buffer_limit:
                    await anyio.sleep_forever()  # enough pipelined input: push back
                # Keep reading, to see the client leave. EOF after a whole request may be a
                # half-close: the client can still read, so the response goes on; a write
                # failing means it is gone.
                await c.read()
            self.waker.wake()

    async def receive(self) -> dict[str, Any]:
        if self.c.conn.they_are_waiting_for_100_continue and not self.head_sent:
            await self.c.write(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            message = self.cycle.next_message()
            if message is not None:
                self.space.wake()
                return message
            await self.waker.wait()

    async def send(self, message: dict[str, Any]) -> None:
        cycle = self.cycle
        if cycle.disconnected or cycle.response_complete:
            return  # ASGI spec 2.3: sends after a disconnect are ignored
        kind = message.get("type")
        if kind == "http.response.start" and not cycle.response_started:
            cycle.response_started = True
            self.start = message
            return
        if kind != "http.response.body" or not cycle.response_started:
            raise RuntimeError(f"unexpected ASGI message {kind!r} in this state")
        events: list[Any] = []
        if self.start is not None:  # the head goes out with the first body message
            headers = [(bytes(k), bytes(v)) for k, v in self.start.get("headers", [])]
            if self.c.shutdown.begun:
                headers.append((b"connection", b"close"))
            events.append(h11.Response(status_code=self.start["status"], headers=headers,
                                       reason=_status_line(self.start["status"])))
            self.start = None
            self.head_sent = True
        body = message.get("body", b"")
        if body and self.request.method != b"HEAD":
            events.append(h11.Data(data=body))
        if not message.get("more_body", False):
            events.append(h11.EndOfMessage())
            cycle.response_complete = True
        if not await self.c.write(*events):
            cycle.client_gone()
        self.waker.wake()


async def serve_connection(stream: anyio.abc.ByteStream, app: App,
                           config: Config | None = None,
                           shutdown: Shutdown | None = None) -> None:
    """Serve HTTP/1.1 on one byte stream until either side ends it; closes the stream."""
    await _Connection(stream, app, config or Config(), shutdown or Shutdown()).serve()


async def serve(app: App, host: str = "127.0.0.1", port: int = 8000,
                config: Config | None = None,
                ready: Callable[[int], None] | None = None,
                stop: anyio.Event | None = None) -> None:
    """Serve on a real TCP socket; `ready(port)` once listening.

    When `stop` is set the shutdown is graceful: the listener closes, idle
    connections close, in-flight requests get `shutdown_grace` seconds to finish
    (their responses say `Connection: close`), then whatever is left is cancelled."""
    config = config or Config()
    shutdown = Shutdown()
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await serve_connection(stream, app, config, shutdown)

    async with anyio.create_task_group() as connections:
        async with listener, anyio.create_task_group() as accepting:
            accepting.start_soon(listener.serve, handle, connections)
            if ready is not None:
                ready(listener.extra(anyio.abc.SocketAttribute.local_port))
            await (stop.wait() if stop is not None else anyio.sleep_forever())
            accepting.cancel_scope.cancel()
        shutdown.begin()
        connections.cancel_scope.deadline = anyio.current_time() + config.shutdown_grace
