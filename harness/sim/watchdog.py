"""The watchdog: a run stuck in one callback (a `while True:` with no await, a blocking
call) is stopped and reported, never a harness that hangs forever.

The simulated loop polls between iterations; a callback that never returns stops the
polls. A wall-clock alarm (SIGALRM, so only in the main thread, where every run of the
harness happens) checks whether the poll count moved since the last alarm; when it has
not for a whole interval, the handler raises `StuckRun` inside the stuck callback, with
the stack of where it was stuck. asyncio delivers it as any exception a callback raises,
so the run goes on to quiescence and the oracles report it as a "stuck" failure.
Wall-clock time decides only *whether* a run is stuck (seconds of no progress, where a
run normally polls within microseconds), never an ordering, so replay stays exact.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.signal without its enum conversions
import contextlib
import math
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from harness.errors import InputError

# Seconds without a single poll before a run counts as stuck (HARNESS_WATCHDOG_SECONDS).
DEFAULT_SECONDS = 10.0


class StuckRun(BaseException):
    """Raised into a callback that kept the loop from polling. A BaseException, so a
    server's `except Exception` cannot swallow it and keep spinning."""

    def __init__(self, stack: list[str]) -> None:
        super().__init__(f"stuck in a callback at {stack[-1] if stack else '?'}")
        self.stack = stack


def seconds() -> float:
    """HARNESS_WATCHDOG_SECONDS: unset (or empty) means the default; 0 turns it off."""
    value = os.environ.get("HARNESS_WATCHDOG_SECONDS", "").strip()
    if not value:
        return DEFAULT_SECONDS
    try:
        interval = float(value)
    except ValueError:
        interval = math.nan
    if not (math.isfinite(interval) and interval >= 0):
        raise InputError(f"HARNESS_WATCHDOG_SECONDS={value!r}: the watchdog needs a number of "
                         f"seconds above 0 (unset, it is {DEFAULT_SECONDS:g}), or 0 to turn "
                         "it off")
    return interval


@contextlib.contextmanager
def watchdog(loop: Any, interval: float | None = None) -> Iterator[list[StuckRun]]:
    """Watch `loop` (its poller's poll count) while the body runs; yields the list of
    stuck callbacks it stopped."""
    stopped: list[StuckRun] = []
    interval = seconds() if interval is None else interval
    if threading.current_thread() is not threading.main_thread() or interval <= 0:
        yield stopped  # signals reach only the main thread; elsewhere, no watchdog
        return
    last = [-1]

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        polls = loop._selector.polls
        if polls != last[0]:
            last[0] = polls
            return
        stack = []
        while frame is not None:
            stack.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in "
                         f"{frame.f_code.co_qualname}")
            frame = frame.f_back
        stack.reverse()  # outermost first, as a traceback reads
        stuck = StuckRun(stack)
        stopped.append(stuck)
        raise stuck

    # signal.signal itself converts the old handler to an enum, failing (an exception
    # caught) for a Python handler, on every run; the handler set and restored is the same.
    previous = _signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, interval, interval)
    try:
        yield stopped
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        _signal.signal(signal.SIGALRM, previous)
