"""One request cycle: the app, its `receive()` and `send()`, and a reader task beside it.

The reader feeds the body into the `Cycle` (and stops reading while the app has
not consumed `buffer_limit` bytes), notices the client going away, and wakes
the cycle's pending `receive()` through a fresh `anyio.Event` per wait.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import h11

from servers.reference.config import App, Config, Shutdown
from servers.reference.cycle import Cycle


class Link(Protocol):
    """What an exchange needs of its connection (connection.py's `Connection`)."""

    conn: h11.Connection
    app: App
    config: Config
    shutdown: Shutdown
    eof: bool
    close_delimited: bool

    async def write(self, *events: Any) -> bool: ...
    async def read(self) -> bool: ...
    async def discard(self) -> None: ...
    def response(self, status: int, headers: list[Any]) -> h11.Response: ...
    def error_events(self, status: int) -> list[Any]: ...
    def scope(self, request: h11.Request) -> dict[str, Any]: ...

logger = logging.getLogger("reference")


@dataclass
class Waker:
    """Wakes every task waiting now (an app may have two receive()s pending: its own
    and a disconnect watcher's); a later wait waits for the next wake. A wake with
    nobody waiting leaves nothing behind: the waiter re-checks its condition first."""

    event: anyio.Event = field(default_factory=anyio.Event)

    def wake(self) -> None:
        self.event.set()
        self.event = anyio.Event()

    async def wait(self) -> None:
        await self.event.wait()


class Exchange:
    """One request cycle: the app, its receive() and send(), and the reader beside it."""

    def __init__(self, connection: Link, request: h11.Request) -> None:
        self.c = connection
        self.request = request
        self.cycle = Cycle(connection.scope(request))
        self.waker = Waker()  # a pending receive() of this cycle, and only of this cycle
        self.space = Waker()  # the reader, paused until the app consumes body
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
                    with c.shutdown.tells(self._shutting_down):
                        await c.app(cycle.scope, self.receive, self.send)
                    returned = True
                except Exception:
                    logger.exception("Exception in ASGI application")
                if not self.head_sent and not cycle.disconnected:
                    # raised, or returned without a response: a long poll the shutdown
                    # ended gets 503 (try again elsewhere), anything else 500
                    await self._reject(503 if returned and cycle.shutting_down else 500)
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

    def _shutting_down(self) -> None:
        self.cycle.shutting_down = True
        self.waker.wake()

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
            promised_close = c.conn.their_state is h11.MUST_CLOSE  # h11 errs it on raising
            try:
                event = c.conn.next_event()
            except h11.RemoteProtocolError as exc:
                if promised_close:
                    # Bytes after a request that asked to close (or an HTTP/1.0 one): never
                    # a request to serve (RFC 9112, 9.6), nor a fault of this request's.
                    await c.discard()
                elif cycle.body_done:
                    # The request is whole: the error is about bytes after it, a request
                    # the client sent before it read our `Connection: close` (a shutdown
                    # began). That one goes unserved; this response goes on.
                    return
                elif c.eof:
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
            events.append(self.c.response(self.start["status"], headers))
            # h11 frames a body without Content-Length by the close for an HTTP/1.0 peer
            self.c.close_delimited = self.c.conn.their_http_version == b"1.0" and not any(
                name.lower() == b"content-length" for name, _ in headers)
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
