"""The simulated network: sans-IO TCP byte streams between endpoints.

Theory of operation. A `Connection` is two `Stream`s, one per direction. A
stream models what TCP guarantees and nothing more: bytes arrive in order,
but in any split; a FIN (half-close) arrives after every byte sent before it;
a RST discards what the receiver has not read yet. Each stream has three
places a byte can be:

    sender's write -> in_flight -> (arrival) -> rx -> (receiver's read)

`window` bounds in_flight + rx, which is what makes a slow reader push back
on the writer (the kernel's send and receive buffers, folded into one).

Nothing here knows about asyncio. The poller (harness/sim/poller.py) decides
*when* in-flight bytes arrive and how they split; the loop's transports and
the scripted client peer call `send` and `read`. Keeping this module free of
scheduling is what lets the same rules serve every runtime adapter.
"""

from __future__ import annotations

import errno
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_WINDOW = 256 * 1024


class Receiver(Protocol):
    """Whoever reads one stream: a loop transport or the scripted peer. Only a `polled`
    one is asked for its I/O events (the peer reads in the poll itself)."""

    polled: bool

    def io_events(self, loop: Any) -> list[Any] | None:
        """The runtime's callbacks for what this end may do now (read, write), or None."""
        ...


class Stream:
    """One direction of a TCP connection (see the module docstring)."""

    def __init__(self, name: str, window: int = DEFAULT_WINDOW) -> None:
        if window <= 0:
            raise ValueError(f"stream window must be positive, got {window!r}")
        self.name = name
        self.window = window
        self.in_flight = bytearray()
        self.rx = bytearray()
        self.fin_sent = False
        self.fin_arrived = False
        self.rst_sent = False
        self.rst_arrived = False
        # has_pending_arrival(), kept up to date by every change to what it reads (send,
        # send_fin, send_rst, arrive): the poller asks it of every stream in every poll.
        self.pending = False
        # Virtual time the oldest in-flight item was sent, for the latency bound.
        self.oldest_sent_at: float | None = None
        # What the wire shows, for the oracles: when each end marker left, and reads.
        self.fin_sent_at: float | None = None
        self.rst_sent_at: float | None = None
        self.reads = 0
        self.bytes_read = 0

    def snapshot(self) -> Stream:
        """A copy that later sends, arrivals and reads do not change."""
        copy = Stream.__new__(Stream)
        copy.__dict__.update(self.__dict__)
        copy.in_flight = bytearray(self.in_flight)
        copy.rx = bytearray(self.rx)
        return copy

    # -- sender side -------------------------------------------------------
    def capacity(self) -> int:
        return max(0, self.window - len(self.in_flight) - len(self.rx))

    def send(self, data: bytes | bytearray, now: float) -> int:
        """Accept as much of `data` as the window allows; return the count."""
        if self.fin_sent or self.rst_sent:
            raise BrokenPipeError(errno.EPIPE, f"{self.name}: send after shutdown")
        n = min(len(data), self.capacity())
        if n:
            if not self.pending:
                self.oldest_sent_at = now
            self.in_flight += data if n == len(data) else data[:n]  # (no slice to copy)
            self.pending = True
        return n

    def send_fin(self, now: float) -> None:
        if self.fin_sent or self.rst_sent:
            return
        if not self.pending:
            self.oldest_sent_at = now
        self.fin_sent = True
        self.fin_sent_at = now
        self.pending = True  # not arrived: fin_arrived can only follow fin_sent

    def send_rst(self, now: float) -> None:
        """An abortive close: unsent bytes are dropped, the RST overtakes nothing."""
        if self.rst_sent:
            return
        if not self.pending:
            self.oldest_sent_at = now
        self.rst_sent = True
        self.rst_sent_at = now
        self.pending = True  # not arrived: rst_arrived can only follow rst_sent

    # -- the wire ----------------------------------------------------------
    def has_pending_arrival(self) -> bool:
        """Bytes, a FIN or a RST sent and not yet arrived."""
        return self.pending

    def _pending_now(self) -> bool:
        return (
            bool(self.in_flight)
            or (self.fin_sent and not self.fin_arrived)
            or (self.rst_sent and not self.rst_arrived)
        )

    def arrival_options(self) -> int:
        """Choices for one poll: 0 = all arrives, 1 = nothing yet, 1+k = k bytes."""
        return 2 + max(0, len(self.in_flight) - 1)

    def arrive(self, nbytes: int | None) -> tuple[int, bool, bool]:
        """Move `nbytes` (None: everything, markers included) into rx.

        Returns (bytes moved, fin arrived now, rst arrived now)."""
        moved = len(self.in_flight) if nbytes is None else min(nbytes, len(self.in_flight))
        self.rx += self.in_flight[:moved]
        del self.in_flight[:moved]
        fin = rst = False
        if not self.in_flight:
            if self.fin_sent and not self.fin_arrived:
                self.fin_arrived = fin = True
            if self.rst_sent and not self.rst_arrived:
                self.rst_arrived = rst = True
                self.rx.clear()
        self.pending = self._pending_now()
        self.oldest_sent_at = self.oldest_sent_at if self.pending else None
        return moved, fin, rst

    # -- receiver side -----------------------------------------------------
    def readable(self) -> bool:
        return bool(self.rx) or self.fin_arrived or self.rst_arrived

    def read(self, limit: int) -> bytes:
        """recv(): bytes, b"" at end of stream, or the errors a socket raises."""
        if self.rst_arrived:
            self.reads += 1
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")
        if self.rx:
            data = bytes(self.rx[:limit])
            del self.rx[:limit]
            self.reads += 1
            self.bytes_read += len(data)
            return data
        if self.fin_arrived:
            self.reads += 1
            return b""
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")


@dataclass
class Connection:
    """A TCP connection: `up` carries client->server bytes, `down` the reverse."""

    cid: int
    client_addr: tuple[str, int]
    server_addr: tuple[str, int]
    up: Stream
    down: Stream
    # Endpoints register here so the poller can ask who wants read events.
    server_end: Receiver | None = None
    client_end: Receiver | None = None
    # A closed socket answers arriving bytes with a RST.
    server_closed: bool = False
    client_closed: bool = False

    def streams(self) -> tuple[Stream, Stream]:
        return (self.up, self.down)

    def snapshot(self) -> Connection:
        """The wire as it is now, detached from the endpoints that keep changing it."""
        copy = Connection.__new__(Connection)  # dataclasses.replace, without its field scan
        copy.__dict__.update(self.__dict__)
        copy.up, copy.down = self.up.snapshot(), self.down.snapshot()
        copy.server_end = copy.client_end = None
        return copy

    def server_closed_at(self) -> float | None:
        """When the server's FIN or RST left, as the wire shows it."""
        fin, rst = self.down.fin_sent_at, self.down.rst_sent_at
        if fin is None or rst is None:
            return rst if fin is None else fin
        return min(fin, rst)


@dataclass
class Listener:
    address: tuple[str, int]
    backlog: list[Connection] = field(default_factory=list)
    on_readable: Callable[[], None] | None = None
    closed: bool = False


class Network:
    """All connections and listeners of one simulated run, plus the peer timeline."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self.connections: list[Connection] = []
        self.listeners: dict[tuple[str, int], Listener] = {}
        self._next_port = 50000
        # Scripted peer actions at virtual times: (when, seq, action).
        self._timeline: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def listen(self, address: tuple[str, int]) -> Listener:
        if address in self.listeners and not self.listeners[address].closed:
            raise OSError(errno.EADDRINUSE, f"address already in use: {address[0]}:{address[1]}")
        listener = Listener(address)
        self.listeners[address] = listener
        return listener

    def connect(self, address: tuple[str, int], client_host: str = "127.0.0.1") -> Connection:
        """Complete a handshake with a listener; the server still has to accept()."""
        listener = self.listeners.get(address)
        if listener is None or listener.closed:
            raise ConnectionRefusedError(
                errno.ECONNREFUSED,
                f"connect to {address[0]}:{address[1]} refused: nothing listens there in the"
                " simulated network (start the server with loop.create_server first)",
            )
        cid = len(self.connections) + 1
        client_addr = (client_host, self._next_port)
        self._next_port += 1
        conn = Connection(
            cid,
            client_addr,
            address,
            Stream(f"c{cid}>s", self.window),
            Stream(f"s>c{cid}", self.window),
        )
        self.connections.append(conn)
        listener.backlog.append(conn)
        return conn

    # -- the scripted peer's own clock ---------------------------------------
    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timeline, (when, self._seq, action))
        self._seq += 1

    def next_action_time(self) -> float | None:
        return self._timeline[0][0] if self._timeline else None

    def pop_due_actions(self, now: float) -> list[Callable[[], None]]:
        due = []
        while self._timeline and self._timeline[0][0] <= now:
            due.append(heapq.heappop(self._timeline)[2])
        return due

