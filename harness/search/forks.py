"""Shrinking in a forked child, so that detection never waits for it.

At the run where a search first meets a new failure (once it has handed it over as
detected), the process forks. The child holds the search's exact state at that moment
(the failing run's choices, the clock, the examples store), so it carries on as an
inline search would: Hypothesis shrinks, a strict replay confirms, the result goes up a
pipe and the child exits. The parent draws its next run from the same generator an
inline search would, after shrinking, so it makes the very runs an inline search makes;
it only does not wait. Nothing is copied or rebuilt, which is why this is exact: the
child's shrinking is the inline shrinking.

The child never writes to the parent's streams (a worker's stdout carries its JSON
protocol) and leaves with `os._exit`, so no buffer the fork copied is flushed twice.
A child that dies without an answer is a harness fault, named with its exit status.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import select
import signal
import traceback
from dataclasses import dataclass, field
from typing import Any, NoReturn

from harness.errors import HarnessFault
from harness.sim.interrupts import interrupts_held

_LIVE: set[Forks] = set()  # every search's children, for stop_all on SIGTERM


def stop_all() -> None:
    """End every child of every search in this process (a worker told to stop)."""
    for forks in list(_LIVE):
        forks.stop()


def end_children_on_sigterm() -> None:
    """SIGTERM (how an interrupted explore stops its workers) first ends and reaps this
    process's shrinking children, then ends the process as SIGTERM would have. Nothing is
    raised into whatever code was running, which a server under test might catch."""
    def on_sigterm(signum: int, frame: Any) -> None:
        stop_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


# Children alive at once; past this many the search waits for the oldest, so a burst of
# new failures cannot fork a crowd (each holds a copy-on-write image of the search).
LIMIT = 16


def cores_to_shrink() -> int:
    """Children that shrink at once: one core is the search's, the others shrink. The rest
    wait for a turn (a token, as make's jobserver hands them out), holding no CPU, so the
    search keeps its core however many failures it meets."""
    return max(1, (os.cpu_count() or 2) - 1)


def available() -> bool:
    return hasattr(os, "fork")


PR_SET_PDEATHSIG = 1  # prctl(2)


def _die_with(parent: int) -> None:
    """A child must not outlive its search: a worker stopped by SIGTERM (an interrupted
    explore) ends without running any cleanup, so on Linux the kernel kills the child
    when its parent goes; elsewhere it finishes its bounded shrinking first."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent went before the request took effect
        os._exit(0)


@dataclass
class Shrinking:
    """One failure being shrunk by a child: what the parent knows of it meanwhile."""

    key: tuple[str, str]
    found_at: tuple[int, float]
    pid: int
    fd: int
    received: bytearray = field(default_factory=bytearray)


class Forks:
    def __init__(self, limit: int = LIMIT, at_once: int | None = None) -> None:
        self.limit = limit
        self.shrinking: dict[int, Shrinking] = {}  # by pipe fd
        self.in_child = False
        self._out = -1
        self._tokens = os.pipe()  # one byte per child allowed to shrink now
        os.write(self._tokens[1], b"t" * (at_once or cores_to_shrink()))
        _LIVE.add(self)

    def full(self) -> bool:
        return len(self.shrinking) >= self.limit

    def fork(self, key: tuple[str, str], found_at: tuple[int, float]) -> bool:
        """Fork; True in the child (which must end with `deliver` or `fail`)."""
        read, write = os.pipe()
        parent = os.getpid()
        # A KeyboardInterrupt raised inside the interpreter's at-fork callbacks (logging's
        # lock release) is printed and dropped: Ctrl-C at that moment was lost.
        with interrupts_held() as held:
            pid = os.fork()
            if pid == 0:
                held.clear()  # the parent's, not this child's
            else:  # known before an interrupt can land, so stop() reaps it
                os.close(write)
                os.set_blocking(read, False)
                self.shrinking[read] = Shrinking(key, found_at, pid, read)
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler
            _die_with(parent)
            os.close(read)
            self.in_child, self._out = True, write
            self.shrinking.clear()  # the parent's other children are not this one's
            os.read(self._tokens[0], 1)  # wait for a turn
            return True
        return False

    # -- the child ---------------------------------------------------------------
    def deliver(self, found: Any) -> NoReturn:
        self._send(("found", found))

    def fail(self, exc: BaseException) -> NoReturn:
        try:
            payload = pickle.dumps(("error", exc))
            pickle.loads(payload)  # some exceptions pickle but cannot be rebuilt
        except Exception:  # an exception that does not pickle goes as its text
            text = "".join(traceback.format_exception(exc))
            payload = pickle.dumps(("error", HarnessFault(text)))
        self._send_bytes(payload)

    def _send(self, message: tuple[str, Any]) -> NoReturn:
        try:
            payload = pickle.dumps(message)
        except Exception as exc:
            self.fail(exc)
        self._send_bytes(payload)

    def _send_bytes(self, payload: bytes) -> NoReturn:
        with contextlib.suppress(OSError):
            os.write(self._tokens[1], b"t")  # the next child's turn
            view = memoryview(payload)
            while view:
                view = view[os.write(self._out, view):]
        os._exit(0)

    # -- the parent --------------------------------------------------------------
    def done(self, block: bool = False,
             timeout: float | None = None) -> list[tuple[Shrinking, Any]]:
        """Children that have answered: (what was shrinking, its Found). `block` waits
        until at least one answers (when any is running), or `timeout` seconds pass
        (None: no limit). A child's error is raised."""
        out: list[tuple[Shrinking, Any]] = []
        while self.shrinking and not out:
            ready, _, _ = select.select(list(self.shrinking), [], [],
                                        timeout if block else 0)
            for fd in ready:
                answer = self._read(self.shrinking[fd])
                if answer is not None:
                    out.append(answer)
            if not block or not ready:
                break
        return out

    def _read(self, child: Shrinking) -> tuple[Shrinking, Any] | None:
        while True:
            try:
                chunk = os.read(child.fd, 1 << 16)
            except BlockingIOError:
                return None
            if not chunk:
                break
            child.received += chunk
        os.close(child.fd)
        del self.shrinking[child.fd]
        _, status = os.waitpid(child.pid, 0)
        if not child.received:
            raise HarnessFault(f"the process shrinking {child.key[0]} {child.key[1]!r} ended "
                               f"without an answer (wait status {status})")
        what, payload = pickle.loads(bytes(child.received))
        if what == "error":
            self.stop()
            raise payload
        return child, payload

    def stop(self) -> None:
        """End every child still shrinking (an interrupt, or an error elsewhere)."""
        for child in list(self.shrinking.values()):
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.close(child.fd)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child.pid, 0)
        self.shrinking.clear()

    def close(self) -> None:
        self.stop()
        _LIVE.discard(self)
        for fd in self._tokens:
            with contextlib.suppress(OSError):
                os.close(fd)
