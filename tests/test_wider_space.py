"""The search reaches write back-pressure, requests that overlap a streaming response,
and pauses on both sides of the scenario's timers.

Each search here runs the ordinary search (scenarios and decisions drawn by
Hypothesis, seeded) on the reference server, with a probe in place of the
oracles: the probe "fails" when the run's event log shows the axis reached,
so the engine stops and shrinks exactly as it would for a bug. The shrunk
scenario then says which parts of the space were needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import hypothesis
import pytest
from hypothesis import find

from harness.decisions import OrdinarySource, Recorder
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from harness.http.strategies import NEAR, deadline_pauses, pause_strategy, scenarios
from harness.search.engine import Outcome, search
from harness.search.explore import SETTINGS
from harness.sim.eventlog import EventLog
from servers.reference.target import ReferenceTarget


@dataclass(frozen=True)
class Reached:
    what: str

    def key(self) -> tuple[str, str]:
        return ("reached", self.what)


def entries(log: EventLog) -> list[tuple[str, str]]:
    return [(e.kind, e.detail) for e in log.entries]


def paused_then_left(log: EventLog) -> bool:
    """The server's transport paused writing, then the client closed or reset."""
    kinds = [kind if not kind.endswith("_writing") or detail.startswith("server[") else ""
             for kind, detail in entries(log)]
    if "pause_writing" not in kinds:
        return False
    after = kinds[kinds.index("pause_writing"):]
    return "client-close" in after or "client-reset" in after


def request_during_response(log: EventLog) -> bool:
    """The client wrote a request while the previous response was streaming to it."""
    return any(kind == "client-overlap" for kind, _ in entries(log))


def reach(families: tuple[str, ...], probe: Callable[[EventLog], bool], what: str,
          max_runs: int) -> HttpScenario:
    target = ReferenceTarget()

    def execute(scenario: HttpScenario, source: object) -> Outcome:
        recorder = source if isinstance(source, Recorder) else Recorder(source)  # type: ignore[arg-type]
        run = run_http(scenario, target, recorder, SETTINGS)
        assert run.failures == [], run.failures  # the reference server passes on the way
        return Outcome([Reached(what)] if probe(run.result.log) else [], list(recorder.decisions))

    strategy = scenarios(target, families)
    report = search(lambda draw: draw(strategy), execute, budget_seconds=0,
                    max_runs=max_runs, seed=0, max_found=1)
    assert [f.key for f in report.found] == [("reached", what)], f"not in {report.runs} runs"
    return report.found[0].scenario


def test_flow_reaches_a_paused_server_transport_and_a_client_that_then_goes_away():
    scenario = reach(("flow",), paused_then_left, "paused, then the client left", 400)
    [conn] = scenario.connections
    assert conn.end in ("close", "reset")
    assert any(b.chunk_size > 0 for _, _, b in scenario.behaviours)


# One connection in four overlaps: 104 runs with seed 0 (about 5,700 before each round
# of a search had its own seed and rude clients became rarer).
def test_keepalive_reaches_a_request_written_while_the_previous_response_streams():
    scenario = reach(("keepalive",), request_during_response, "overlap", 2000)
    [conn] = scenario.connections
    assert not conn.pipelined
    assert conn.requests[1].after in ("sent", "head")


BIG = AppBehaviour(chunks=10, chunk_size=64 * 1024)
SMALL_NET = {"window": 16 * 1024, "write_high": 1024}


def test_a_client_that_stops_reading_pauses_the_server_and_its_close_is_served():
    conn = ConnSpec((RequestSpec(),), end="close", end_moment="after-send", end_delay=0.5,
                    read="stop")
    run = run_http(HttpScenario("flow", (conn,), ((1, 0, BIG),), {"keep_alive": 5.0},
                                SMALL_NET), ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    kinds = [kind for kind, _ in entries(run.result.log)]
    assert kinds.index("pause_writing") < kinds.index("client-close")
    assert "resume_writing" not in kinds  # nothing drained: the client never read


def test_the_scenario_sets_the_window_and_the_high_water_mark():
    conn = ConnSpec((RequestSpec(),))
    run = run_http(HttpScenario("flow", (conn,), ((1, 0, BIG),), {"keep_alive": 5.0},
                                SMALL_NET), ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    assert run.observations.connections[1].conn.down.window == 16 * 1024
    paused = [d for kind, d in entries(run.result.log) if kind == "pause_writing"]
    # the transport paused with less buffered than asyncio's default mark of 64 KiB
    assert paused and int(paused[0].split()[-1][:-1]) < 64 * 1024


@pytest.mark.parametrize("after", ["sent", "head"])
def test_a_request_sent_early_is_answered_in_order(after: str):
    later = RequestSpec(after=after)
    conn = ConnSpec((RequestSpec(), later))
    streaming = AppBehaviour(chunks=3, yields_between=1, sleep_before=0.5)
    run = run_http(HttpScenario("keepalive", (conn,), ((1, 0, streaming), (1, 1, streaming)),
                                {"keep_alive": 5.0}), ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    responses = run.observations.connections[1].client.responses
    assert [(r.status, r.complete) for r in responses] == [(200, True)] * 2
    overlaps = [d for kind, d in entries(run.result.log) if kind == "client-overlap"]
    assert overlaps == (["client[c1] request 1 while response 0 streams"]
                        if after == "head" else [])


def test_new_fields_stay_out_of_the_json_when_default_and_old_json_still_reads():
    conn = ConnSpec((RequestSpec(), RequestSpec()))
    plain = HttpScenario("keepalive", (conn,), ((1, 0, AppBehaviour()),), {})
    data = plain.to_json()
    assert "net" not in data
    assert "after" not in data["connections"][0]["requests"][1]
    assert "chunk_size" not in data["behaviours"][0][2]
    assert HttpScenario.from_json(data) == plain
    wide = HttpScenario("flow", (ConnSpec((RequestSpec(), RequestSpec(after="head"))),),
                        ((1, 0, BIG),), {}, SMALL_NET)
    assert HttpScenario.from_json(wide.to_json()) == wide


def test_a_bad_net_parameter_or_moment_is_named():
    data = HttpScenario("flow", (ConnSpec(),), (), {}).to_json()
    with pytest.raises(ValueError, match=r"net has unknown fields \['windw'\]"):
        HttpScenario.from_json({**data, "net": {"windw": 4}})
    with pytest.raises(ValueError, match=r"net\.window is 0; expected a whole number, 1 or more"):
        HttpScenario.from_json({**data, "net": {"window": 0}})
    data["connections"][0]["requests"][0]["after"] = "later"
    with pytest.raises(ValueError,
                       match=r"requests\[0\]\.after is 'later'; expected one of 'response'"):
        HttpScenario.from_json(data)


def test_the_report_timeline_shows_the_pause_and_the_overlapping_request():
    from harness.tools.report import _mermaid
    log = ["0.000000 pause_writing server[c1] buffer 61522B",
           "0.000000 client-overlap client[c1] request 1 while response 0 streams",
           "0.250000 resume_writing server[c1] buffer 82B"]
    assert _mermaid(log)[4:] == ["    Note over S: pause_writing c1 (t=0)",
                                 "    Note over C: request 1 while response 0 streams",
                                 "    Note over S: resume_writing c1 (t=0.25)"]


# -- pauses placed around the scenario's timers ------------------------------------
def test_pauses_sit_on_both_sides_of_each_timer_and_at_its_deadline():
    pauses = deadline_pauses((1.0, 5.0))
    for t in (1.0, 5.0):
        assert {t - NEAR, t, t + NEAR} <= {round(p, 6) for p in pauses}
    assert len(pauses) == len(set(pauses))
    # the ordinary pause is still where shrinking goes, whatever the timers
    assert find(pause_strategy((1.0, 5.0)), lambda p: True) == 0.0


def test_the_drawn_settings_decide_where_pauses_go():
    target = ReferenceTarget()
    strategy = scenarios(target, ("keepalive",))
    for timeout in (1.0, 5.0):
        for pause in (timeout - NEAR, timeout, timeout + NEAR):
            found = find(strategy, lambda s, t=timeout, p=pause: (
                s.server["keep_alive"] == t and len(s.connections[0].requests) > 1
                and abs(s.connections[0].requests[1].pause - p) < 1e-9),
                settings=hypothesis.settings(database=None, max_examples=2000))
            assert found.connections[0].requests[1].pause == pytest.approx(pause)


@pytest.mark.parametrize(("pause", "served"), [(1.0 - NEAR, 2), (1.0 + NEAR, 1)])
def test_a_pause_just_inside_the_keep_alive_is_served_and_just_outside_is_not(pause, served):
    conn = ConnSpec((RequestSpec(), RequestSpec(pause=pause)))
    plain = ((1, 0, AppBehaviour()), (1, 1, AppBehaviour()))
    run = run_http(HttpScenario("keepalive", (conn,), plain, {"keep_alive": 1.0}),
                   ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    assert len(run.observations.connections[1].client.responses) == served


def timer_meets_request(log: EventLog) -> bool:
    """The reference server's keep-alive (a cancel scope's deadline; an app's sleep is
    another timer) fired in the same virtual instant as the client wrote a request. The
    staged close's drain is a cancel scope too, but it runs only after the server's FIN."""
    closing = min((e.time for e in log.entries if e.kind in ("write_eof", "close")),
                  default=float("inf"))
    timers = {e.time for e in log.entries if e.kind == "timer"
              and e.detail == "CancelScope._timeout" and 0 < e.time <= closing}
    return any(e.kind == "client-send" and e.time in timers for e in log.entries)


def test_the_search_reaches_a_request_due_in_the_same_instant_as_the_keep_alive_timer():
    scenario = reach(("keepalive",), timer_meets_request, "timer meets request", 600)
    [conn] = scenario.connections
    # shrunk to one request whose pause lands on the deadline (the first request races
    # the idle timer armed at connect, a later one the keep-alive armed after a response)
    assert any(r.pause == scenario.server["keep_alive"] for r in conn.requests)
