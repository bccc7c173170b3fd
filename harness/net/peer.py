"""The scripted client peer: the far end of a connection, outside the loop.

A real client is another process, so it must not run on the simulated loop:
its actions would then be ordered by the server's scheduler. Instead the
poller drives it. A scenario schedules peer actions at virtual times
(`network.at`), the peer's writes go into the connection's in-flight bytes
(arrival is the poller's choice), and what the server sends reaches the peer
in the poll where it arrives, where `on_data` may react by sending more.

Reading policy: `read_limit` bytes per poll (None: everything, 0: the client
has stopped reading), which is how a slow reader backs up the server's writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from harness.net.network import Connection, Network


class Host(Protocol):
    """What a peer needs of the runtime that drives it (harness/sim/loop.py's SimLoop):
    the network, the clock, the event log, and the list of peers it polls."""

    network: Network
    peers: list[Any]
    log: Any  # the run's event log (harness/sim/eventlog.py): its `entries` list
    now: float  # virtual time now, as time() returns it


    def time(self) -> float: ...
    def record(self, kind: str, detail: str) -> None: ...
    def network_closed(self, conn: Any, side: str) -> None: ...


class PeerConnection:
    polled = False  # no I/O events: the poller calls flush and take_arrivals itself

    def __init__(self, loop: Host, address: tuple[str, int], read_limit: int | None = None):
        self.loop = loop
        self.conn: Connection = loop.network.connect(address)
        self.conn.client_end = self
        self.name = f"client[c{self.conn.cid}]"
        self.read_limit = read_limit
        self.received = bytearray()
        self.eof = False
        self.was_reset = False
        # Written by the client, not yet taken by its kernel; and a FIN to send after it.
        # The poller flushes only a peer with either (flush does nothing otherwise).
        self.outbox = bytearray()
        self.shutdown_pending = False
        self.on_data: Callable[[bytes], None] | None = None
        self.on_eof: Callable[[], None] | None = None
        self.on_reset: Callable[[], None] | None = None
        # Where in the run's event log the client first ended its side (shutdown, close
        # or reset): what observations take from the log, kept as it is written.
        self.end_tick: int | None = None
        loop.peers.append(self)
        host, port = self.conn.server_addr
        loop.record("connect", f"c{self.conn.cid} -> {host}:{port}")

    # -- what a scenario calls ---------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.conn.client_closed

    def send(self, data: bytes) -> None:
        if self.closed or self.shutdown_pending or self.conn.up.fin_sent:
            raise RuntimeError(f"{self.name}: send after close or shutdown")
        if data:
            self.loop.record("client-send", f"{self.name} {len(data)}B")
            self.outbox += data
            self.flush()

    def shutdown_write(self) -> None:
        """Half-close: a FIN after everything written so far."""
        self._note_end()
        self.loop.record("client-shutdown", self.name)
        self.shutdown_pending = True
        self.flush()

    def close(self) -> None:
        """A full close: a FIN after what is written; later arrivals answer with RST."""
        if self.closed:
            return
        self._note_end()
        self.loop.record("client-close", self.name)
        self.shutdown_pending = True
        self.flush()
        self.loop.network_closed(self.conn, "client")

    def reset(self) -> None:
        """An abortive close (SO_LINGER 0): unsent bytes are dropped, a RST is sent."""
        if self.closed:
            return
        self._note_end()
        self.loop.record("client-reset", self.name)
        self.outbox.clear()
        self.conn.up.send_rst(self.loop.now)
        self.loop.network_closed(self.conn, "client")

    def _note_end(self) -> None:
        if self.end_tick is None:
            self.end_tick = len(self.loop.log.entries)  # the entry recorded next

    # -- what the poller calls -------------------------------------------------------
    def io_events(self, loop: Any) -> list[Any] | None:
        return None  # The peer reads in the poll itself (take_arrivals).

    def flush(self) -> None:
        up = self.conn.up
        if up.rst_sent:
            self.outbox.clear()
            return
        if self.outbox:
            n = up.send(self.outbox, self.loop.now)  # the window copies what it takes
            del self.outbox[:n]
        if self.shutdown_pending and not self.outbox:
            up.send_fin(self.loop.now)

    def take_arrivals(self) -> bool:
        """Read what arrived, within the read limit; True if anything was read. With
        nothing readable (no bytes, FIN or RST arrived) it does nothing and is False."""
        down = self.conn.down
        if self.closed:
            return False  # The poller answers arrivals at a closed socket with RST.
        if down.rst_arrived and not self.was_reset:
            self.was_reset = True
            self.loop.record("client-recv", f"{self.name} RST")
            if self.on_reset is not None:
                self.on_reset()
            return True
        if self.was_reset:
            return False  # recv() now fails with ECONNRESET: no data, no EOF
        limit = len(down.rx) if self.read_limit is None else self.read_limit
        progressed = False
        if down.rx and limit > 0:
            progressed = True
            data = down.read(limit)
            self.received += data
            self.loop.record("client-recv", f"{self.name} {len(data)}B")
            if self.on_data is not None:
                self.on_data(data)
        if down.fin_arrived and not down.rx and not self.eof:
            self.eof = True
            self.loop.record("client-recv", f"{self.name} EOF")
            progressed = True
            if self.on_eof is not None:
                self.on_eof()
        return progressed
