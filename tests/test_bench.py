"""`python -m harness.tools.bench` runs for a long time: its --help must not start it."""

from __future__ import annotations

import pytest

from harness.tools import bench


def test_help_says_what_the_bench_does_and_runs_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def started() -> str:
        raise AssertionError("the bench started")

    monkeypatch.setattr(bench, "machine", started)
    with pytest.raises(SystemExit) as stop:
        bench.main(["--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "throughput: explore runs per second per core" in out
    assert f"over {bench.SEEDS} seeds" in out


def test_an_unknown_option_exits_2_naming_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(bench, "machine", lambda: pytest.fail("the bench started"))
    with pytest.raises(SystemExit) as stop:
        bench.main(["--seeds", "3"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --seeds 3" in capsys.readouterr().err
