"""The search engine: find failures, then shrink each toward an ordinary run.

Like Hypothesis's ConjectureRunner it takes plain callables and knows nothing
of HTTP or pytest:

    generate(draw) -> X            draws a scenario with `draw(strategy)`
    execute(X, source) -> Outcome  runs it, every choice from `source`

`Outcome.failures` are objects with `.key()`; `Outcome.decisions` is what the
run recorded. Strategies (how choices are made while searching):

- hypothesis: Hypothesis draws the scenario and every decision, and shrinks both;
- random:     Hypothesis draws the scenario, a seeded RandomSource the decisions;
- pct:        likewise with a PCTSource (a few deviations at random points).

After any strategy a greedy pass resets each remaining deviation to 0 where
the failure survives, and the result is replayed strictly before it is
reported (DESIGN.md, Rule 2): a replay that does not fail again is a harness
bug and raises.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from harness.decisions import (
    Decision,
    DecisionSource,
    HypothesisSource,
    PCTSource,
    RandomSource,
    ReplaySource,
)

STRATEGIES = ("hypothesis", "random", "pct")
ROUND_EXAMPLES = 200
X = TypeVar("X")


class HasKey(Protocol):
    def key(self) -> tuple[str, str]: ...


@dataclass
class Outcome:
    failures: list[Any]
    decisions: list[Decision]


@dataclass
class Found(Generic[X]):
    key: tuple[str, str]
    failure: Any
    scenario: X
    decisions: list[Decision]
    runs_to_find: int
    seconds_to_find: float
    seconds_to_shrink: float


@dataclass
class SearchReport(Generic[X]):
    runs: int = 0
    seconds: float = 0.0
    found: list[Found[X]] = field(default_factory=list)

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


class ReplayMismatch(AssertionError):
    """A shrunk failure did not fail again on strict replay: a harness bug."""


class _Interesting(Exception):
    pass


Progress = Callable[[str, dict[str, Any]], None]


def _no_progress(event: str, info: dict[str, Any]) -> None:
    pass


def search(
    generate: Callable[[Callable[[Any], Any]], X],
    execute: Callable[[X, DecisionSource], Outcome],
    *,
    strategy: str = "hypothesis",
    budget_seconds: float = 60.0,
    max_runs: int | None = None,
    seed: int = 0,
    known: frozenset[tuple[str, str]] = frozenset(),
    max_found: int | None = None,
    accept: Callable[[Any], bool] | None = None,
    progress: Progress = _no_progress,
    on_found: Callable[[Found[X]], None] = lambda found: None,
) -> SearchReport[X]:
    """Search until the budget is spent (or `max_found` distinct failures).

    `accept`, if given, limits which failures count: the others are ignored,
    which is how a benchmark measures the time to one particular bug. `on_found` is
    called with each distinct failure the moment it is shrunk and confirmed, so a
    caller can keep it whatever happens to the rest of the search."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown search strategy {strategy!r}; use one of {STRATEGIES}")
    if budget_seconds <= 0 and max_runs is None:
        raise ValueError("the search needs a budget: budget_seconds > 0 or max_runs")
    report: SearchReport[X] = SearchReport()
    start = time.monotonic()
    seen = set(known)
    rounds = 0

    def exhausted() -> bool:
        over_time = budget_seconds > 0 and time.monotonic() - start >= budget_seconds
        over_runs = max_runs is not None and report.runs >= max_runs
        return over_time or over_runs

    while not exhausted() and (max_found is None or len(report.found) < max_found):
        runs_left = None if max_runs is None else max_runs - report.runs
        found = _round(generate, execute, strategy, seed + rounds, frozenset(seen), report,
                       start, runs_left, accept, progress)
        rounds += 1
        if found is None:
            continue  # Nothing new in this round: another seed, while budget lasts.
        seen.add(found.key)
        report.found.append(found)
        on_found(found)
        progress("found", {"kind": found.key[0], "signature": found.key[1],
                           "runs": report.runs, "distinct": len(report.found)})
    report.seconds = time.monotonic() - start
    return report


def _round(
    generate: Callable[[Callable[[Any], Any]], X],
    execute: Callable[[X, DecisionSource], Outcome],
    strategy: str,
    round_seed: int,
    known: frozenset[tuple[str, str]],
    report: SearchReport[X],
    start: float,
    max_runs_left: int | None,
    accept: Callable[[Any], bool] | None,
    progress: Progress,
) -> Found[X] | None:
    state: dict[str, Any] = {"target": None, "last": None, "found_at": None, "shrinks": 0}

    # A round is a complete Hypothesis run of at most ROUND_EXAMPLES examples; the
    # budget is checked between rounds, so Hypothesis is never cut off mid-run
    # (an early return would look like nondeterministic data generation to it).
    remaining = ROUND_EXAMPLES
    if max_runs_left is not None:
        remaining = max(1, min(ROUND_EXAMPLES, max_runs_left))

    @settings(database=None, deadline=None, max_examples=remaining, verbosity=Verbosity.quiet,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink],
              report_multiple_bugs=False)
    @given(st.data())
    def run_one(data: Any) -> None:
        target = state["target"]
        scenario = generate(data.draw)
        if strategy == "hypothesis":
            source: DecisionSource = HypothesisSource(data)
        else:
            run_seed = data.draw(st.integers(0, 2**32 - 1))
            source = RandomSource(run_seed) if strategy == "random" else PCTSource(run_seed)
        outcome = execute(scenario, source)
        if target is None:
            report.runs += 1
            if report.runs % 50 == 0:
                progress("runs", {"runs": report.runs, "elapsed": time.monotonic() - start})
            new = [f for f in outcome.failures
                   if f.key() not in known and (accept is None or accept(f))]
            if not new:
                return
            state["target"] = target = new[0].key()
            state["found_at"] = (report.runs, time.monotonic() - start)
            progress("shrinking", {"kind": target[0], "signature": target[1]})
        else:
            state["shrinks"] += 1
        match = [f for f in outcome.failures if f.key() == target]
        if match:
            state["last"] = (scenario, outcome.decisions, match[0])
            raise _Interesting()

    with contextlib.suppress(_Interesting):
        hypothesis_seed(round_seed)(run_one)()
    if state["last"] is None:
        return None
    found_runs, found_seconds = state["found_at"]
    scenario, decisions, failure = state["last"]
    decisions = _zero_deviations(execute, scenario, decisions, state["target"])
    failure = _confirm(execute, scenario, decisions, state["target"])
    shrink_seconds = time.monotonic() - start - found_seconds
    return Found(state["target"], failure, scenario, decisions, found_runs, found_seconds,
                 shrink_seconds)


def _zero_deviations(
    execute: Callable[[X, DecisionSource], Outcome],
    scenario: X,
    decisions: list[Decision],
    target: tuple[str, str],
    max_attempts: int = 200,
) -> list[Decision]:
    """Greedy: make each deviation ordinary where the failure survives without it."""
    attempts = 0
    changed = True
    while changed and attempts < max_attempts:
        changed = False
        for i in reversed([i for i, d in enumerate(decisions) if d.choice != 0]):
            if i >= len(decisions) or decisions[i].choice == 0 or attempts >= max_attempts:
                continue
            attempts += 1
            trial = list(decisions)
            trial[i] = Decision(trial[i].what, trial[i].n, 0)
            outcome = execute(scenario, ReplaySource(trial, strict=False))
            if any(f.key() == target for f in outcome.failures):
                decisions = outcome.decisions
                changed = True
    return decisions


def _confirm(
    execute: Callable[[X, DecisionSource], Outcome],
    scenario: X,
    decisions: list[Decision],
    target: tuple[str, str],
) -> Any:
    outcome = execute(scenario, ReplaySource(decisions, strict=True))
    for f in outcome.failures:
        if f.key() == target:
            return f
    raise ReplayMismatch(
        f"harness bug: the shrunk run of {target} did not fail again on strict replay"
    )
