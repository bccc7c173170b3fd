"""The harness never blames the server for its own faults: a broken app model stops the
run as a harness error (exit 2, with its stack), never as a server-error of the target."""

from __future__ import annotations

import errno
import io
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.decisions import OrdinarySource
from harness.errors import EnvironmentFault, HarnessFault, machine_fault, rebuild
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from harness.search import forks
from harness.targets import runner, worker
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


def _no_room(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file the harness writes atomically meets a full disk (as /dev/full answers)."""
    real = os.fdopen

    def full_file(fd: int, *args: Any, **kwargs: Any) -> Any:
        f = real(fd, *args, **kwargs)

        def write(text: str) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        f.write = write
        return f

    monkeypatch.setattr(os, "fdopen", full_file)


def test_a_disk_that_fills_up_during_an_explore_is_named_not_taken_for_a_harness_bug(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path):
    summary = tmp_path / "out" / "summary.json"
    _no_room(monkeypatch)  # after the folder checks: the disk fills up during the search
    code = main(["explore", "--server", "reference", "--family", "keepalive",
                 "--max-runs", "5", "--no-examples", "--reports", str(tmp_path / "reports"),
                 "--json", str(summary)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"harness: error: cannot write {summary}: No space left on device; make room " \
           "there, or write elsewhere" in err, err
    assert "bug in the harness" not in err and "Traceback" not in err, err
    assert list(summary.parent.iterdir()) == []  # nothing half-written


def worker_says(monkeypatch: pytest.MonkeyPatch, raised: BaseException) -> dict[str, Any]:
    """The worker's last message when handling a request raised `raised`."""
    def handle(request: dict[str, Any], progress: Any) -> dict[str, Any]:
        raise raised

    monkeypatch.setattr(runner, "handle", handle)
    monkeypatch.setattr(forks, "end_children_on_sigterm", lambda: None)  # pytest's own
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps({"op": "explore"})))
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert worker.main() == 1
    message: dict[str, Any] = json.loads(out.getvalue().splitlines()[-1])
    return message


@pytest.mark.parametrize("code, says", [
    (errno.ENOSPC, "cannot write /cache/examples/key.json: No space left on device; make "
                   "room there"),
    (errno.EACCES, "cannot use /cache/examples/key.json: Permission denied; give this user "
                   "access to it, or use another folder"),
], ids=["no-room", "no-permission"])
def test_a_worker_that_the_machine_refuses_a_file_says_so_as_the_environment(
        monkeypatch: pytest.MonkeyPatch, code: int, says: str):
    message = worker_says(monkeypatch,
                          OSError(code, os.strerror(code), "/cache/examples/key.json"))
    assert message["who"] == "environment"
    assert message["message"].startswith(says)
    error = rebuild(message["who"], message["message"])
    assert isinstance(error, EnvironmentFault) and not isinstance(error, HarnessFault)


@pytest.mark.parametrize("refusal, says", [
    # ENOSPC comes from the write, which names no file; EACCES from the open, which does.
    # (As root, chmod cannot take write permission away: a fake refuses the write.)
    (lambda path: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
     "cannot write {}: No space left on device; make room there"),
    (lambda path: PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path)),
     "cannot use {}: Permission denied; give this user access to it"),
], ids=["full-disk", "read-only-folder"])
def test_a_report_the_machine_refuses_names_its_file_and_leaves_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path,
        refusal: Callable[[Path], OSError], says: str):
    def refused(self: Path, *args: Any, **kwargs: Any) -> int:
        raise refusal(self)

    monkeypatch.setattr(Path, "write_text", refused)
    code = main(["explore", "--server", "uvicorn", "--http", "httptools", "--family",
                 "pipelining", "--max-runs", "80", "--no-examples",
                 "--reports", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    where = rf"{re.escape(str(tmp_path))}/uvicorn-\S+/\S+"
    assert re.search("harness: error: " + re.escape(says).replace(r"\{\}", where), err), err
    assert "bug in the harness" not in err, err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing half-written


def test_a_permission_error_without_a_file_stays_the_harnesss_own():
    # (os.kill on a process not ours says EPERM and names nothing: no file to blame)
    assert machine_fault(PermissionError(errno.EPERM, os.strerror(errno.EPERM))) is None
    assert machine_fault(OSError(errno.EBADF, os.strerror(errno.EBADF), "/x")) is None


def test_a_file_where_a_report_folder_goes_is_named_as_in_the_way_not_a_harness_bug(
        capsys: pytest.CaptureFixture[str], tmp_path):
    blocker = tmp_path / "uvicorn-0.11.3-h11"
    blocker.write_text("")  # a file, where the target's folder of reports goes
    trace = Path(__file__).resolve().parent.parent / "reports" / "uvicorn-0.11.3-h11" / \
        "receive-hang-e2bf0886" / "trace.json"
    code = main(["report", str(trace), "--reports", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"harness: error: cannot write {blocker}: File exists (a file "
                          "stands where a folder goes"), err
    assert "bug in the harness" not in err and err.count("\n") == 1, err
    assert [p.name for p in tmp_path.iterdir()] == [blocker.name]  # nothing else left


def test_code_under_test_that_calls_sys_exit_is_the_target_s_fault_not_the_harness_s(
        monkeypatch: pytest.MonkeyPatch):
    # as a server module that exits when imported does
    message = worker_says(monkeypatch, SystemExit(0))
    assert message["who"] == "target"
    assert message["message"].startswith("the code under test called sys.exit(0)")
