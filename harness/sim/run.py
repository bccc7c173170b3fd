"""Run one program on a fresh SimLoop until quiescence, and collect what happened.

`simulate` is the sans-pytest entry point everything else builds on: the
search engine, replay and the pytest plugin all call it with a program (an
async function that starts servers and peers on the loop) and a decision
source, and get back a `SimResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from harness.decisions import Decision, DecisionSource, OrdinarySource, Recorder
from harness.errors import HarnessFault
from harness.net.network import Network
from harness.sim.eventlog import EventLog
from harness.sim.interrupts import interrupts_held
from harness.sim.loop import SimLoop, SimulationEscape
from harness.sim.quiescence import BlockedTask, blocked_tasks
from harness.sim.watchdog import StuckRun, watchdog

Program = Callable[[SimLoop], Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class Settings:
    max_latency: float = 0.5
    step_budget: int = 200_000
    horizon: float = 3600.0
    window: int = 256 * 1024


@dataclass
class SimResult:
    outcome: str  # "quiescent" | "polling" | "horizon" | "livelock" | "unsettled"
    detail: str
    log: EventLog
    decisions: list[Decision]
    blocked: list[BlockedTask]
    errors: list[dict[str, Any]]
    polls: int
    virtual_time: float
    program_error: BaseException | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class _Guarded:
    """While the loop runs, starting a thread or calling time.sleep is an escape: a
    thread's timing is the OS's, not ours, and time.sleep blocks the real thread while
    the simulation's time cannot pass. (One plain context for both: a run enters it
    once, and generator-based contexts cost more than the guards themselves.)"""

    def __init__(self, loop: SimLoop) -> None:
        self.original_start = threading.Thread.start
        self.original_sleep = time.sleep

        def start(thread: threading.Thread) -> None:  # a function: it binds to the thread
            loop._escape(f"threading.Thread({thread.name!r}).start()", "a real thread would run")

        def sleep(seconds: Any) -> None:
            loop._escape(f"time.sleep({seconds!r})", "it blocks the real thread, so the "
                         "simulated loop stops while real time passes; use await asyncio.sleep")

        self.start, self.sleep = start, sleep

    def __enter__(self) -> None:
        threading.Thread.start = self.start  # type: ignore[method-assign,assignment]
        time.sleep = self.sleep

    def __exit__(self, *exc: object) -> None:
        threading.Thread.start = self.original_start  # type: ignore[method-assign]
        time.sleep = self.original_sleep


# The garbage collector does not run during a run; teardown collects after it.
#
# Collecting cyclic garbage runs code (a pending task's "destroyed but pending"
# report, a coroutine's finally blocks), and the automatic collector runs when
# allocation counts say so, which depends on everything the process did before:
# that would make a run's log depend on the runs before it. A task that became
# garbage while pending is still alive at quiescence, so it is reported there
# (blocked, or leaked) like any other; teardown then collects it.


def _collect_earlier_runs() -> None:
    """Teardown collects only the youngest generation, while the run's loop is still
    open, so what the loop held moves to the next generation and becomes garbage there.
    The automatic collector would take it, but between runs too little is allocated for
    it to run: a search of thousands of runs grew by about 60 KB a run (6,000 runs of the
    reference server: 392 MB). So it is collected here, between runs, as often as
    CPython's own threshold for that generation says."""
    if gc.get_count()[1] >= gc.get_threshold()[1]:
        with interrupts_held():  # finalizers run here: an interrupt inside one is lost
            gc.collect(1)


def simulate(
    program: Program,
    source: DecisionSource,
    settings: Settings | None = None,
    inspect: Callable[[SimLoop], dict[str, Any]] | None = None,
) -> SimResult:
    """Run `program` under `source`'s choices; raise SimulationEscape if anything escaped.

    `inspect`, if given, is called at quiescence (before teardown) and its dict is
    kept as `SimResult.extras`: the place oracles take their observations."""
    settings = settings or Settings()
    recorder = source if isinstance(source, Recorder) else Recorder(source)
    loop = SimLoop(
        recorder,
        network=Network(settings.window),
        max_latency=settings.max_latency,
        step_budget=settings.step_budget,
        horizon=settings.horizon,
    )
    enabled = gc.isenabled()  # (see the note above _Guarded)
    _collect_earlier_runs()
    gc.disable()
    try:
        return _run(loop, program, recorder, inspect)
    finally:
        if enabled:
            gc.enable()


def _run(loop: SimLoop, program: Program, recorder: Recorder,
         inspect: Callable[[SimLoop], dict[str, Any]] | None) -> SimResult:
    try:
        with _Guarded(loop), watchdog(loop) as stuck:
            main = loop.create_task(program(loop))
            try:
                loop.run_forever()
            except StuckRun as exc:  # stuck outside any callback: in the harness's own loop
                raise HarnessFault(f"the simulated loop itself was stuck: {exc}; stack:\n"
                                   + "\n".join(exc.stack)) from None
        loop.stuck_runs = [s.stack for s in stuck]
        if loop.escapes:
            raise SimulationEscape(loop.escapes[0])
        program_error = None
        if main.done() and not main.cancelled():
            program_error = main.exception()
        blocked = blocked_tasks(loop, exclude=main)
        extras = inspect(loop) if inspect is not None else {}
        return SimResult(
            outcome=loop.outcome or "stopped",
            detail=loop.outcome_detail,
            log=loop.log,
            decisions=list(recorder.decisions),
            blocked=blocked,
            errors=list(loop.errors),
            polls=loop._selector.polls,
            virtual_time=loop.time(),
            program_error=program_error,
            extras=extras,
        )
    finally:
        _teardown(loop)


def _unstarted(task: asyncio.Task[Any]) -> bool:
    coro: Any = task.get_coro()
    return inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED


def _has_work(loop: SimLoop) -> bool:
    """Whether running the loop once could do anything: a callback is queued, a timer is
    due, or a signal waits. With the world cut off, nothing else can start, so a flush
    without any of these only spends a task on `asyncio.sleep(0)`: skipped, teardown
    costs what the run left behind, not a fixed price."""
    ready: Any = loop._ready  # type: ignore[attr-defined]
    scheduled: list[asyncio.TimerHandle] = loop._scheduled  # type: ignore[attr-defined]
    resolution: float = loop._clock_resolution  # type: ignore[attr-defined]
    due = loop.time() + resolution  # as _run_once reckons what is due
    return bool(ready) or bool(loop.pending_signals) or any(
        not h.cancelled() and h.when() < due for h in scheduled)


def _teardown(loop: SimLoop) -> None:
    """Cancel what is left, off the record, so no task outlives its loop."""
    if loop.is_closed():
        return
    loop.tearing_down = True
    loop.decisions = Recorder(OrdinarySource())
    loop.log = EventLog()  # The result keeps the run's log; teardown is not part of it.
    # Cut the world off first: no more arrivals, accepts or peer actions, so
    # cancelled tasks wind down instead of new requests starting new ones.
    loop.network = Network(loop.network.window)
    loop.peers = []
    loop.servers = []
    loop.pending_connects = []
    loop._selector.polls = 0
    loop.escapes.clear()
    # Cancelling can start new tasks (a server cleaning up, a queued pipelined
    # request), and a server may catch the cancellation and wait again, so repeat.
    for _ in range(20):
        if _has_work(loop):
            with contextlib.suppress(RuntimeError, SimulationEscape):
                loop.run_until_complete(asyncio.sleep(0))  # Flush what was already queued.
        pending = loop.live_tasks()
        if not pending:
            break
        # A task cancelled before its first step never runs its coroutine, and a wrapper
        # (anyio's start_soon) then never awaits the coroutine it wraps: let such tasks
        # take their first step in this round and cancel them in the next.
        for task in pending:
            if not _unstarted(task):
                task.cancel()
        loop.outcome = None
        with contextlib.suppress(RuntimeError, SimulationEscape):
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    # Whatever still refuses to end is closed now, while the loop is open, so the
    # garbage collector does not run its cleanup code against a closed loop later.
    # Closing one coroutine can create tasks (a task group cancelling its children), so
    # sweep until a pass finds nothing new; closing a never-started coroutine is silent.
    swept: set[int] = set()
    for _ in range(10):
        fresh = [t for t in loop.live_tasks() if id(t) not in swept]
        if not fresh:
            break
        for task in fresh:
            swept.add(id(task))
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            coro: Any = task.get_coro()
            with contextlib.suppress(BaseException):
                coro.close()
    if loop._asyncgens:  # type: ignore[attr-defined]
        with contextlib.suppress(RuntimeError):
            loop.run_until_complete(loop.shutdown_asyncgens())
    with interrupts_held():  # finalizers run here: an interrupt inside one is lost
        gc.collect(0)  # this run's garbage goes while its loop is open, not in the next run
    loop.close()
