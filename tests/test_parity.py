"""Parity: with every choice 0, the simulated loop orders effects as the stock loop does.

Each program below is a small asyncio program, `async def prog(loop, effects)`,
that appends a string to `effects` whenever something observable happens. It
runs twice: once on the stock `asyncio.SelectorEventLoop` and once through
`harness.sim.run.simulate` with `OrdinarySource` (every choice 0, the ordinary
behaviour). The two effect lists must be equal.

The stock reference run is a `FastForwardLoop`: the stock selector loop with a
virtual `time()`, whose selector, when `select(timeout)` would block for a
positive timeout with no file descriptor ready, advances the virtual clock by
`timeout` instead of blocking. Two reasons:

* tests never really sleep, and a timer program measured against wall-clock
  time would be slow and flaky;
* nothing that decides an order is replaced: the stock `_run_once` still moves
  expired timers to the ready queue and runs the ready callbacks, so the
  reference order is the stock loop's order. Only how long a poll lasts changes.

The transport programs use real loopback sockets on the stock loop (server on
127.0.0.1 port 0). The real selector is always asked first with timeout 0; it
blocks only when the stock loop would block forever (no timer), and then only
until a socket is ready: on loopback the bytes are already there. TCP may split
a payload differently from the simulated network, so consecutive
`data_received` chunks on one side are joined before comparing: the comparison
is the sequence of protocol callbacks and the bytes each side received.

Programs where the simulated loop is known to differ from the stock one are
marked `xfail(strict=True)` with the diagnosis, so the divergence stays
visible and the test notices when it is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import selectors
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from harness.decisions import OrdinarySource
from harness.sim.loop import SimLoop
from harness.sim.run import simulate

Program = Callable[[asyncio.AbstractEventLoop, list[str]], Awaitable[None]]

# A program that leaves fewer effects than this proves nothing.
MIN_EFFECTS = 6
# The longest the reference run may block on a real socket before it counts as a hang.
REAL_BLOCK_LIMIT = 10.0
# Real seconds a run of the ~11 virtual minutes of `sequential_sleeps` may take: no waiting.
NO_REAL_WAIT = 1.0


# -- the stock reference loop ----------------------------------------------------------------
class FastForwardSelector:
    """Wraps the stock selector: a poll that would wait for a timer moves the clock instead."""

    def __init__(self, loop: FastForwardLoop, inner: selectors.BaseSelector) -> None:
        self._loop = loop
        self._inner = inner

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._inner.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # No timer: the stock loop would block until a socket is ready. On loopback
            # the bytes are already there, so this returns at once unless the program hangs.
            events = self._inner.select(REAL_BLOCK_LIMIT)
            if not events:
                raise RuntimeError("the program hangs on the stock loop: nothing is ready")
            return events
        # `timeout` is "until the earliest timer": jump there instead of waiting.
        self._loop.now += timeout
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FastForwardLoop(asyncio.SelectorEventLoop):
    """The stock selector loop on a virtual clock (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.errors: list[dict[str, Any]] = []
        inner: selectors.BaseSelector = self._selector  # type: ignore[has-type]
        self._selector = FastForwardSelector(self, inner)
        self.set_exception_handler(lambda _loop, context: self.errors.append(context))

    def time(self) -> float:
        return self.now


def run_on_stock_loop(program: Program) -> tuple[list[str], float]:
    """The program's effects on the stock loop, and the loop's virtual time at the end."""
    effects: list[str] = []
    loop = FastForwardLoop()
    try:
        loop.run_until_complete(program(loop, effects))
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        assert not leftover, f"the program left tasks running: {leftover}"
        assert not loop.errors, loop.errors
        return effects, loop.time()
    finally:
        # After a failure, wind down what is left so the original error is the one reported.
        with contextlib.suppress(Exception):
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def run_on_simulated_loop(program: Program) -> tuple[list[str], float]:
    """The program's effects on the simulated loop with every choice 0, and the end time."""
    effects: list[str] = []

    async def main(loop: SimLoop) -> None:
        await program(loop, effects)

    result = simulate(main, OrdinarySource())
    assert result.program_error is None, repr(result.program_error)
    assert result.outcome == "quiescent", (result.outcome, result.detail)
    assert not result.blocked, result.blocked
    assert not result.errors, result.errors
    return effects, result.virtual_time


DATA = " data_received "


def joined_chunks(effects: list[str]) -> list[str]:
    """Join consecutive `<side> data_received <bytes>` entries of one side into one.

    TCP guarantees the bytes and their order, not how recv() splits them."""
    out: list[str] = []
    for effect in effects:
        side, sep, payload = effect.partition(DATA)
        if sep and out and out[-1].startswith(side + DATA):
            out[-1] += payload
        else:
            out.append(effect)
    return out


def at(loop: asyncio.AbstractEventLoop, start: float) -> str:
    """Virtual time since `start`, rounded: the clocks add up timeouts in different ways."""
    return f"t={loop.time() - start:.3f}"


def port_of(server: asyncio.AbstractServer) -> int:
    """The listening port: a real socket's on the stock loop, the simulated address's in sim."""
    sockets = getattr(server, "sockets", ())
    if sockets:
        return int(sockets[0].getsockname()[1])
    return int(server.address[1])  # type: ignore[attr-defined]


# -- futures, tasks, call_soon -------------------------------------------------------------
async def futures_with_callbacks(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """add_done_callback order, callbacks added after completion, removal, exceptions."""
    futs: list[asyncio.Future[str]] = [loop.create_future() for _ in range(4)]

    def noting(text: str) -> Callable[[asyncio.Future[str]], None]:
        return lambda _: fx.append(text)

    for i, fut in enumerate(futs):
        fut.add_done_callback(noting(f"first callback of {i}"))
        fut.add_done_callback(noting(f"second callback of {i}"))

    def removed(_: asyncio.Future[str]) -> None:
        fx.append("a removed callback ran")

    futs[3].add_done_callback(removed)
    assert futs[3].remove_done_callback(removed) == 1

    loop.call_soon(futs[2].set_result, "two")
    futs[0].set_result("zero")  # its callbacks are scheduled now, run next iteration
    loop.call_soon(futs[1].set_exception, ValueError("one"))
    futs[3].cancel()
    fx.append("all scheduled")
    futs[0].add_done_callback(lambda f: fx.append(f"late callback sees {f.result()}"))

    for i, fut in enumerate(futs):
        try:
            fx.append(f"awaited {i}: {await fut}")
        except ValueError as exc:
            fx.append(f"awaited {i}: raised {exc}")
        except asyncio.CancelledError:
            fx.append(f"awaited {i}: cancelled")

    more: list[asyncio.Future[str]] = [loop.create_future() for _ in range(3)]
    for i, fut in enumerate(more):
        fut.add_done_callback(noting(f"callback of gathered {i}"))
    loop.call_soon(more[2].set_result, "c")
    more[0].set_result("a")
    loop.call_soon(more[1].set_result, "b")
    fx.append(f"gathered {await asyncio.gather(*more)}")
    fx.append("done")


async def tasks_interleaving(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Round-robin of tasks yielding with sleep(0); done callbacks; tasks spawning tasks."""

    async def worker(name: str, steps: int) -> str:
        for i in range(steps):
            fx.append(f"{name} step {i}")
            await asyncio.sleep(0)
        if name == "b":
            child = loop.create_task(worker("b.child", 2))
            fx.append(f"b's child returned {await child}")
        return name

    tasks = [loop.create_task(worker(n, s)) for n, s in (("a", 3), ("b", 1), ("c", 4))]
    for task in tasks:
        task.add_done_callback(lambda t: fx.append(f"done callback of {t.result()}"))
    fx.append("created")
    for next_done in asyncio.as_completed(tasks):
        fx.append(f"completed {await next_done}")


async def call_soon_chains(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Callbacks scheduled during an iteration run in the next one, after those already queued."""
    done = loop.create_future()

    def step(name: str, depth: int) -> None:
        fx.append(f"{name}{depth}")
        if depth < 3:
            loop.call_soon(step, name, depth + 1)
        if name == "a" and depth == 1:
            doomed = loop.call_soon(fx.append, "a cancelled handle ran")
            doomed.cancel()
            loop.call_soon(fx.append, "queued behind a2")
        if name == "b" and depth == 3:
            done.set_result("chain over")

    done.add_done_callback(lambda _: fx.append("done callback"))
    loop.call_soon(step, "a", 0)
    loop.call_soon(step, "b", 0)
    loop.call_soon(step, "c", 2)
    fx.append("scheduled")
    fx.append(await done)


# -- synchronisation primitives ------------------------------------------------------------
async def event_with_waiters(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Several waiters wake in order; wait() on a set event returns at once; clear, set again."""
    event = asyncio.Event()

    async def waiter(i: int) -> None:
        fx.append(f"waiter {i} waits")
        await event.wait()
        fx.append(f"waiter {i} woke")
        if i == 1:
            event.clear()
            fx.append("waiter 1 cleared")
            await event.wait()
            fx.append("waiter 1 woke again")

    tasks = [loop.create_task(waiter(i)) for i in range(4)]
    await asyncio.sleep(0)
    event.set()
    fx.append("set")
    await event.wait()
    fx.append("main passed the set event")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    fx.append(f"is_set {event.is_set()}")
    event.set()
    fx.append("set again")
    await asyncio.gather(*tasks)
    fx.append("all woke")


async def lock_contention(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Tasks queue on a Lock in FIFO order; a cancelled waiter gives up its place."""
    lock = asyncio.Lock()

    async def user(i: int) -> None:
        fx.append(f"{i} wants the lock")
        try:
            async with lock:
                fx.append(f"{i} holds the lock")
                await asyncio.sleep(0)
                await asyncio.sleep(0)
                fx.append(f"{i} releases the lock")
        except asyncio.CancelledError:
            fx.append(f"{i} cancelled while waiting")

    tasks = [loop.create_task(user(i)) for i in range(5)]
    await asyncio.sleep(0)
    tasks[2].cancel()
    await asyncio.gather(*tasks)
    fx.append(f"locked {lock.locked()}")


async def semaphore_condition_barrier(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Semaphore(2) admits two at a time; Condition notify(1) and notify_all; a Barrier."""
    sem = asyncio.Semaphore(2)
    cond = asyncio.Condition()
    barrier = asyncio.Barrier(3)
    ready = 0

    async def admitted(i: int) -> None:
        async with sem:
            fx.append(f"sem in {i}")
            await asyncio.sleep(0)
            fx.append(f"sem out {i}")

    await asyncio.gather(*(admitted(i) for i in range(4)))

    async def consumer(i: int) -> None:
        async with cond:
            await cond.wait_for(lambda: ready > 0)
            fx.append(f"cond consumer {i} sees {ready}")

    consumers = [loop.create_task(consumer(i)) for i in range(3)]
    await asyncio.sleep(0)
    async with cond:
        ready = 1
        cond.notify(1)
        fx.append("notified one")
    await asyncio.sleep(0)
    async with cond:
        ready = 2
        cond.notify_all()
        fx.append("notified all")
    await asyncio.gather(*consumers)

    async def party(i: int) -> None:
        fx.append(f"party {i} arrives")
        position = await barrier.wait()
        fx.append(f"party {i} passes as {position}")

    await asyncio.gather(*(party(i) for i in range(3)))


async def bounded_queue(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Producer and two consumers on a Queue(maxsize=2); put() blocks when full; join()."""
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)

    async def producer() -> None:
        for i in range(7):
            fx.append(f"put {i} (size {queue.qsize()})")
            await queue.put(i)
        fx.append("producer waits for join")
        await queue.join()
        fx.append("joined")
        for _ in range(2):
            await queue.put(-1)

    async def consumer(name: str) -> None:
        while (item := await queue.get()) != -1:
            fx.append(f"{name} got {item}")
            if item % 3 == 0:
                await asyncio.sleep(0)
            queue.task_done()
        queue.task_done()

    await asyncio.gather(producer(), consumer("x"), consumer("y"))
    fx.append(f"empty {queue.empty()}")


# -- timers and virtual time ------------------------------------------------------------------
async def timers(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """call_later / call_at with different and equal deadlines, a cancelled timer, sleep()."""
    start = loop.time()

    def note(name: str) -> None:
        fx.append(f"{name} {at(loop, start)}")
        if name == "early":
            loop.call_later(0, note, "call_later(0) from early")
            loop.call_soon(note, "call_soon from early")

    loop.call_later(0.3, note, "late")
    loop.call_later(0.1, note, "early")
    for i in range(4):
        loop.call_later(0.2, note, f"tie {i}")
    loop.call_at(start + 0.15, note, "call_at")
    loop.call_later(0.12, note, "cancelled").cancel()
    loop.call_later(-1, note, "in the past")

    async def sleeper(d: float) -> None:
        await asyncio.sleep(d)
        fx.append(f"slept {d} {at(loop, start)}")

    await asyncio.gather(sleeper(0.25), sleeper(0.05), sleeper(0.2), sleeper(0.4))
    fx.append(f"end {at(loop, start)}")


SLEEPS = (1.5, 60.0, 5.0, 0.0, 600.0)


async def sequential_sleeps(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Sleeps one after another: virtual time ends at their sum (about 11 minutes)."""
    start = loop.time()
    for d in SLEEPS:
        fx.append(f"sleep {d} from {at(loop, start)}")
        await asyncio.sleep(d)
    fx.append(f"woke at {at(loop, start)}")


# -- cancellation and timeouts ----------------------------------------------------------------
async def cancellation(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Cancel tasks blocked in sleep and in await; handle or swallow CancelledError; shield."""
    start = loop.time()
    blocker = loop.create_future()

    async def sleeper() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            fx.append(f"sleeper cancelled {at(loop, start)}")
            await asyncio.sleep(0)
            fx.append("sleeper cleaned up")
            raise

    async def awaiter() -> None:
        try:
            await blocker
        except asyncio.CancelledError as exc:
            fx.append(f"awaiter cancelled with {exc.args}")
            raise

    async def swallower() -> str:
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            fx.append("swallower swallows")
        return "swallower survived"

    async def never_started() -> None:
        fx.append("never_started ran")

    tasks = {
        "sleeper": loop.create_task(sleeper()),
        "awaiter": loop.create_task(awaiter()),
        "swallower": loop.create_task(swallower()),
        "never_started": loop.create_task(never_started()),
    }
    tasks["never_started"].cancel()
    await asyncio.sleep(0)
    tasks["sleeper"].cancel()
    tasks["awaiter"].cancel("stop")
    tasks["swallower"].cancel()
    fx.append(f"blocker cancelled too: {blocker.cancelled()}")
    for name, task in tasks.items():
        try:
            fx.append(f"{name} returned {await task}")
        except asyncio.CancelledError:
            fx.append(f"{name} is cancelled: {task.cancelled()}")

    inner = loop.create_task(asyncio.sleep(0.5, "shielded result"))

    async def shielded() -> str:
        return await asyncio.shield(inner)

    outer = loop.create_task(shielded())
    await asyncio.sleep(0.1)
    outer.cancel()
    try:
        await outer
    except asyncio.CancelledError:
        fx.append(f"shield cancelled {at(loop, start)}, inner running: {not inner.done()}")
    fx.append(f"inner finished with {await inner!r} {at(loop, start)}")


async def timeouts(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """asyncio.wait_for and asyncio.timeout(): expiry, the inner cancellation, no expiry."""
    start = loop.time()

    async def slow(name: str, d: float) -> str:
        try:
            await asyncio.sleep(d)
        except asyncio.CancelledError:
            fx.append(f"{name} cancelled {at(loop, start)}")
            raise
        return name

    try:
        await asyncio.wait_for(slow("wait_for victim", 5), timeout=1)
    except TimeoutError:
        fx.append(f"wait_for timed out {at(loop, start)}")
    fx.append(f"wait_for in time: {await asyncio.wait_for(slow('quick', 0.5), timeout=1)}")

    try:
        async with asyncio.timeout(0.75) as cm:
            await slow("timeout() victim", 3)
    except TimeoutError:
        fx.append(f"timeout() fired {at(loop, start)}, expired {cm.expired()}")
    async with asyncio.timeout(2) as cm:
        cm.reschedule(loop.time() + 4)
        fx.append(f"{await slow('rescheduled', 3)} finished {at(loop, start)}")
    fx.append(f"expired {cm.expired()}")

    try:
        async with asyncio.timeout_at(loop.time() + 0.25):
            await asyncio.Event().wait()
    except TimeoutError:
        fx.append(f"timeout_at() fired {at(loop, start)}")


async def gather_wait_and_taskgroup(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """gather result order and exceptions, gather cancelled, asyncio.wait, a TaskGroup."""
    start = loop.time()

    async def job(name: str, d: float, fail: bool = False) -> str:
        try:
            await asyncio.sleep(d)
        except asyncio.CancelledError:
            fx.append(f"{name} cancelled {at(loop, start)}")
            raise
        fx.append(f"{name} finished {at(loop, start)}")
        if fail:
            raise ValueError(name)
        return name

    results = await asyncio.gather(job("g1", 0.3), job("g2", 0.1), job("g3", 0.2))
    fx.append(f"gather results {results}")
    outcomes = await asyncio.gather(job("r1", 0.2), job("r2", 0.1, fail=True),
                                    return_exceptions=True)
    fx.append(f"gather with exceptions {[repr(r) for r in outcomes]}")

    children = [loop.create_task(job(f"e{i}", 0.1 * i, fail=i == 1)) for i in range(1, 3)]
    try:
        await asyncio.gather(*children)
    except ValueError as exc:
        fx.append(f"gather raised {exc} {at(loop, start)}")
    fx.append(f"the other child still ends: {await children[1]}")

    outer = asyncio.gather(job("c1", 1), job("c2", 2))
    await asyncio.sleep(0.5)
    outer.cancel()
    try:
        await outer
    except asyncio.CancelledError:
        fx.append(f"gather cancelled {at(loop, start)}")

    pending = {loop.create_task(job(f"w{i}", 0.1 * (3 - i))) for i in range(3)}
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        fx.append(f"wait returned {sorted(t.result() for t in done)}")

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(job("tg ok", 0.1))
            group.create_task(job("tg fails", 0.2, fail=True))
            group.create_task(job("tg slow", 1))
    except* ValueError as eg:
        fx.append(f"task group raised {[str(e) for e in eg.exceptions]} {at(loop, start)}")


# -- protocols over transports -------------------------------------------------------------
async def echo_ping_pong_over_a_transport(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """Client sends, server echoes upper-cased; twice; then client write_eof, server closes."""
    server_lost = loop.create_future()
    client_lost = loop.create_future()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            fx.append("server connection_made")

        def data_received(self, data: bytes) -> None:
            fx.append(f"server{DATA}{data.decode()}")
            self.transport.write(data.upper())

        def eof_received(self) -> None:
            fx.append("server eof_received")  # returns None: the transport closes

        def connection_lost(self, exc: Exception | None) -> None:
            fx.append(f"server connection_lost {exc!r}")
            server_lost.set_result(None)

    class Pinger(asyncio.Protocol):
        def __init__(self) -> None:
            self.todo = [b"ping", b"pong, louder"]
            self.got = b""
            self.expected = 0

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            fx.append("client connection_made")
            self.send_next()

        def send_next(self) -> None:
            message = self.todo.pop(0)
            self.got, self.expected = b"", len(message)
            fx.append(f"client writes {message.decode()}")
            self.transport.write(message)

        def data_received(self, data: bytes) -> None:
            fx.append(f"client{DATA}{data.decode()}")
            self.got += data
            if len(self.got) < self.expected:
                return
            if self.todo:
                self.send_next()
            else:
                fx.append("client write_eof")
                self.transport.write_eof()

        def eof_received(self) -> None:
            fx.append("client eof_received")

        def connection_lost(self, exc: Exception | None) -> None:
            fx.append(f"client connection_lost {exc!r}")
            client_lost.set_result(None)

    server = await loop.create_server(Echo, "127.0.0.1", 0)
    fx.append("listening")
    transport, _ = await loop.create_connection(Pinger, "127.0.0.1", port_of(server))
    fx.append("connected")
    await asyncio.gather(server_lost, client_lost)
    fx.append(f"client transport closing: {transport.is_closing()}")
    server.close()
    await server.wait_closed()
    fx.append("server closed")


async def half_close_then_reply(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """The client writes and half-closes at once; the server keeps the connection open on
    EOF (eof_received returns True), replies, then closes; the client sees data, EOF, lost."""
    done = loop.create_future()
    lost: list[str] = []

    class Replier(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""
            fx.append("server connection_made")

        def data_received(self, data: bytes) -> None:
            fx.append(f"server{DATA}{data.decode()}")
            self.buffer += data

        def eof_received(self) -> bool:
            fx.append(f"server eof_received, replies {len(self.buffer)}B and closes")
            self.transport.write(self.buffer[::-1].upper())
            self.transport.close()
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            fx.append(f"server connection_lost {exc!r}")
            lost.append("server")

    class Asker(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            fx.append("client connection_made, writes and half-closes")
            transport.write(b"hello, ")
            transport.write(b"world")
            transport.write_eof()
            fx.append(f"client can still read: {transport.is_reading()}")

        def data_received(self, data: bytes) -> None:
            fx.append(f"client{DATA}{data.decode()}")

        def eof_received(self) -> None:
            fx.append("client eof_received")

        def connection_lost(self, exc: Exception | None) -> None:
            fx.append(f"client connection_lost {exc!r}")
            lost.append("client")
            done.set_result(None)

    server = await loop.create_server(Replier, "127.0.0.1", 0)
    await loop.create_connection(Asker, "127.0.0.1", port_of(server))
    fx.append("connected")
    await done
    await asyncio.sleep(0)
    fx.append(f"lost: {lost}")
    server.close()
    await server.wait_closed()


async def paused_reading_with_a_timer(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """The server pauses reading after the first bytes and resumes on a timer; what the
    client sent meanwhile (and its EOF) is delivered only after resume_reading()."""
    start = loop.time()
    done = loop.create_future()

    class Slow(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""
            fx.append(f"server connection_made {at(loop, start)}")

        def data_received(self, data: bytes) -> None:
            fx.append(f"server{DATA}{data.decode()}")
            first = not self.buffer
            self.buffer += data
            if first:
                self.transport.pause_reading()
                fx.append(f"server paused {at(loop, start)}")
                loop.call_later(0.5, self.resume)

        def resume(self) -> None:
            fx.append(f"server resumes {at(loop, start)}")
            self.transport.resume_reading()

        def eof_received(self) -> bool:
            fx.append(f"server eof_received {at(loop, start)}")
            self.transport.write(self.buffer.upper())
            self.transport.close()
            return True

    class Client(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            transport.write(b"one")
            loop.call_later(0.2, self.later)

        def later(self) -> None:
            fx.append(f"client writes two and half-closes {at(loop, start)}")
            self.transport.write(b"two")
            self.transport.write_eof()

        def data_received(self, data: bytes) -> None:
            fx.append(f"client{DATA}{data.decode()}")

        def connection_lost(self, exc: Exception | None) -> None:
            fx.append(f"client connection_lost {at(loop, start)}")
            done.set_result(None)

    server = await loop.create_server(Slow, "127.0.0.1", 0)
    await loop.create_connection(Client, "127.0.0.1", port_of(server))
    await done
    await asyncio.sleep(0)
    server.close()
    await server.wait_closed()
    fx.append(f"end {at(loop, start)}")


async def streams_echo(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """asyncio streams (start_server / open_connection) on top of the same transports."""
    handled = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        fx.append(f"server read line {line!r}")
        writer.write(line.upper())
        await writer.drain()
        rest = await reader.read()
        fx.append(f"server read to EOF {rest!r}")
        writer.write(rest[::-1])
        writer.close()
        await writer.wait_closed()
        fx.append("server writer closed")
        handled.set_result(None)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    fx.append("client connected")
    writer.write(b"hello\n")
    await writer.drain()
    fx.append(f"client read line {await reader.readline()!r}")
    writer.write(b"and goodbye")
    writer.write_eof()
    fx.append(f"client read to EOF {await reader.read()!r}")
    writer.close()
    await writer.wait_closed()
    fx.append("client writer closed")
    await handled
    server.close()
    await server.wait_closed()
    fx.append("server closed")


# -- programs where the simulated loop differs --------------------------------------------------
async def ticker(stop: list[bool], fx: list[str]) -> None:
    """One effect per loop iteration: makes the number of iterations an await takes visible."""
    i = 0
    while not stop:
        fx.append(f"tick {i}")
        i += 1
        await asyncio.sleep(0)


async def create_server_beside_a_running_task(
    loop: asyncio.AbstractEventLoop, fx: list[str]
) -> None:
    """How many loop iterations `await loop.create_server(...)` takes."""
    stop: list[bool] = []
    ticks = loop.create_task(ticker(stop, fx))
    await asyncio.sleep(0)
    fx.append("create_server")
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    fx.append("listening")
    stop.append(True)
    await ticks
    server.close()
    await server.wait_closed()


@functools.cache
def port_nobody_listens_on() -> int:
    """A loopback port that was free a moment ago (asked once, before the simulated run)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def refused_connection_beside_a_running_task(
    loop: asyncio.AbstractEventLoop, fx: list[str]
) -> None:
    """How many loop iterations a refused `create_connection` takes to raise."""
    stop: list[bool] = []
    ticks = loop.create_task(ticker(stop, fx))
    await asyncio.sleep(0)
    fx.append("create_connection")
    try:
        await loop.create_connection(asyncio.Protocol, "127.0.0.1", port_nobody_listens_on())
    except ConnectionRefusedError:
        fx.append("refused")
    stop.append(True)
    await ticks
    fx.append("end")


async def wait_closed_with_a_connection_open(
    loop: asyncio.AbstractEventLoop, fx: list[str]
) -> None:
    """Does `server.wait_closed()` after `server.close()` wait for an open connection?"""
    start = loop.time()
    lost = [loop.create_future(), loop.create_future()]

    class Side(asyncio.Protocol):
        def __init__(self, side: int) -> None:
            self.side = side

        def connection_lost(self, exc: Exception | None) -> None:
            fx.append(f"{['server', 'client'][self.side]} connection_lost {at(loop, start)}")
            lost[self.side].set_result(None)

    server = await loop.create_server(lambda: Side(0), "127.0.0.1", 0)
    transport, _ = await loop.create_connection(lambda: Side(1), "127.0.0.1", port_of(server))
    fx.append("connected")
    server.close()
    fx.append("server.close()")
    loop.call_later(1, transport.close)
    await server.wait_closed()
    fx.append(f"wait_closed returned {at(loop, start)}")
    await asyncio.gather(*lost)
    fx.append("both ends closed")


async def serving_and_closing_a_server(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    """start_serving() after create_server(start_serving=False); a wait_closed() begun
    before close() and one after; serve_forever() ended by close()."""
    stop: list[bool] = []
    ticks = loop.create_task(ticker(stop, fx))
    await asyncio.sleep(0)
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, start_serving=False)
    fx.append(f"created, serving: {server.is_serving()}")
    await server.start_serving()
    fx.append(f"start_serving returned, serving: {server.is_serving()}")
    forever = loop.create_task(server.serve_forever())
    early = loop.create_task(server.wait_closed())
    await asyncio.sleep(0)
    fx.append("close")
    server.close()
    for name, task in (("serve_forever", forever), ("early wait_closed", early)):
        try:
            fx.append(f"{name} returned {await task}")
        except asyncio.CancelledError:
            fx.append(f"{name} raised CancelledError")
    await server.wait_closed()
    fx.append(f"late wait_closed returned, serving: {server.is_serving()}")
    stop.append(True)
    await ticks


NO_MARKS: tuple[pytest.MarkDecorator, ...] = ()
CASES: list[tuple[Program, tuple[pytest.MarkDecorator, ...]]] = [
    (futures_with_callbacks, NO_MARKS),
    (tasks_interleaving, NO_MARKS),
    (call_soon_chains, NO_MARKS),
    (event_with_waiters, NO_MARKS),
    (lock_contention, NO_MARKS),
    (semaphore_condition_barrier, NO_MARKS),
    (bounded_queue, NO_MARKS),
    (timers, NO_MARKS),
    (sequential_sleeps, NO_MARKS),
    (cancellation, NO_MARKS),
    (timeouts, NO_MARKS),
    (gather_wait_and_taskgroup, NO_MARKS),
    (echo_ping_pong_over_a_transport, NO_MARKS),
    (half_close_then_reply, NO_MARKS),
    (paused_reading_with_a_timer, NO_MARKS),
    (streams_echo, NO_MARKS),
    (create_server_beside_a_running_task, NO_MARKS),
    (refused_connection_beside_a_running_task, NO_MARKS),
    (wait_closed_with_a_connection_open, NO_MARKS),
    (serving_and_closing_a_server, NO_MARKS),
]
PROGRAMS = [pytest.param(program, id=program.__name__, marks=marks) for program, marks in CASES]


# -- the tests -------------------------------------------------------------------------------
@pytest.mark.parametrize("program", PROGRAMS)
def test_program_has_the_same_effect_order_on_the_simulated_and_stock_loops(
    program: Program,
) -> None:
    stock, stock_end = run_on_stock_loop(program)
    assert len(stock) >= MIN_EFFECTS, f"too few effects to prove anything: {stock}"
    simulated, simulated_end = run_on_simulated_loop(program)
    assert joined_chunks(simulated) == joined_chunks(stock)
    assert simulated_end == pytest.approx(stock_end, abs=1e-6)


@pytest.mark.parametrize("program", [pytest.param(p, id=p.__name__) for p, _ in CASES])
def test_the_stock_reference_run_is_repeatable(program: Program) -> None:
    """A reference that changed from run to run could not judge the simulated loop."""
    first, _ = run_on_stock_loop(program)
    second, _ = run_on_stock_loop(program)
    assert joined_chunks(first) == joined_chunks(second)


def test_simulated_virtual_time_after_a_timer_program_is_the_sum_of_its_sleeps() -> None:
    began = time.perf_counter()
    effects: list[str] = []
    result = simulate(lambda loop: sequential_sleeps(loop, effects), OrdinarySource())
    elapsed = time.perf_counter() - began
    assert result.outcome == "quiescent"
    assert result.virtual_time == pytest.approx(sum(SLEEPS))
    assert effects[-1] == f"woke at t={sum(SLEEPS):.3f}"
    # Eleven virtual minutes, and no real waiting: less than the shortest nonzero sleep.
    assert elapsed < NO_REAL_WAIT


def test_the_fast_forward_stock_loop_also_never_really_sleeps() -> None:
    began = time.perf_counter()
    _, end = run_on_stock_loop(sequential_sleeps)
    assert end == pytest.approx(sum(SLEEPS))
    assert time.perf_counter() - began < NO_REAL_WAIT
