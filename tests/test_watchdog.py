"""Runs that cannot end are failures, not hangs: a callback that spins is stopped by the
watchdog and reported as "stuck" with where it was; time.sleep is named as an escape."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.decisions import OrdinarySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from harness.sim.loop import SimulationEscape
from tests.programs import FakeTarget

SCENARIO = HttpScenario("keepalive", (ConnSpec((RequestSpec(),)),), ((1, 0, AppBehaviour()),))


class Spinning(asyncio.Protocol):
    """A server whose request handling never yields: a `while True` with no await."""

    def data_received(self, data: bytes) -> None:
        spins = 0
        while True:
            spins += 1


class Sleeping(asyncio.Protocol):
    def data_received(self, data: bytes) -> None:
        time.sleep(0.5)


@pytest.fixture(autouse=True)
def quick_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_WATCHDOG_SECONDS", "0.2")


def test_a_callback_that_spins_is_stopped_and_reported_as_stuck_where_it_spun():
    run = run_http(SCENARIO, FakeTarget(Spinning), OrdinarySource())
    stuck = [f for f in run.failures if f.kind == "stuck"]
    assert [f.signature for f in stuck] == [
        "stuck in tests/test_watchdog.py in Spinning.data_received"]
    assert "while True" not in stuck[0].message  # the stack lines, not source text
    assert "tests/test_watchdog.py" in stuck[0].message
    # The verdict replays: the same run is stuck at the same place again.
    again = run_http(SCENARIO, FakeTarget(Spinning), OrdinarySource())
    assert sorted(f.key() for f in again.failures) == sorted(f.key() for f in run.failures)


def test_time_sleep_in_a_run_is_an_escape_named_as_such():
    with pytest.raises(SimulationEscape, match=r"time.sleep\(0.5\).*blocks the real thread"):
        run_http(SCENARIO, FakeTarget(Sleeping), OrdinarySource())


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "10s"])
def test_a_watchdog_setting_that_is_not_seconds_is_refused_naming_it_before_any_work(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str):
    from harness.tools.cli import main

    monkeypatch.setenv("HARNESS_WATCHDOG_SECONDS", value)
    assert main(["explore", "--server", "reference", "--max-runs", "3", "--no-examples"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "exploring" not in err  # refused before the search began
    assert err == (f"harness: error: HARNESS_WATCHDOG_SECONDS={value!r}: the watchdog needs a "
                   "number of seconds above 0 (unset, it is 10), or 0 to turn it off\n")


@pytest.mark.parametrize(("value", "interval"), [("", 10.0), ("0", 0.0), (" 2.5 ", 2.5)])
def test_the_watchdog_setting_read_unset_off_and_set(monkeypatch: pytest.MonkeyPatch,
                                                     value: str, interval: float):
    from harness.sim.watchdog import seconds

    monkeypatch.setenv("HARNESS_WATCHDOG_SECONDS", value)
    assert seconds() == interval
