"""SimLoop: a real asyncio event loop on a virtual clock and a simulated network.

It subclasses `asyncio.BaseEventLoop` and keeps the stock `_run_once`, so the
order in which ready callbacks run is the stock order by construction; only
the selector is replaced (harness/sim/poller.py), and that is where every choice
is made. `time()` is virtual and only moves when nothing else can happen.

Anything that would leave the simulation (a real socket or file descriptor,
a thread, an executor, a subprocess) raises `SimulationEscape` naming what
escaped; the escape is also remembered, so a server that catches the error
cannot hide it from the run's verdict. Signal handlers get a faithful
stand-in: they are registered and never fire, as no signal is ever sent.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import socket
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn

from harness.decisions import DecisionSource, Recorder
from harness.errors import TargetFault
from harness.net.network import Network
from harness.sim.eventlog import Entry, EventLog
from harness.sim.poller import Poller
from harness.sim.server import SimServer
from harness.sim.transport import SimTransport


class SimulationEscape(TargetFault):
    """Code tried to leave the simulation, where the harness cannot control it: the
    target cannot be tested as it is (not a race the harness found), exit 2."""


def _callback_name(callback: Callable[..., Any]) -> str:
    target = getattr(callback, "__func__", callback)
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    return str(name)


class _LoggedTimerHandle(asyncio.TimerHandle):
    """A TimerHandle that writes its firing into the event log."""

    __slots__ = ()

    def _run(self) -> None:
        loop = self._loop  # type: ignore[attr-defined]
        if isinstance(loop, SimLoop):
            loop.record("timer", _callback_name(self._callback))  # type: ignore[attr-defined]
        super()._run()


class SimLoop(asyncio.BaseEventLoop):
    def __init__(
        self,
        decisions: DecisionSource,
        *,
        network: Network | None = None,
        log: EventLog | None = None,
        max_latency: float = 0.5,
        step_budget: int = 200_000,
        horizon: float = 3600.0,
    ) -> None:
        super().__init__()
        # Virtual time now: what time() returns, as an attribute the harness's own hot
        # paths (poller, transports, peers, app model) read without a call.
        self.now = 0.0
        self.network = network if network is not None else Network()
        self.log = log if log is not None else EventLog()
        self.decisions = decisions if isinstance(decisions, Recorder) else Recorder(decisions)
        self.peers: list[Any] = []  # harness.net.peer.PeerConnection, driven in the poll
        self.servers: list[SimServer] = []
        self.pending_connects: list[asyncio.Future[None]] = []
        self.escapes: list[str] = []
        self.stuck_runs: list[list[str]] = []  # stacks of callbacks the watchdog stopped
        self.errors: list[dict[str, Any]] = []  # what reached the exception handler
        self.outcome: str | None = None
        self.outcome_detail = ""
        self.signal_handlers: dict[int, asyncio.Handle] = {}
        # (high, low) write-buffer limits for server transports; None: asyncio's defaults.
        self.write_buffer_limits: tuple[int, int] | None = None
        # Signals sent to the process, each delivered at a poll as the I/O event asyncio's
        # self-pipe makes of it; and what runs when the run would otherwise be quiescent.
        self.pending_signals: list[tuple[str, Callable[[], None]]] = []
        self.at_quiescence: list[Callable[[], None]] = []
        self.exited = False  # the process exited (harness/sim/exit.py): nothing of it runs
        self.tearing_down = False  # the run is over (harness/sim/run.py): off the record
        self._selector = Poller(self, max_latency, step_budget, horizon)
        self.set_exception_handler(_record_exception)
        # Each task's place in creation order (see tasks_in_creation_order), by a weak
        # reference: a task the run drops goes when it would on a stock loop (its "never
        # retrieved" report is part of the run). A dead task's entry stays until the loop
        # goes: what the run made. A plain dict: one lookup per task step, no Python code.
        self._created: dict[weakref.ref[asyncio.Task[Any]], int] = {}
        self._task_count = itertools.count()
        # Tasks made some other way (asyncio.Task(coro, loop=...)): each schedules its
        # first step with call_soon, which sees it. With _created, every task of this
        # loop, so no scan of asyncio's process-wide set of tasks, whose dead tasks of
        # earlier runs (garbage not yet collected) made each scan cost what *exists*.
        self._foreign: weakref.WeakSet[asyncio.Task[Any]] | None = None  # made when needed
        self._building: list[asyncio.Task[Any]] | None = None  # see create_task

    # -- tasks -------------------------------------------------------------------
    def create_task(self, coro: Any, *, name: str | None = None,
                    context: Any = None) -> asyncio.Task[Any]:
        # The first step the new task schedules is its own, not a foreign task's: while it
        # is built, call_soon only collects the tasks it sees (a task factory may make
        # others on the way, and those are foreign).
        outer, self._building = self._building, []
        try:
            task = super().create_task(coro, name=name, context=context)
        finally:
            seen, self._building = self._building, outer
        self._created[weakref.ref(task)] = next(self._task_count)
        for other in seen:
            if other is not task and weakref.ref(other) not in self._created:
                self._add_foreign(other)
        return task

    def _add_foreign(self, task: asyncio.Task[Any]) -> None:
        if self._foreign is None:  # (building, even iterating, a WeakSet runs Python code)
            self._foreign = weakref.WeakSet()
        self._foreign.add(task)

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        task = getattr(callback, "__self__", None)  # a task's step: its first, or a wakeup
        if isinstance(task, asyncio.Task):
            if self._building is not None:
                self._building.append(task)
            elif weakref.ref(task) not in self._created:
                self._add_foreign(task)
        return super().call_soon(callback, *args, context=context)

    def live_tasks(self) -> list[asyncio.Task[Any]]:
        """What `asyncio.all_tasks(self)` returns (this loop's tasks not done), found
        among this loop's own tasks only."""
        live = [t for r in self._created if (t := r()) is not None and not t.done()]
        if self._foreign is not None:
            live += [t for t in self._foreign if not t.done()]
        return live

    def tasks_in_creation_order(self) -> list[asyncio.Task[Any]]:
        """Every live task, oldest first. `asyncio.all_tasks` is a set ordered by memory
        addresses, which differ from run to run; this order does not (a task made some
        other way than create_task comes last, by name)."""
        created = self._created
        return sorted(self.live_tasks(), key=lambda t: (
            weakref.ref(t) not in created, created.get(weakref.ref(t), 0), t.get_name()))

    # -- the clock -----------------------------------------------------------
    def time(self) -> float:
        return self.now

    def advance_clock(self, when: float) -> None:
        if when < self.now:
            raise AssertionError(f"virtual time must not go back: {self.now} -> {when}")
        self.now = when

    def iterations(self) -> int:
        """Loop iterations (polls) so far: a task that suspended and resumed saw it move."""
        return int(self._selector.polls)

    def next_timer_when(self) -> float | None:
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        live = [h.when() for h in scheduled if not h.cancelled()]
        return min(live) if live else None

    def call_at(
        self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        # As BaseEventLoop.call_at, with a handle that logs when it fires.
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        timer = _LoggedTimerHandle(when, callback, args, self, context)
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    # -- the selector's side of BaseEventLoop ---------------------------------
    def _process_events(self, event_list: list[asyncio.Handle]) -> None:
        self._ready.extend(event_list)  # type: ignore[attr-defined]

    def _write_to_self(self) -> None:
        if self.is_running() and threading.get_ident() != self._thread_id:  # type: ignore[attr-defined]
            self._escape("call_soon_threadsafe() from another thread", "a real thread is running")

    # -- bookkeeping -----------------------------------------------------------
    def record(self, kind: str, detail: object) -> None:
        """`detail`: its text, or an object whose str() is the text (see Entry)."""
        # EventLog.add, inlined; tuple.__new__ skips the named tuple's Python-level __new__
        self.log.entries.append(tuple.__new__(Entry, (self.now, kind, detail)))

    def finish(self, outcome: str, detail: str) -> None:
        """Called by the poller: the run is over (quiescent, horizon or livelock)."""
        self.outcome = outcome
        self.outcome_detail = detail
        self.record("end", f"{outcome}: {detail}")
        self.stop()

    def network_closed(self, conn: Any, side: str) -> None:
        if side == "server":
            conn.server_closed = True
        else:
            conn.client_closed = True

    def _escape(self, what: str, why: str) -> NoReturn:
        message = (
            f"simulation escape: {what}: {why}, outside the simulated loop's control. "
            "Run it synchronously in the app, or give it a deterministic stand-in in "
            "harness/sim/loop.py."
        )
        self.escapes.append(message)
        raise SimulationEscape(message)

    # -- the network -----------------------------------------------------------
    async def create_server(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        *,
        family: int = socket.AF_UNSPEC,
        flags: int = socket.AI_PASSIVE,
        sock: socket.socket | None = None,
        ssl: Any = None,
        start_serving: bool = True,
        **_options: Any,
    ) -> SimServer:
        if sock is not None:
            self._escape(f"create_server(sock={sock!r})", "a real socket would accept connections")
        if ssl is not None:
            self._escape("create_server(ssl=...)", "TLS is not simulated")
        hosts = _server_hosts(host)
        if host is not None or port is not None:
            # The stock loop resolves each host in its own gather()ed task; using the
            # inherited helper keeps its loop iterations (an IP literal needs no lookup).
            await asyncio.gather(*(
                self._create_server_getaddrinfo(h, port, family=family, flags=flags)  # type: ignore[attr-defined]
                for h in hosts
            ))
        first = hosts[0] if hosts else None
        address = (first or "127.0.0.1", int(port or 0) or 8000)
        listener = self.network.listen(address)
        server = SimServer(self, listener, protocol_factory)
        self.servers.append(server)
        if start_serving:
            server._start()
            await asyncio.sleep(0)  # As the stock loop: "so that all add_reader go through".
        return server

    async def create_connection(
        self,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        host: str | None = None,
        port: int | None = None,
        *,
        family: int = 0,
        proto: int = 0,
        flags: int = 0,
        local_addr: tuple[str, int] | None = None,
        sock: socket.socket | None = None,
        ssl: Any = None,
        **_options: Any,
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        if sock is not None:
            self._escape(f"create_connection(sock={sock!r})", "a real socket would carry the bytes")
        if ssl:
            self._escape("create_connection(ssl=...)", "TLS is not simulated")
        if host is not None or port is not None:
            # As the stock loop: a name (not an IP literal) costs a getaddrinfo() round trip.
            for address in ((host, port), local_addr):
                if address is not None:
                    await self._ensure_resolved(  # type: ignore[attr-defined]
                        address, family=family, type=socket.SOCK_STREAM, proto=proto,
                        flags=flags, loop=self,
                    )
        # The handshake (or the refusal) happens now, as on loopback, but the stock loop
        # learns the outcome only when the socket polls writable: in the next poll.
        refused: ConnectionRefusedError | None = None
        try:
            conn = self.network.connect((host or "127.0.0.1", int(port or 0)))
        except ConnectionRefusedError as exc:
            refused = exc
        else:
            self.record("connect", f"c{conn.cid} -> {conn.server_addr[0]}:{conn.server_addr[1]}")
        connected: asyncio.Future[None] = self.create_future()
        self.pending_connects.append(connected)
        await connected
        if refused is not None:
            raise refused
        protocol = protocol_factory()
        waiter: asyncio.Future[None] = self.create_future()
        transport = SimTransport(self, conn, "client", protocol, waiter)
        await waiter
        return transport, protocol

    async def getaddrinfo(
        self, host: Any, port: Any, *, family: int = 0, type: int = 0, proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        # Deterministic stand-in: every simulated name resolves to itself, no thread. The
        # stock lookup runs in an executor thread whose result reaches the loop at a poll;
        # the earliest is the next one (the poller resolves `pending_connects` there).
        resolved: asyncio.Future[None] = self.create_future()
        self.pending_connects.append(resolved)
        await resolved
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (host, port))]

    # -- escapes -----------------------------------------------------------------
    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any) -> Any:
        self._escape(f"run_in_executor({_callback_name(func)})", "it would run in a real thread")

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        self._escape(f"add_reader(fd={fd!r})", "a real file descriptor would be polled")

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        self._escape(f"add_writer(fd={fd!r})", "a real file descriptor would be polled")

    def remove_reader(self, fd: Any) -> bool:
        return False

    def remove_writer(self, fd: Any) -> bool:
        return False

    async def _real_socket(self, name: str, sock: Any) -> NoReturn:
        self._escape(f"{name}({sock!r})", "a real socket would carry the bytes")

    async def sock_recv(self, sock: Any, n: int) -> bytes:
        return await self._real_socket("sock_recv", sock)

    async def sock_recv_into(self, sock: Any, buf: Any) -> int:
        return await self._real_socket("sock_recv_into", sock)

    async def sock_sendall(self, sock: Any, data: Any) -> None:
        await self._real_socket("sock_sendall", sock)

    async def sock_connect(self, sock: Any, address: Any) -> None:
        await self._real_socket("sock_connect", sock)

    async def sock_accept(self, sock: Any) -> Any:
        return await self._real_socket("sock_accept", sock)

    async def connect_accepted_socket(self, protocol_factory: Any, sock: Any, **kw: Any) -> Any:
        return await self._real_socket("connect_accepted_socket", sock)

    async def create_datagram_endpoint(self, *args: Any, **kw: Any) -> Any:
        self._escape("create_datagram_endpoint()", "UDP is not simulated")

    async def create_unix_server(self, *args: Any, **kw: Any) -> Any:
        self._escape("create_unix_server()", "a real Unix socket would accept connections")

    async def create_unix_connection(self, *args: Any, **kw: Any) -> Any:
        self._escape("create_unix_connection()", "a real Unix socket would carry the bytes")

    async def subprocess_exec(self, *args: Any, **kw: Any) -> Any:
        self._escape("subprocess_exec()", "a real process would run")

    async def subprocess_shell(self, *args: Any, **kw: Any) -> Any:
        self._escape("subprocess_shell()", "a real process would run")

    # -- signals ------------------------------------------------------------------------
    def send_signal(self, name: str, handler: Callable[[], None]) -> None:
        """A signal reaches the process (another process sent it): `handler` runs at the next
        poll, ordered among that poll's I/O events (the poller's "io order" choice), as the
        stock loop runs a signal's handler after its self-pipe polls readable."""
        self.pending_signals.append((name, handler))

    # A server's own signal handlers get a stand-in that never fires: the harness sends
    # its signals through `send_signal`, to the handler the scenario's target names.
    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        self.signal_handlers[sig] = asyncio.Handle(callback, args, self, None)

    def remove_signal_handler(self, sig: int) -> bool:
        return self.signal_handlers.pop(sig, None) is not None


def _server_hosts(host: str | Sequence[str] | None) -> list[str | None]:
    """The hosts the stock create_server binds: '' means all interfaces, as None does."""
    if host == "":
        return [None]
    if isinstance(host, str) or not isinstance(host, Iterable):
        return [host]
    return list(host)


def _record_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    assert isinstance(loop, SimLoop)
    exc = context.get("exception")
    loop.errors.append({**context, "harness_time": loop.time()})
    loop.record("loop-error", f"{context.get('message')}: {type(exc).__name__ if exc else ''}")
