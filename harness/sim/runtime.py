"""The runtime seam: what the poller, the transport and the listener need of the loop.

`SimLoop` (loop.py) is the asyncio runtime; it builds a `Poller`, `SimServer`s
and `SimTransport`s, which call back into it only through `Runtime`, so none
of them imports loop.py. A trio runtime will sit beside it behind the same
small interface (run a program under a decision source until quiescence;
report blocked tasks with their stacks).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, Protocol

from harness.decisions import Recorder
from harness.net.peer import Host
from harness.sim.eventlog import EventLog


class Runtime(Host, Protocol):
    decisions: Recorder
    servers: list[Any]
    pending_connects: list[asyncio.Future[None]]
    write_buffer_limits: tuple[int, int] | None  # for server transports; None: asyncio's
    log: EventLog
    pending_signals: list[tuple[str, Callable[[], None]]]  # delivered as I/O events
    at_quiescence: list[Callable[[], None]]  # run (once) instead of ending the run

    # -- the simulation's own controls (called by the poller and transports)
    def advance_clock(self, when: float) -> None: ...
    def next_timer_when(self) -> float | None: ...
    def finish(self, outcome: str, detail: str) -> None: ...
    def _escape(self, what: str, why: str) -> NoReturn: ...

    # -- the part of asyncio's loop API they use
    def call_soon(self, callback: Callable[..., object], *args: Any,
                  context: Any = None) -> asyncio.Handle: ...
    def create_future(self) -> asyncio.Future[Any]: ...
    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None,
                    context: Any = None) -> asyncio.Task[Any]: ...
    def call_exception_handler(self, context: dict[str, Any]) -> None: ...


def as_asyncio(runtime: Runtime) -> asyncio.AbstractEventLoop:
    """The runtime where asyncio's own classes (Handle, transports, servers) want their
    loop: the asyncio runtime is itself an event loop."""
    assert isinstance(runtime, asyncio.AbstractEventLoop), runtime
    return runtime
