"""`harness survey`: which releases it explores, how it judges and bisects what it
finds, that a re-run resumes, and that bad input is one line.

Most tests survey "toy", a fake server with a small release history: its explorer
stands where `harness explore` does (it takes explore's command line and writes
explore's summary), finding a bug wherever the history says the release has it,
except where the history says the search misses it; bisect's verdicts come from
the same history. One test surveys the uvicorn installed beside the harness with
the real explore."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from packaging.version import Version

import harness.targets.registry as registry
import harness.tools.cli as cli
import harness.tools.survey as survey
import harness.tools.survey_bisect as survey_bisect
import harness.tools.survey_results as survey_results
from harness.targets.registry import KnownBug, TargetEntry, Unrunnable
from harness.tools.cli import main
from harness.tools.survey_bisect import Bisector
from harness.tools.survey_results import Distinct
from servers.uvicorn_target import TARGET as UVICORN

RELEASES = ["0.9.0", "1.0.0", "1.0.1", "1.0.2", "1.1.0", "1.1.1", "1.1.2", "1.2.0",
            "1.3.0", "1.3.1", "1.4.0"]
OLD_HANG = ("receive-hang", "blocked at toy/cycle.py:{line} in Cycle.receive")
LOST = ("lost-disconnect", "receive() after close: blocked at toy/conn.py:{line}")
# failure -> (first release with it, first release without it, protocols)
HISTORY = {OLD_HANG: ("0.9.0", "1.2.0", ("h11", "httptools")),
           LOST: ("1.1.1", "1.3.1", ("h11",))}
MISSED = {("1.2.0", LOST)}  # the search misses it there; a replay still fails
TOY = TargetEntry(
    name="toy", adapter="tests.test_survey:ToyAdapter", distribution="toy",
    protocols=("h11", "httptools"),
    protocol_modules={"h11": "toy.h11", "httptools": "toy.httptools"},
    known_bugs=(KnownBug("toy#1: cycles share one event", "<1.2", ("h11", "httptools"), "",
                         "receive-hang", "in Cycle.receive", fixed="1.2.0"),),
    unrunnable=(Unrunnable("==1.0.2", "its sdist does not build"),))


class ToyAdapter:
    """Named by the entry; the survey digests its source with the harness's code."""


def has(version: str, failure: tuple[str, str], http: str) -> bool:
    first, fixed, protocols = HISTORY[failure]
    return http in protocols and Version(first) <= Version(version) < Version(fixed)


class ToyExplorer:
    """`harness explore` on toy: writes a trace per failure and explore's --json summary."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.stop_at = stop_at  # the call that is interrupted, as by Ctrl-C
        self.broken: set[str] = set()  # releases that do not install

    def __call__(self, argv: list[str]) -> int:
        args = cli.build_parser().parse_args(["explore", *argv])  # explore's own options
        assert args.no_examples  # a survey searches cold
        version = args.server.partition("==")[2]
        self.calls.append((version, args.http))
        if self.stop_at == len(self.calls):
            Path(args.json).write_text(json.dumps({"state": "interrupted", "targets": []}))
            return 130
        if version in self.broken:
            Path(args.json).write_text(json.dumps({
                "state": "error", "error": f"toy {version} does not install", "targets": []}))
            return 2
        failures = []
        for failure in HISTORY:
            if has(version, failure, args.http) and (version, failure) not in MISSED:
                kind, signature = failure[0], failure[1].format(line=version.replace(".", ""))
                report = Path(args.reports, f"toy-{version}-{args.http}", kind)
                report.mkdir(parents=True, exist_ok=True)
                (report / "trace.json").write_text(json.dumps(
                    {"failure": list(failure), "version": version}))
                failures.append({"kind": kind, "signature": signature, "message": "m",
                                 "report": str(report), "runs_to_find": 3})
        Path(args.json).write_text(json.dumps({
            "state": "completed", "error": None, "targets": [{
                "runs": 40, "seconds_searching": float(args.budget),
                "seconds_shrinking": 1.0, "failures": failures}]}))
        return 1 if failures else 0


def toy_verdict(budget: float) -> survey_bisect.Verdict:
    def verdict(server: str, version: str, http: str, trace: str) -> tuple[bool | None, str]:
        failure = tuple(json.loads(Path(trace).read_text())["failure"])
        fails = has(version, failure, http)  # type: ignore[arg-type]
        return fails, "the trace fails" if fails else "pass"

    return verdict


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> ToyExplorer:
    known = registry.entries()
    monkeypatch.setattr(registry, "entries", lambda: {**known, "toy": TOY})
    monkeypatch.setattr(survey, "list_releases", lambda server: list(RELEASES))
    monkeypatch.setattr(survey_bisect, "replay_verdict", toy_verdict)
    explorer = ToyExplorer()
    monkeypatch.setattr(cli, "explore_command", explorer)
    return explorer


def run_survey(capsys: pytest.CaptureFixture[str], tmp_path: Path,
               *extra: str) -> tuple[int, dict[str, Any], str, str]:
    code = main(["survey", "--server", "toy", "--since", "1.0", "--budget", "3",
                 "--reports", str(tmp_path / "r"), "--json", str(tmp_path / "s.json"),
                 "--markdown", str(tmp_path / "s.md"), *extra])
    out, err = capsys.readouterr()
    assert (tmp_path / "s.json").is_file(), err
    return code, json.loads((tmp_path / "s.json").read_text()), out, err


def test_per_minor_keeps_the_newest_runnable_release_of_each_minor_version():
    index = ["0.1.0", "0.2.0", "0.2.1", "0.2.22", "0.3.0", "0.3.9", "0.3.32", "0.17.0.post1",
             "0.17.6", "0.27.0", "0.27.0.post1", "0.27.1", "0.54.0"]
    chosen, skipped = survey.choose(index, UVICORN, "minor", "0.2")
    assert chosen == ["0.2.22", "0.3.32", "0.17.6", "0.27.1", "0.54.0"]
    assert [v for v, _ in skipped] == ["0.2.0", "0.2.1"]  # the registry's UNRUNNABLE
    assert "README.md" in skipped[0][1]
    every, _ = survey.choose(index, UVICORN, "release", "0.27", "0.27.1")
    assert every == ["0.27.0", "0.27.0.post1", "0.27.1"]


def test_a_survey_judges_each_failure_and_bisects_the_unexplained_one(toy, capsys, tmp_path):
    code, data, out, err = run_survey(capsys, tmp_path, "--bisect")
    assert code == 1, err  # an unexplained failure
    assert data["state"] == "completed" and data["exit_code"] == 1
    explored = [(t["version"], t["http"]) for t in data["targets"]]
    assert explored == [(v, h) for v in ("1.0.1", "1.1.2", "1.2.0", "1.3.1", "1.4.0")
                        for h in ("h11", "httptools")]
    assert sorted(toy.calls) == sorted(explored)
    assert data["skipped"] == [{"version": "1.0.2", "reason": "its sdist does not build"}]
    by_kind = {(f["kind"], f["http"]): f for f in data["failures"]}
    hang = by_kind[("receive-hang", "h11")]
    assert hang["verdict"] == "known" and hang["found_on"] == ["1.0.1", "1.1.2"]
    assert hang["known_bugs"] == [{"name": "toy#1: cycles share one event", "fixed": "1.2.0",
                                   "versions": "<1.2"}]
    assert hang["bisect"] is None  # only unexplained failures are bisected
    lost = by_kind[("lost-disconnect", "h11")]
    assert lost["verdict"] == "unexplained" and lost["found_on"] == ["1.1.2"]
    # 1.0.1 passes, so bisect over 1.0.1..1.1.2 names 1.1.1; 1.2.0 still fails (the
    # search missed it there), 1.3.1 passes, so bisect over 1.1.2..1.3.1 names 1.3.1.
    assert (lost["bisect"]["introduced"], lost["bisect"]["fixed"]) == ("1.1.1", "1.3.1")
    tried = {t["release"]: t["verdict"] for t in lost["bisect"]["tried"]}
    assert tried["1.2.0"] == "fails" and tried["1.0.1"] == "passes"
    assert "1.0.2" not in tried  # unrunnable releases are never tried
    # Each release tried once: the failing end, the walk back, the bisect; the walk
    # forward, then the bisect between the last failing and the first passing release.
    assert [t["release"] for t in lost["bisect"]["tried"]] == [
        "1.1.2", "1.0.1", "1.1.0", "1.1.1", "1.2.0", "1.3.1", "1.3.0"]
    table = (tmp_path / "s.md").read_text()
    assert out == table
    assert "| 1.1.2 | h11 | 40 (3 s) | F1 receive-hang (known: toy#1, fixed in 1.2.0)<br>" \
           "F3 lost-disconnect (unexplained; introduced: in 1.1.1 (1.1.0 passes); fixed: in " \
           "1.3.1 (1.3.0 fails)) |" in table
    assert "| 1.4.0 | httptools | 40 (3 s) | none |" in table
    assert "Not explored (the registry lists them as unrunnable): 1.0.2" in table


def test_bisect_known_bisects_the_failures_known_bugs_explain_too(toy, capsys, tmp_path):
    code, data, out, _ = run_survey(capsys, tmp_path, "--bisect-known", "--http", "httptools")
    assert code == 0  # known failures only: bisecting them changes no verdict
    [hang] = data["failures"]
    assert hang["verdict"] == "known" and hang["found_on"] == ["1.0.1", "1.1.2"]
    assert hang["bisect"]["introduced"] is None and hang["bisect"]["fixed"] == "1.2.0"
    assert "| bisect: at or before 1.0.1 (the oldest surveyed; it fails there) | fixed in " \
           "1.2.0; bisect: in 1.2.0 (1.1.2 fails) |" in out


def test_without_unexplained_failures_a_survey_exits_0(toy, capsys, tmp_path):
    code, data, _, err = run_survey(capsys, tmp_path, "--http", "httptools")
    assert code == 0, err
    assert {f["verdict"] for f in data["failures"]} == {"known"}
    assert {t["http"] for t in data["targets"]} == {"httptools"}


def test_an_interrupted_survey_keeps_what_was_done_and_a_rerun_skips_it(toy, capsys,
                                                                        tmp_path):
    toy.stop_at = 4
    code, data, _, err = run_survey(capsys, tmp_path)
    assert code == 130
    assert data["state"] == "interrupted" and len(data["targets"]) == 3
    assert "the same command goes on from there" in err
    first = list(toy.calls)

    toy.stop_at, toy.calls[:] = None, []
    code, data, _, err = run_survey(capsys, tmp_path)
    assert code == 1 and data["state"] == "completed" and len(data["targets"]) == 10
    assert toy.calls == [c for c in data_order(data) if c not in first[:3]]
    assert err.count("done earlier with the same settings, kept") == 3

    toy.calls[:] = []
    code, again, _, _ = run_survey(capsys, tmp_path)
    assert toy.calls == [] and again["targets"] == data["targets"]

    code, _, _, _ = run_survey(capsys, tmp_path, "--seed", "1")  # other settings: redone
    assert len(toy.calls) == 10


def test_a_release_that_cannot_be_explored_is_named_retried_next_time_and_exits_2(
        toy, capsys, tmp_path):
    toy.broken = {"1.3.1"}
    code, data, out, _ = run_survey(capsys, tmp_path, "--http", "httptools")
    assert code == 2  # no unexplained failure, but the survey is not whole
    [broken] = [t for t in data["targets"] if t["state"] == "error"]
    assert (broken["version"], broken["error"]) == ("1.3.1", "toy 1.3.1 does not install")
    assert "| 1.3.1 | httptools |  | not explored: toy 1.3.1 does not install |" in out

    toy.broken, toy.calls[:] = set(), []
    code, data, _, _ = run_survey(capsys, tmp_path, "--http", "httptools")
    assert code == 0 and toy.calls == [("1.3.1", "httptools")]


def data_order(data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["version"], t["http"]) for t in data["targets"]]


@pytest.mark.parametrize(("args", "message"), [
    (["--server", "nginx"], "unknown server 'nginx'; known servers: reference, uvicorn"),
    (["--server", "uvicorn", "--since", "zero.three"],
     "--since 'zero.three' is not a version; write a release number such as 0.3"),
    (["--server", "uvicorn", "--until", "newest"], "--until 'newest' is not a version"),
    (["--server", "reference"], "--server reference: it has no releases of its own"),
    (["--server", "uvicorn", "--http", "wsproto"], "--http 'wsproto': uvicorn has no such"),
    (["--server", "uvicorn", "--budget", "0"], "--budget must be a positive, finite number"),
    (["--server", "uvicorn", "--family", "chaos"], "unknown scenario family 'chaos'"),
    (["--server", "uvicorn", "--reports", "README.md"], "--reports README.md is a file"),
    (["--server", "uvicorn", "--profile", "weekly"], "--profile 'weekly' is not a search"),
    (["--server", "uvicorn==0.11.3"], "--server uvicorn==0.11.3: a survey explores many "
                                      "releases; give --server uvicorn and bound them with "
                                      "--since and --until"),
    (["--server", "uvicorn", "--json", "s.out", "--markdown", "./s.out"],
     "--json and --markdown both name s.out; give each its own file"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args: list[str], message: str):
    code = main(["survey", *args])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_survey_of_the_installed_uvicorn_runs_explore_and_judges_its_findings(
        monkeypatch, capsys, tmp_path):
    installed = UVICORN.installed_version()
    assert installed is not None
    monkeypatch.setattr(survey, "list_releases", lambda server: ["0.2.1", installed])
    code = main(["survey", "--server", "uvicorn", "--max-runs", "60", "--budget", "60",
                 "--family", "pipelining", "--reports", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    data = json.loads((tmp_path / "r" / "survey.json").read_text())
    assert data_order(data) == [(installed, "h11"), (installed, "httptools")]
    assert all(t["runs"] == 60 and t["state"] == "done" for t in data["targets"])
    unexplained = [f for f in data["failures"] if f["verdict"] == "unexplained"]
    assert code == (1 if unexplained else 0), err
    for f in data["failures"]:
        for trace in f["traces"].values():
            assert json.loads(Path(trace).read_text())["verdict"]["kind"] == f["kind"]
        assert all(b["name"] in {k.name for k in UVICORN.known_bugs} for b in f["known_bugs"])
    assert out == (tmp_path / "r" / "survey.md").read_text()
    assert (tmp_path / "r" / "survey-results" / f"uvicorn-{installed}-h11.json").is_file()


@pytest.mark.slow
def test_the_bisect_of_a_real_trace_names_the_release_that_fixed_it(tmp_path):
    """#748's showcase trace, as if the survey had found it on 0.11.3 alone: the walk
    forward finds 0.12.3 passing and bisect names it (upstream's fix, PR #848); nothing
    surveyed before 0.11.3 passes, so it was there from the oldest surveyed."""
    trace = "reports/uvicorn-0.11.3-h11/receive-hang-e2bf0886/trace.json"
    failure = Distinct("F1", "h11", "receive-hang", "in RequestResponseCycle.receive", [],
                       ["0.11.3"], {"0.11.3": str(Path(__file__).parent.parent / trace)})
    index = ["0.10.9", "0.11.0", "0.11.3", "0.11.7", "0.12.0", "0.12.2", "0.12.3", "0.13.4"]
    lines: list[str] = []
    bisector = Bisector("uvicorn", index, survey_bisect.replay_verdict(10), lines.append,
                        tmp_path, {"settings": 1})
    answer = bisector(failure, ["0.10.9", "0.11.3", "0.12.3", "0.13.4"])
    assert (answer["introduced"], answer["fixed"]) == (None, "0.12.3")
    assert answer["fixed_text"] == "in 0.12.3 (0.12.2 fails)"
    assert answer["introduced_text"].startswith("at or before 0.10.9")
    assert [t["release"] for t in answer["tried"]].count("0.11.3") == 1
    assert bisector(failure, ["0.10.9", "0.11.3", "0.12.3", "0.13.4"]) == answer  # cached
    assert "bisected earlier" in lines[-1]


def test_kept_results_follow_the_search_code_and_not_the_tools(tmp_path, monkeypatch):
    real = Path(survey_results.harness.__file__).parent
    tree = tmp_path / "harness"
    shutil.copytree(real, tree, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(survey_results, "harness",
                        SimpleNamespace(__file__=str(tree / "__init__.py")))
    before = survey_results.code_digest(TOY)
    with (tree / "tools" / "survey_results.py").open("a") as f:
        f.write("# a change to how the table is shown\n")
    assert survey_results.code_digest(TOY) == before
    with (tree / "http" / "app.py").open("a") as f:
        f.write("# a change to the scenario space\n")
    assert survey_results.code_digest(TOY) != before
    assert survey_results.code_digest(dataclasses.replace(TOY, known_bugs=())) \
        == survey_results.code_digest(TOY)  # a known bug only labels what was found


def test_a_known_find_of_this_harness_is_named_as_one_not_as_known_new():
    upstream = survey_results.short_name("uvicorn#748: two request cycles share an event")
    ours = survey_results.short_name(
        "new: hypercorn queues `http.disconnect` once, so a later `receive()` blocks")
    long = survey_results.short_name("new: one two three four five six seven eight nine")
    assert upstream == "uvicorn#748"
    assert ours == 'harness find "hypercorn queues `http.disconnect` once"'
    assert long == 'harness find "one two three four five six seven eight ..."'
