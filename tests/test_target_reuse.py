"""A target reused across runs (as a search reuses it) gives each run exactly what a
fresh target gives it: what the adapter builds once per settings carries nothing of a run."""

from __future__ import annotations

import pytest

from harness.decisions import RandomSource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, Target, run_http
from servers.hypercorn_target import HypercornTarget
from servers.uvicorn_target import UvicornTarget

GET = RequestSpec()
POST = RequestSpec(method="POST", framing="length", body_size=300)
SCENARIOS = (
    HttpScenario("keepalive", (ConnSpec((GET, GET)),), ((1, 0, AppBehaviour()),)),
    # three connections against limit_concurrency=2: one gets uvicorn's own 503
    HttpScenario("keepalive", (ConnSpec((POST,)),) * 3,
                 ((1, 0, AppBehaviour(sleep_before=1.0)),), {"limit_concurrency": 2}),
    HttpScenario("pipelining", (ConnSpec((GET, POST), pipelined=True, end="reset"),),
                 ((1, 0, AppBehaviour(watch_disconnect=True, receive_after=True)),),
                 {"timeout_keep_alive": 1}),
)


def outcome(scenario: HttpScenario, target: Target, seed: int) -> tuple[object, ...]:
    run = run_http(scenario, target, RandomSource(seed, deviation=0.4))
    return (run.result.log.lines(), run.result.decisions,
            [f.key() for f in run.failures], run.result.blocked)


HYPERCORN_SCENARIOS = (
    SCENARIOS[0],
    HttpScenario("keepalive", (ConnSpec((POST,)),) * 3,
                 ((1, 0, AppBehaviour(sleep_before=1.0)),), {"keep_alive_timeout": 1}),
    # a full app queue: the wrapper's app is called with the run's receive() parked
    HttpScenario("pipelining", (ConnSpec((GET, POST), pipelined=True, end="reset"),),
                 ((1, 0, AppBehaviour(watch_disconnect=True, receive_after=True)),),
                 {"max_app_queue_size": 1}),
)


@pytest.mark.parametrize(
    ("make", "scenarios", "builds"),
    [(lambda: UvicornTarget("h11"), SCENARIOS, lambda t: t._configs),
     (lambda: HypercornTarget("h11"), HYPERCORN_SCENARIOS, lambda t: t._builds)],
    ids=["uvicorn", "hypercorn"])
def test_runs_on_one_reused_target_match_runs_on_fresh_targets(make, scenarios, builds):
    reused = make()
    for seed in range(4):
        for scenario in scenarios:
            fresh = outcome(scenario, make(), seed)
            assert outcome(scenario, reused, seed) == fresh, (seed, scenario.server)
    # one build (Config, and hypercorn's app wrapper) per distinct settings, reused by
    # every run with those settings
    assert len(builds(reused)) == len({tuple(sorted(s.server.items())) for s in scenarios})


def test_the_reused_config_serves_each_run_its_own_app():
    target = UvicornTarget("h11")
    first = run_http(SCENARIOS[0], target, RandomSource(0))
    second = run_http(SCENARIOS[0], target, RandomSource(0))
    for run in (first, second):  # each run's app saw both of its requests through
        assert [[e.kind for e in r.events][-1] for r in run.observations.requests.values()] \
            == ["returned", "returned"]
    assert not set(map(id, first.observations.requests.values())) & set(
        map(id, second.observations.requests.values()))
