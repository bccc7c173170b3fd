"""What oracles may look at: the ASGI interface and the wire, nothing else.

`Observations` is gathered at quiescence from the recording app (ASGI
messages per request), the client scripts (bytes and parsed responses), the
network's streams (when each side's FIN or RST left, how much the server
read), ERROR log records, and the tasks and timers still alive. No field is
read from the server under test (README, Rule 4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.http.app import AppRaised, AsgiEvent, RecordingApp, RequestRecord
from harness.http.client import ClientScript
from harness.http.shutdown import ShutdownFacts
from harness.net.network import Connection
from harness.sim.loop import SimLoop
from harness.sim.quiescence import BlockedTask, Frame, await_stack, blocked_tasks, ready_work
from harness.sim.watchdog import StuckRun


@dataclass
class ConnFacts:
    cid: int
    client: ClientScript
    conn: Connection
    # Positions in the run's event log, to order things that share a virtual instant:
    # the server starting to close (close/abort/write_eof) and the client leaving.
    server_close_tick: int | None = None
    client_end_tick: int | None = None
    # Bytes the server read before it began to close: what it read while closing (a
    # lingering close drains and discards) was never taken as a request.
    read_before_close: int = 0
    # How the server first ended its side, and the call stack that did it (outermost
    # first), as the harness's transport saw the call (sim/transport.py, closed_by).
    closed_how: str = ""
    closed_stack: tuple[Frame, ...] = ()
    closed_on_read: bool = False  # that call came while the server handled bytes it read

    @property
    def server_closed_at(self) -> float | None:
        return self.conn.server_closed_at()

    def server_read_bytes(self) -> int:
        return self.conn.up.bytes_read

    def server_saw_end(self) -> str | None:
        """'rst' or 'fin' if the server has read the client's reset or end of stream."""
        up = self.conn.up
        if up.rst_arrived and self.conn.up.reads and up.rst_sent:
            return "rst"
        if up.fin_arrived and not up.rx and up.reads:
            return "fin"
        return None


@dataclass
class LogRecord:
    logger: str
    message: str
    exc_type: str | None
    deliberate: bool  # the app's own AppRaised, or the watchdog's StuckRun: not the server's
    time: float | None = None  # virtual time it was logged at, where known


@dataclass
class Observations:
    outcome: str
    requests: dict[tuple[int, int], RequestRecord]
    connections: dict[int, ConnFacts]
    blocked: list[BlockedTask]
    timers: list[str]
    errors: list[LogRecord]
    # (cid, request index, receive call) -> await stack of a receive() still waiting
    receive_stacks: dict[tuple[int, int, int], tuple[Frame, ...]] = field(default_factory=dict)
    unknown_paths: list[str] = field(default_factory=list)
    # the stack (outermost first) of each callback the watchdog stopped (sim/watchdog.py)
    stuck: list[list[str]] = field(default_factory=list)
    shutdown: ShutdownFacts | None = None  # set in a run whose scenario shuts the server down
    # receive() calls a shutdown cut (observations.shutdown_cuts): "exit" or "grace"
    cuts: dict[tuple[int, int, int], str] = field(default_factory=dict)
    # in a livelock, what the loop still had queued to run when the run was cut
    spinning: list[BlockedTask] = field(default_factory=list)


def shutdown_cuts(requests: dict[tuple[int, int], RequestRecord],
                  shutdown: ShutdownFacts | None) -> dict[tuple[int, int, int], str]:
    """The receive() calls a shutdown cut short, each "exit" (the process exit's
    cancellation) or "grace" (a cancellation once the scenario's grace period was over).
    Either way the call did not return: it was still waiting when the cut came."""
    if shutdown is None or shutdown.signalled_tick is None:
        return {}
    exiting = shutdown.exiting_tick
    cuts = {}
    for rec in requests.values():
        for e in rec.events:
            if e.kind != "received" or not str(e.message.get("type")).startswith(
                    "raised CancelledError") or e.tick < shutdown.signalled_tick:
                continue
            if shutdown.grace_over(e.time):
                cuts[(rec.cid, rec.index, e.call)] = "grace"
            elif exiting is not None and e.tick >= exiting:
                cuts[(rec.cid, rec.index, e.call)] = "exit"
    return cuts


def _uncut(rec: RequestRecord, cuts: dict[tuple[int, int, int], str]) -> list[AsgiEvent]:
    if not cuts:
        return list(rec.events)
    return [e for e in rec.events
            if not (e.kind == "received" and (rec.cid, rec.index, e.call) in cuts)]


class ErrorCollector(logging.Handler):
    """Collects ERROR records of every logger during a run."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[LogRecord] = []
        self.clock: Callable[[], float] | None = None  # the run's virtual clock, once it runs

    def reset(self) -> None:
        """Empty, as new: for the next run (harness/http/scenario.py reuses collectors)."""
        self.records = []
        self.clock = None

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        message = record.getMessage()
        exc_type: str | None
        if exc is not None:
            exc_type, deliberate = type(exc).__name__, isinstance(exc, (AppRaised, StuckRun))
        else:  # uvicorn before 0.3 formats the traceback into the message itself
            exc_type, deliberate = _traceback_in(message)
        self.records.append(LogRecord(record.name, message.splitlines()[0] if message else "",
                                      exc_type, deliberate,
                                      self.clock() if self.clock is not None else None))


# The exceptions the harness raises on purpose, as a formatted traceback names them.
DELIBERATE = {f"{c.__module__}.{c.__qualname__}" for c in (AppRaised, StuckRun)}


def _traceback_in(message: str) -> tuple[str | None, bool]:
    """(exception type, raised by the harness on purpose?) of the last traceback a log
    message carries as text; (None, False) when it carries none."""
    _, found, tail = message.rpartition("Traceback (most recent call last):")
    if not found:
        return None, False
    # The exception line is the last one not indented (frames and source are).
    lines = [line for line in tail.splitlines() if line.strip() and not line[0].isspace()]
    if not lines:
        return None, False
    name = lines[-1].split(":", 1)[0].strip()
    return name.rsplit(".", 1)[-1], name in DELIBERATE


def observe(
    loop: SimLoop, app: RecordingApp, clients: list[ClientScript], collector: ErrorCollector,
    shutdown: ShutdownFacts | None = None,
) -> Observations:
    # Snapshots again: teardown closes transports, which would send FINs into live streams.
    conns = {c.cid: ConnFacts(c.cid, c, c.peer.conn.snapshot()) for c in clients}
    for c in clients:
        facts = conns[c.cid]
        end = c.peer.conn.server_end
        closed_by = getattr(end, "closed_by", None)
        if closed_by is not None:
            facts.closed_how, facts.closed_stack = closed_by
            facts.closed_on_read = bool(getattr(end, "closed_on_read", False))
        # Where each side began to end in the event log, and what the server read before:
        # kept by the transport and the peer as they record it, not found by a scan.
        facts.server_close_tick = getattr(end, "close_tick", None)
        facts.read_before_close = getattr(end, "read_before_close", 0)
        facts.client_end_tick = c.peer.end_tick
    errors = list(collector.records)
    for context in loop.errors:
        exc = context.get("exception")
        errors.append(
            LogRecord("asyncio", str(context.get("message")), type(exc).__name__ if exc else None,
                      isinstance(exc, (AppRaised, StuckRun)), context.get("harness_time"))
        )
    scheduled: list[Any] = getattr(loop, "_scheduled", [])
    timers = sorted(
        getattr(h._callback, "__qualname__", type(h._callback).__qualname__)
        for h in scheduled
        if not h.cancelled()
    )
    stacks = {
        (rec.cid, rec.index, call): await_stack(task.get_coro())
        for rec in app.records.values()
        for call, task in rec.waiting.items()
    }
    cuts = shutdown_cuts(app.records, shutdown)
    for key in cuts:  # signed where they waited when the shutdown cut them
        stacks[key] = app.records[key[:2]].raised_at.get(key[2], ())
    return Observations(
        outcome=loop.outcome or "stopped",
        # Snapshots: teardown cancels the app's tasks, which appends to the live records.
        requests={k: r.snapshot(_uncut(r, cuts)) for k, r in app.records.items()},
        cuts=cuts,
        connections=conns,
        # Not SimResult.blocked, which the core takes at the same moment but without the
        # program's own task: the oracles judge every task alive at quiescence.
        blocked=blocked_tasks(loop),
        timers=timers,
        errors=errors,
        receive_stacks=stacks,
        unknown_paths=list(app.unknown_paths),
        stuck=[list(stack) for stack in loop.stuck_runs],
        shutdown=shutdown,
        spinning=ready_work(loop) if loop.outcome == "livelock" else [],
    )
