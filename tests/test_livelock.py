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
import re
from pathlib import Path

import pytest

from harness.decisions import Decision, OrdinarySource, ReplaySource
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, UnsettledRun, run_http
from harness.search.engine import search
from harness.search.explore import execute_on
from harness.search.trace import Trace
from harness.sim.run import Settings
from harness.tools.cli import main
from servers.reference.target import ReferenceTarget
from tests.programs import FakeTarget, tighten_search_budget


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


def test_an_unsettled_run_is_not_judged_in_a_search_and_is_the_input_s_fault_in_a_trace():
    target = ReferenceTarget("h11")
    outcome = execute_on(target, SMALL_BUDGET)(POST, OrdinarySource())
    assert outcome.failures == [] and outcome.decisions
    assert outcome.unjudged is not None and "of 2000" in outcome.unjudged
    with pytest.raises(UnsettledRun):
        execute_on(target, SMALL_BUDGET, drawn=False)(POST, OrdinarySource())


def test_a_search_counts_runs_it_cannot_judge_keeps_the_first_and_goes_on():
    kept: list[tuple[HttpScenario, list[Decision], str]] = []
    report = search(lambda draw: POST, execute_on(ReferenceTarget("h11"), SMALL_BUDGET),
                    strategy="random", budget_seconds=0, max_runs=3,
                    on_unjudged=lambda *run: kept.append(run))
    assert (report.runs, report.unjudged, report.found) == (3, 3, [])
    [(scenario, decisions, why)] = kept
    assert scenario == POST and decisions
    assert why.startswith("a byte moved or time passed at iteration") and why.endswith("2000")
    # What was kept replays to the same cut: the trace says what kept the loop busy.
    with pytest.raises(UnsettledRun):
        run_http(POST, ReferenceTarget("h11"), ReplaySource(decisions, strict=True),
                 SMALL_BUDGET)


def test_explore_says_how_many_runs_it_could_not_judge_and_keeps_the_first_as_a_trace(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    tighten_search_budget(monkeypatch, 40)  # a real run, really cut
    summary = tmp_path / "summary.json"
    code = main(["explore", "--server", "reference", "--max-runs", "30", "--no-examples",
                 "--reports", str(tmp_path), "--json", str(summary)])
    out, err = capsys.readouterr()
    assert code == 0, err  # nothing found: a run not judged is no failure
    [kept] = tmp_path.glob("*/unjudged-run.json")
    assert f"-> {kept}" in err
    trace = Trace.load(kept)
    assert trace.verdict is None and trace.meta["unjudged"] and trace.decisions
    [target] = json.loads(summary.read_text())["targets"]
    assert 0 < target["unjudged_runs"] <= 30
    assert (f"{target['unjudged_runs']} of 30 runs could not be judged" in out
            and str(kept) in out), out


def post_trace(folder: Path, step_budget: int) -> Path:
    """POST's trace (no decisions: replayed leniently) on the reference server through a
    1-byte window, under `step_budget`."""
    trace = {"format": "asgi-race-harness/trace", "version": 1, "decisions": [],
             "scenario": POST.to_json(),
             "settings": {"window": 1, "step_budget": step_budget, "max_latency": 0.5,
                          "horizon": 3600.0},
             "target": {"server": "reference", "version": "0.1.0", "http": "h11"}}
    path = folder / "trace.json"
    path.write_text(json.dumps(trace))
    return path


def test_replaying_a_trace_whose_budget_is_too_small_exits_2_naming_the_setting(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = post_trace(tmp_path, step_budget=2000)
    code = main(["replay", "--lenient", str(path)])
    out, err = capsys.readouterr()
    assert code == 2, out
    assert "cannot be judged; raise settings.step_budget (now 2000)" in err
    assert "verdict" not in out
    # What kept it busy is shown: the run's last events, one byte arriving at a time.
    head, *events = err.strip().splitlines()
    assert re.search(r"Its last 12 events of [\d,]+:$", head), head
    assert len(events) == 12 and all(line.startswith("    ") for line in events)
    assert any("arrive c1>s 1B" in line for line in events), events


def test_replay_folds_a_long_log_s_repeats_unless_asked_for_all(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = post_trace(tmp_path, step_budget=200000)
    assert main(["replay", "--lenient", "--full", str(path)]) == 0
    full = capsys.readouterr().out.splitlines()
    assert main(["replay", "--lenient", str(path)]) == 0
    short = capsys.readouterr().out.splitlines()
    log, ending = full[:-3], full[-3:]  # the log, then a blank line, target and verdict
    assert len(log) > 20000 and ending == short[-3:] and ending[-1] == "verdict: pass"
    # 5,000 bytes read one at a time, each a receive() of the app: one fold, in which the
    # first and last of them show.
    assert "... the 4 lines above 4,996 more times, and once more: ..." in short
    assert len(short) < 100 and short[0] == log[0] and short[-4] == log[-1]
    assert any("received #1 " in line for line in short)
    assert any("received #5000 " in line for line in short)
