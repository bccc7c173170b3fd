"""The harness never blames the server for its own faults: a broken app model stops the
run as a harness error (exit 2, with its stack), never as a server-error of the target."""

from __future__ import annotations

import pytest

from harness.decisions import OrdinarySource
from harness.errors import HarnessFault
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from harness.tools.cli import main
from servers.uvicorn_target import UvicornTarget

SCENARIO = HttpScenario("keepalive", (ConnSpec((RequestSpec(),)),), ((1, 0, AppBehaviour()),))


def broken_body(self: AppBehaviour, cid: int, index: int) -> list[bytes]:
    return [{}["no such chunk"]]  # a bug in the app model, not in any server


def test_an_app_model_that_raises_is_a_harness_fault_not_a_server_error(
        monkeypatch: pytest.MonkeyPatch):
    assert run_http(SCENARIO, UvicornTarget("h11"), OrdinarySource()).failures == []
    monkeypatch.setattr(AppBehaviour, "response_body", broken_body)
    with pytest.raises(HarnessFault, match=r"(?s)the app model failed on uvicorn .*KeyError"):
        run_http(SCENARIO, UvicornTarget("h11"), OrdinarySource())


def test_explore_reports_a_broken_app_model_as_the_harness_own_fault(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path):
    monkeypatch.setattr(AppBehaviour, "response_body", broken_body)
    code = main(["explore", "--server", "uvicorn", "--max-runs", "5",
                 "--reports", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "the app model failed" in err and "a bug in the harness itself" in err
    assert not any(tmp_path.iterdir())  # no report blames uvicorn


def test_a_crash_in_the_harness_own_oracles_is_exit_2_with_its_stack_never_exit_1(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path):
    import harness.http.scenario

    def broken_check(obs: object) -> list[object]:
        raise ZeroDivisionError("an oracle's own bug")

    monkeypatch.setattr(harness.http.scenario, "check", broken_check)
    code = main(["explore", "--server", "reference", "--max-runs", "3",
                 "--reports", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "ZeroDivisionError: an oracle's own bug" in err and "bug in the harness" in err
    assert "Traceback" in err


def test_sigterm_during_any_command_exits_143_and_is_not_taken_for_a_harness_bug(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    import harness.tools.cli as cli

    def terminated(args: object) -> int:
        cli._on_sigterm(15, None)  # what the SIGTERM handler does mid-command
        return 0

    monkeypatch.setattr(cli, "cmd_replay", terminated)
    assert main(["replay", "any.json"]) == 143
    assert "bug in the harness" not in capsys.readouterr().err
