"""Graceful shutdown: the scenario field, the search reaching it, its oracles, replay."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from harness.decisions import OrdinarySource, RandomSource, Recorder, ReplaySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, ShutdownUnsupported, run_http
from harness.http.shutdown import ShutdownSpec
from harness.http.strategies import scenarios
from harness.search.engine import Outcome, search
from harness.search.explore import SETTINGS, explore, unavailable_families
from harness.sim.eventlog import EventLog
from servers.reference.connection import LINGER
from servers.reference.target import ReferenceTarget
from servers.uvicorn_target import UvicornTarget
from tests.programs import FakeTarget
from tests.test_shutdown_sim import Holder
from tests.test_wider_space import Reached, entries

LONG_POLL = AppBehaviour(wait_disconnect=True)
STREAM = AppBehaviour(chunks=3, yields_between=1, sleep_before=0.5)


def scenario(*behaviours: AppBehaviour, after: int = 0, delay: float = 0.0,
             server: dict[str, Any] | None = None,
             requests: tuple[RequestSpec, ...] | None = None) -> HttpScenario:
    conn = ConnSpec(requests or tuple(RequestSpec() for _ in behaviours))
    return HttpScenario("shutdown", (conn,), tuple((1, i, b) for i, b in enumerate(behaviours)),
                        server or {}, {}, ShutdownSpec(after, delay))


def keys(target: Any, scen: HttpScenario) -> list[tuple[str, str]]:
    return [f.key() for f in run_http(scen, target, OrdinarySource()).failures]


# -- the scenario field ---------------------------------------------------------------
def test_shutdown_stays_out_of_the_json_unless_set_and_round_trips_when_set():
    plain = HttpScenario("keepalive", (ConnSpec(),), ((1, 0, AppBehaviour()),), {})
    assert "shutdown" not in plain.to_json()
    assert "wait_disconnect" not in plain.to_json()["behaviours"][0][2]
    assert HttpScenario.from_json(plain.to_json()) == plain
    wide = scenario(LONG_POLL, after=3, delay=0.5)
    assert wide.to_json()["shutdown"] == {"after": 3, "delay": 0.5}
    assert HttpScenario.from_json(wide.to_json()) == wide


@pytest.mark.parametrize("bad", [{"after": -1}, {"delay": -2}, {"at": 3}, 7])
def test_a_bad_shutdown_moment_is_named(bad: Any):
    data = {**scenario(AppBehaviour()).to_json(), "shutdown": bad}
    with pytest.raises(ValueError, match="shutdown"):
        HttpScenario.from_json(data)


# -- the search reaches it ------------------------------------------------------------
def pending_receive_at_signal(log: EventLog) -> bool:
    """When the server handled SIGTERM, some receive() had been called and not returned."""
    pending: set[tuple[str, str]] = set()
    for kind, detail in entries(log):
        if kind == "signal":
            return bool(pending)
        if kind == "asgi":
            path, what, *rest = detail.split()
            if what in ("receive", "received") and rest and rest[0].startswith("#"):
                (pending.add if what == "receive" else pending.discard)((path, rest[0]))
    return False


def streaming_at_signal(log: EventLog) -> bool:
    """When the server handled SIGTERM, some response had a body part sent, not its last."""
    streaming: set[str] = set()
    for kind, detail in entries(log):
        if kind == "signal":
            return bool(streaming)
        if kind == "asgi" and " sent http.response.body " in detail:
            path = detail.split()[0]
            (streaming.add if "more_body=True" in detail else streaming.discard)(path)
    return False


def reach_shutdown(probe: Any, what: str, max_runs: int) -> tuple[HttpScenario, EventLog]:
    target = ReferenceTarget()
    logs: dict[int, EventLog] = {}

    def execute(scen: HttpScenario, source: Any) -> Outcome:
        recorder = source if isinstance(source, Recorder) else Recorder(source)
        run = run_http(scen, target, recorder, SETTINGS)
        assert run.failures == [], run.failures  # the reference server passes on the way
        hit = probe(run.result.log)
        if hit:
            logs[id(scen)] = run.result.log
        return Outcome([Reached(what)] if hit else [], list(recorder.decisions))

    report = search(lambda draw: draw(scenarios(target, ("shutdown",))), execute,
                    budget_seconds=0, max_runs=max_runs, seed=0, max_found=1)
    assert [f.key for f in report.found] == [("reached", what)], f"not in {report.runs} runs"
    found = report.found[0].scenario
    replayed = run_http(found, target, ReplaySource(report.found[0].decisions), SETTINGS)
    return found, replayed.result.log


def test_the_search_reaches_a_shutdown_with_a_receive_pending():
    found, log = reach_shutdown(pending_receive_at_signal, "receive() pending at SIGTERM", 300)
    assert found.shutdown is not None and pending_receive_at_signal(log)


def test_the_search_reaches_a_shutdown_while_a_response_streams():
    found, log = reach_shutdown(streaming_at_signal, "SIGTERM mid-response", 300)
    assert found.shutdown is not None and streaming_at_signal(log)
    assert any(b.chunks > 1 for _, _, b in found.behaviours)


# -- oracles, on servers that get shutdown wrong ----------------------------------------
class Impatient(ReferenceTarget):
    """Returns from its shutdown at once: the process exits under whatever is in flight."""

    async def shutdown(self) -> None:
        self._listener.close()


class Bare(ReferenceTarget):
    """Returns from its shutdown at once, and its connections do nothing when cancelled:
    the process exit closes their sockets, with a FIN."""

    async def shutdown(self) -> None:
        self._listener.close()
        for stream in self._streams:
            stream.transport = None  # its cleanup can no longer reach the transport


class Deaf(ReferenceTarget):
    """Never returns from its shutdown, and never closes an idle connection."""

    async def shutdown(self) -> None:
        self._listener.close()
        await asyncio.Event().wait()


class Raising(ReferenceTarget):
    async def shutdown(self) -> None:
        await super().shutdown()
        raise RuntimeError("shutdown failed")


class Stubborn(ReferenceTarget):
    """Leaves a task that will not end when the process exit cancels it."""

    async def shutdown(self) -> None:
        async def refuse() -> None:
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    await asyncio.Event().wait()

        asyncio.get_running_loop().create_task(refuse())
        await asyncio.sleep(0)
        await super().shutdown()


def test_the_reference_server_passes_what_these_servers_fail():
    for scen in (scenario(STREAM, after=4), scenario(LONG_POLL, after=3),
                 scenario(AppBehaviour(watch_disconnect=True, sleep_before=0.5), after=3)):
        assert keys(ReferenceTarget(), scen) == []


def test_a_shutdown_that_returns_under_a_live_request_closes_it_prematurely():
    found = keys(Impatient(), scenario(AppBehaviour(sleep_before=0.5), after=1))
    assert [k for k, _ in found] == ["premature-close"]
    # the exit cancelled the reference's connection task, whose own cleanup closed it:
    # a staged close (the client may still be writing), so its FIN comes first
    assert found[0][1].startswith("closed during a live request: write_eof() at "
                                  "servers/reference/target.py:")
    assert "in ProtocolStream.send_eof < servers/reference/connection.py:" in found[0][1]


def test_a_receive_pending_when_the_process_exits_never_returned():
    found = keys(Impatient(), scenario(LONG_POLL, after=3))
    assert [s.split(":")[0] for k, s in found if k == "lost-disconnect"] == [
        "receive() after close"], found
    assert [s.split(" blocked at ")[1].split(":")[0] for k, s in found
            if k == "lost-disconnect"] == ["servers/reference/exchange.py"]


def test_a_close_delimited_response_cut_at_exit_looks_complete_and_is_named():
    http10 = (RequestSpec(http10=True),)
    cut = AppBehaviour(chunks=3, yields_between=2)
    assert keys(Bare(), scenario(cut, after=5, requests=http10)) == [
        ("premature-close", "closed during a live request: closed at process exit"),
        ("response-integrity", "a response cut off at shutdown looks complete")]
    # the reference server resets a close-delimited response it cuts: visibly short
    assert keys(ReferenceTarget(), scenario(cut, after=5, requests=http10,
                                            server={"shutdown_grace": 0.0})) == []


def test_a_shutdown_that_never_returns_is_a_hang_signed_where_it_waits_and_for_what():
    found = keys(Deaf(), scenario(AppBehaviour(), after=100))
    [(kind, signature)] = found
    assert kind == "shutdown-hang"
    assert signature.startswith("shutdown waits at tests/test_shutdown.py:")
    assert signature.endswith("in Deaf.shutdown (every connection closed)")


def test_a_shutdown_that_raises_is_a_server_error():
    assert ("server-error", "shutdown raised RuntimeError") in keys(
        Raising(), scenario(AppBehaviour()))


def test_a_task_that_will_not_end_keeps_the_process_from_exiting():
    [(kind, signature)] = keys(Stubborn(), scenario(AppBehaviour()))
    assert kind == "shutdown-hang"
    assert signature.startswith("process exit waits for a task that will not end, at "
                                "tests/test_shutdown.py:")


# -- uvicorn, through the release's own Server.shutdown() --------------------------------
@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_uvicorn_holds_its_shutdown_for_a_long_poll_unless_a_grace_period_is_set(http: str):
    found = keys(UvicornTarget(http), scenario(LONG_POLL, after=3))
    assert [k for k, _ in found] == ["shutdown-hang", "lost-disconnect"]
    assert found[0][1] == ("shutdown waits at uvicorn/server.py:319 in "
                           "Server._wait_tasks_to_complete (an app waiting in receive() at "
                           f"{found[1][1].split(' blocked at ')[1]})")
    assert found[1][1].startswith("receive() during shutdown: blocked at "
                                  f"uvicorn/protocols/http/{http}_impl.py:")
    # With timeout_graceful_shutdown, uvicorn cuts the long poll when it runs out: allowed.
    assert keys(UvicornTarget(http), scenario(LONG_POLL, after=3,
                                              server={"timeout_graceful_shutdown": 1})) == []


def test_uvicorns_protocols_share_the_server_state_its_shutdown_walks():
    target = UvicornTarget("h11")
    seen: list[int] = []

    async def peek() -> None:
        seen.append(len(target._server.server_state.connections))

    class Peeking(UvicornTarget):
        async def shutdown(self) -> None:
            await peek()
            await UvicornTarget.shutdown(self)

    target = Peeking("h11")
    assert keys(target, scenario(STREAM, after=4)) == []
    assert seen == [1]  # the connection uvicorn's shutdown() had to tell


# -- targets that cannot -----------------------------------------------------------------
def test_a_target_without_a_shutdown_cannot_run_the_family_and_says_why():
    target = FakeTarget(Holder)
    assert unavailable_families(target, ("keepalive", "shutdown")) == {
        "shutdown": "the holder adapter has no graceful shutdown"}
    with pytest.raises(ShutdownUnsupported, match="holder 1.0 .* cannot run"):
        explore(target, ("shutdown",), budget_seconds=0, max_runs=1)
    with pytest.raises(ShutdownUnsupported, match="has no graceful shutdown"):
        run_http(scenario(AppBehaviour()), target, OrdinarySource())


# -- determinism ---------------------------------------------------------------------------
@pytest.mark.parametrize("make", [ReferenceTarget, lambda: UvicornTarget("httptools")])
def test_a_shutdown_run_replays_to_the_same_event_log(make: Any):
    target = make()

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(scenarios(target, ("shutdown",)))
    def check(scen: HttpScenario) -> None:
        for seed in (1, 2):
            recorder = Recorder(RandomSource(seed, 0.3))
            first = run_http(scen, target, recorder, SETTINGS)
            again = run_http(scen, target, ReplaySource(recorder.decisions), SETTINGS)
            assert again.result.log.lines() == first.result.log.lines()
            assert [f.key() for f in again.failures] == [f.key() for f in first.failures]

    check()


# -- the reference server, at ten times the CI budget ---------------------------------------
@pytest.mark.slow
def test_the_reference_server_passes_the_shutdown_family_at_ten_times_the_ci_budget():
    """The CI profile searches a family for 2 s, about 120 runs here: ten times that."""
    target = ReferenceTarget()

    def execute(scen: HttpScenario, source: Any) -> Outcome:
        recorder = source if isinstance(source, Recorder) else Recorder(source)
        return Outcome(run_http(scen, target, recorder, SETTINGS).failures,
                       list(recorder.decisions))

    report = search(lambda draw: draw(scenarios(target, ("shutdown",))), execute,
                    budget_seconds=0, max_runs=1200, seed=1)
    assert report.runs == 1200
    assert [(f.key, f.scenario.to_json()) for f in report.found] == []


# -- what the shutdown family found in the reference server ----------------------------------
def test_a_long_poll_and_its_own_disconnect_watcher_both_hear_the_shutdown():
    # Two receive()s of one request wait at once; the reference once kept one event per
    # wait, so the second waiter's event replaced the first's and one never woke.
    both = AppBehaviour(read="none", watch_disconnect=True, wait_disconnect=True)
    request = (RequestSpec(method="POST", framing="length", body_size=7),)
    for after in range(2, 8):
        assert keys(ReferenceTarget(), scenario(both, after=after, requests=request)) == []


def test_a_request_sent_before_the_shutdowns_connection_close_arrived_does_not_cut_the_response():
    # The response head carries `Connection: close` (the shutdown began); h11 then calls
    # the next request the client had already sent a protocol error. The reference once
    # took that for a malformed body and dropped the rest of its own response.
    slow = AppBehaviour(sleep_before=6.0, chunks=2, yields_between=2)
    requests = (RequestSpec(), RequestSpec(method="POST", framing="chunked", body_size=7,
                                           expect_continue=True, after="sent", pause=6.0))
    scen = scenario(slow, AppBehaviour(), requests=requests, after=1, delay=0.5)
    run = run_http(scen, ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    [first, *_] = run.observations.connections[1].client.responses
    assert (first.status, first.complete, first.body) == (200, True, b"c1r0:0;c1r0:1;")


# -- reports ----------------------------------------------------------------------------------
def test_a_report_tells_when_the_signal_came_and_what_became_of_the_shutdown():
    from harness.tools.diagnosis import shutdown_account

    scen = scenario(LONG_POLL, after=3, delay=0.5).to_json()
    run = run_http(scenario(LONG_POLL, after=3, delay=0.5), UvicornTarget("h11"),
                   OrdinarySource())
    assert shutdown_account(scen, run.result.log.lines()) == (
        "SIGTERM after the app's third ASGI call and 0.5 s more (handled at t=0.5); the "
        "server's shutdown never returned")
    done = run_http(scenario(LONG_POLL, after=3), ReferenceTarget(), OrdinarySource())
    # The reference stages the close of the connection it answered (the client may still
    # be writing): LINGER seconds of draining input before the shutdown returns.
    assert shutdown_account(scenario(LONG_POLL, after=3).to_json(),
                            done.result.log.lines()) == (
        "SIGTERM after the app's third ASGI call (handled at t=0); the server's shutdown "
        f"returned at t={LINGER:g}")
    assert shutdown_account(scenario(LONG_POLL).to_json() | {"shutdown": None}, []) is None


def test_a_timeline_shows_a_polling_server_as_one_note_per_stretch():
    from harness.tools.report import _mermaid

    log = [f"{t / 10:.6f} timer _set_result_unless_cancelled" for t in range(1, 51)]
    log[25:25] = ["2.550000 signal SIGTERM"]
    lines = _mermaid(log)[4:]
    assert lines == [
        "    Note over S,A: timer _set_result_unless_cancelled (t=0.1 to t=2.5, 25 times)",
        "    Note over S: signal SIGTERM (t=2.55)",
        "    Note over S,A: timer _set_result_unless_cancelled (t=2.6 to t=5, 25 times)"]
