"""One HTTP/1.1 connection: h11 and the keep-alive loop, over any anyio byte stream.

`serve_connection` takes any anyio byte stream, so the same code serves a TCP
stream on asyncio or trio (server.py) and a simulated stream in the harness
(target.py). It reads request heads, answers the ones it must refuse (400, 431)
itself, hands each request to an `Exchange` (exchange.py), and between
requests waits for the next one under the keep-alive timer, the only timer it
has. See README.md for the invariants and where each is kept.
"""

from __future__ import annotations

import contextlib
import http
import socket
import struct
from typing import Any

import anyio
import anyio.abc
import h11

from servers.reference.config import App, Config, Shutdown
from servers.reference.exchange import Exchange

LINGER = 2.0  # seconds a staged close drains input before closing (Apache's lingering close)


def _status_line(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def _set_linger_zero(stream: anyio.abc.ByteStream) -> None:
    """Make the coming close a reset (RST) rather than an orderly FIN."""
    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _head_size(request: h11.Request) -> int:
    line = len(request.method) + len(request.target) + len(b"  HTTP/1.1\r\n")
    return line + sum(len(k) + len(v) + len(b": \r\n") for k, v in request.headers) + 2


class Connection:
    def __init__(self, stream: anyio.abc.ByteStream, app: App, config: Config,
                 shutdown: Shutdown) -> None:
        self.stream = stream
        self.app = app
        self.config = config
        self.shutdown = shutdown
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_bytes)
        self.eof = False
        self.close_delimited = False  # the response being sent ends only at the close

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

    def response(self, status: int, headers: list[Any]) -> h11.Response:
        return h11.Response(status_code=status, headers=headers, reason=_status_line(status))

    def error_events(self, status: int) -> list[Any]:
        """A whole plain-text error response that ends the connection."""
        body = _status_line(status) or b"Error"
        headers = [("content-type", "text/plain"), ("content-length", str(len(body))),
                   ("connection", "close")]
        return [self.response(status, headers),
                h11.Data(data=body), h11.EndOfMessage()]

    async def discard(self) -> None:
        """Read and drop input until end of stream: what a client sent after it asked to
        close is never processed (RFC 9112, 9.6), but its leaving must still be seen."""
        while True:
            try:
                if not await self.stream.receive(self.config.read_size):
                    break
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                break
        self.eof = True

    def skip_empty_lines(self) -> None:
        """Drop empty lines before a request line (RFC 9112, 2.2: a server SHOULD ignore
        at least one; old clients write a CRLF after a POST body). h11 refuses them, and
        keeps no way to drop buffered bytes, so the cycle's parser is rebuilt without
        them; between cycles it holds no other state."""
        if self.conn.their_state is not h11.IDLE or self.conn.our_state is not h11.IDLE:
            return
        data, closed = self.conn.trailing_data
        rest = data
        while rest.startswith((b"\r\n", b"\n")):
            rest = rest[2:] if rest.startswith(b"\r") else rest[1:]
        if rest == data:
            return
        self.conn = h11.Connection(h11.SERVER,
                                   max_incomplete_event_size=self.config.max_header_bytes)
        if rest:  # (b"" is h11's end of stream)
            self.conn.receive_data(rest)
        if closed:
            self.conn.receive_data(b"")

    async def next_request(self) -> h11.Request | None:
        """The next request head, or None: EOF, a bad request (answered 400 or 431),
        the keep-alive timeout, or shutdown while idle."""
        while True:
            self.skip_empty_lines()
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
                if not await Exchange(self, request).run():
                    break
                self.conn.start_next_cycle()
        finally:
            if self.conn.our_state is h11.SEND_BODY:
                # A response cut short must not look complete: a close-delimited body
                # (HTTP/1.0) ending in FIN would, so reset instead. A chunked or sized
                # body is visibly short at a FIN, and a reset would also throw away what
                # the client has not read yet of the responses before it.
                if self.close_delimited:
                    _set_linger_zero(self.stream)
            elif not self.eof:
                # The client may still be sending (a body nobody read, a request we will
                # not serve, the next keep-alive request): every such close is staged.
                await self._linger()
            await self.stream.aclose()

    async def _linger(self) -> None:
        """A staged close (RFC 9112, 9.6) while the client may still be sending: a body we
        did not read, a request it wrote after asking to close, the next request of a
        keep-alive connection. FIN first, then read and drop input until its EOF or LINGER
        seconds. Closing at once would answer its bytes with a RST, and the client's
        kernel would drop the end of the response it has not read yet."""
        with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError,
                                 anyio.ClosedResourceError, OSError):
            await self.stream.send_eof()
            with anyio.move_on_after(LINGER):
                while True:
                    await self.stream.receive()

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


async def serve_connection(stream: anyio.abc.ByteStream, app: App,
                           config: Config | None = None,
                           shutdown: Shutdown | None = None) -> None:
    """Serve HTTP/1.1 on one byte stream until either side ends it; closes the stream."""
    await Connection(stream, app, config or Config(), shutdown or Shutdown()).serve()
