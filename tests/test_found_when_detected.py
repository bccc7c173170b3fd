"""A failure is handed over the moment it is detected, before it is shrunk, so an
interrupt during shrinking (inline, or in a forked child) loses nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import strategies as st

from harness.decisions import DecisionSource, Recorder, ReplaySource
from harness.search.engine import Found, Outcome, search


@dataclass(frozen=True)
class Late:
    def key(self) -> tuple[str, str]:
        return ("toy", "late deviation")


def generate(draw: Any) -> int:
    return int(draw(st.integers(0, 100)))


def late_deviation(scenario: int, source: DecisionSource) -> Outcome:
    """Fails when a large scenario deviates anywhere: shrinking has work to do."""
    recorder = Recorder(source)
    picks = [recorder.choose(4, f"step {i}") for i in range(5)]
    failed = scenario >= 30 and any(picks)
    return Outcome([Late()] if failed else [], list(recorder.decisions))


@pytest.mark.parametrize("mode", ["inline", "fork"])
def test_the_detected_run_is_handed_over_first_then_the_shrunk_one(mode: str):
    seen: list[Found[int]] = []
    report = search(generate, late_deviation, budget_seconds=0, max_runs=300, seed=0,
                    on_found=seen.append, shrink=mode)
    assert [f.shrunk for f in seen] == [False, True]
    detected, shrunk = seen
    assert report.found == [shrunk]
    assert detected.key == shrunk.key and detected.runs_to_find == shrunk.runs_to_find
    assert detected.seconds_to_shrink == 0
    assert detected.seconds_to_report <= shrunk.seconds_to_report
    # The detected run is as it was met: it replays strictly, and shrinking made it smaller.
    again = late_deviation(detected.scenario, ReplaySource(detected.decisions, strict=True))
    assert [f.key() for f in again.failures] == [detected.key]
    assert (shrunk.scenario, sum(d.choice != 0 for d in shrunk.decisions)) <= (
        detected.scenario, sum(d.choice != 0 for d in detected.decisions))
    assert shrunk.scenario == 30  # the smallest scenario that fails


@pytest.mark.parametrize("mode", ["inline", "fork"])
def test_an_interrupt_while_shrinking_keeps_the_detected_failure(mode: str):
    seen: list[Found[int]] = []

    def execute(scenario: int, source: DecisionSource) -> Outcome:
        if seen:  # detected: every run from here on is shrinking (or, forked, searching)
            raise KeyboardInterrupt
        return late_deviation(scenario, source)

    with pytest.raises(KeyboardInterrupt):
        search(generate, execute, budget_seconds=0, max_runs=300, seed=0,
               on_found=seen.append, shrink=mode)
    [detected] = seen
    assert not detected.shrunk and detected.key == Late().key()
