"""Search profiles: how long and how deep one search goes, by name.

A profile is chosen by `harness explore --profile NAME` or `HARNESS_PROFILE=NAME`
(the flag wins); workers receive the name in their request. Each field:

- budget:          seconds of search per target when explore is given no --budget;
- scenario_budget: seconds of search per family and target in the pytest scenarios;
- round_examples:  examples per Hypothesis round (one seed); a longer round lets
                   Hypothesis steer further from what it has seen before reseeding;
- shrink_seconds:  the most time spent shrinking one failure; past it the failure
                   is reported as far as it shrank (still confirmed by strict replay);
- zero_attempts:   the most replays the greedy pass may spend resetting deviations;
- decision_lists:  decision lists run under each drawn scenario. One in every profile:
                   four doubled the runs a second on the reference server (a scenario
                   costs Hypothesis about as much as a run) but tripled the runs to
                   #748 on 0.11.3 (median over 20 seeds: h11 548.5 against 175.5,
                   httptools 734 against 117.5; #241 25 against 8), slower in seconds
                   too: the known finds hinge on the scenario, not the schedule.

The search budget never includes shrinking: a failure is shrunk by a forked child while
the search goes on (or, inline, the search's clock pauses meanwhile), and the summary
reports the two times apart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from harness.errors import InputError


@dataclass(frozen=True)
class Profile:
    name: str
    budget: float
    scenario_budget: float
    round_examples: int
    shrink_seconds: float
    zero_attempts: int
    about: str
    decision_lists: int = 1


PROFILES = {
    p.name: p for p in (
        Profile("default", budget=60.0, scenario_budget=5.0, round_examples=200,
                shrink_seconds=60.0, zero_attempts=200,
                about="interactive use: a minute per target, shrinking up to a minute"),
        Profile("ci", budget=20.0, scenario_budget=2.0, round_examples=100,
                shrink_seconds=10.0, zero_attempts=50,
                about="a pull request's CI job: short searches, shrinking cut at 10 s"),
        Profile("nightly", budget=1800.0, scenario_budget=120.0, round_examples=1000,
                shrink_seconds=300.0, zero_attempts=1000,
                about="a nightly job: half an hour per target, long rounds, deep shrinking"),
    )
}


def profile(name: str | None = None) -> Profile:
    """The named profile, else HARNESS_PROFILE's, else "default"."""
    chosen = name or os.environ.get("HARNESS_PROFILE") or "default"
    try:
        return PROFILES[chosen]
    except KeyError:
        source = "--profile" if name else "HARNESS_PROFILE"
        raise InputError(f"{source} {chosen!r} is not a search profile; use one of "
                         f"{', '.join(PROFILES)}") from None
