"""Holding SIGINT and SIGTERM over a step that must not be cut, or whose interrupt
would be lost: Python prints and drops an exception raised inside its at-fork callbacks
and inside finalizers run by the garbage collector."""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.signal without its enum conversions
import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupts_held() -> Iterator[list[int]]:
    """SIGINT and SIGTERM that come meanwhile are delivered on leaving, to the handlers
    they were meant for; the caller may clear the list it is given to drop them. Only
    the main thread can set handlers (and only it runs them); elsewhere, no hold."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    # (Taken once per run, around its garbage collection: the enum conversions of
    # signal.signal cost more than the system calls.)
    previous = {sig: _signal.signal(sig, lambda sig, frame: caught.append(sig))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        if caught:
            signal.raise_signal(caught[0])
