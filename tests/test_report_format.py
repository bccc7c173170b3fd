"""Reports a maintainer pastes as they are: a diagnosis line first, JSON not Python reprs,
commands that work from the repository root, and the versions of everything that ran.

The end-to-end tests write a report with `harness report` from a trace of the installed
uvicorn's httptools pipelining bug (made here by one ordinary run, so it runs in-process
and fast); the committed showcase reports are checked for the same properties."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.decisions import OrdinarySource
from harness.decisions.base import Recorder
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.oracles import shown
from harness.http.scenario import HttpScenario, run_http
from harness.search.explore import SETTINGS
from harness.search.trace import Trace
from harness.tools.cli import main
from harness.tools.diagnosis import client_account, diagnosis
from harness.tools.reference_run import ReferenceRun, Where, project_root
from harness.tools.report import render_markdown
from servers.uvicorn_target import UvicornTarget

ROOT = Path(__file__).resolve().parent.parent
SHOWCASE = sorted((ROOT / "reports").glob("*/*/report.md"))
REPR = re.compile(r"\{'|\bb'|\bb\"")

# Two pipelined GETs; the first request's app watches for a disconnect and raises after
# starting its response (reports/uvicorn-*-httptools/ tells the story).
PIPELINED = HttpScenario(
    "pipelining", (ConnSpec((RequestSpec(), RequestSpec()), pipelined=True),),
    ((1, 0, AppBehaviour(watch_disconnect=True, raise_at="after-start")),
     (1, 1, AppBehaviour())))


def failing_trace(folder: Path) -> Path:
    target = UvicornTarget("httptools")
    recorder = Recorder(OrdinarySource())
    run = run_http(PIPELINED, target, recorder, SETTINGS)
    assert run.failures, f"uvicorn {target.version} (httptools) no longer shows the " \
                         "pipelining bug this test reports on: give it another failing run"
    failure = run.failures[0]
    trace = Trace(PIPELINED.to_json(), recorder.decisions, SETTINGS, target.describe(),
                  {"kind": failure.kind, "signature": failure.signature,
                   "message": failure.message}, {"python": platform.python_version()})
    path = folder / "found.json"
    trace.save(path)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project (it has a pyproject.toml) whose reports/ holds one report, written by
    `harness report` run from a folder inside it, not from its root."""
    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text('[project]\nname = "someone-else"\n')
    (root / "src").mkdir()
    trace = failing_trace(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root / "src")
        assert main(["report", str(trace), "--reports", "../reports"]) == 0
    return root


def the_report(project: Path) -> Path:
    [folder] = (project / "reports").glob("*/*")
    return folder


def test_harness_report_exits_0_and_opens_with_a_diagnosis_naming_server_version_and_kind(
        project: Path):
    text = (the_report(project) / "report.md").read_text()
    title, blank, first, *_ = text.splitlines()
    version = importlib.metadata.version("uvicorn")
    assert title == f"# lost-disconnect in uvicorn {version} (httptools)" and blank == ""
    assert first.startswith(f"uvicorn {version} (httptools), lost-disconnect: ")
    assert "the first of two pipelined requests never returns after the server closed the " \
           "connection" in first and "the app had raised after starting its response" in first
    assert first.endswith(".") and first.count(". ") == 0  # one sentence
    account = text.split("## Details", 1)[0]
    for part in ("**The client** sent two GETs pipelined in one write.", "**The app**",
                 "**What went wrong:**", "**Deviations from an ordinary run:** none",
                 "**Reference server:** passes every oracle"):
        assert part in account


def test_a_report_folder_is_made_as_mkdir_makes_one_not_owner_only(project: Path):
    from harness.search.trace import UMASK

    # Attached to a bug report, served, or committed: others must be able to read it.
    assert the_report(project).stat().st_mode & 0o777 == 0o777 & ~UMASK
    for name in ("trace.json", "report.md", "test_repro.py"):
        assert (the_report(project) / name).stat().st_mode & 0o777 == 0o666 & ~UMASK


def test_report_md_shows_json_never_python_reprs(project: Path):
    for path in [the_report(project) / "report.md", *SHOWCASE]:
        text = path.read_text()
        assert not REPR.findall(text), path
        [block] = re.findall(r"```json\n(.*?)```", text, re.S)
        scenario = json.loads(block)
        assert set(scenario) == {"family", "connections", "behaviours", "server"}, path


def test_bytes_in_oracle_messages_are_json_strings():
    assert shown(b"c1r0:0;\x00'") == '"c1r0:0;\\u0000\'"'


def test_the_replay_commands_work_from_the_project_root(
        project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    folder = the_report(project)
    text = (folder / "report.md").read_text()
    [trace] = re.findall(r"^harness replay (\S+)$", text, re.M)
    [repro] = re.findall(r"^pytest (\S+)$", text, re.M)
    assert "from the repository root" in text
    assert trace == f"{folder.relative_to(project).as_posix()}/trace.json"
    assert (project / trace).is_file() and (project / repro).is_file()
    script = (folder / "test_repro.py").read_text()
    assert f"from the repository root:\n\n    pytest {repro}\n" in script
    monkeypatch.chdir(project)
    assert main(["replay", trace]) == 1  # the command, as written, from the root
    assert "verdict: lost-disconnect" in capsys.readouterr().out


def test_outside_any_project_the_commands_name_the_report_by_absolute_path(tmp_path: Path):
    assert project_root(tmp_path) is None, "a pyproject.toml or .git above the temp folder"
    where = Where.of(tmp_path / "r" / "lost-disconnect-1")
    assert where.folder == str((tmp_path / "r" / "lost-disconnect-1").resolve())
    assert where.run_from == "from any folder"


def test_the_project_root_is_the_nearest_folder_with_git_or_pyproject(tmp_path: Path):
    (tmp_path / "outer").mkdir()
    (tmp_path / "outer" / "pyproject.toml").write_text("")
    inner = tmp_path / "outer" / "checkout"
    (inner / "reports" / "x").mkdir(parents=True)
    (inner / ".git").write_text("gitdir: elsewhere\n")  # a git worktree's .git is a file
    assert project_root(inner / "reports" / "x") == inner
    assert Where.of(inner / "reports" / "x").folder == "reports/x"


def test_the_environment_lists_every_target_with_its_dependency_versions(project: Path):
    text = (the_report(project) / "report.md").read_text()
    env = text.split("### Environment", 1)[1].split("###", 1)[0]
    v = importlib.metadata.version
    target_line = next(line for line in env.splitlines() if line.startswith("- uvicorn "))
    assert "installed beside the harness" in target_line
    for dist in ("uvicorn", "h11", "httptools", "click"):
        assert f"{dist} {v(dist)}" in target_line
    assert f"- harness: asgi-race-harness {v('asgi-race-harness')} on Python " in env
    reference = next(line for line in env.splitlines() if line.startswith("- reference "))
    assert f"h11 {v('h11')}" in reference and "passes every oracle" in reference


def test_a_cached_release_lists_what_its_environment_installed_and_every_fallback():
    for path in SHOWCASE:
        label = path.parent.parent.name
        env = path.read_text().split("### Environment", 1)[1].split("###", 1)[0]
        server, version, _ = label.split("-")
        line = next(x for x in env.splitlines() if x.startswith(f"- {server} {version} "))
        assert f"{server} {version}" in line.split(": ", 1)[1], (path, line)
        assert re.search(r"\bh11 \d", line), (path, line)
        assert re.search(r"- reference server: .*h11 \d", env), path
    old = (ROOT / "reports/uvicorn-0.11.3-h11/receive-hang-e2bf0886/report.md").read_text()
    # 0.11.3 installs the dependencies of its time (targets/era.py); the two that do not
    # build on this Python are named, each with what was used instead.
    assert ("into its own cached environment, with the dependencies of its time (the newest "
            "uploaded before it was published, 2020-02-17 16:23 UTC): click 7.0, h11 0.9.0, "
            "httptools 0.5.0 (fallback)") in old
    assert "- fallback: httptools 0.1.1, the newest at the release's time, does not build" in old
    assert "- fallback: uvloop 0.14.0, the newest at the release's time, does not build" in old


def test_each_showcase_report_opens_with_its_diagnosis_and_replays_from_the_root():
    assert len(SHOWCASE) >= 5
    for path in SHOWCASE:
        server, version, http = path.parent.parent.name.split("-")
        kind = path.parent.name.rsplit("-", 1)[0]
        lines = path.read_text().splitlines()
        assert lines[0] == f"# {kind} in {server} {version} ({http})"
        assert lines[2].startswith(f"{server} {version} ({http}), {kind}: the app's receive()")
        [trace] = re.findall(r"^harness replay (\S+)$", "\n".join(lines), re.M)
        assert (ROOT / trace).resolve() == (path.parent / "trace.json").resolve()


# -- the diagnosis, from what each failure variant logs ----------------------------
KEEPALIVE_TWO = {"family": "flow", "connections": [{"requests": [{"method": "GET"}] * 2}],
                 "behaviours": [[1, 0, {"watch_disconnect": True}], [1, 1, {}]]}
ONE_GET = {"family": "keepalive", "connections": [{"requests": [{"method": "GET"}]}],
           "behaviours": [[1, 0, {"receive_after": True}]]}
HALF_CLOSED_POST = {"family": "disconnect", "connections": [
    {"requests": [{"method": "POST", "framing": "chunked", "body_size": 7}],
     "end": "half-close", "end_moment": "mid-body"}], "behaviours": [[1, 0, {}]]}
TARGET = {"server": "someserver", "version": "1.2", "http": "h11"}


@pytest.mark.parametrize(("kind", "signature", "message", "scenario", "log", "expected"), [
    ("receive-hang", "blocked at s.py:1 in receive",
     "/c1/r1: receive() #1 never returned though the request body had fully arrived",
     KEEPALIVE_TWO,
     ["0.000000 asgi /c1/r0 watch", "0.000000 asgi /c1/r1 call /c1/r1",
      "0.500000 asgi /c1/r1 receive #1"],
     "someserver 1.2 (h11), receive-hang: the app's receive() for the second request on a "
     "keep-alive connection never returns, though that request had fully arrived (the first "
     "request's app was watching for a disconnect)."),
    ("lost-disconnect", "receive() after the response: http.disconnect only after virtual "
     "time passed", "/c1/r0: receive() #2 after the response: http.disconnect only after "
     "virtual time passed", ONE_GET,
     ["0.000000 asgi /c1/r0 receive #2", "5.000000 timer Proto.keep_alive_timeout",
      "5.000000 asgi /c1/r0 received #2 http.disconnect"],
     "someserver 1.2 (h11), lost-disconnect: the app's receive() after its response to a GET "
     "returns http.disconnect only when the timer Proto.keep_alive_timeout fires 5 s later, "
     "instead of at once."),
    ("lost-disconnect", "receive() after the response: blocked at q.py:1 in get",
     "/c1/r0: receive() #3 after the response never returned", ONE_GET,
     ["0.500000 client-reset client[c1]", "0.500000 asgi /c1/r0 watch",
      "0.500000 asgi /c1/r0 received #2 http.disconnect", "1.000000 asgi /c1/r0 receive #3"],
     "someserver 1.2 (h11), lost-disconnect: the app's receive() after its response to a GET "
     "never returns instead of returning http.disconnect (the client had reset the "
     "connection; the app was watching for a disconnect; an earlier receive() had returned "
     "http.disconnect)."),
    ("lost-disconnect", "receive() after client EOF: blocked at q.py:1 in get",
     "/c1/r0: receive() #2 waits for a body the client can no longer send (it closed its "
     "side)", HALF_CLOSED_POST,
     ["0.000000 client-shutdown client[c1]", "0.000000 asgi /c1/r0 receive #2"],
     "someserver 1.2 (h11), lost-disconnect: the app's receive() for a POST with a 7-byte "
     "chunked body waits forever for more of the body after the client half-closed the "
     "connection."),
    ("server-error", "someserver.error: ValueError",
     "someserver.error logged: Exception in ASGI application (ValueError)", ONE_GET, [],
     "someserver 1.2 (h11), server-error: the server logged an error the app did not cause: "
     "someserver.error logged: Exception in ASGI application (ValueError)."),
    ("stuck", "stuck in app.py in spin",
     "a callback never returned to the loop; stopped by the watchdog at:\napp.py:3 in spin",
     ONE_GET, [],
     "someserver 1.2 (h11), stuck: a callback never gave control back to the loop (it spins "
     "or blocks): stuck in app.py in spin."),
])
def test_the_diagnosis_is_derived_from_the_failure_the_scenario_and_the_log(
        kind: str, signature: str, message: str, scenario: dict[str, object], log: list[str],
        expected: str):
    finding = {"kind": kind, "signature": signature, "message": message}
    assert diagnosis(TARGET, finding, scenario, log) == expected


@pytest.mark.parametrize(("connections", "expected"), [
    ([{"requests": [{"method": "GET"}], "end": "reset", "end_moment": "after-send",
       "end_delay": 0.5}],
     "a GET; then it reset the connection 0.5 s after sending its requests"),
    ([{"requests": [{"method": "GET"}] * 2, "pipelined": True}], "two GETs pipelined in one write"),
    ([{"requests": [{"method": "POST", "framing": "length", "body_size": 9}] * 2,
       "read": "stop"}],
     "two POSTs, each with a 9-byte body, one after another on one keep-alive connection, "
     "never reading the responses"),
    ([{"requests": [{"method": "GET"}]}, {"requests": [{"method": "GET", "http10": True}]}],
     "c1: a GET; c2: a GET, over HTTP/1.0"),
])
def test_the_account_says_what_the_client_did_in_words(
        connections: list[dict[str, object]], expected: str):
    assert client_account({"connections": connections}) == expected


def test_the_generated_repro_test_fails_while_the_bug_is_present_and_passes_elsewhere(
        project: Path):
    """The round trip of test_repro.py, run as its docstring says (from the root)."""
    repro = (the_report(project) / "test_repro.py").relative_to(project).as_posix()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", repro]
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_SERVER"}
    failing = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                             timeout=300)
    assert failing.returncode == 1 and "receive() #2 never returned" in failing.stdout, \
        failing.stdout[-2000:] + failing.stderr[-2000:]
    passing = subprocess.run(command, cwd=project, env={**env, "HARNESS_SERVER": "reference"},
                             capture_output=True, text=True, timeout=300)
    assert passing.returncode == 0, passing.stdout[-2000:] + passing.stderr[-2000:]


def test_with_harness_deviations_the_repro_test_checks_every_nearby_ordering(project: Path):
    repro = (the_report(project) / "test_repro.py").relative_to(project).as_posix()
    command = [sys.executable, "-m", "pytest", "-q", "-rP", "-p", "no:cacheprovider", repro]
    env = {**os.environ, "HARNESS_SERVER": "reference", "HARNESS_DEVIATIONS": "1"}
    passing = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True,
                             timeout=300)
    assert passing.returncode == 0, passing.stdout[-2000:] + passing.stderr[-2000:]
    [line] = re.findall(r"^none of the (\d+) orderings within 1 deviations of the ordinary "
                        r"run shows lost-disconnect$", passing.stdout, re.M)
    assert int(line) > 1  # the ordinary run and each single deviation from it
    # The walk's progress, past pytest's capture: each level as it begins.
    [level] = re.findall(r"^exhaust: (\d+) orderings with 1 deviation to run$",
                         passing.stdout, re.M)
    assert int(level) == int(line) - 1
    short = subprocess.run(command, cwd=project, env={**env, "HARNESS_MAX_RUNS": "3"},
                           capture_output=True, text=True, timeout=300)
    assert short.returncode == 0 and "none of the 3 orderings" in short.stdout and \
        "RunLimitWarning: only the first 3 orderings within 1 deviations ran (the run limit; " \
        "HARNESS_MAX_RUNS=N raises it)" in short.stdout, short.stdout[-2000:]


@pytest.mark.parametrize(("setting", "line"), [
    ({"HARNESS_DEVIATIONS": "two"}, "HARNESS_DEVIATIONS 'two': the most deviations from the "
                                    "ordinary run to try must be a whole number, 0 or more"),
    ({"HARNESS_MAX_RUNS": "0"}, "HARNESS_MAX_RUNS '0': the most orderings to run must be a "
                                "whole number, 1 or more"),
    ({"HARNESS_SERVER": "uvicron"}, "HARNESS_SERVER=uvicron: unknown server 'uvicron'"),
    ({"HARNESS_SERVER": "./nothere"}, "HARNESS_SERVER=./nothere: no such folder"),
    ({"HARNESS_SERVER": "uvicorn==99.0"}, "HARNESS_SERVER=uvicorn==99.0 does not exist on "),
])
def test_a_repro_test_given_a_bad_setting_stops_as_a_usage_error_before_replaying(
        project: Path, setting: dict[str, str], line: str):
    # Exit 1, a failed test, would say the bug is still there; and the trace's own
    # target (no HARNESS_SERVER) fails this replay: a bad HARNESS_DEVIATIONS must stop
    # the test before it, not be found only once a fix makes the replay pass.
    repro = (the_report(project) / "test_repro.py").relative_to(project).as_posix()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HARNESS_SERVER", "HARNESS_DEVIATIONS", "HARNESS_MAX_RUNS")}
    bad = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          repro], cwd=project, env={**env, **setting}, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 4, bad.stdout[-2000:] + bad.stderr[-2000:]
    assert f"harness: error: {line}" in bad.stdout, bad.stdout[-2000:]
    assert "never returned" not in bad.stdout  # nothing was replayed


class FakeCapsys:
    """pytest's capsys, as far as the generated test uses it."""

    def __init__(self) -> None:
        self.disabled_for = 0

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        self.disabled_for += 1
        yield


def test_the_repro_test_fails_on_a_nearby_ordering_that_shows_its_failure():
    # The generated test's own logic, over fakes of the two API calls: the trace's own
    # ordering passes, one a deviation away does not.
    from harness.tools.report import REPRO

    text = REPRO.format(kind="leak", slug="leak", name="x", server="x", run_from="here",
                        repro="test_repro.py", trace="{}")
    namespace: dict[str, Any] = {}
    exec(compile(text, "test_repro.py", "exec"), namespace)
    asked: list[tuple[object, ...]] = []
    settings = [None, None, None]  # what repro_settings read: server, deviations, max_runs
    namespace["repro_settings"] = lambda trace: tuple(settings)
    namespace["replay_trace"] = lambda trace, server: {"failures": []}
    namespace["exhaust_trace"] = lambda *args, **kw: asked.append((args, kw)) or {
        "runs": 186, "findings": [
            {"kind": "other", "runs_to_find": 3, "deviations": 1, "message": "not this one"},
            {"kind": "leak", "runs_to_find": 145, "deviations": 1, "message": "c1 leaked"}]}
    captured = FakeCapsys()
    test = functools.partial(namespace["test_the_trace_no_longer_shows_leak"], captured)
    test()  # HARNESS_DEVIATIONS unset: the trace's own ordering only
    assert asked == [] and captured.disabled_for == 0
    settings[1] = 1
    with pytest.raises(AssertionError, match="ordering 145, 1 deviations: c1 leaked") as failed:
        test()
    assert asked == [(("\n{}", None, 1), {"max_runs": None, "progress": namespace["say"]})]
    assert captured.disabled_for == 1  # the walk's progress goes past the capture
    assert "not this one" not in str(failed.value)
    namespace["exhaust_trace"] = lambda *args, **kw: {"runs": 20, "findings": [],
                                                      "complete": False}
    from harness.api import RunLimitWarning

    with pytest.warns(RunLimitWarning, match="only the first 20 orderings within 1 deviations "
                                             "ran .the run limit; HARNESS_MAX_RUNS=N raises "
                                             "it.: the rest were not checked"):
        test()


@pytest.mark.parametrize(("value", "least", "read"), [
    (2, 0, 2), ("3", 0, 3), (0, 0, 0), (1, 1, 1),
    (-1, 0, None), (0, 1, None), ("two", 0, None), ("", 0, None),
    (True, 0, None), (2.7, 0, None), (None, 0, None),  # never read as 1, cut to 2 or 0
])
def test_a_repro_tests_counts_are_whole_numbers_or_their_text(value, least, read):
    from harness.api import whole
    from harness.errors import InputError
    if read is not None:
        assert whole(value, least, "n", "the count", "1") == read
        return
    with pytest.raises(InputError, match=f"must be a whole number, {least} or more"):
        whole(value, least, "n", "the count", "1")


def test_the_repro_test_runs_alone_without_its_folder(project: Path, tmp_path: Path):
    """What goes with a bug report may be the one file: it carries its trace."""
    alone = tmp_path / "attached"
    alone.mkdir()
    (alone / "test_repro.py").write_text((the_report(project) / "test_repro.py").read_text())
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_SERVER"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "test_repro.py"], cwd=alone, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1 and "receive() #2 never returned" in result.stdout, \
        result.stdout[-2000:] + result.stderr[-2000:]


@pytest.mark.parametrize("awkward", ['"""', "\\", '\\"""', "\n", "'''", "{kind}", "\u00e9"])
def test_the_repro_test_carries_any_trace_text_exactly(awkward: str):
    from harness.tools.report import REPRO

    trace = Trace(ONE_GET, [], SETTINGS, TARGET, {"kind": "leak", "signature": awkward},
                  {"note": awkward + " at the end" + awkward})
    text = REPRO.format(kind="leak", slug="leak", name="x", server="x", run_from="from here",
                        repro="test_repro.py", trace=trace.dumps())
    namespace: dict[str, object] = {}
    exec(compile(text, "test_repro.py", "exec"), namespace)
    assert namespace["TRACE"] == "\n" + trace.dumps()
    assert json.loads(str(namespace["TRACE"])) == trace.to_json()


def test_a_target_built_from_a_working_copy_or_commit_is_named_with_where_it_came_from():
    finding = {"kind": "server-error", "signature": "x: E", "message": "x logged: boom (E)"}
    copy = {**TARGET, "source": "./someserver"}
    assert diagnosis(copy, finding, ONE_GET, []).startswith(
        "someserver 1.2 (h11) from ./someserver, server-error: ")


def test_a_message_of_several_lines_stays_whole_in_the_details_and_one_line_above():
    stack = "a callback never returned to the loop; stopped by the watchdog at:\n" \
            "srv.py:3 in spin\nsrv.py:9 in loop"
    finding = {"kind": "stuck", "signature": "stuck in srv.py in spin", "message": stack}
    trace = Trace(ONE_GET, [], SETTINGS, TARGET, None, {"python": "3.11"})
    text = render_markdown(trace, finding, [], None, Where("reports/x", True),
                           ReferenceRun(None, "not asked", []), [])
    [wrong] = [line for line in text.splitlines() if "**What went wrong:**" in line]
    assert wrong.endswith("stopped by the watchdog at `srv.py:9 in loop` (the whole message "
                          "is below).")
    assert f"```\n{stack}\n```" in text.split("## Details", 1)[1]
    assert text.splitlines()[2] == "someserver 1.2 (h11), stuck: a callback never gave " \
                                   "control back to the loop (it spins or blocks): stuck in " \
                                   "srv.py in spin."


def test_the_reference_section_says_when_the_app_is_never_called_there():
    where = Where("reports/x", True)
    log = ["0.000000 connect c1 -> 127.0.0.1:8000", "0.000000 signal SIGTERM",
           *(f"{t / 10:.6f} timer poll" for t in range(1, 20)),
           "2.000000 close server[c1] buffered=0"]
    none = ReferenceRun({"failures": [], "log": log}, None, ["/c1/r1"]).section(where)
    assert "There the app is never called; what happened instead" in none
    assert "2.000000 close server[c1]" in none and "more times" in none
    assert "What the app saw there for the request /c1/r1" not in none
    other = ["0.000000 asgi /c1/r0 call /c1/r0", "0.000000 asgi /c1/r0 returned"]
    some = ReferenceRun({"failures": [], "log": log + other}, None, ["/c1/r1"]).section(where)
    assert ("There the app is never called for the request /c1/r1; what it saw for the "
            "others") in some and "0.000000 asgi /c1/r0 returned" in some
    seen = ReferenceRun({"failures": [], "log": other}, None, ["/c1/r0"]).section(where)
    assert "What the app saw there for the request /c1/r0 (virtual" in seen


@pytest.mark.parametrize(("past_end", "asked"), [(False, "other"), (True, "more")])
def test_the_reference_section_says_how_its_run_left_the_trace(past_end: bool, asked: str):
    verdict = {"failures": [], "log": [], "diverged_at": 3, "past_end": past_end}
    text = ReferenceRun(verdict, None, []).section(Where("reports/x", True))
    assert f"From decision 3 on (numbered from 0) its run asked {asked} questions than the " \
           "trace records, and took the ordinary choice for each." in text


def test_the_app_account_says_which_requests_the_server_never_handed_to_the_app():
    from harness.tools.diagnosis import app_account, behaviour_words

    plan = AppBehaviour().to_json()
    scenario = {"behaviours": [[1, 0, plan], [1, 1, plan]]}
    log = ["0.000000 asgi /c1/r0 call /c1/r0", "0.000000 asgi /c1/r0 returned"]
    words = behaviour_words(plan)
    assert app_account(scenario, log) == [
        f"/c1/r0: {words}", f"/c1/r1: never called by the server (it would have: {words})"]


@pytest.mark.parametrize(("how", "said"), [
    ("raised LocalProtocolError before the grace period",
     "ends by raising LocalProtocolError before the grace period, never by http.disconnect"),
    ("returned http.request after the grace period",
     "ends by returning http.request after the grace period, never by http.disconnect")])
def test_a_receive_during_shutdown_that_ends_otherwise_is_said_in_words(how: str, said: str):
    from harness.tools.diagnosis import _receive_clause

    clause = _receive_clause("lost-disconnect", f"receive() during shutdown: {how}",
                             "the request", None)  # type: ignore[arg-type]
    assert clause == ("the app's receive() for the request, left waiting while the server "
                      f"shut down, {said}")
