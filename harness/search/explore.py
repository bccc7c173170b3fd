"""Exploration: the search engine applied to HTTP scenarios on one target.

This is where the generic engine (harness/search/engine.py) meets the scenario space
(harness/http/strategies.py) and a target: `explore` returns findings whose traces
replay on their own (trace kind "http"). Given an examples folder it retries what
earlier explores of the same target and families found (harness/search/examples.py)
and stores each new finding's trace there.
"""

from __future__ import annotations

import functools
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.decisions import (
    Decision,
    DecisionSource,
    RandomSource,
    Recorder,
    ReplaySource,
    TraceDivergence,
)
from harness.http.failure import Failure
from harness.http.families import FAMILIES, check_families
from harness.http.fields import setting_rule
from harness.http.scenario import (
    HttpRun,
    HttpScenario,
    ShutdownUnsupported,
    Target,
    UnsettledRun,
    run_http,
    shutdown_unsupported,
)
from harness.http.strategies import scenarios
from harness.search.claims import Claims
from harness.search.engine import Found, Outcome, Progress, SearchReport, Stored, search
from harness.search.examples import ExampleStore
from harness.search.profiles import PROFILES, Profile
from harness.search.trace import Trace, TraceError
from harness.sim.run import Settings

SETTINGS = Settings()


def execute_on(target: Target, settings: Settings = SETTINGS, drawn: bool = True) -> Any:
    """Runs of scenarios on `target`: ones the search `drawn`, or a trace's (exhaust).

    A drawn run its step budget cut while still under way is not judged, and not blamed
    on anyone: the strategies draw runs a budget can finish on a server that finishes
    what it is asked, so one that does not is the target keeping the loop busy (a
    response that never ends, timers under a millisecond for ever) or a scenario the
    harness should not have drawn; its trace, kept, tells which. A trace's own run
    (exhaust) that does not settle is the trace's budget: an UnsettledRun."""
    def execute(scenario: HttpScenario, source: DecisionSource) -> Outcome:
        recorder = source if isinstance(source, Recorder) else Recorder(source)
        try:
            run = run_http(scenario, target, recorder, settings)
        except UnsettledRun as exc:
            if not drawn:
                raise
            return Outcome([], list(recorder.decisions), unjudged=exc.detail)
        return Outcome(run.failures, list(recorder.decisions))

    return execute


def unavailable_families(target: Target, families: tuple[str, ...]) -> dict[str, str]:
    """The families among `families` that `target` cannot run, each with the reason."""
    why = shutdown_unsupported(target) if "shutdown" in families else None
    return {} if why is None else {"shutdown": why}


def explore(
    target: Target,
    families: tuple[str, ...] = FAMILIES,
    *,
    budget_seconds: float = 60.0,
    max_runs: int | None = None,
    seed: int = 0,
    strategy: str = "hypothesis",
    known: frozenset[tuple[str, str]] = frozenset(),
    max_found: int | None = None,
    accept: Any = None,
    progress: Progress | None = None,
    on_found: Callable[[Found[HttpScenario]], None] = lambda found: None,
    profile: Profile = PROFILES["default"],
    examples: Path | None = None,
    shrink: str = "inline",
    claims: Claims | None = None,
    on_unjudged: Callable[[Trace], None] = lambda trace: None,
) -> SearchReport[HttpScenario]:
    """Search `target` for failures; `examples`, if given, is the examples store's root;
    `shrink="fork"` shrinks each failure in a forked child while the search goes on.
    `on_found` sees each failure when detected and again once shrunk; `claims` says
    which work is this search's, among parallel jobs (engine.search); `on_unjudged`
    gets the trace of the first run that could not be judged (see execute_on)."""
    check_families(families)  # (an InputError is a ValueError too)
    for family, why in unavailable_families(target, tuple(families)).items():
        raise ShutdownUnsupported(f"{target.name} {target.version} ({target.http}) cannot run "
                                  f"the {family} family: {why}")
    strategy_for = scenarios(target, tuple(families))
    store = None if examples is None else ExampleStore.for_target(
        examples, target.describe(), target.settings_space(), tuple(families))

    def found(finding: Found[HttpScenario]) -> None:
        if store is not None and finding.shrunk:  # the store is for what shrinking gave
            store.keep(finding.key[0], finding.key[1], trace_of(finding, target).dumps())
        on_found(finding)

    return search(
        lambda draw: draw(strategy_for),
        execute_on(target),
        strategy=strategy,
        budget_seconds=budget_seconds,
        max_runs=max_runs,
        seed=seed,
        known=known,
        max_found=max_found,
        accept=accept,
        on_found=found,
        profile=profile,
        stored=[] if store is None else stored_failures(store, target),
        database=None if store is None else store.database(),
        database_key=ExampleStore.database_key(strategy),
        progress=progress or (lambda event, info: None),
        shrink=shrink,
        claims=claims,
        on_unjudged=lambda scenario, decisions, why: on_unjudged(
            unjudged_trace(scenario, decisions, why, target)),
    )


def unjudged_trace(scenario: HttpScenario, decisions: list[Decision], why: str,
                   target: Target, settings: Settings = SETTINGS) -> Trace:
    """A run that could not be judged, as a trace: no verdict; its replay stops where
    the budget runs out and says which setting to raise."""
    return run_trace(scenario, decisions, target, settings, None, unjudged=why)


def stored_failures(store: ExampleStore, target: Target) -> list[Stored[HttpScenario]]:
    """The store's traces recorded with this harness's simulation settings; one that
    cannot be read any more is dropped (the search finds its failure again, if any)."""
    out = []
    for path in store.trace_files():
        try:
            trace = Trace.load(path)
            scenario = HttpScenario.from_json(trace.scenario)
        except (TraceError, ValueError):
            store.forget(path)
            continue
        if trace.settings != SETTINGS:
            store.forget(path)  # recorded under other simulation settings: cannot replay
            continue
        out.append(Stored(path.stem, scenario, trace.decisions,
                          functools.partial(store.forget, path)))
    return out


def trace_of(found: Found[HttpScenario], target: Target,
             settings: Settings = SETTINGS) -> Trace:
    """`found`'s trace: `settings` must be the ones its runs were made under."""
    failure: Failure = found.failure
    return run_trace(found.scenario, found.decisions, target, settings,
                     {"kind": failure.kind, "signature": failure.signature,
                      "message": failure.message},
                     # How it was found (a report written from the trace alone says so):
                     # a stored failure's first run here says nothing of what finding it took.
                     **({"runs_to_find": found.runs_to_find} if found.source == "search"
                        else {"stored": found.source}),
                     **({} if found.shrunk else {"shrunk": False}))


def run_trace(scenario: HttpScenario, decisions: list[Decision], target: Target,
              settings: Settings, verdict: dict[str, Any] | None, **meta: Any) -> Trace:
    """One run on `target` as a trace; its meta names the Python it ran on, and `meta`."""
    return Trace(scenario=scenario.to_json(), decisions=decisions, settings=settings,
                 target=target.describe(), verdict=verdict,
                 meta={"python": platform.python_version(), **meta})


@dataclass
class Verdict:
    failures: list[Failure]
    run: HttpRun
    diverged_at: int | None
    past_end: bool = False  # it diverged there by asking more than the trace records

    @property
    def passed(self) -> bool:
        return not self.failures


def trace_scenario(trace: Trace, target: Target) -> HttpScenario:
    """The trace's scenario, if `target` can run it. Its settings must be ones `target`
    offers: a trace recorded on another server is translated first
    (harness/targets/runner.py)."""
    try:
        scenario = HttpScenario.from_json(trace.scenario)
    except ValueError as exc:
        raise TraceError(f"the trace's scenario is malformed: {exc}") from None
    space = target.settings_space()
    unknown = sorted(set(scenario.server) - set(space))
    if unknown:
        raise TraceError(f"the trace sets {', '.join(map(repr, unknown))}, which "
                         f"{target.name} {target.version} does not offer (it offers "
                         f"{', '.join(space) or 'no settings'})")
    meanings = target.setting_meanings()
    for name, value in scenario.server.items():
        legal = space[name]
        ok, needs = setting_rule(legal, meanings.get(name, ""))
        if not ok(value):
            raise TraceError(f"the trace sets {name} to {json.dumps(value)}, which "
                             f"{target.name} {target.version} cannot take: expected {needs} "
                             f"(the search tries {', '.join(map(json.dumps, legal))})")
    return scenario


def replay_http(trace: Trace, target: Target, strict: bool = True) -> Verdict:
    """Replay an http trace on `target` (strict on its own target, lenient elsewhere)."""
    scenario = trace_scenario(trace, target)
    source = ReplaySource(trace.decisions, strict=strict)
    run = run_http(scenario, target, source, trace.settings)
    if strict and source.unused():
        raise TraceDivergence(f"the replayed run ended after {source.index} decisions, but "
                              f"the trace records {len(trace.decisions)}")
    return Verdict(run.failures, run, source.diverged_at, source.past_end)


def run_once(scenario: HttpScenario, target: Target, seed: int,
             deviation: float = 0.2) -> Verdict:
    """One run of `scenario` under seeded random choices (no trace to follow), each
    choice deviating from the ordinary one with probability `deviation`."""
    run = run_http(scenario, target, RandomSource(seed, deviation), SETTINGS)
    return Verdict(run.failures, run, None)
