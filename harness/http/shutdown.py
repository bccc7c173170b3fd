"""Graceful shutdown in a scenario: when the signal comes, and what the harness does then.

A `ShutdownSpec` (the scenario's "shutdown", absent unless set) names a moment
by what the app has done: once the app has made `after` ASGI calls (counted
over every request: calls, receive()s and their returns, send()s and theirs),
and `delay` virtual seconds more, another process sends the server SIGTERM.
If the run goes quiet before that many calls, the signal comes then, into a
server with nothing left to do but its idle connections. So the search places
the signal between any two things the app does, in the middle of a sleep, or
into an idle keep-alive connection, and `after` means the same on every server.

The signal reaches the loop as asyncio delivers one: at a poll, ordered among
that poll's I/O events by the decision source (harness/sim/poller.py). Its
handler starts the target's own graceful shutdown (`Target.shutdown`: for
uvicorn the release's `Server.shutdown`); when that returns, the process exits
as `asyncio.run` and the kernel make it (harness/sim/exit.py). `ShutdownDriver`
keeps what the oracles may know of it: when the signal was handled, whether
the shutdown returned and the process exited, and, if it never did, the await
stack it waits in (the hang's signature, as for a blocked receive()).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from harness.sim.exit import exit_process
from harness.sim.loop import SimLoop
from harness.sim.quiescence import Frame, await_stack

SIGNAL = "SIGTERM"


@dataclass(frozen=True)
class ShutdownSpec:
    after: int = 0  # ASGI calls the app has made when the moment comes (0: at the start)
    delay: float = 0.0  # virtual seconds from that moment to the signal

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "delay": self.delay}


@dataclass(frozen=True)
class ShutdownFacts:
    """What a run shows of the shutdown, for the oracles (positions are event-log ticks)."""

    signalled_tick: int | None  # the server's handler ran: the shutdown began
    signalled_at: float | None
    returned_tick: int | None  # the target's shutdown routine returned
    exited_tick: int | None  # the process exited (every task ended, sockets closed)
    stack: tuple[Frame, ...]  # where the shutdown still waits, if it never finished
    grace: float | None  # the target's own grace period, if the scenario set one
    coroutine: str  # the harness task that runs it, never a leak of the server's
    raised: str | None = None  # what the shutdown routine raised, if it raised
    exiting_tick: int | None = None  # the process began to exit (after the routine)

    def grace_over(self, time: float | None) -> bool:
        """True if `time` is at or past the end of the grace period the scenario set."""
        if self.grace is None or self.signalled_at is None or time is None:
            return False
        return time >= self.signalled_at + self.grace


class ShutdownDriver:
    def __init__(self, loop: SimLoop, spec: ShutdownSpec,
                 shutdown: Callable[[], Awaitable[None]], grace: float | None) -> None:
        self.loop = loop
        self.spec = spec
        self.shutdown = shutdown
        self.grace = grace
        self.calls = 0
        self.sent = False
        self.task: asyncio.Task[None] | None = None
        self.ticks: dict[str, int] = {}
        self.signalled_at: float | None = None
        self.raised: str | None = None

    def arm(self) -> None:
        if self.spec.after == 0:
            self._moment()
        self.loop.at_quiescence.append(self._send)

    def on_asgi(self) -> None:
        """The app made one more ASGI call."""
        self.calls += 1
        if self.calls == self.spec.after:
            self._moment()

    def _moment(self) -> None:
        # The sender is another process: its action is on the peers' timeline.
        self.loop.network.at(self.loop.time() + self.spec.delay, self._send)

    def _send(self) -> None:
        if not self.sent:
            self.sent = True
            self.loop.send_signal(SIGNAL, self._handle)
            if self._send in self.loop.at_quiescence:  # sent: quiescence is quiescence again
                self.loop.at_quiescence.remove(self._send)

    def _handle(self) -> None:
        self.ticks["signalled"] = len(self.loop.log.entries) - 1  # the "signal" entry
        self.signalled_at = self.loop.time()
        self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.shutdown()
        except BaseException as exc:  # out of the server's main: the process ends with it
            if self.loop.tearing_down:
                raise
            self.raised = f"{type(exc).__name__}: {exc}".rstrip(": ")
            self._mark("returned", f"the server's shutdown raised {self.raised}")
        else:
            self._mark("returned", "the server's shutdown returned")
        if self.loop.tearing_down:
            return
        self.ticks["exiting"] = len(self.loop.log.entries)
        await exit_process(self.loop)
        self._mark("exited", "")

    def _mark(self, what: str, detail: str) -> None:
        self.ticks[what] = len(self.loop.log.entries)
        if detail:
            self.loop.record("shutdown", detail)

    def facts(self) -> ShutdownFacts:
        task = self.task
        stack = await_stack(task.get_coro()) if task is not None and not task.done() else ()
        return ShutdownFacts(self.ticks.get("signalled"), self.signalled_at,
                             self.ticks.get("returned"), self.ticks.get("exited"), stack,
                             self.grace, self._run.__qualname__, self.raised,
                             self.ticks.get("exiting"))
