"""A target reused across runs (as a search reuses it) gives each run exactly what a
fresh target gives it: what the adapter builds once per settings carries nothing of a run."""

from __future__ import annotations

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


def test_runs_on_one_reused_target_match_runs_on_fresh_targets():
    reused = UvicornTarget("h11")
    for seed in range(4):
        for scenario in SCENARIOS:
            fresh = outcome(scenario, UvicornTarget("h11"), seed)
            assert outcome(scenario, reused, seed) == fresh, (seed, scenario.server)
    # one Config per distinct settings, reused by every run with those settings
    assert len(reused._configs) == len({tuple(sorted(s.server.items())) for s in SCENARIOS})


HYPERCORN_SCENARIOS = (
    SCENARIOS[0],
    HttpScenario("keepalive", (ConnSpec((POST,)),) * 3,
                 ((1, 0, AppBehaviour(sleep_before=1.0)),), {"keep_alive_timeout": 1}),
    # a full app queue: the wrapper's app is called with the run's receive() parked
    HttpScenario("pipelining", (ConnSpec((GET, POST), pipelined=True, end="reset"),),
                 ((1, 0, AppBehaviour(watch_disconnect=True, receive_after=True)),),
                 {"max_app_queue_size": 1}),
)


def test_runs_on_one_reused_hypercorn_target_match_runs_on_fresh_targets():
    reused = HypercornTarget("h11")
    for seed in range(4):
        for scenario in HYPERCORN_SCENARIOS:
            fresh = outcome(scenario, HypercornTarget("h11"), seed)
            assert outcome(scenario, reused, seed) == fresh, (seed, scenario.server)
    # one Config and app wrapper per distinct settings
    assert len(reused._builds) == len(HYPERCORN_SCENARIOS)


def test_the_reused_config_serves_each_run_its_own_app():
    target = UvicornTarget("h11")
    first = run_http(SCENARIOS[0], target, RandomSource(0))
    second = run_http(SCENARIOS[0], target, RandomSource(0))
    for run in (first, second):  # each run's app saw both of its requests through
        assert [[e.kind for e in r.events][-1] for r in run.observations.requests.values()] \
            == ["returned", "returned"]
    assert not set(map(id, first.observations.requests.values())) & set(
        map(id, second.observations.requests.values()))
