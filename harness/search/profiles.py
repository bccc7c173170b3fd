"""Search profiles: how long and how deep one search goes, by name.

A profile is chosen by `harness explore --profile NAME` or `HARNESS_PROFILE=NAME`
(the flag wins); workers receive the name in their request. Each field:

- budget:          seconds of search per target when explore is given no --budget;
- scenario_budget: seconds of search per family and target in the pytest scenarios;
- shrink_seconds:  the most time spent shrinking one failure; past it the failure
                   is reported as far as it shrank (still confirmed by strict replay);
- zero_attempts:   the most replays the greedy pass may spend resetting deviations.

The search budget never includes shrinking: a failure is shrunk by a forked child while
the search goes on (or, inline, the search's clock pauses meanwhile), and the summary
reports the two times apart.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from harness.errors import InputError

# How a search draws its decisions (engine.py): Hypothesis (the default), or seeded
# random and PCT schedules. Named here, with the other search settings, so the commands
# can offer them without importing the engine and, with it, Hypothesis.
STRATEGIES = ("hypothesis", "random", "pct")
# How many orderings `harness exhaust` and its API run at most, by default (a minute or
# two): the count grows about as the number of decisions to the power of the deviations.
EXHAUST_RUNS = 20_000


@dataclass(frozen=True)
class Profile:
    name: str
    budget: float
    scenario_budget: float
    shrink_seconds: float
    zero_attempts: int
    about: str


PROFILES = {
    p.name: p for p in (
        Profile("default", budget=60.0, scenario_budget=5.0,
                shrink_seconds=60.0, zero_attempts=200,
                about="interactive use: a minute per target, shrinking up to a minute"),
        Profile("ci", budget=20.0, scenario_budget=2.0,
                shrink_seconds=10.0, zero_attempts=50,
                about="a pull request's CI job: short searches, shrinking cut at 10 s"),
        Profile("nightly", budget=1800.0, scenario_budget=120.0,
                shrink_seconds=300.0, zero_attempts=1000,
                about="a nightly job: half an hour per target, deep shrinking"),
    )
}


def profile(name: str | None = None) -> Profile:
    """The named profile, else HARNESS_PROFILE's, else "default"."""
    # An empty HARNESS_PROFILE is unset, as for any variable; an empty --profile is a
    # mistake, not a request for the default.
    chosen = name if name is not None else os.environ.get("HARNESS_PROFILE") or "default"
    try:
        return PROFILES[chosen]
    except KeyError:
        source = "--profile" if name is not None else "HARNESS_PROFILE"
        raise InputError(f"{source} {chosen!r} is not a search profile; use one of "
                         f"{', '.join(PROFILES)}") from None


def check_budget(seconds: float, option: str = "--budget", hint: str = "") -> None:
    """Refuse a budget that is not a positive, finite number of seconds: one check, one
    message for every command and the pytest plugin; `hint` is what else to give."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise InputError(f"{option} must be a positive, finite number of seconds, got "
                         f"{seconds!r}{hint}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"{option} must be a positive, finite number of seconds, got "
                         f"{seconds:g}{hint}")
