"""Every ordering of one scenario with at most K deviations from the ordinary run.

Where the search (engine.py) samples orderings of many scenarios, this walks all of
them for one: what a fix has to hold against, not just the ordering a trace recorded.
An ordering is named by its decisions up to its last deviation (everything after is the
ordinary choice, 0), so each is run once. The walk is breadth first, by number of
deviations, so the first run to meet a failure is one of its simplest: nothing is
left to shrink. The count grows about as (decisions x options)^K, so K is small (1 or
2) and `max_runs` bounds the walk; the report says how far it got.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from harness.decisions import Decision, DecisionSource, PrefixSource, TraceDivergence
from harness.errors import HarnessFault
from harness.search.engine import Found, Outcome, Progress, confirm
from harness.search.walk_lines import orderings

X = TypeVar("X")
RUNS_EVERY = 100  # a "runs" progress event every this many runs


@dataclass
class Exhausted(Generic[X]):
    runs: int = 0
    levels: list[int] = field(default_factory=list)  # orderings run, by deviations
    sizes: list[int] = field(default_factory=list)  # orderings there are, by deviations
    found: list[Found[X]] = field(default_factory=list)  # each distinct failure, first met
    complete: bool = True  # False: max_runs stopped the walk before its end


def exhaust(
    execute: Callable[[X, DecisionSource], Outcome],
    scenario: X,
    max_deviations: int,
    *,
    max_runs: int | None = None,
    on_found: Callable[[Found[X]], None] = lambda found: None,
    progress: Progress = lambda event, info: None,
    now: Callable[[], float] = time.monotonic,
) -> Exhausted[X]:
    """Run `scenario` under every decision list with at most `max_deviations` nonzero
    choices, fewest first, until `max_runs`. Each distinct failure (by key) is confirmed
    by strict replay and handed to `on_found` at once, as first met."""
    if max_deviations < 0:
        raise ValueError(f"max_deviations must be 0 or more, got {max_deviations}")
    report: Exhausted[X] = Exhausted()
    began = now()
    seen: set[tuple[str, str]] = set()
    level: list[tuple[list[Decision], int]] = []  # (a run's decisions, its prefix's length)
    for deviations in range(max_deviations + 1):
        size = 1 if deviations == 0 else sum(d.n - 1 for decisions, start in level
                                             for d in decisions[start:])
        if not size:
            break  # no decision left to deviate at: every ordering has run
        report.levels.append(0)
        report.sizes.append(size)
        progress("level", {"deviations": deviations, "orderings": size, "runs": report.runs})
        ran: list[tuple[list[Decision], int]] = []
        for prefix in [[]] if deviations == 0 else _children(level):
            if max_runs is not None and report.runs >= max_runs:
                report.complete = False
                return report
            outcome = _run(execute, scenario, prefix)
            report.runs += 1
            report.levels[deviations] += 1
            if deviations < max_deviations:  # its children are the next level
                ran.append((outcome.decisions, len(prefix)))
            for failure in outcome.failures:
                key = failure.key()
                if key in seen:
                    continue
                seen.add(key)
                found = Found(key, confirm(execute, scenario, outcome.decisions, key,
                                           "run that met it"),
                              scenario, outcome.decisions, report.runs, now() - began, 0.0,
                              "exhaustive")
                report.found.append(found)
                on_found(found)
            if report.runs % RUNS_EVERY == 0:
                progress("runs", {"runs": report.runs, "deviations": deviations,
                                  "of_level": report.levels[-1], "level": size})
        level = ran
    return report


def _children(level: list[tuple[list[Decision], int]]) -> Iterator[list[Decision]]:
    """The prefixes one deviation further than each run of `level`: one per later
    decision and other option (made lazily: a level can hold many)."""
    for decisions, start in level:
        for i in range(start, len(decisions)):
            what, n = decisions[i].what, decisions[i].n
            for choice in range(1, n):
                yield [*decisions[:i], Decision(what, n, choice)]


def _run(execute: Callable[[X, DecisionSource], Outcome], scenario: X,
         prefix: list[Decision]) -> Outcome:
    try:
        return execute(scenario, PrefixSource(prefix))
    except TraceDivergence as exc:  # the run its prefix came from asked otherwise
        raise HarnessFault(f"harness bug: a run did not follow the prefix of an earlier "
                           f"run of the same scenario ({exc}); runs are not deterministic"
                           ) from None


def summary(report: Exhausted[Any], max_deviations: int) -> str:
    """One line: how many orderings ran, by deviations, and whether that was all."""
    levels = zip(report.levels, report.sizes, strict=True)
    counts = ", ".join(f"{n:,}" + (f" of {size:,}" if n < size else "") + f" with {d}"
                       for d, (n, size) in enumerate(levels))
    if report.complete:
        deepest = len(report.levels) - 1
        reach = (f"every ordering with at most {max_deviations} deviation"
                 f"{'s' if max_deviations != 1 else ''}" if deepest == max_deviations
                 else f"every ordering there is (none has more than {deepest} deviation"
                      f"{'s' if deepest != 1 else ''})")
        return f"{orderings(report.runs)} ran ({counts}): {reach}"
    done = len(report.levels) - 2
    return (f"{orderings(report.runs)} ran ({counts}): stopped at the run limit; "
            + (f"every ordering with at most {done} deviation{'s' if done != 1 else ''} ran"
               if done >= 0 else "not even the ordinary run"))
