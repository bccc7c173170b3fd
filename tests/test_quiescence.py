"""Hangs are found at quiescence, with the await stack of each blocked task."""

from __future__ import annotations

import asyncio
from pathlib import Path

import harness.http.app
from harness.decisions import OrdinarySource
from harness.sim.loop import SimLoop
from harness.sim.quiescence import short_path
from harness.sim.run import Settings, simulate


async def wait_forever(event: asyncio.Event) -> None:
    await event.wait()


def test_a_task_blocked_forever_is_reported_with_its_await_stack():
    async def program(loop: SimLoop) -> None:
        loop.create_task(wait_forever(asyncio.Event()))

    result = simulate(program, OrdinarySource())
    assert result.outcome == "quiescent"
    [blocked] = result.blocked
    assert blocked.coroutine == "wait_forever"
    files = [f"{f.file}:{f.function}" for f in blocked.stack]
    assert files == ["tests/test_quiescence.py:wait_forever", "asyncio/locks.py:Event.wait"]
    innermost = blocked.innermost()
    assert innermost is not None and innermost.function == "wait_forever"


def test_time_jumps_over_timers_before_quiescence_is_declared():
    async def program(loop: SimLoop) -> None:
        await asyncio.sleep(30)
        loop.call_later(100, lambda: None)

    result = simulate(program, OrdinarySource())
    assert result.outcome == "quiescent"
    assert result.virtual_time == 130


def test_a_task_that_never_stops_yielding_is_a_livelock_not_a_stuck_process():
    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    async def program(loop: SimLoop) -> None:
        loop.create_task(spin())

    result = simulate(program, OrdinarySource(), Settings(step_budget=4000))
    assert result.outcome == "livelock"
    assert "4000 loop iterations" in result.detail
    assert [b.coroutine.rsplit(".", 1)[-1] for b in result.blocked] == ["spin"]


def test_a_budget_too_small_to_tell_a_spin_from_a_slow_run_leaves_the_run_unsettled():
    async def spin() -> None:
        while True:
            await asyncio.sleep(0)

    async def ticking() -> None:  # time passes at every poll: never a livelock
        while True:
            await asyncio.sleep(0.001)

    for body, budget in ((spin, 500), (ticking, 4000)):
        async def program(loop: SimLoop, body=body) -> None:
            loop.create_task(body())

        result = simulate(program, OrdinarySource(), Settings(step_budget=budget))
        assert result.outcome == "unsettled", body
        assert f"of {budget}" in result.detail


def test_a_periodic_timer_ends_the_run_at_the_horizon():
    async def program(loop: SimLoop) -> None:
        def tick() -> None:
            loop.call_later(1.0, tick)

        tick()

    result = simulate(program, OrdinarySource(), Settings(horizon=50))
    assert result.outcome == "horizon"
    assert 49 <= result.virtual_time <= 50


def test_a_finished_program_with_nothing_left_has_no_blocked_tasks():
    async def program(loop: SimLoop) -> None:
        await asyncio.sleep(1)

    result = simulate(program, OrdinarySource())
    assert (result.outcome, result.blocked, result.virtual_time) == ("quiescent", [], 1)


def test_a_harness_frame_is_named_the_same_from_any_working_directory(tmp_path, monkeypatch):
    """Signatures, and the oracles' filter of the harness's own frames, must not change
    when the harness runs from a server's repository (the pytest plugin's case)."""
    app = str(Path(harness.http.app.__file__).resolve())
    monkeypatch.chdir(tmp_path)
    assert short_path(app) == "harness/http/app.py"
    assert short_path(asyncio.queues.__file__) == "asyncio/queues.py"


def test_a_path_named_from_the_working_directory_follows_it(tmp_path, monkeypatch):
    # short_path keeps its answers, but not one that depends on the working directory.
    inner = tmp_path / "pkg"
    inner.mkdir()
    path = str(inner / "mod.py")
    monkeypatch.chdir(tmp_path)
    assert short_path(path) == "pkg/mod.py"
    monkeypatch.chdir(inner)
    assert short_path(path) == "mod.py"


def test_a_task_made_without_create_task_is_found_too_and_each_task_once():
    # The loop finds its tasks itself (not in asyncio's process-wide set): one built
    # directly still schedules its first step with call_soon, which sees it.
    async def program(loop: SimLoop) -> None:
        asyncio.Task(wait_forever(asyncio.Event()), loop=loop)
        loop.create_task(wait_forever(asyncio.Event()))

    result = simulate(program, OrdinarySource())
    assert [b.coroutine for b in result.blocked] == ["wait_forever", "wait_forever"]
