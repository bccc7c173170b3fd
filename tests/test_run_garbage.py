"""Runs leave no garbage behind for long: a search of thousands of runs stays flat."""

from __future__ import annotations

import gc

from harness.decisions import OrdinarySource
from harness.sim.loop import SimLoop
from harness.sim.run import simulate


async def tasks_that_cycle(loop: SimLoop) -> None:
    async def child() -> None:
        holder = [loop]
        holder.append(holder)  # a reference cycle per task: only the collector frees it

    for _ in range(3):
        await loop.create_task(child())


def test_what_teardown_leaves_to_the_next_generation_is_collected_between_runs():
    # Teardown collects the youngest generation only (the run's loop still open), and
    # too little is allocated between runs for the automatic collector: the next
    # generation must be collected by the runs themselves, or it grows without end.
    threshold = gc.get_threshold()[1]
    counts = []
    for _ in range(5 * threshold):
        simulate(tasks_that_cycle, OrdinarySource())
        counts.append(gc.get_count()[1])
    assert max(counts) <= threshold


def test_an_interrupt_that_comes_while_a_finalizer_runs_is_not_lost():
    # Collections run finalizers, and Python drops an exception raised inside one: a
    # Ctrl-C landing there let an explore run on. Runs collect under this hold.
    import signal

    import pytest

    from harness.sim.interrupts import interrupts_held

    class Finalized:
        def __del__(self) -> None:
            signal.raise_signal(signal.SIGINT)

    cycle = Finalized()
    cycle.me = cycle  # type: ignore[attr-defined]
    del cycle
    with pytest.raises(KeyboardInterrupt), interrupts_held():
        gc.collect()
