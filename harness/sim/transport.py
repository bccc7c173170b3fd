"""A faithful asyncio stream transport over one end of a simulated connection.

It mirrors `asyncio.selector_events._SelectorSocketTransport` call for call:
`connection_made` and reader registration go through `call_soon`; reads happen
only in the read-ready callback the poller queues; `write` tries the "socket"
at once and buffers the rest behind a write-ready callback; `close` waits for
the buffer to drain; `abort` and fatal errors drop it; `connection_lost` is
delivered through `call_soon`. A server that works on the stock loop sees the
same sequence of protocol calls here. `get_extra_info("socket")` is a
`SimSocket` (harness/sim/sock.py): the questions a stock `TransportSocket`
answers, about the simulated connection, and no I/O; SO_LINGER on with a zero
timeout makes the socket's close a RST, as the kernel's does.

The first time the server ends its side (close, abort, write_eof, or a fatal
error), the transport keeps the call stack of that moment in `closed_by`: the
harness's own boundary, where oracles may look to tell one close path from another.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
from asyncio import transports
from typing import Any

from harness.net.network import Connection, Stream
from harness.sim.quiescence import Frame, callback_stack
from harness.sim.runtime import Runtime, as_asyncio
from harness.sim.sock import SimSocket

# What the stock transport reads per recv() call.
MAX_READ = 256 * 1024
# The event-log kinds with which a side begins to end its connection.
ENDS = frozenset(("close", "abort", "write_eof", "exit-close"))


class SimTransport(transports._FlowControlMixin, transports.Transport):
    max_size = MAX_READ
    polled = True  # the poller asks it for read and write events
    # The stock mixin's flow-control state (slots it sets; typeshed does not declare them).
    _protocol_paused: bool
    _high_water: int
    _low_water: int

    def __init__(
        self,
        loop: Runtime,
        conn: Connection,
        side: str,
        protocol: asyncio.BaseProtocol,
        waiter: asyncio.Future[None] | None = None,
        on_close: Any = None,
    ) -> None:
        local, peer = (conn.server_addr, conn.client_addr)
        if side == "client":
            local, peer = peer, local
        sock = SimSocket(local, peer, loop._escape)
        super().__init__({"peername": peer, "sockname": local, "socket": sock}, as_asyncio(loop))
        self._sim_loop = loop
        self._conn = conn
        self._side = side
        self._incoming: Stream = conn.up if side == "server" else conn.down
        self._outgoing: Stream = conn.down if side == "server" else conn.up
        self._protocol = protocol
        self._protocol_connected = True
        self._buffer = bytearray()
        self._conn_lost = 0
        self._closing = False
        self._paused = False
        self._eof = False
        self._socket_closed = False
        self._reader = False  # registered for read events (the stock _add_reader)
        self._writer = False  # registered for write events
        self._on_close = on_close
        # (how, call stack) of the first close/abort/write_eof or fatal error
        self.closed_by: tuple[str, tuple[Frame, ...]] | None = None
        # ... and whether that happened while the transport handed over bytes it read
        # (inside data_received, or its fatal error): a close in reaction to input.
        self.closed_on_read = False
        # Where in the run's event log this side first began to end (the first of ENDS it
        # recorded), and the bytes it read before that: what observations take from the
        # log, kept as it is written rather than found again by scanning the whole log.
        self.close_tick: int | None = None
        self.read_before_close = 0
        self._delivering = False
        self.name = f"{side}[c{conn.cid}]"
        if side == "server":
            conn.server_end = self
        else:
            conn.client_end = self
        limits = loop.write_buffer_limits
        if side == "server" and limits is not None:
            # As if the listener's transports were built with other limits: before
            # connection_made, so a server that sets its own still has the last word.
            self.set_write_buffer_limits(high=limits[0], low=limits[1])
        loop.call_soon(self._protocol.connection_made, self)
        loop.call_soon(self._add_reader)
        if waiter is not None:
            loop.call_soon(_set_result_unless_cancelled, waiter)

    # -- what the poller asks ----------------------------------------------
    def io_events(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Handle] | None:
        """What this poll reports for this end: read-ready if registered and something
        arrived, then write-ready if registered with bytes buffered and room to send."""
        if not (self._reader or self._writer):
            return None
        reads = self._reader and self._incoming.readable()
        writes = self._writer and bool(self._buffer) and self._outgoing.capacity() > 0
        if not (reads or writes):
            return None
        group = []
        if reads:
            group.append(asyncio.Handle(self._read_ready, (), loop, None))
        if writes:
            group.append(asyncio.Handle(self._write_ready, (), loop, None))
        return group

    def _log(self, kind: str, detail: str) -> None:
        log = self._sim_loop.log
        if self.close_tick is None and kind in ENDS:
            self.close_tick = len(log.entries)  # the place of the entry recorded next
        self._sim_loop.record(kind, f"{self.name} {detail}")

    def _note_end(self, how: str) -> None:
        """Keep the stack that first ended this side: from the callback the loop ran down
        to the caller of close(), abort(), ... (two frames up from here)."""
        if self.closed_by is None:
            self.closed_by = (how, callback_stack(sys._getframe(2)))
            self.closed_on_read = self._delivering

    # -- BaseTransport -------------------------------------------------------
    def is_closing(self) -> bool:
        return self._closing

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._protocol_connected = True

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._reader = False
        self._note_end("close")
        self._log("close", f"buffered={len(self._buffer)}")
        if not self._buffer:
            self._conn_lost += 1
            self._writer = False
            self._sim_loop.call_soon(self._call_connection_lost, None)

    # -- ReadTransport -------------------------------------------------------
    def is_reading(self) -> bool:
        return not self._closing and not self._paused

    def pause_reading(self) -> None:
        if not self.is_reading():
            return
        self._paused = True
        self._reader = False
        self._log("pause_reading", "")

    def resume_reading(self) -> None:
        if self._closing or not self._paused:
            return
        self._paused = False
        self._add_reader()
        self._log("resume_reading", "")

    def _add_reader(self) -> None:
        if self.is_reading():
            self._reader = True

    # -- WriteTransport ------------------------------------------------------
    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def can_write_eof(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"data argument must be a bytes-like object, not {type(data).__name__!r}"
            )
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if not data:
            return  # write(b"") is not end-of-stream.
        if self._conn_lost:
            self._conn_lost += 1
            self._log("write-dropped", f"{len(data)}B after connection lost")
            return
        data = bytes(data)
        if not self._buffer:
            try:
                n = self._send(data)
            except OSError as exc:
                self._fatal_error(exc, "Fatal write error on socket transport")
                return
            data = data[n:]
            if not data:
                return
            self._writer = True
        self._buffer += data
        self._log("write-buffered", f"{len(data)}B (buffer {len(self._buffer)}B)")
        self._maybe_pause_protocol()

    def write_eof(self) -> None:
        if self._closing or self._eof:
            return
        self._eof = True
        self._note_end("write_eof")
        self._log("write_eof", "")
        if not self._buffer:
            self._outgoing.send_fin(self._sim_loop.now)

    def abort(self) -> None:
        self._note_end("abort")
        self._log("abort", "")
        self._force_close(None)

    # The protocol's write flow control, as the stock mixin does it, on the record: a
    # report then shows the server being told to stop writing, and being let go again.
    def _maybe_pause_protocol(self) -> None:
        if not self._protocol_paused and len(self._buffer) > self._high_water:
            self._log("pause_writing", f"buffer {len(self._buffer)}B")
        super()._maybe_pause_protocol()  # type: ignore[misc]

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and len(self._buffer) <= self._low_water:
            self._log("resume_writing", f"buffer {len(self._buffer)}B")
        super()._maybe_resume_protocol()  # type: ignore[misc]

    # -- the "socket" --------------------------------------------------------
    def _send(self, data: bytes | bytearray) -> int:
        incoming = self._incoming
        if incoming.rst_arrived:
            raise ConnectionResetError(104, "Connection reset by peer")
        n = self._outgoing.send(data, self._sim_loop.now)
        if n:
            self._log("send", f"{n}B")
        return n

    def _read_ready(self) -> None:
        if self._conn_lost:
            return
        try:
            data = self._incoming.read(self.max_size)
        except BlockingIOError:
            return
        except OSError as exc:
            self._log("recv", f"error {type(exc).__name__}")
            self._fatal_error(exc, "Fatal read error on socket transport")
            return
        if not data:
            self._log("recv", "eof")
            self._on_eof()
            return
        if self.close_tick is None:
            self.read_before_close += len(data)
        self._log("recv", f"{len(data)}B")
        self._delivering = True
        try:
            self._protocol.data_received(data)  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # As the stock transport: CancelledError too.
            self._fatal_error(exc, "Fatal error: protocol.data_received() call failed.")
        finally:
            self._delivering = False

    def _on_eof(self) -> None:
        try:
            keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # As the stock transport: CancelledError too.
            self._fatal_error(exc, "Fatal error: protocol.eof_received() call failed.")
            return
        if keep_open:
            self._reader = False
        else:
            self.close()

    def _write_ready(self) -> None:
        if self._conn_lost or not self._buffer:
            return
        try:
            n = self._send(self._buffer)  # the buffer itself: the window copies what it takes
        except OSError as exc:
            self._writer = False
            self._buffer.clear()
            self._fatal_error(exc, "Fatal write error on socket transport")
            return
        if n:
            del self._buffer[:n]
        self._maybe_resume_protocol()  # May append.
        if not self._buffer:
            self._writer = False
            if self._closing:
                self._call_connection_lost(None)
            elif self._eof:
                self._outgoing.send_fin(self._sim_loop.now)

    def _fatal_error(self, exc: BaseException, message: str) -> None:
        # Like the stock transport: OSErrors are routine (peer went away) and
        # not reported; anything else goes to the loop's exception handler.
        self._note_end(f"{message.rstrip('.')} ({type(exc).__name__})")
        if not isinstance(exc, OSError):
            self._sim_loop.call_exception_handler(
                {"message": message, "exception": exc, "transport": self,
                 "protocol": self._protocol}
            )
        self._force_close(exc)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._conn_lost:
            return
        if exc is not None:
            self._log("abort", f"forced by {type(exc).__name__}")
        if self._buffer:
            self._buffer.clear()
            self._writer = False
        if not self._closing:
            self._closing = True
            self._reader = False
        self._conn_lost += 1
        self._sim_loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            if self._protocol_connected:
                self._log("connection_lost", type(exc).__name__ if exc else "None")
                self._protocol.connection_lost(exc)  # type: ignore[arg-type]
        finally:
            self._close_socket()
            if self._on_close is not None:
                self._on_close()
                self._on_close = None

    def process_gone(self) -> None:
        """The process exited with this socket open: the kernel closes it (a FIN, or a RST
        over unread input) and what the transport still buffered is lost. The protocol
        hears nothing: nothing of the process runs any more."""
        if self._socket_closed:
            return
        if self.closed_by is None:
            self.closed_by = ("exit", ())
        self._log("exit-close", f"buffered={len(self._buffer)} lost")
        self._buffer.clear()
        self._closing = True
        self._conn_lost += 1
        self._protocol_connected = False
        self._close_socket()

    def _close_socket(self) -> None:
        """sock.close(): a FIN after what is in flight; a RST if unread bytes remain (Linux)."""
        self._socket_closed = True
        now = self._sim_loop.now
        self._reader = self._writer = False
        if self._incoming.rx or self._linger_zero():
            self._outgoing.send_rst(now)
        else:
            self._outgoing.send_fin(now)
        self._sim_loop.network_closed(self._conn, self._side)

    def _linger_zero(self) -> bool:
        """SO_LINGER on with a zero timeout: close() resets the connection."""
        value = self.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_LINGER)
        if isinstance(value, (bytes, bytearray)) and len(value) >= 8:
            on, seconds = struct.unpack("ii", bytes(value[:8]))
            return bool(on) and seconds == 0
        return False

    def __repr__(self) -> str:
        state = "closing" if self._closing else "open"
        return f"<SimTransport {self.name} {state} buffer={len(self._buffer)}>"


def _set_result_unless_cancelled(fut: asyncio.Future[None]) -> None:
    if not fut.cancelled():
        fut.set_result(None)
