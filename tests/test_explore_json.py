"""`harness explore --json`, `--profile` and `--no-examples`, end to end: the summary a
CI job reads, and a second explore that retries the first one's failures first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from harness.tools.cli import main


def explore(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["explore", *args])
    return code, capsys.readouterr().err


def summary(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert data["format"] == "asgi-race-harness/explore-summary" and data["version"] == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".summary-")]
    return data


def test_a_search_that_finds_nothing_writes_a_completed_summary(capsys, tmp_path: Path):
    out = tmp_path / "ci" / "explore.json"  # its folder is made, like --reports
    code, err = explore(capsys, "--server", "reference", "--family", "keepalive",
                        "--max-runs", "20", "--reports", str(tmp_path / "r"),
                        "--json", str(out), "--profile", "ci")
    assert code == 0, err
    data = summary(out)
    assert (data["state"], data["exit_code"], data["error"]) == ("completed", 0, None)
    assert data["command"]["profile"] == "ci" and data["command"]["examples"] is None
    assert data["command"]["budget"] is None  # bounded by --max-runs alone, not "0.0"
    [target] = data["targets"]
    assert target["server"] == "reference" and target["state"] == "completed"
    assert target["families_left_out"] == {}
    assert target["runs"] == 20 and target["failures"] == []
    assert target["seconds_searching"] > 0 and target["seconds_shrinking"] == 0


def test_the_summary_lists_each_failure_and_a_second_explore_retries_it_first(
        capsys, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("HARNESS_EXAMPLES", str(tmp_path / "examples"))
    args = ["--server", "uvicorn", "--http", "httptools", "--family", "pipelining",
            "--max-runs", "200", "--seed", "1", "--reports", str(tmp_path / "r")]
    code, err = explore(capsys, *args, "--json", str(tmp_path / "cold.json"))
    assert code == 1, err
    cold = summary(tmp_path / "cold.json")
    assert (cold["state"], cold["exit_code"]) == ("completed", 1)
    failures = cold["targets"][0]["failures"]
    assert failures and all(f["source"] == "search" and not f["from_store"] for f in failures)
    for f in failures:
        assert Path(f["report"], "trace.json").is_file()
        assert f["runs_to_find"] >= 1 and f["seconds_to_shrink"] > 0
        assert f["seconds_to_report"] >= f["seconds_to_find"]
        # Written when detected, then replaced by the shrunk one.
        assert f["shrunk"] and "Not shrunk" not in Path(f["report"], "report.md").read_text()
    assert err.count("(not shrunk yet: replaced once it is)") == len(failures)

    code, err = explore(capsys, *args, "--json", str(tmp_path / "warm.json"))
    assert code == 1, err
    warm = summary(tmp_path / "warm.json")["targets"][0]["failures"]
    by_key = {(f["kind"], f["signature"]): f for f in warm}
    assert set(by_key) >= {(f["kind"], f["signature"]) for f in failures}
    # Each stored failure is retried before anything else, one run each.
    retried = sorted(by_key[(f["kind"], f["signature"])]["runs_to_find"] for f in failures)
    assert retried == list(range(1, len(failures) + 1))
    assert all(by_key[(f["kind"], f["signature"])]["source"] == "trace" for f in failures)
    assert "retried stored failure" in err
    # Each written once, as shrunk: it was shrunk before it was stored.
    assert "not shrunk yet" not in err and "shrinking..." not in err
    for f in failures:
        report = Path(by_key[(f["kind"], f["signature"])]["report"])
        assert err.count(f"-> {report}/") == 1
        # Its report does not claim the search needed 1 run to find it.
        text = (report / "report.md").read_text()
        assert "an earlier search found it and stored it, and this one retried it first" \
            in text and "needed 1 run" not in text
        assert json.loads((report / "trace.json").read_text())["meta"]["stored"] == "trace"


def test_no_examples_neither_retries_nor_stores(capsys, monkeypatch, tmp_path: Path):
    store = tmp_path / "examples"
    monkeypatch.setenv("HARNESS_EXAMPLES", str(store))
    code, err = explore(capsys, "--server", "reference", "--family", "keepalive",
                        "--max-runs", "10", "--reports", str(tmp_path / "r"), "--no-examples",
                        "--json", str(tmp_path / "s.json"))
    assert code == 0, err
    assert summary(tmp_path / "s.json")["command"]["examples"] is None
    assert not store.exists() and "examples off" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--profile", "weekly"], "--profile 'weekly' is not a search profile; use one of "
                               "default, ci, nightly"),
     (["--profile", ""], "--profile '' is not a search profile"),
     (["--json", "."], "--json . is a folder; name the file")],
)
def test_a_bad_profile_or_json_path_is_refused_in_one_line(capsys, tmp_path: Path,
                                                          args: list[str], message: str):
    code, err = explore(capsys, "--server", "reference", "--max-runs", "5",
                        "--reports", str(tmp_path / "r"), *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_the_profile_sets_the_default_budget(monkeypatch):
    from harness.tools.cli import _check_explore

    def budget(**given: Any) -> float:
        args = argparse.Namespace(**{"profile": None, "budget": None, "max_runs": None,
                                     "jobs": 1, "family": None, "reports": "reports",
                                     "json": None, **given})
        _check_explore(args)
        return float(args.budget)

    monkeypatch.setenv("HARNESS_PROFILE", "ci")
    assert budget() == 20.0
    assert budget(profile="nightly") == 1800.0
    assert budget(budget=7.0) == 7.0
    assert budget(max_runs=10) == 0.0  # runs alone: no time limit


def test_an_examples_store_that_cannot_be_written_is_an_environment_error(
        capsys, monkeypatch, tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HARNESS_EXAMPLES", str(blocker / "examples"))
    code, err = explore(capsys, "--server", "reference", "--max-runs", "5",
                        "--reports", str(tmp_path / "r"), "--json", str(tmp_path / "s.json"))
    assert code == 2 and "the examples store cannot be written" in err
    assert "HARNESS_EXAMPLES=off" in err and "bug in the harness" not in err
    data = summary(tmp_path / "s.json")
    assert (data["state"], data["exit_code"]) == ("error", 2)
    assert "the examples store cannot be written" in data["error"]


def test_an_interrupt_during_the_install_says_so_in_words_and_in_the_summary(
        capsys, monkeypatch, tmp_path):
    import harness.tools.cli

    def installing(spec: Any, say: Any) -> None:
        say("uv pip install ...")
        raise KeyboardInterrupt  # Ctrl-C while the release installs

    monkeypatch.setattr(harness.tools.cli, "ensure_target_env", installing)
    code, err = explore(capsys, "--server", "reference", "--max-runs", "5",
                        "--reports", str(tmp_path / "r"), "--json", str(tmp_path / "s.json"))
    assert code == 130
    assert "interrupted: the install was cut short" in err, err
    data = summary(tmp_path / "s.json")
    assert data["state"] == "interrupted"
    assert [t["state"] for t in data["targets"]] == ["installing"]


def test_a_family_the_release_cannot_run_is_named_in_the_summary_with_why(
        capsys, tmp_path: Path):
    code, err = explore(capsys, "--server", "uvicorn==0.2.20", "--family", "keepalive",
                        "--family", "shutdown", "--max-runs", "3", "--no-examples",
                        "--reports", str(tmp_path / "r"), "--json", str(tmp_path / "s.json"))
    assert code in (0, 1), err
    [target] = summary(tmp_path / "s.json")["targets"]
    assert target["families_left_out"] == {
        "shutdown": "releases before 0.3.32 shut down inside their run loop (0.2.20 has no "
                    "Server.shutdown to call)"}
    assert "the shutdown family is left out: releases before 0.3.32" in err


def test_a_failure_whose_report_an_interrupt_stopped_has_no_time_to_report():
    from harness.tools.summary import Summary

    class Spec:
        server, version, http = "uvicorn", "0.11.3", "h11"

    made = Summary({})
    made.begin(Spec())
    for kind in ("receive-hang", "lost-disconnect"):
        made.event(0, "finding", {"target": {"version": "0.11.3"}, "kind": kind,
                                  "signature": "s", "seconds_to_report": 0.5, "shrunk": False})
    made.reports({("receive-hang", "s"): Path("/r/receive-hang-1")})  # the other: cut short
    assert [(f["report"], f["seconds_to_report"]) for f in made.targets[0]["failures"]] == [
        ("/r/receive-hang-1", 0.5), (None, None)]
