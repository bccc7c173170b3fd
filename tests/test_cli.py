"""The `harness` command end to end, on the reference server (and the installed uvicorn
where a test needs a bug to find), so it stays fast."""

from __future__ import annotations

import json
import platform
import re
import shutil
import threading
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from harness.search.trace import Trace
from harness.tools.cli import main

# a committed trace of uvicorn 0.11.3 (h11)
SHOWCASE = "reports/uvicorn-0.11.3-h11/receive-hang-e2bf0886/trace.json"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_explore_that_finds_nothing_exits_0_with_a_summary(capsys, tmp_path: Path):
    code, out, err = run_cli(capsys, "explore", "--server", "reference",
                             "--family", "keepalive", "--max-runs", "40", "--budget", "0",
                             "--reports", str(tmp_path))
    assert code == 0, err
    assert "reference-" in out and "none" in out.splitlines()[-1]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def found_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """The known httptools pipelining bug on the installed uvicorn, found by the CLI."""
    root = tmp_path_factory.mktemp("reports")
    code = main(["explore", "--server", "uvicorn", "--http", "httptools",
                 "--family", "pipelining", "--budget", "0", "--max-runs", "1500", "--seed", "1",
                 "--reports", str(root)])
    return code, root


def test_explore_that_finds_a_failure_exits_1_and_writes_a_whole_report(found_report):
    code, root = found_report
    assert code == 1
    [label] = list(root.iterdir())
    reports = list(label.iterdir())
    assert reports and not [p for p in reports if p.name.startswith(".")]
    for report in reports:
        assert sorted(p.name for p in report.iterdir()) == [
            "report.md", "test_repro.py", "trace.json"]
        text = (report / "report.md").read_text()
        assert "```mermaid" in text and "harness replay" in text
        assert f"`harness exhaust {report / 'trace.json'} --server " in text  # check a fix
        assert f"HARNESS_DEVIATIONS=1 pytest {report / 'test_repro.py'}`" in text
        assert f"uvicorn {version('uvicorn')} (protocol httptools), installed beside the " \
               f"harness: " in text and f"httptools {version('httptools')}" in text
        assert json.loads((report / "trace.json").read_text())["verdict"]["kind"] in text
        reference = text.split("## The reference server", 1)[1]
        assert "the reference server passes every oracle" in reference
        assert "--server reference" in reference and "asgi /c1/r" in reference


def test_report_rewrites_the_folder_of_a_failing_trace(found_report, capsys, tmp_path: Path):
    _, root = found_report
    trace = next(root.glob("*/lost-disconnect-*/trace.json"))
    code, out, err = run_cli(capsys, "report", str(trace), "--reports", str(tmp_path))
    assert code == 0, err
    [folder] = tmp_path.glob("*/lost-disconnect-*")
    assert folder.name == trace.parent.name
    assert (folder / "trace.json").read_text() == trace.read_text()
    # The same report explore wrote, but for where it lives (outside any project, so its
    # commands name it by absolute path).
    for name in ("report.md", "test_repro.py"):
        assert (folder / name).read_text().replace(str(folder.resolve()), "<dir>") == \
            (trace.parent / name).read_text().replace(str(trace.parent.resolve()), "<dir>")
    assert str(folder) in out


def test_explore_of_a_cached_release_writes_its_reports_from_the_workers_replay(
        capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The worker that found a failure replays its trace and sends the verdict with it:
    # no worker is started per report (about a second of CPU each, and every report and
    # line after it waited). The report is the one a fresh replay writes.
    from harness.tools import cli

    asked: list[tuple[str, str]] = []
    real_run = cli.run

    def run(spec: Any, request: dict[str, Any], *args: Any, **kw: Any) -> dict[str, Any]:
        asked.append((spec.server, request["op"]))
        return real_run(spec, request, *args, **kw)

    monkeypatch.setattr(cli, "run", run)
    found = tmp_path / "found"
    code, _, err = run_cli(capsys, "explore", "--server", "uvicorn==0.11.3", "--no-examples",
                           "--budget", "0", "--max-runs", "60", "--seed", "0",
                           "--reports", str(found))
    assert code == 1, err
    reports = sorted(found.glob("*/*/report.md"))
    assert len(reports) >= 2
    assert [op for server, op in asked if server == "uvicorn"] == ["explore"]
    for report in reports:
        again = tmp_path / "again"
        assert run_cli(capsys, "report", str(report.parent / "trace.json"),
                       "--reports", str(again))[0] == 0
        [rewritten] = again.glob(f"*/{report.parent.name}/report.md")
        assert rewritten.read_text().replace(str(rewritten.parent.resolve()), "<dir>") == \
            report.read_text().replace(str(report.parent.resolve()), "<dir>")


def test_report_rewrites_a_report_where_it_is_from_any_folder(
        found_report, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _, root = found_report
    [original] = root.glob("*/lost-disconnect-*")
    copied = tmp_path / "kept" / original.parent.name / original.name
    shutil.copytree(original, copied)
    (copied / "report.md").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, _, err = run_cli(capsys, "report", str(copied / "trace.json"))
    assert code == 0, err
    assert (copied / "report.md").is_file() and list(elsewhere.iterdir()) == []
    monkeypatch.chdir(copied)  # from inside the report's folder too
    assert run_cli(capsys, "report", "trace.json")[0] == 0
    assert not (copied / "reports").exists() and (copied / "report.md").is_file()
    # A trace anywhere else: ./reports, as before.
    loose = tmp_path / "loose.json"
    shutil.copy(copied / "trace.json", loose)
    monkeypatch.chdir(elsewhere)
    assert run_cli(capsys, "report", str(loose))[0] == 0
    assert [p.name for p in elsewhere.iterdir()] == ["reports"]


def test_report_refuses_a_trace_that_records_no_failure(found_report, capsys, tmp_path: Path):
    _, root = found_report
    data = json.loads(next(root.glob("*/lost-disconnect-*/trace.json")).read_text())
    data["verdict"] = None
    passing = tmp_path / "passing.json"
    passing.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "report", str(passing), "--reports", str(tmp_path / "out"))
    assert code == 2 and "records no failure" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_report_refuses_a_folder_it_cannot_write_before_replaying(found_report, capsys):
    _, root = found_report
    trace = next(root.glob("*/lost-disconnect-*/trace.json"))
    code, out, err = run_cli(capsys, "report", str(trace), "--reports", "/proc/harness-reports")
    assert code == 2 and out == ""
    assert err.strip() == ("harness: error: --reports /proc/harness-reports: cannot write in "
                           "/proc/harness-reports (No such file or directory); name a folder "
                           "you can write")


def test_a_trace_that_no_longer_replays_is_one_error_unless_lenient(found_report, capsys,
                                                                     tmp_path: Path):
    _, root = found_report
    data = json.loads(next(root.glob("*/lost-disconnect-*/trace.json")).read_text())
    data["decisions"][0][1] += 1  # as if the code under test had asked another question
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "replay", str(changed))
    assert code == 2 and "no longer replays" in err and "--lenient" in err
    assert len(err.strip().splitlines()) == 1
    code, out, _ = run_cli(capsys, "replay", "--lenient", str(changed))
    assert code in (0, 1) and "diverged from the trace at decision 0" in out


def test_strict_replay_refuses_a_trace_with_decisions_the_run_never_asked_for(
        found_report, capsys, tmp_path: Path):
    _, root = found_report
    data = json.loads(next(root.glob("*/lost-disconnect-*/trace.json")).read_text())
    data["decisions"].append(list(data["decisions"][-1]))  # one decision too many
    longer = tmp_path / "longer.json"
    longer.write_text(json.dumps(data))
    code, _, err = run_cli(capsys, "replay", str(longer))
    assert code == 2 and "ended after" in err and "but the trace records" in err
    code, _, _ = run_cli(capsys, "replay", "--lenient", str(longer))
    assert code in (0, 1)


def test_a_refused_explore_creates_no_reports_folder(capsys, tmp_path: Path):
    reports = tmp_path / "new"
    for args in (["--server", "nginx"], ["--server", "reference", "--family", "chaos"],
                 ["--server", "reference", "--json", "/proc/harness/summary.json"]):
        code, _, _ = run_cli(capsys, "explore", *args, "--reports", str(reports))
        assert code == 2 and not reports.exists()


def test_the_summary_counts_each_distinct_failure_once_however_many_jobs_found_it(
        capsys, tmp_path: Path):
    code, out, err = run_cli(capsys, "explore", "--server", "uvicorn", "--http", "httptools",
                             "--family", "pipelining", "--jobs", "2", "--max-runs", "80",
                             "--reports", str(tmp_path))
    assert code == 1, err
    counts = re.search(r"uvicorn-\S+-httptools\s+\d+\s+\d+\s+(.*)", out)
    assert counts, out
    folders = [p.name.rsplit("-", 1)[0] for p in tmp_path.glob("*/*")]
    summary = {k: int(n) for k, n in re.findall(r"([a-z-]+) (\d+)", counts.group(1))}
    assert summary == {k: folders.count(k) for k in set(folders)}, (summary, folders)
    # Each failure shrunk once, by the job that claimed it, however many jobs met it.
    shrunk = re.findall(r"^shrunk (\S+) in", err, re.M)
    assert sorted(shrunk) == sorted(folders), err
    assert "shrinking it here too" not in err and "report stands" not in err, err


def test_max_runs_alone_bounds_the_search_by_runs_not_by_seconds(capsys, tmp_path: Path):
    code, out, err = run_cli(capsys, "explore", "--server", "reference", "--max-runs", "40",
                             "--reports", str(tmp_path))
    assert code == 0, err
    assert re.search(r"reference-\S+\s+40\s", out), out


@pytest.mark.parametrize("jobs,runs", [(2, 5), (3, 2)])
def test_max_runs_is_shared_among_the_jobs_and_adds_up_to_it(capsys, tmp_path: Path,
                                                              jobs: int, runs: int):
    code, out, err = run_cli(capsys, "explore", "--server", "reference", "--jobs", str(jobs),
                             "--max-runs", str(runs), "--no-examples",
                             "--reports", str(tmp_path))
    assert code == 0, err
    assert re.search(rf"reference-\S+\s+{runs}\s", out), out


def test_replaying_a_written_trace_prints_the_timeline_and_the_verdict(found_report, capsys):
    _, root = found_report
    trace = next(root.glob("*/lost-disconnect-*/trace.json"))
    report = (trace.parent / "report.md").read_text()
    assert "## Blocked await stacks" in report
    assert "uvicorn/protocols/http/httptools_impl.py" in report
    code, out, _ = run_cli(capsys, "replay", str(trace))
    assert code == 1
    assert "asgi /c1/r0 call" in out
    assert "verdict: lost-disconnect" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explore", "--server", "nginx"],
         "unknown server 'nginx'; known servers: reference, uvicorn"),
        (["explore", "--server", "uvicorn==="], "malformed server 'uvicorn==='"),
        (["explore", "--server", "uvicorn", "--http", "wsproto"],
         "uvicorn has no HTTP implementation 'wsproto'"),
        (["explore", "--server", "reference", "--budget", "0"], "--budget must be a positive"),
        (["explore", "--server", "reference", "--budget", "nan"],
         "--budget must be a positive, finite number of seconds, got nan"),
        (["explore", "--server", "reference", "--budget", "inf"],
         "--budget must be a positive, finite number of seconds, got inf"),
        (["explore", "--server", "reference", "--budget", "-5"],
         "--budget must be a positive, finite number of seconds, got -5"),
        (["explore", "--server", "reference", "--family", "chaos"],
         "unknown scenario family 'chaos'"),
        (["explore", "--server", "reference", "--jobs", "0"], "--jobs must be from 1 to 32"),
        (["explore", "--server", "reference", "--jobs", "100000"],
         "--jobs must be from 1 to 32, got 100000"),
        (["explore", "--server", "reference", "--reports", "README.md"],
         "--reports README.md is a file"),
        (["explore", "--server", "reference", "--json", "/proc/harness/summary.json"],
         "--json /proc/harness/summary.json: cannot write in /proc/harness"),
        (["explore", "--server", "reference", "--reports", "/proc/harness-reports"],
         "--reports /proc/harness-reports: cannot write in /proc/harness-reports"),
        (["explore", "--server", "reference", "--reports", "README.md/reports"],
         "--reports README.md/reports: cannot write in README.md/reports (README.md is a "
         "file)"),
        (["explore", "--server", "hypercorn==0.9.0"],
         "hypercorn 0.9.0 is older than the oldest release the harness runs (0.10.2"),
        (["explore", "--server", "uvicorn==0.2.1"],
         "uvicorn 0.2.1 cannot run here: its sdist (the only file on PyPI) does not build: "
         "setup.py reads README.md"),
        (["explore", "--server", "uvicorn==0.0.15"],
         "uvicorn 0.0.15 cannot run here: releases before 0.1.0 predate ASGI's "
         "scope/receive/send"),
        (["explore", "--server", "uvicorn==0.1.1", "--http", "h11"],
         "uvicorn 0.1.1 has no HTTP implementation 'h11'; use one of httptools or all"),
        (["explore", "--server", "reference==1.0"],
         "the reference server has no releases of its own"),
        (["explore", "--server", "reference", "--http", "httptools"],
         "reference has no HTTP implementation 'httptools'"),
        (["bisect", "--server", "uvicorn", "--good", "0.12.3", "--bad", "0.11.3"],
         "give exactly one of --trace TRACE or --scenario FAMILY"),
        (["bisect", "--server", "uvicorn", "--good", "0.11.3", "--bad", "0.12.0",
          "--scenario", "nonsense"], "error: unknown scenario family 'nonsense'; known: "),
        (["bisect", "--server", "uvicorn", "--good", "0.11.3", "--bad", "0.12.0",
          "--scenario", "pipelining", "--kind", "hang"],
         "unknown failure kind 'hang'; known: receive-hang, lost-disconnect"),
        (["bisect", "--server", "uvicorn", "--good", "0.11.3", "--bad", "0.12.0",
          "--scenario", "pipelining", "--budget", "-3"],
         "--budget must be a positive, finite number of seconds, got -3"),
        (["bisect", "--server", "uvicorn", "--good", "0.11.3", "--bad", "0.11.03",
          "--scenario", "pipelining"],
         "--good and --bad are both uvicorn 0.11.3: a bisect needs two different releases"),
        # A command that runs on one protocol refuses --http all instead of taking the first.
        (["replay", SHOWCASE, "--http", "all"],
         "--http all: this command runs on one protocol implementation; give one of h11, "
         "httptools"),
        (["exhaust", SHOWCASE, "--http", "all"],
         "--http all: this command runs on one protocol implementation; give one of h11, "
         "httptools"),
        (["replay", SHOWCASE, "--http", "spdy"],
         "uvicorn has no HTTP implementation 'spdy'; use one of h11, httptools\n"),
        (["explore", "--server", "./README.md"],
         "--server ./README.md: a file, not a folder; give the path of a working copy"),
        (["bisect", "--server", "uvicorn", "--good", "0.11.3", "--bad", "0.12.0",
          "--trace", SHOWCASE, "--kind", "lost-disconnect"],
         "--kind lost-disconnect goes with --scenario: with --trace, the kind looked for is "
         "the trace's own verdict's"),
        (["bisect", "--server", "uvicorn", "--good", "0.11.3", "--bad", "0.12.0",
          "--scenario", "pipelining", "--http", "all"],
         "--http all: bisect runs on one protocol implementation of uvicorn; give one of h11, "
         "httptools"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(capsys, args: list[str], message: str):
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_malformed_trace_is_refused_with_its_path(capsys, tmp_path: Path):
    bad = tmp_path / "trace.json"
    bad.write_text("{oops")
    code, _, err = run_cli(capsys, "replay", str(bad))
    assert code == 2 and str(bad) in err and "not valid JSON" in err


@pytest.mark.parametrize("command", ["replay", "report", "exhaust"])
def test_a_report_folder_given_for_its_trace_is_refused_naming_the_trace(
        capsys, command: str):
    folder = str(Path(SHOWCASE).parent)
    code, _, err = run_cli(capsys, command, folder)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{folder}: cannot read trace (Is a directory); a report's trace is its " \
           f"trace.json: {SHOWCASE}" in err, err


@pytest.mark.parametrize(("field", "value", "message"), [
    ("verdict", "receive-hang", "'verdict' is 'receive-hang'; expected null or an object"),
    ("target", {"server": 3}, "'target' must be null or an object with string 'server'"),
    ("settings", {"horizon": "long"}, "'settings.horizon' is 'long', expected a number of "
                                      "seconds above 0 (the default is 3600.0)"),
    # A setting the simulation cannot take is the trace's fault: not a harness bug, and
    # not the server's (a window of 0 failed as "mounting uvicorn failed").
    ("settings", {"max_latency": -1}, "'settings.max_latency' is -1, expected a number"),
    ("settings", {"horizon": float("inf")}, "'settings.horizon' is inf, expected a number"),
    ("settings", {"window": 0}, "'settings.window' is 0, expected a whole number of bytes, "
                                "1 or more (the default is 262144)"),
    ("settings", {"window": 1.5}, "'settings.window' is 1.5, expected a whole number"),
    ("settings", {"step_budget": True}, "'settings.step_budget' is True, expected a whole"),
    ("settings", [], "'settings' is [], expected an object"),
    ("meta", [], "'meta' is [], expected an object"),
])
def test_every_trace_field_is_checked_and_named_with_its_file(
        capsys, tmp_path: Path, field: str, value: object, message: str):
    trace = json.loads((Path(__file__).resolve().parent.parent / "reports" / "uvicorn-0.11.3-h11"
                        / "receive-hang-e2bf0886" / "trace.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**trace, field: value}))
    for command in (["replay", str(bad)], ["report", str(bad)]):
        code, _, err = run_cli(capsys, *command)
        assert code == 2 and str(bad) in err and message in err, err


def test_a_count_setting_must_be_whole(capsys, tmp_path: Path):
    trace = json.loads((Path(__file__).resolve().parent.parent / "reports" / "uvicorn-0.11.3-h11"
                        / "receive-hang-e2bf0886" / "trace.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**trace, "scenario": {
        **trace["scenario"], "server": {"timeout_keep_alive": 5, "limit_concurrency": 2.5}}}))
    code, _, err = run_cli(capsys, "replay", str(bad), "--server", "uvicorn")
    assert code == 2 and "limit_concurrency to 2.5" in err, err
    assert "expected a whole number, 0 or more, or null (the search tries null, 2)" in err


@pytest.mark.parametrize("server", ["reference", "uvicorn"])
@pytest.mark.parametrize(("scenario", "message"), [
    ({"connections": "x"}, "the trace's scenario is malformed"),
    ({"server": {"timeout_keep_alive": 5, "no_such_setting": 1}}, "no_such_setting"),
    # Read as it was, this failed while mounting the target: the server's fault, it said.
    ({"connections": [{"read": "fast"}]}, "connections[0].read is 'fast'; expected one of "),
    # Read as it was, uvicorn failed the run with a server-error (exit 1): its fault, it said.
    ({"server": {"timeout_keep_alive": "x"}}, 'to "x", which '),
    # So did a null keep-alive, which no server takes (it is no "off" switch).
    ({"server": {"timeout_keep_alive": None}}, "to null, which "),
])
def test_a_malformed_scenario_is_an_input_error_on_any_target(
        capsys, tmp_path: Path, server: str, scenario: dict[str, object], message: str):
    trace = json.loads((Path(__file__).resolve().parent.parent / "reports" / "uvicorn-0.11.3-h11"
                        / "receive-hang-e2bf0886" / "trace.json").read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**trace, "scenario": {**trace["scenario"], **scenario}}))
    code, _, err = run_cli(capsys, "replay", str(bad), "--server", server)
    assert code == 2 and message in err, err


@pytest.mark.parametrize(("target", "why"), [
    ({"source": "/nonexistent/uvicorn"}, "/nonexistent/uvicorn, which cannot be used here "
                                         "(no such folder)"),
    ({"server": "nginx"}, "nginx, which cannot be used here (unknown server 'nginx')"),
])
def test_a_trace_whose_own_target_is_gone_says_so_and_how_to_replay_it(
        capsys, tmp_path: Path, target: dict[str, str], why: str):
    # Refused in words made for a --server the user gave ("--server /nonexistent/...:"),
    # which they had not.
    trace = json.loads((Path(__file__).resolve().parent.parent / "reports" / "uvicorn-0.11.3-h11"
                        / "receive-hang-e2bf0886" / "trace.json").read_text())
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps({**trace, "target": {**trace["target"], **target}}))
    code, _, err = run_cli(capsys, "replay", str(moved))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"the trace was recorded on {why}; replay it with --server NAME==VERSION or " \
           "--server PATH (replay, exhaust)" in err


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: {**t, "target": None}, "the trace names no target (its 'target' is null or "
                                      "has no 'server'); give one with --server"),
    (lambda t: {**t, "scenario": {k: v for k, v in t["scenario"].items()
                                  if k != "behaviours"}},
     "the trace's scenario is malformed: it has no 'behaviours'; an http scenario has "
     "'family', 'connections' and 'behaviours'"),
], ids=["no-target", "no-behaviours"])
def test_a_trace_missing_a_part_names_the_part(capsys, tmp_path: Path, change: Any,
                                               message: str):
    trace = json.loads(Path(SHOWCASE).read_text())
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(change(trace)))
    code, _, err = run_cli(capsys, "replay", str(edited))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert message in err, err


def test_a_trace_from_a_newer_harness_is_refused(capsys, tmp_path: Path):
    future = tmp_path / "trace.json"
    future.write_text(json.dumps({"format": "asgi-race-harness/trace", "version": 7}))
    code, _, err = run_cli(capsys, "replay", str(future))
    assert code == 2 and "version 7 is newer" in err


def test_a_trace_recorded_over_a_protocol_its_server_lacks_is_refused_not_replayed_on_another(
        capsys, tmp_path: Path):
    trace = json.loads(Path(SHOWCASE).read_text())
    trace["target"]["http"] = "h2"  # hand-edited, or from a newer harness
    (tmp_path / "h2.json").write_text(json.dumps(trace))
    code, _, err = run_cli(capsys, "replay", str(tmp_path / "h2.json"))
    assert code == 2 and err == (
        "harness: error: the trace was recorded on uvicorn==0.11.3 over http 'h2', which it "
        "does not have (it has h11, httptools); give one with --http\n")


def test_a_release_that_does_not_exist_is_named_with_the_fix(capsys, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    # Refused before anything is made or said (the index is read once, as the install
    # would), as an unknown server is.
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    reports = tmp_path / "out" / "reports"
    code, _, err = run_cli(capsys, "explore", "--server", "uvicorn==99.0.0", "--budget", "1",
                           "--reports", str(reports), "--json", str(tmp_path / "s.json"))
    assert code == 2
    assert err == "harness: error: uvicorn==99.0.0 does not exist on PyPI; list releases " \
                  "with 'pip index versions uvicorn'\n"
    assert not (tmp_path / "envs").exists()  # nothing half-installed left behind
    assert not (tmp_path / "out").exists() and not (tmp_path / "s.json").exists()
    trace = Path(__file__).parent / "traces" / "hypercorn-0.12.0-timer-rearmed.json"
    code, _, err = run_cli(capsys, "exhaust", str(trace), "--server", "hypercorn==99.0.0",
                           "--reports", str(reports))
    assert code == 2 and "hypercorn==99.0.0 does not exist on PyPI" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").mkdir()  # a folder the user made stays
    code, _, _ = run_cli(capsys, "explore", "--server", "uvicorn==99.0.0", "--budget", "1",
                         "--reports", str(tmp_path / "out"))
    assert code == 2 and (tmp_path / "out").is_dir()


def test_an_install_that_fails_shows_the_installers_last_lines_and_leaves_nothing(
    capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import subprocess

    import harness.targets.install

    calls: list[list[str]] = []

    def failing(cmd: list[str], env: object = None,
                timeout: float = 0) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        if "--version" in cmd or "pip>=23,<24.1" in cmd:  # the tools themselves are fine
            return subprocess.CompletedProcess(cmd, 0, "tool 1.0\n", "")
        return subprocess.CompletedProcess(
            cmd, 1, "", "Collecting uvicorn==0.5.0\n  error: subprocess-exited-with-error\n"
            "  x Building wheel for uvloop (pyproject.toml) did not run successfully.\n")

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(harness.targets.install, "_run", failing)
    code, _, err = run_cli(capsys, "explore", "--server", "uvicorn==0.5.0", "--budget", "1")
    assert code == 2
    assert "installing uvicorn==0.5.0 failed" in err
    assert "Building wheel for uvloop" in err
    assert any("uv" in c[0] for c in calls) and any("pip" in c for c in calls)  # uv, then pip
    assert not list((tmp_path / "envs").iterdir())


def test_explore_says_which_protocol_it_skipped_and_why(capsys, tmp_path: Path):
    # uvicorn 0.2.20's httptools protocol fails in its constructor: --http all runs h11
    # alone, and says so rather than leave the reader wondering where httptools went.
    summary = tmp_path / "summary.json"
    code, out, err = run_cli(capsys, "explore", "--server", "uvicorn==0.2.20", "--http", "all",
                             "--family", "keepalive", "--budget", "0", "--max-runs", "1",
                             "--no-examples", "--reports", str(tmp_path / "r"),
                             "--json", str(summary))
    assert code in (0, 1), err
    assert re.search(r"skipping uvicorn==0\.2\.20 \(httptools\): .*__slots__", err), err
    assert "uvicorn-0.2.20-h11" in out and "httptools" not in out, out
    skipped = json.loads(summary.read_text())["command"]["skipped"]
    assert list(skipped) == ["httptools"] and "__slots__" in skipped["httptools"]


def test_every_option_of_every_command_says_what_it_does():
    """`harness CMD --help` is the reference a user reads first: an option listed with
    no explanation leaves them to read the code."""
    import argparse

    from harness.tools.cli import build_parser

    commands = next(a for a in build_parser()._actions
                    if isinstance(a, argparse._SubParsersAction)).choices
    assert {"explore", "replay", "report", "bisect", "serve", "survey"} <= set(commands)
    silent = [f"{name} {action.option_strings[-1]}"
              for name, parser in commands.items() for action in parser._actions
              if action.option_strings and not action.help]
    assert silent == []


def test_version_names_the_harness_and_python_as_its_reports_do(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"asgi-race-harness {version('asgi-race-harness')} on Python "
        f"{platform.python_version()}")


def test_a_job_that_dies_while_shrinking_gives_its_claims_back(tmp_path: Path, monkeypatch):
    # Job 0 is killed while it shrinks a failure it claimed: it cannot release the claim
    # itself, so the parent does, and the job that meets the failure next shrinks it.
    import threading

    import harness.tools.cli as cli
    from harness.search.claims import Claims
    from harness.tools.progress import Progress

    key = ("receive-hang", "receive() blocked at impl.py:12")
    other = ("premature-close", "closed at impl.py:40")
    claims = Claims(tmp_path)
    released: list[tuple[str, str]] = []
    given_back = threading.Event()

    def release(work: tuple[str, str]) -> None:
        claims.release(work)
        released.append(work)
        given_back.set()

    def run(spec, request, on_event, line, force_worker=False, cancelled=None):
        if request["job"] == 0:
            assert claims(key) and claims(other)
            on_event("shrinking", {"kind": key[0], "signature": key[1], "runs": 3})
            on_event("shrinking", {"kind": other[0], "signature": other[1], "runs": 4})
            on_event("shrunk", {"kind": other[0], "signature": other[1], "seconds": 1.0})
            raise cli.HarnessFault("the worker for job 0 was killed (signal 9)")
        assert given_back.wait(20)
        return {"runs": 1, "taken": claims(key), "other": claims(other)}

    lines: list[str] = []
    progress = Progress(tty=False)
    progress.line = lines.append  # type: ignore[method-assign]
    monkeypatch.setattr(cli, "run", run)
    [result] = cli._parallel("spec", 2, lambda j: {"job": j},  # type: ignore[arg-type]
                             progress.event, progress, release)
    assert released == [key]  # what it had shrunk stays claimed
    assert result == {"runs": 1, "taken": True, "other": False}
    assert lines[-1] == ("job 0 stopped, the other jobs go on: the worker for job 0 was "
                         "killed (signal 9)")


def test_parallel_jobs_stopped_by_an_interrupt_have_ended_when_it_reaches_the_caller():
    # The caller then removes the jobs' claims folder: a job still running wrote into it
    # meanwhile, and the removal failed ("Directory not empty"), exiting 2, not 130.
    import subprocess

    import harness.tools.cli as cli
    from harness.targets import runner
    from harness.targets.registry import target_specs
    from harness.tools.progress import Progress

    running: list[subprocess.Popen[str]] = []

    def on_event(j: int, event: str, info: dict[str, object]) -> None:
        running.extend(runner._LIVE)
        raise KeyboardInterrupt

    def request(j: int) -> dict[str, object]:
        return {"op": "explore", "families": ["keepalive"], "budget": 600, "seed": j,
                "strategy": "random"}

    with pytest.raises(KeyboardInterrupt):
        cli._parallel(target_specs("reference", "h11")[0], 2, request, on_event,
                      Progress(tty=False), lambda key: None)
    assert running and all(proc.poll() is not None for proc in running)


def test_a_parallel_job_slower_than_the_interrupt_starts_no_worker(monkeypatch):
    # Job 1 reaches the point of starting its worker only after the interrupt has stopped
    # the jobs: terminate_workers could not see a worker started then, and it would run on.
    import subprocess

    import harness.tools.cli as cli
    from harness.targets import runner
    from harness.targets.registry import target_specs
    from harness.tools.progress import Progress

    late = threading.Event()
    refused: list[BaseException] = []
    started: list[int] = []
    ensure = runner.ensure_target_env
    real_popen = subprocess.Popen
    run_worker = runner._run_worker

    def slow_ensure(spec, log):  # type: ignore[no-untyped-def]
        if threading.current_thread().name.endswith("job-1"):
            late.wait()
        return ensure(spec, log)

    def counting_popen(*args, **kwargs):  # type: ignore[no-untyped-def]
        started.append(1)
        return real_popen(*args, **kwargs)

    def noting_run_worker(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return run_worker(*args, **kwargs)
        except runner.Cancelled as exc:
            refused.append(exc)
            raise

    def on_event(j: int, event: str, info: dict[str, object]) -> None:
        raise KeyboardInterrupt

    def request(j: int) -> dict[str, object]:
        return {"op": "explore", "families": ["keepalive"], "budget": 600, "seed": j,
                "strategy": "random"}

    monkeypatch.setattr(runner, "ensure_target_env", slow_ensure)
    monkeypatch.setattr(runner.subprocess, "Popen", counting_popen)
    monkeypatch.setattr(runner, "_run_worker", noting_run_worker)
    threads_before = set(threading.enumerate())
    with pytest.raises(KeyboardInterrupt):
        cli._parallel(target_specs("reference", "h11")[0], 2, request, on_event,
                      Progress(tty=False), lambda key: None)
    late.set()
    for thread in set(threading.enumerate()) - threads_before:
        thread.join(timeout=60)
    assert started == [1] and len(refused) == 1 and not runner._LIVE


def test_exhaust_runs_every_ordering_of_a_traces_scenario_on_its_target_and_another(
        found_report, tmp_path: Path, capsys):
    # The reported failure needs the deviations its trace shows, or fewer: walking every
    # ordering with that many meets it again (first in one of its simplest orderings);
    # the reference server passes every one of them.
    _, root = found_report
    trace_path = sorted(root.rglob("trace.json"))[0]
    trace = json.loads(trace_path.read_text())
    deviations = sum(1 for d in trace["decisions"] if d[2])
    capsys.readouterr()
    code = main(["exhaust", str(trace_path), "--deviations", str(deviations),
                 "--reports", str(tmp_path / "own")])
    out = capsys.readouterr().out
    assert code == 1
    own = (trace["verdict"]["kind"], trace["verdict"]["signature"])
    assert f"verdict: {own[0]}: {own[1]} (" in out
    assert f"every ordering with at most {deviations} deviation" in out
    [written] = [p for p in (tmp_path / "own").rglob("trace.json")
                 if (json.loads(p.read_text())["verdict"]["kind"],
                     json.loads(p.read_text())["verdict"]["signature"]) == own]
    met = json.loads(written.read_text())
    assert sum(1 for d in met["decisions"] if d[2]) <= deviations
    assert main(["replay", str(written)]) == 1  # its report replays, and fails
    capsys.readouterr()
    code = main(["exhaust", str(trace_path), "--server", "reference", "--deviations", "1",
                 "--reports", str(tmp_path / "ref")])
    out = capsys.readouterr().out
    assert code == 0 and out.splitlines()[-1] == "verdict: pass", out
    assert "every ordering with at most 1 deviation" in out
    assert not list((tmp_path / "ref").rglob("trace.json"))


def test_exhaust_cut_short_by_its_run_limit_says_so_and_checks_its_options(
        found_report, tmp_path: Path, capsys):
    _, root = found_report
    trace_path = sorted(root.rglob("trace.json"))[0]
    code = main(["exhaust", str(trace_path), "--server", "reference", "--deviations", "2",
                 "--max-runs", "5", "--reports", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0
    assert "5 orderings ran (1 with 0, 4 of " in out and "stopped at the run limit" in out
    assert out.splitlines()[-1].startswith("verdict: no failure in the 5 orderings that ran")
    for bad, why in ((["--deviations", "-1"], "--deviations must be 0 or more, got -1"),
                     (["--max-runs", "0"], "--max-runs must be 1 or more, got 0")):
        assert main(["exhaust", str(trace_path), *bad, "--reports",
                     str(tmp_path / "bad")]) == 2
        assert why in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_exhaust_walks_under_the_traces_own_settings_as_replay_does(
        found_report, tmp_path: Path, capsys):
    # A trace recorded under other simulation settings (here a network window of 64
    # bytes, so each request arrives in parts: other decisions than the default's): its
    # ordinary run, the walk's first, is the one replay makes, and what the walk meets
    # records those settings, so its trace replays strictly.
    _, root = found_report
    trace = json.loads(sorted(root.rglob("trace.json"))[0].read_text())
    trace["settings"]["window"] = 64
    trace["decisions"] = []
    small = tmp_path / "small-window.json"
    small.write_text(json.dumps(trace))
    code = main(["exhaust", str(small), "--deviations", "1", "--reports",
                 str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 1, out
    written = sorted((tmp_path / "r").rglob("trace.json"))
    assert written
    for path in written:
        assert json.loads(path.read_text())["settings"] == trace["settings"]
        assert main(["replay", str(path)]) == 1
        capsys.readouterr()


def test_report_on_a_trace_that_fails_otherwise_than_recorded_says_how_it_fails_now(
        capsys, tmp_path: Path):
    trace = json.loads(Path(SHOWCASE).read_text())
    trace["verdict"]["kind"] = "leak"  # it fails with receive-hang
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(trace))
    code, _, err = run_cli(capsys, "report", str(edited), "--reports", str(tmp_path / "r"))
    assert code == 2 and not (tmp_path / "r").exists()
    assert "no longer fails on uvicorn==0.11.3 (h11) with its recorded leak (it fails with " \
           "receive-hang instead" in err, err


def test_report_writes_what_the_run_shows_not_an_edited_signature(capsys, tmp_path: Path):
    trace = json.loads(Path(SHOWCASE).read_text())
    real = trace["verdict"]["signature"]
    trace["verdict"]["signature"] = "receive() never returned: blocked at somewhere/else.py:1"
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(trace))
    code, _, err = run_cli(capsys, "report", str(edited), "--reports", str(tmp_path / "r"))
    assert code == 0 and f"fails now with {real}: the report is of what it does now" in err
    [folder] = (tmp_path / "r").glob("*/*")
    assert Trace.load(folder / "trace.json").verdict["signature"] == real
    report = (folder / "report.md").read_text()
    assert "somewhere/else.py" not in report and real.split("blocked at ")[1] in report


def test_report_refuses_a_trace_whose_own_target_is_not_one_here(capsys, tmp_path: Path):
    trace = json.loads(Path(SHOWCASE).read_text())
    trace["target"]["http"] = "h2"  # uvicorn has no h2: it is not replayed on h11 instead
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(trace))
    code, _, err = run_cli(capsys, "report", str(edited), "--reports", str(tmp_path / "r"))
    assert code == 2 and not (tmp_path / "r").exists()
    assert "recorded on uvicorn==0.11.3 over http 'h2', which it does not have" in err, err


def test_a_report_of_a_trace_that_was_never_shrunk_still_says_so(capsys, tmp_path: Path):
    trace = json.loads(Path(SHOWCASE).read_text())
    trace["meta"]["shrunk"] = False  # as an explore interrupted while shrinking saves it
    saved = tmp_path / "detected.json"
    saved.write_text(json.dumps(trace))
    assert run_cli(capsys, "report", str(saved), "--reports", str(tmp_path / "r"))[0] == 0
    [folder] = (tmp_path / "r").glob("*/*")
    report = (folder / "report.md").read_text()
    assert "**Not shrunk:**" in report and "the shrunk trace" not in report


def test_bisect_refuses_a_trace_that_records_no_failure(capsys, tmp_path: Path):
    trace = json.loads(Path(SHOWCASE).read_text())
    passed = tmp_path / "passed.json"
    passed.write_text(json.dumps({**trace, "verdict": None}))
    code, _, err = run_cli(capsys, "bisect", "--server", "uvicorn", "--good", "0.12.3",
                           "--bad", "0.11.3", "--trace", str(passed))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{passed} records no failure" in err, err


@pytest.mark.parametrize("command", [["explore", "--server", "reference"],
                                     ["report", SHOWCASE], ["exhaust", SHOWCASE],
                                     ["survey", "--server", "uvicorn"]])
def test_an_empty_reports_folder_is_refused_not_taken_for_the_current_one(
        capsys, command: list[str]):
    with pytest.raises(SystemExit) as stop:
        main([*command, "--reports", ""])
    assert stop.value.code == 2
    assert "error: argument --reports: empty; name a folder" in capsys.readouterr().err


@pytest.mark.parametrize(("command", "option"), [(["explore", "--server", "reference"], "--json"),
                                                 (["survey", "--server", "uvicorn"], "--json"),
                                                 (["survey", "--server", "uvicorn"], "--markdown")])
@pytest.mark.parametrize(("value", "message"), [("-", "'-' would be a file named '-'"),
                                                ("", "empty; name a file")])
def test_a_file_option_refuses_a_dash_and_an_empty_name(
        capsys, tmp_path: Path, command: list[str], option: str, value: str, message: str):
    with pytest.raises(SystemExit) as stop:
        main([*command, "--reports", str(tmp_path / "r"), option, value])
    assert stop.value.code == 2
    assert f"error: argument {option}: {message}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_report_names_the_other_failures_of_the_same_run(capsys, tmp_path: Path):
    # hypercorn 0.12.0 writes after write_eof (a RuntimeError), and its task then leaks.
    trace = "tests/traces/hypercorn-0.12.0-write-after-eof.json"
    code, _, err = run_cli(capsys, "report", trace, "--reports", str(tmp_path))
    assert code == 0, err
    [folder] = tmp_path.glob("*/*")
    report = (folder / "report.md").read_text()
    assert ("- **The same run also fails** (`harness replay` shows each): `leak: task alive "
            "at hypercorn/protocol/http_stream.py:101 in HTTPStream.handle`.") in report
    assert run_cli(capsys, "report", SHOWCASE, "--reports", str(tmp_path / "one"))[0] == 0
    [alone] = (tmp_path / "one").glob("*/*")  # a run with one failure: no such line
    assert "also fails" not in (alone / "report.md").read_text()
