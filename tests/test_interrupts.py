"""Findings survive interrupts: a report is on disk whole the moment its failure is
detected and confirmed (and again once shrunk); SIGINT and SIGTERM stop every worker,
say what was written, and exit 130 or 143, leaving nothing half-written and no process
behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.tools.cli import main

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def start_explore(reports: Path, jobs: int) -> subprocess.Popen[str]:
    # uvicorn's httptools pipelining bug is found within a few runs (README, bench).
    return subprocess.Popen(
        [sys.executable, "-m", "harness.tools.cli", "explore", "--server", "uvicorn",
         "--http", "httptools", "--family", "pipelining", "--budget", "300",
         "--jobs", str(jobs), "--reports", str(reports), "--json", str(reports / "s.json")],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True)


def wait_for_first_report(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # blocks until the harness says it wrote one
        seen.append(line)
        if "-> " in line:
            return seen
    pytest.fail("the explore ended before writing a report:\n" + "".join(seen))


@pytest.mark.parametrize(("jobs", "sig", "code"), [(1, signal.SIGINT, 130),
                                                   (2, signal.SIGINT, 130),
                                                   (2, signal.SIGTERM, 143)],
                         ids=["sigint-one-job", "sigint-two-jobs", "sigterm-two-jobs"])
def test_an_interrupted_explore_keeps_what_it_wrote_and_leaves_nothing_running(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: int, sig: int, code: int):
    proc = start_explore(tmp_path, jobs)
    wait_for_first_report(proc)
    os.kill(proc.pid, sig)  # the harness alone: it must stop its own workers
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "the search was cut short" in err and "written whole" in err
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker of its session is left
    folders = [p for p in tmp_path.rglob("*") if p.is_dir() and p.parent != tmp_path]
    assert folders and not [p for p in tmp_path.rglob(".*")]  # no .tmp-* or .old-*
    for folder in folders:
        assert sorted(f.name for f in folder.iterdir()) == [
            "report.md", "test_repro.py", "trace.json"]
        assert main(["replay", str(folder / "trace.json")]) == 1  # it still shows the bug
    # The CI summary is written too, with what was found before the interrupt.
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["state"], summary["exit_code"]) == (
        "interrupted" if code == 130 else "terminated", code)
    [target] = summary["targets"]
    assert target["state"] == "searching" and target["runs"] >= 1
    assert {Path(f["report"]) for f in target["failures"]} == {p.resolve() for p in folders}
    # A failure still shrinking when the interrupt came keeps its report as detected.
    for f in target["failures"]:
        said = "**Not shrunk:**" in Path(f["report"], "report.md").read_text()
        assert said == (not f["shrunk"])
        # ... and its trace says so, for a report written again from it alone
        meta = json.loads(Path(f["report"], "trace.json").read_text())["meta"]
        assert meta.get("shrunk", True) == f["shrunk"]
    capsys.readouterr()


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_a_worker_killed_mid_search_is_reported_at_once_and_the_other_job_goes_on(
        tmp_path: Path):
    proc = start_explore(tmp_path, jobs=2)
    wait_for_first_report(proc)
    workers = children(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[0], signal.SIGKILL)
    assert proc.stderr is not None
    for line in proc.stderr:  # the harness notices at once, not at the end of the budget
        if "stopped" in line:
            assert "the other jobs go on" in line
            break
    assert proc.poll() is None  # still searching with the other job
    assert len(children(proc.pid)) >= 1
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert [p for p in tmp_path.rglob("trace.json")]  # what was found before is kept


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_exhaust_keeps_the_reports_it_wrote_and_says_it_did_not_finish(
        tmp_path: Path, sig: int, code: int):
    # #748's trace fails in its ordinary run on its own release (0.11.3), so a report is
    # written before the walk reaches the thousands of orderings with two deviations.
    trace = ROOT / "reports" / "uvicorn-0.11.3-h11" / "receive-hang-e2bf0886" / "trace.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.tools.cli", "exhaust", str(trace), "--deviations", "2",
         "--reports", str(tmp_path)],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True)
    wait_for_first_report(proc)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "not every ordering ran" in err and "written whole" in err
    assert "verdict" not in out
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no worker of its session is left
    written = [p.parent for p in tmp_path.rglob("trace.json")]
    assert written and all(f"{p}/" in err for p in written)
    assert not [p for p in tmp_path.rglob(".*")]


def test_an_explore_interrupted_before_any_report_leaves_no_reports_folder(tmp_path: Path):
    reports = tmp_path / "new" / "reports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.tools.cli", "explore", "--server", "reference",
         "--budget", "300", "--reports", str(reports)],
        cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        start_new_session=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # the search has begun: its folders are made
        if line.startswith("exploring "):
            break
    assert reports.is_dir()
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "0 report(s) were written whole" in err
    assert list(tmp_path.iterdir()) == []  # the folders it made, empty, are gone
