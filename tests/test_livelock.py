"""A run its step budget cuts is judged by why it never reached quiescence (Rule 3).

A loop that kept running callbacks while no byte moved and no time passed is a
livelock, signed where the queued work would run next; nothing that waits for
quiescence (a hang, an unanswered request, a leak) is judged in it. A run that was
still getting somewhere (bytes moving through a 1-byte window) is not judged at
all: its budget was too small, and the harness says so instead of blaming the
server.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from harness.decisions import OrdinarySource
from harness.errors import HarnessFault
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, UnsettledRun, run_http
from harness.search.explore import execute_on
from harness.sim.run import Settings
from harness.tools.cli import main
from servers.reference.target import ReferenceTarget
from tests.programs import FakeTarget


class Spinner(asyncio.Protocol):
    """Reads a request, then keeps rescheduling a callback forever: a real livelock."""

    def data_received(self, data: bytes) -> None:
        asyncio.get_running_loop().call_soon(self.spin)

    def spin(self) -> None:
        asyncio.get_running_loop().call_soon(self.spin)


GET = HttpScenario("keepalive", (ConnSpec((RequestSpec(),)),), ())
# 5,000 body bytes through a 1-byte window: one byte a poll, so 2,000 polls cannot
# carry it, though every one of them moves a byte.
POST = HttpScenario("flow", (ConnSpec((RequestSpec(method="POST", framing="length",
                                                   body_size=5000),)),), ())
SMALL_BUDGET = Settings(window=1, step_budget=2000)


def test_a_loop_busy_with_no_byte_moving_and_no_time_passing_is_a_livelock():
    run = run_http(GET, FakeTarget(Spinner), OrdinarySource(), Settings(step_budget=4000))
    assert run.result.outcome == "livelock"
    [failure] = run.failures  # not the unanswered request: that is judged at quiescence
    assert failure.kind == "livelock"
    where = f"tests/test_livelock.py:{Spinner.spin.__code__.co_firstlineno} in Spinner.spin"
    assert failure.signature == f"loop never idle; queued at {where}"
    assert "Spinner.spin" in failure.message


def test_a_run_still_moving_bytes_when_its_budget_runs_out_is_not_judged():
    with pytest.raises(UnsettledRun, match=r"raise settings.step_budget \(now 2000\)"):
        run_http(POST, ReferenceTarget("h11"), OrdinarySource(), SMALL_BUDGET)
    # The budget, not the server: with room enough, the same run settles and passes.
    run = run_http(POST, ReferenceTarget("h11"), OrdinarySource(), Settings(window=1))
    assert run.result.outcome == "quiescent" and run.failures == []


def test_an_unsettled_run_is_the_harness_fault_in_a_search_and_the_input_in_a_trace():
    target = ReferenceTarget("h11")
    with pytest.raises(HarnessFault, match="a flow scenario the search drew did not settle"):
        execute_on(target, SMALL_BUDGET)(POST, OrdinarySource())
    with pytest.raises(UnsettledRun):
        execute_on(target, SMALL_BUDGET, drawn=False)(POST, OrdinarySource())


def test_replaying_a_trace_whose_budget_is_too_small_exits_2_naming_the_setting(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = {"format": "asgi-race-harness/trace", "version": 1, "decisions": [],
             "scenario": POST.to_json(),
             "settings": {"window": 1, "step_budget": 2000, "max_latency": 0.5,
                          "horizon": 3600.0},
             "target": {"server": "reference", "version": "0.1.0", "http": "h11"}}
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace))
    code = main(["replay", "--lenient", str(path)])
    out, err = capsys.readouterr()
    assert code == 2, out
    assert "cannot be judged; raise settings.step_budget (now 2000)" in err
    assert "verdict" not in out
