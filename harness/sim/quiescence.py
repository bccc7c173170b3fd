"""Hangs at quiescence (README, Rule 3): who is still waiting, and where.

When the poller finds nothing ready, nothing in flight and no timer before the
horizon, every task that is not done is blocked for good. Its await stack
(file:line of each coroutine frame, outermost first) is the hang's signature:
it names the exact `await` inside the server that never resumed.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
from dataclasses import dataclass
from types import FrameType
from typing import Any


@dataclass(frozen=True)
class Frame:
    file: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


@dataclass(frozen=True)
class BlockedTask:
    # No task name: asyncio numbers tasks per process, which replay cannot repeat.
    coroutine: str
    stack: tuple[Frame, ...]

    def innermost(self, exclude: tuple[str, ...] = ("asyncio/",)) -> Frame | None:
        """The deepest frame outside `exclude`: where the awaited thing was awaited."""
        for frame in reversed(self.stack):
            if not frame.file.startswith(exclude):
                return frame
        return self.stack[-1] if self.stack else None


# The folder holding the harness/ and servers/ packages (an editable install's checkout).
HARNESS_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


# Prefixes short_path strips, and what it found for each file: a close's call stack
# goes through the same files in every run. An answer found from the working directory
# is never kept: it changes when the directory does.
_PREFIXES = tuple(base.replace(os.sep, "/") + "/"
                  for base in (os.path.dirname(os.__file__), HARNESS_ROOT))
_SHORT: dict[str, str] = {}


def short_path(path: str) -> str:
    """A stable path for signatures: relative to site-packages, the stdlib, the harness's
    own folder (so signatures, and the oracles' own-frame filters, do not depend on the
    directory the harness runs from: a server's repository, say) or cwd."""
    found = _SHORT.get(path)
    if found is not None:
        return found
    norm = path.replace(os.sep, "/")
    # site-packages, or a release's cached site folder (harness/targets/envs.py)
    for marker in ("/site-packages/", "/dist-packages/", "/site/"):
        if marker in norm:
            found = _SHORT[path] = norm.split(marker, 1)[1]
            return found
    for prefix in _PREFIXES:
        if norm.startswith(prefix):
            found = _SHORT[path] = norm[len(prefix):]
            return found
    cwd = os.getcwd().replace(os.sep, "/") + "/"
    if norm.startswith(cwd):
        return norm[len(cwd):]
    return norm


def _frame_of(obj: Any) -> FrameType | None:
    for attr in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(obj, attr, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def _awaited(obj: Any) -> Any:
    for attr in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(obj, attr, None)
        if inner is not None:
            return _unwrap(inner)
    return None


def _unwrap(obj: Any) -> Any:
    """`await x` where `x.__await__()` returns `some_coroutine.__await__()` (hypercorn's
    TCPServer does this) awaits a coroutine_wrapper, which names its coroutine only to
    the garbage collector; follow it there so the stack goes on into the coroutine."""
    if type(obj).__name__ == "coroutine_wrapper":
        inner = [r for r in gc.get_referents(obj) if inspect.iscoroutine(r)]
        if len(inner) == 1:
            return inner[0]
    return obj


def await_stack(coro: Any) -> tuple[Frame, ...]:
    frames = []
    while coro is not None:
        frame = _frame_of(coro)
        if frame is None:
            break
        code = frame.f_code
        frames.append(Frame(short_path(code.co_filename), frame.f_lineno, code.co_qualname))
        coro = _awaited(coro)
    return tuple(frames)


def callback_stack(frame: FrameType | None) -> tuple[Frame, ...]:
    """The call stack ending at `frame`, outermost first, up to the callback the loop ran:
    it stops at the simulated runtime (harness/sim/: a transport delivering data, the
    loop) or the stock `_run_once`, so what called the loop (a test, a worker) is not in
    it. Inside a task step it runs through the task's coroutines: their frames are on
    the stack then."""
    frames = []
    while frame is not None:
        code = frame.f_code
        file = short_path(code.co_filename)
        if file.startswith("harness/sim/") or (
                file == "asyncio/base_events.py" and code.co_name == "_run_once"):
            break
        frames.append(Frame(file, frame.f_lineno, code.co_qualname))
        frame = frame.f_back
    return tuple(reversed(frames))


def ready_work(loop: asyncio.AbstractEventLoop) -> list[BlockedTask]:
    """What a loop that never went quiet had queued to run when the run was cut (a
    livelock): each ready task with its await stack, each plain callback with its
    function. In queue order, which is deterministic."""
    ready: Any = getattr(loop, "_ready", ())
    result = []
    for handle in ready:
        if handle.cancelled():
            continue
        callback = handle._callback
        task = getattr(callback, "__self__", None)
        if isinstance(task, asyncio.Task):
            coro = task.get_coro()
            result.append(BlockedTask(getattr(coro, "__qualname__", type(coro).__qualname__),
                                      await_stack(coro)))
            continue
        code = getattr(getattr(callback, "__func__", callback), "__code__", None)
        name = getattr(callback, "__qualname__", type(callback).__qualname__)
        stack = () if code is None else (
            Frame(short_path(code.co_filename), code.co_firstlineno, code.co_qualname),)
        result.append(BlockedTask(name, stack))
    return result


def blocked_tasks(
    loop: asyncio.AbstractEventLoop, exclude: asyncio.Task[Any] | None = None
) -> list[BlockedTask]:
    live = getattr(loop, "live_tasks", None)  # a SimLoop's, without asyncio's global scan
    tasks = [t for t in (live() if live else asyncio.all_tasks(loop)) if t is not exclude]
    result = []
    for task in tasks:
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__qualname__)
        result.append(BlockedTask(name, await_stack(coro)))
    # all_tasks() is a set: sort so the report order does not depend on hashing.
    result.sort(key=lambda b: (b.coroutine, [str(f) for f in b.stack]))
    return result
