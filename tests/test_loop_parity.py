"""With every choice 0, the simulated loop orders effects exactly as the stock loop does.

The reference is the stock `asyncio.SelectorEventLoop` with one change: its
clock is virtual, and a select() that would block with a timeout advances that
clock instead of sleeping (tests never really sleep). The stock `_run_once`
still decides every ordering, which is what these tests compare.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from harness.decisions import OrdinarySource
from harness.loop import SimLoop
from harness.run import simulate

Program = Callable[[asyncio.AbstractEventLoop, list[str]], Awaitable[None]]


class _FastForwardSelector:
    def __init__(self, loop: FastForwardLoop, inner: selectors.BaseSelector) -> None:
        self._loop = loop
        self._inner = inner

    def select(self, timeout: float | None = None) -> list[Any]:
        events = self._inner.select(0)
        if not events and timeout:
            self._loop.now += timeout
        return events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class FastForwardLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self._selector = _FastForwardSelector(self, self._selector)  # type: ignore[assignment]

    def time(self) -> float:
        return self.now


def on_stock_loop(program: Program) -> list[str]:
    effects: list[str] = []
    loop = FastForwardLoop()
    try:
        loop.run_until_complete(program(loop, effects))
    finally:
        loop.close()
    return effects


def on_sim_loop(program: Program) -> list[str]:
    effects: list[str] = []

    async def main(loop: SimLoop) -> None:
        await program(loop, effects)

    result = simulate(main, OrdinarySource())
    assert result.program_error is None, result.program_error
    return effects


# -- the programs ---------------------------------------------------------------------
async def futures_and_callbacks(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    futs = [loop.create_future() for _ in range(3)]
    for i, f in enumerate(futs):
        f.add_done_callback(lambda _, i=i: fx.append(f"done {i}"))
        f.add_done_callback(lambda _, i=i: fx.append(f"done {i} again"))
    loop.call_soon(futs[2].set_result, 2)
    futs[0].set_result(0)
    loop.call_soon(futs[1].set_result, 1)
    fx.append("scheduled")
    await asyncio.gather(*futs)
    fx.append("gathered")


async def tasks_interleaving(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    async def worker(name: str, steps: int) -> str:
        for i in range(steps):
            fx.append(f"{name} {i}")
            await asyncio.sleep(0)
        return name

    tasks = [loop.create_task(worker(n, s)) for n, s in (("a", 3), ("b", 1), ("c", 4))]
    fx.append("created")
    for t in asyncio.as_completed(tasks):
        fx.append(f"completed {await t}")


async def event_with_waiters(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    event = asyncio.Event()

    async def waiter(i: int) -> None:
        fx.append(f"wait {i}")
        await event.wait()
        fx.append(f"woke {i}")
        event.clear() if i == 1 else None

    tasks = [loop.create_task(waiter(i)) for i in range(4)]
    await asyncio.sleep(0)
    event.set()
    fx.append("set")
    await asyncio.gather(*tasks)


async def lock_contention(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    lock = asyncio.Lock()

    async def user(i: int) -> None:
        async with lock:
            fx.append(f"in {i}")
            await asyncio.sleep(0)
            fx.append(f"out {i}")

    await asyncio.gather(*(user(i) for i in range(4)))


async def bounded_queue(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=2)

    async def producer() -> None:
        for i in range(6):
            await queue.put(i)
            fx.append(f"put {i}")
        await queue.put(-1)

    async def consumer(name: str) -> None:
        while (item := await queue.get()) != -1:
            fx.append(f"{name} got {item}")
        await queue.put(-1)

    await asyncio.gather(producer(), consumer("x"), consumer("y"))


async def call_soon_chains(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    done = loop.create_future()

    def step(name: str, depth: int) -> None:
        fx.append(f"{name}{depth}")
        if depth < 3:
            loop.call_soon(step, name, depth + 1)  # runs in the next iteration
        elif name == "b":
            done.set_result(None)

    loop.call_soon(step, "a", 0)
    loop.call_soon(step, "b", 0)
    await done


async def timers(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    for delay, name in ((0.3, "late"), (0.1, "early"), (0.2, "tie-1"), (0.2, "tie-2")):
        loop.call_later(delay, fx.append, name)
    loop.call_at(loop.time() + 0.15, fx.append, "at")

    async def sleeper(d: float) -> None:
        await asyncio.sleep(d)
        fx.append(f"slept {d}")

    await asyncio.gather(sleeper(0.25), sleeper(0.05), sleeper(0.4))


async def cancellation(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    async def victim() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            fx.append("victim cancelled")
            raise

    task = loop.create_task(victim())
    await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        fx.append("awaited cancelled task")
    try:
        await asyncio.wait_for(asyncio.sleep(5), timeout=1)
    except TimeoutError:
        fx.append("wait_for timed out")
    try:
        async with asyncio.timeout(0.5):
            await asyncio.Event().wait()
    except TimeoutError:
        fx.append("timeout() fired")
    fx.append(f"time {loop.time():g}")


async def protocol_over_transport(loop: asyncio.AbstractEventLoop, fx: list[str]) -> None:
    closed = loop.create_future()

    class Server(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            fx.append("server made")

        def data_received(self, data: bytes) -> None:
            fx.append(f"server data {data.decode()}")
            self.transport.write(data.upper())

        def eof_received(self) -> None:
            fx.append("server eof")

        def connection_lost(self, exc: Exception | None) -> None:
            fx.append("server lost")

    class Client(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            fx.append("client made")
            transport.write(b"ping")

        def data_received(self, data: bytes) -> None:
            fx.append(f"client data {data.decode()}")
            self.transport.write_eof()

        def connection_lost(self, exc: Exception | None) -> None:
            fx.append("client lost")
            closed.set_result(None)

    server = await loop.create_server(Server, "127.0.0.1", 0 if isinstance(
        loop, FastForwardLoop) else 8000)
    port = server.sockets[0].getsockname()[1] if server.sockets else 8000
    await loop.create_connection(Client, "127.0.0.1", port)
    await closed
    server.close()


PROGRAMS = [futures_and_callbacks, tasks_interleaving, event_with_waiters, lock_contention,
            bounded_queue, call_soon_chains, timers, cancellation, protocol_over_transport]


@pytest.mark.parametrize("program", PROGRAMS, ids=[p.__name__ for p in PROGRAMS])
def test_the_program_has_the_same_effect_order_on_the_simulated_and_stock_loops(
    program: Program,
):
    stock = on_stock_loop(program)
    assert len(stock) >= 4, "a program this short would prove nothing"
    assert on_sim_loop(program) == stock


def test_virtual_time_jumps_to_each_timer_without_waiting():
    result = simulate(lambda loop: timers(loop, []), OrdinarySource())
    assert result.virtual_time == pytest.approx(0.4)
