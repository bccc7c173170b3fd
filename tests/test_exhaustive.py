"""The exhaustive walk: every ordering of one scenario with at most K deviations, once each,
fewest deviations first."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import pytest

from harness.decisions import Decision, DecisionSource, PrefixSource, Recorder
from harness.errors import HarnessFault
from harness.search.engine import Outcome
from harness.search.exhaustive import exhaust, summary
from harness.search.walk_lines import LINE_EVERY, walk_progress


@dataclass(frozen=True)
class Hang:
    where: str

    def key(self) -> tuple[str, str]:
        return ("receive-hang", self.where)


def branching(scenario: str, source: DecisionSource) -> Outcome:
    """A decision tree whose later questions depend on earlier answers, as a run's do."""
    recorder = Recorder(source)
    a = recorder.choose(3, "a")
    b = recorder.choose(2, "b after a=2") if a == 2 else recorder.choose(4, "b")
    c = recorder.choose(2, "c") if b != 3 else 0  # (b = 3: no third question)
    failures = [Hang("a=1 and c=1")] if (a, c) == (1, 1) else []
    if b == 1:
        failures.append(Hang("b=1"))
    return Outcome(failures, list(recorder.decisions))


def every_ordering() -> list[tuple[int, ...]]:
    out = []
    for a in range(3):
        for b in range(2 if a == 2 else 4):
            out.extend([(a, b, c) for c in range(2)] if b != 3 else [(a, b)])
    return out


def walked(max_deviations: int, **kwargs) -> tuple[list[tuple[int, ...]], object]:
    seen: list[tuple[int, ...]] = []

    def execute(scenario: str, source: DecisionSource) -> Outcome:
        outcome = branching(scenario, source)
        seen.append(tuple(d.choice for d in outcome.decisions))
        return outcome

    return seen, exhaust(execute, "s", max_deviations, **kwargs)


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_every_ordering_with_at_most_k_deviations_runs_once_fewest_first(k):
    runs, report = walked(k, on_found=lambda found: None)
    ran = [r for i, r in enumerate(runs) if r not in runs[:i]]
    confirmed = len(runs) - len(ran)  # strict replays of the runs that met a failure
    expected = [o for o in every_ordering() if sum(map(bool, o)) <= k]
    assert sorted(ran) == sorted(expected) and report.runs == len(expected)
    assert [sum(map(bool, o)) for o in ran] == sorted(sum(map(bool, o)) for o in ran)
    assert report.levels == [sum(1 for o in expected if sum(map(bool, o)) == d)
                             for d in range(min(k, 3) + 1)]
    assert report.complete and confirmed == len(report.found)


def test_a_failure_is_met_first_by_one_of_its_simplest_orderings_and_confirmed():
    _, one = walked(1)
    assert [f.key[1] for f in one.found] == ["b=1"]  # a=1, c=1 takes two deviations
    _, two = walked(2)
    found = {f.key[1]: f for f in two.found}
    assert [d.choice for d in found["a=1 and c=1"].decisions] == [1, 0, 1]
    assert [d.choice for d in found["b=1"].decisions] == [0, 1, 0]
    assert found["b=1"].source == "exhaustive" and found["b=1"].shrunk
    assert "every ordering with at most 2 deviations" in summary(two, 2)


def test_a_walk_past_the_deepest_ordering_says_it_ran_them_all():
    _, report = walked(5)
    assert report.runs == len(every_ordering()) and report.complete
    assert summary(report, 5).endswith(
        "every ordering there is (none has more than 3 deviations)")


def test_the_run_limit_stops_the_walk_and_the_summary_says_how_far_it_got():
    _, report = walked(2, max_runs=10)
    assert report.runs == 10 and not report.complete
    assert report.levels[:2] == [1, 6]  # the ordinary run and all single deviations
    assert summary(report, 2).endswith(
        "stopped at the run limit; every ordering with at most 1 deviation ran")
    _, one = walked(0)
    assert summary(one, 0) == ("1 ordering ran (1 with 0): every ordering with at most "
                               "0 deviations")


def test_a_run_that_does_not_follow_its_prefix_is_a_harness_fault():
    flips = itertools.count()

    def unsteady(scenario: str, source: DecisionSource) -> Outcome:
        recorder = Recorder(source)
        recorder.choose(2, "first")
        recorder.choose(2 + next(flips) % 2, "second")  # its option count changes per run
        return Outcome([], list(recorder.decisions))

    with pytest.raises(HarnessFault, match="runs are not deterministic"):
        exhaust(unsteady, "s", 2)


def test_the_prefix_source_replays_its_prefix_strictly_then_answers_zero():
    source = PrefixSource([Decision("a", 3, 2), Decision("b", 2, 1)])
    assert [source.choose(3, "a"), source.choose(2, "b"), source.choose(5, "c")] == [2, 1, 0]
    with pytest.raises(Exception, match="decision 0"):
        PrefixSource([Decision("a", 3, 2)]).choose(4, "a")


def test_an_exhaust_walk_says_each_level_and_how_far_it_is_every_few_seconds():
    # One wording for harness exhaust, harness.api.exhaust_trace and race.exhaust.
    lines: list[str] = []
    now = [0.0]
    on_event = walk_progress(lines.append, lambda: now[0])
    on_event("level", {"deviations": 0, "orderings": 1, "runs": 0})
    on_event("level", {"deviations": 1, "orderings": 2400, "runs": 1})
    for run in range(100, 2401, 100):  # a "runs" event every 100 runs, a second apart
        now[0] = run / 100
        on_event("runs", {"runs": run + 1, "deviations": 1, "of_level": run, "level": 2400})
    on_event("finding", {"kind": "leak"})  # not a progress event: the caller's
    assert lines[:2] == ["1 ordering with 0 deviations to run",
                         "2,400 orderings with 1 deviation to run"]
    assert lines[2:] == [f"  {run:,} of 2,400 run ({run + 1:,} in all)"
                         for run in range(500, 2401, 500)]  # every LINE_EVERY seconds
    assert LINE_EVERY == 5.0


def test_the_api_hands_the_walks_progress_to_a_callable_and_refuses_anything_else():
    from pathlib import Path

    from harness.api import exhaust_trace
    from harness.errors import InputError

    trace = (Path(__file__).parent.parent / "reports" / "uvicorn-0.3.26-h11"
             / "lost-disconnect-7039c262" / "trace.json").read_text()
    lines: list[str] = []
    walk = exhaust_trace(trace, "reference", 1, progress=lines.append)
    assert walk["complete"] and not walk["findings"]
    n = walk["runs"] - 1
    assert lines[:2] == ["1 ordering with 0 deviations to run",
                         f"{n:,} orderings with 1 deviation to run"]
    # (a second or two here; on a machine slow enough, how far it is every 5 s)
    assert all(re.fullmatch(rf"  [\d,]+ of {n:,} run \([\d,]+ in all\)", line)
               for line in lines[2:])
    with pytest.raises(InputError, match="progress 'lines': must be a callable taking one "
                                         "line of text"):
        exhaust_trace(trace, "reference", 1, progress="lines")  # type: ignore[arg-type]
