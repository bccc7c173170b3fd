"""The floor tool's two sides serve the same scenario completely (timing lives in the tool)."""

from __future__ import annotations

import asyncio

import pytest

from harness.errors import InputError
from harness.targets.registry import entries
from harness.tools import floor


def test_every_registered_server_has_a_stock_side():
    assert set(floor.stock_servers()) == set(entries())


@pytest.mark.parametrize("server", sorted(entries()))
def test_the_stock_side_serves_both_gets_and_leaves_no_task(monkeypatch, server):
    stock = floor.StockServer(server, "h11")
    served: list[int] = []
    bodies: list[bytes] = []
    original_finish, original_received = floor.StockClient.finish, floor.StockClient.received

    def finish(client: floor.StockClient) -> None:
        served.append(client.responses)
        original_finish(client)

    def received(client: floor.StockClient, data: bytes) -> None:
        bodies.append(data)
        original_received(client, data)

    monkeypatch.setattr(floor.StockClient, "finish", finish)
    monkeypatch.setattr(floor.StockClient, "received", received)
    stock.run_once()  # raises if a task is left once the connection is gone
    stock.run_once()
    assert served == [floor.REQUESTS, floor.REQUESTS]
    wire = b"".join(bodies)
    assert wire.count(b"HTTP/1.1 200") == 2 * floor.REQUESTS
    assert b"c1/r0:0;" in wire and b"c1/r1:0;" in wire  # the reference app answered each


@pytest.mark.parametrize("server", sorted(entries()))
def test_the_ordinary_side_is_a_passing_harness_run(server):
    floor.ordinary_runner(server, "h11")()  # raises if the run found a failure


def test_an_unknown_side_is_an_input_error():
    with pytest.raises(InputError, match="unknown floor side 'fast'"):
        floor.runner("fast", "uvicorn", "h11")


def test_an_unknown_server_or_protocol_exits_2_before_measuring(capsys):
    assert floor.main(["--server", "daphne"]) == 2
    assert "unknown server 'daphne'" in capsys.readouterr().err
    assert floor.main(["--server", "hypercorn", "--http", "httptools"]) == 2
    assert "hypercorn has no protocol 'httptools'; use one of h11" in capsys.readouterr().err
    assert floor.main(["--server", "uvicorn==0.11.3"]) == 2
    assert "--server uvicorn==0.11.3: the floor measures the release installed beside the " \
           "harness; give --server uvicorn" in capsys.readouterr().err


def test_the_memory_transport_closes_once():
    loop = asyncio.new_event_loop()
    try:
        lost: list[object] = []

        class Protocol(asyncio.Protocol):
            def connection_lost(self, exc: Exception | None) -> None:
                lost.append(exc)

        transport = floor.MemoryTransport(loop, None)  # type: ignore[arg-type]
        transport._protocol = Protocol()
        transport.close()
        transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        assert lost == [None] and transport.is_closing()
    finally:
        loop.close()


def test_a_protocol_without_a_server_picks_the_servers_that_have_it(monkeypatch, capsys):
    measured: list[tuple[str, str]] = []

    def compare(server: str, http: str, runs: int, instructions: bool) -> dict[str, object]:
        measured.append((server, http))
        return {"stock_us": 1.0, "ordinary_us": 1.0, "ratio": 1.0}

    monkeypatch.setattr(floor, "compare", compare)
    assert floor.main(["--http", "httptools"]) == 0
    assert measured == [("uvicorn", "httptools")]
    assert floor.main(["--http", "spdy"]) == 2
    assert "no server with a stock side has the protocol 'spdy'" in capsys.readouterr().err


@pytest.mark.parametrize("phase", floor.PHASES)
def test_a_doubled_phase_runs_twice_in_a_passing_ordinary_run(monkeypatch, phase):
    from contextlib import contextmanager

    from harness.http import scenario
    from harness.sim import run

    calls: list[str] = []
    check, observe, sim_loop, collect = (scenario.check, scenario.observe, run.SimLoop,
                                         scenario.collect_errors)

    @contextmanager
    def counted_collect():  # type: ignore[no-untyped-def]
        calls.append("errors")
        with collect() as collector:
            yield collector

    # Counting stand-ins first, so that run_twice doubles them (monkeypatch undoes both).
    monkeypatch.setattr(scenario, "check", lambda obs: calls.append("oracles") or check(obs))
    monkeypatch.setattr(scenario, "observe",
                        lambda *a: calls.append("observations") or observe(*a))
    monkeypatch.setattr(run, "SimLoop", lambda *a, **k: calls.append("loop") or sim_loop(*a, **k))
    monkeypatch.setattr(scenario, "collect_errors", counted_collect)
    floor.run_twice(phase)
    floor.ordinary_runner("reference", "h11")()  # raises if the run failed
    assert {p: calls.count(p) for p in floor.PHASES} == {
        p: 2 if p == phase else 1 for p in floor.PHASES}


def test_phase_counts_are_what_a_second_pass_adds(monkeypatch):
    extra = {"oracles": 180.0, "observations": 90.0, "loop": 60.0, "errors": 40.0}
    monkeypatch.setattr(floor, "instructions_per_run",
                        lambda which, server, http, runs=20, twice=None:
                        3900.0 + (extra[twice] if twice else 0.0))
    said: list[str] = []
    counts = floor.phase_instructions("reference", "h11", say=said.append)
    assert counts == {"ordinary": 3900.0, **extra, "rest": 3530.0}
    assert said == [f"counting {floor.PHASE_NAMES[p]}" for p in floor.PHASES]
    assert "the oracles 0.000 M" in floor.phases_line(counts)
    assert floor.phases_line(counts).endswith("the rest (simulation, mount, teardown) 0.004 M")
    # An ordinary count already taken (--instructions with --phases) is not taken again.
    monkeypatch.setattr(floor, "instructions_per_run",
                        lambda which, server, http, runs=20, twice=None:
                        4000.0 + extra[twice] if twice else pytest.fail("counted again"))
    assert floor.phase_instructions("reference", "h11", ordinary=4000.0)["rest"] == 3630.0


def test_phases_without_valgrind_exit_2_naming_the_fix(monkeypatch, capsys):
    monkeypatch.setattr(floor, "VALGRIND", "/nonexistent/valgrind")
    assert floor.main(["--server", "reference", "--runs", "1", "--phases"]) == 2
    assert "no valgrind at /nonexistent/valgrind: install Debian's valgrind" in (
        capsys.readouterr().err)


def test_an_unknown_phase_is_an_input_error():
    with pytest.raises(InputError, match="unknown phase 'mount'"):
        floor.run_twice("mount")
