"""The pytest plugin, as a server's own test suite meets it: a temporary project with no
race code of its own, run by pytest with the plugin loaded from its entry point."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.targets.registry import TargetSpec, target_specs
from harness.tools import race
from harness.tools.cli import main as harness_main
from harness.tools.race import RaceTarget, explore_family
from tests.programs import tighten_search_budget

pytest_plugins = ["pytester"]

REPORTS = Path(__file__).resolve().parent.parent / "reports"
# hypercorn 0.18.0 (installed beside the harness) queues http.disconnect once: still open.
ONCE = REPORTS / "hypercorn-0.18.0-h11" / "lost-disconnect-58bdd83d" / "trace.json"

OWN_TESTS = """
def test_the_projects_own_test():
    assert 1 + 1 == 2
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # In this process the harness is imported already, too early for pytest to rewrite
    # its asserts as it does for a plugin's package: that warning is not the test's.
    return pytester.runpytest("-W", "ignore::pytest.PytestAssertRewriteWarning", *args)


def test_without_a_race_server_the_plugin_adds_nothing(pytester: pytest.Pytester):
    pytester.makepyfile(test_own=OWN_TESTS)
    result = run(pytester, "--co", "-q")
    assert result.ret == 0
    assert [line for line in result.outlines if "::" in line] == \
        ["test_own.py::test_the_projects_own_test"]


def test_importing_the_plugin_imports_nothing_else_of_the_harness():
    """Every pytest in the environment loads the plugin: it must cost nothing until used."""
    code = ("import sys, harness.tools.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.startswith(('harness', 'servers', "
            "'hypothesis'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['harness', 'harness.tools', 'harness.tools.pytest_plugin']"


def test_a_race_server_adds_a_passing_race_item_and_the_race_fixture_explores(
        pytester: pytest.Pytester):
    pytester.makepyfile(test_own=OWN_TESTS + """
def test_keepalive_stays_clean(race):
    race.explore("keepalive", budget=1)
""")
    result = run(pytester, "--race-server", "reference", "--race-budget", "1",
                                "--race-family", "keepalive", "--strict-markers", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["race: reference-*-h11; families keepalive; 1s each, seed 0",
                                 "test_own.py::test_keepalive_stays_clean?reference-*? PASSED*",
                                 "race::keepalive?reference-*-h11? PASSED*"])


def test_minus_m_not_race_deselects_every_race_test(pytester: pytest.Pytester):
    pytester.makepyfile(test_own=OWN_TESTS + """
def test_replays(race):
    race.replay("missing.json")
""")
    result = run(pytester, "--race-server", "reference", "--race-family", "keepalive",
                                "--strict-markers", "-m", "not race")
    result.assert_outcomes(passed=1, deselected=2)


def test_a_race_fixture_test_skips_without_a_race_server(pytester: pytest.Pytester):
    pytester.makepyfile(test_own="""
def test_replays(race):
    race.replay("missing.json")
""")
    result = run(pytester, "-rs")
    result.assert_outcomes(skipped=1)
    # placed at the test, not at the plugin's line that said it
    result.stdout.fnmatch_lines(["SKIPPED ?1? test_own.py:*: no --race-server given*"])


def test_replay_fails_while_the_trace_fails_and_passes_where_it_passes(
        pytester: pytest.Pytester):
    shutil.copy(ONCE, pytester.path / "once.json")
    pytester.makepyfile(test_regression="""
def test_disconnect_is_delivered_again(race):
    race.replay("once.json")
""")
    # Naming the file runs just its tests: no family is searched.
    failing = run(pytester, "test_regression.py", "--race-server", "hypercorn")
    failing.assert_outcomes(failed=1)
    failing.stdout.fnmatch_lines([
        "once.json fails on hypercorn (h11):",
        "- lost-disconnect: receive() after the response: blocked at *",
        "replay: harness replay once.json --server hypercorn --http h11"])
    passing = run(pytester, "test_regression.py", "--race-server", "reference")
    passing.assert_outcomes(passed=1)


def test_exhaust_fails_on_any_nearby_ordering_that_fails_and_passes_where_none_does(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]):
    shutil.copy(ONCE, pytester.path / "once.json")
    pytester.makepyfile(test_regression="""
def test_disconnect_is_delivered_again_in_every_nearby_ordering(race):
    race.exhaust("once.json", deviations=1)

def test_a_bad_count_is_refused(race):
    race.exhaust("once.json", deviations=-1)

def test_a_short_walk(race):
    race.exhaust("once.json", deviations=1, max_runs=5)

def test_a_bad_limit_is_refused(race):
    race.exhaust("once.json", max_runs=-5)

def test_a_zero_limit_is_refused(race):
    race.exhaust("once.json", max_runs=0)
""")
    failing = run(pytester, "test_regression.py", "--race-server", "hypercorn")
    failing.assert_outcomes(failed=5)  # (the short walk too: its failure is in ordering 1)
    failing.stdout.fnmatch_lines([
        "* distinct failure* on hypercorn (h11) in the * orderings of the scenario of "
        "once.json within 1 deviation of the ordinary run:",
        "- lost-disconnect: receive() after the response: blocked at * (ordering *, *)",
        "*replay: harness replay .harness-cache/race-failures/hypercorn-*-once-nearby-*.json "
        "--server hypercorn --http h11",
        "*race.exhaust's deviations -1: the most deviations from the ordinary run to try "
        "must be a whole number, 0 or more (for example 1)",
        "*race.exhaust's max_runs -5: the most orderings to run must be a whole number, "
        "1 or more (for example 100000)",
        "*race.exhaust's max_runs 0: the most orderings to run must be a whole number, "
        "1 or more (for example 100000)"])
    [command] = re.findall(r"replay: harness replay (\S+) ", failing.stdout.str())[:1]
    # kept the moment the walk met it, and said: an interrupted walk loses nothing
    failing.stdout.fnmatch_lines([f"race.exhaust on hypercorn (h11): kept lost-disconnect: "
                                  f"harness replay {command} --server hypercorn --http h11"])
    monkeypatch.chdir(pytester.path)
    assert harness_main(["replay", command]) == 1  # the kept trace fails again
    capsys.readouterr()
    passing = run(pytester, "test_regression.py", "--race-server", "reference",
                  "-k", "nearby")
    passing.assert_outcomes(passed=1)
    # The walk's progress reaches the terminal past the test's capture, a level at a time.
    passing.stdout.fnmatch_lines(["race.exhaust on reference (h11): 1 ordering with 0 "
                                  "deviations to run",
                                  "race.exhaust on reference (h11): * orderings with 1 "
                                  "deviation to run"])
    cut = run(pytester, "test_regression.py", "--race-server", "reference", "-k", "short",
              "-W", "default::UserWarning")  # not an error, as this project's own tests have
    cut.assert_outcomes(passed=1)  # (not counting warnings: assert-rewrite ones may come too)
    cut.stdout.fnmatch_lines(["*RunLimitWarning: only the first 5 orderings of the scenario "
                              "of once.json within 1 deviations ran on reference (h11) "
                              "(the run limit; race.exhaust's max_runs raises it): the rest "
                              "were not checked"])


def test_a_bad_option_is_a_usage_error_naming_it(pytester: pytest.Pytester):
    for args, message in [(["--race-server", "nginx"], "*unknown server 'nginx'*"),
                          (["--race-server", "reference", "--race-family", "chaos"],
                           "*unknown scenario family 'chaos' (--race-family); known: *"),
                          (["--race-server", "reference", "--race-budget", "0"],
                           "*--race-budget must be a positive, finite number of seconds, got 0*")]:
        result = run(pytester, *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([message])


def test_an_unexplained_finding_fails_with_a_replay_command_that_reproduces_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """With its known bugs forgotten, what hypercorn 0.18.0 fails is unexplained: the
    message names each failure and a replay command whose trace file exists and fails
    again, from the project's root."""
    real = race.judge

    def forgetful(found: Any, entry: Any, *args: Any, **kwargs: Any) -> Any:
        return real(found, dataclasses.replace(entry, known_bugs=()), *args, **kwargs)

    monkeypatch.setattr(race, "judge", forgetful)
    target = RaceTarget("hypercorn", target_specs("hypercorn", "h11")[0])
    said: list[str] = []

    def say(line: str) -> None:  # a kept trace is on disk when said: an interrupt loses none
        said.append(line)
        if line.startswith("kept "):
            assert (tmp_path / shlex.split(line.split(": ", 1)[1])[2]).is_file(), line

    outcome = explore_family(target, "keepalive", 1, 0, tmp_path, max_runs=100, say=say)
    assert outcome.failure is not None
    assert "no known bug of hypercorn" in outcome.failure
    lines = outcome.failure.splitlines()
    kinds = [line[2:].split(":")[0] for line in lines if line.startswith("- ")]
    # While it searched, it said what it met and when (pytest shows nothing until the end).
    met = [line for line in said if line.startswith("met ")]
    assert len(met) == len(kinds) and all(re.fullmatch(r"met [a-z-]+: .+ at run \d+; shrinking",
                                                       line) for line in met), said
    assert sorted(line.split(":")[0] for line in said if line.startswith("found ")) == \
        sorted(f"found {kind}" for kind in kinds)
    commands = [line.split("replay: ", 1)[1] for line in lines if "replay: " in line]
    assert kinds and len(commands) == len(kinds)
    assert sorted(line.split(": ", 1)[1] for line in said if line.startswith("kept ")) == \
        sorted(commands)
    assert all(c.startswith("harness replay .harness-cache/race-failures/") for c in commands)
    monkeypatch.chdir(tmp_path)  # the paths are the project root's
    for kind, command in zip(kinds, commands, strict=True):
        capsys.readouterr()
        assert harness_main(shlex.split(command)[1:]) == 1
        assert f"verdict: {kind}: " in capsys.readouterr().out


def test_runs_a_race_item_could_not_judge_are_a_warning_with_the_first_kept_for_replay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Not a failure of the server, and not silence either."""
    tighten_search_budget(monkeypatch, 40)  # a real run, really cut
    target = RaceTarget("reference", target_specs("reference", "h11")[0])
    outcome = explore_family(target, "pipelining", 1, 0, tmp_path, max_runs=30)
    assert outcome.failure is None and outcome.unchecked is not None
    assert re.match(r"\d+ of 30 runs in family 'pipelining' on reference \(h11\) could not be "
                    "judged", outcome.unchecked), outcome.unchecked
    command = outcome.unchecked.split("The first: ", 1)[1]
    kept = "harness replay .harness-cache/race-failures/reference-0.1.0-h11-pipelining-unjudged"
    assert command.startswith(kept)
    assert (tmp_path / shlex.split(command)[2]).is_file()


def test_a_family_search_says_how_far_it_is_every_few_seconds():
    ticks = iter(range(0, 100, 3))  # each look at the clock, 3 s later
    said: list[str] = []
    heard = race.search_lines(said.append, "budget 20 s", clock=lambda: next(ticks), every=5)
    for runs in (10, 20, 30, 40):
        heard("runs", {"runs": runs, "searched": runs / 4, "shrinking": 0.0})
    assert said == ["20 runs in 5 s (budget 20 s)", "40 runs in 10 s (budget 20 s)"]


def test_a_family_search_says_a_failure_it_met_from_the_store_was_stored_not_shrinking():
    said: list[str] = []
    heard = race.search_lines(said.append, "budget 20 s")
    met = {"kind": "receive-hang", "signature": "blocked at x.py:1", "runs": 1}
    heard("shrinking", {**met, "stored": "trace"})
    heard("shrinking", {**met, "runs": 9})
    assert said == ["met receive-hang: blocked at x.py:1 at run 1, stored by an earlier search",
                    "met receive-hang: blocked at x.py:1 at run 9; shrinking"]


def test_a_race_tests_own_mistakes_are_said_as_such(pytester: pytest.Pytester):
    """A bad argument is the test's ValueError, not a harness fault from inside the
    worker; a bad trace file fails in the harness's one line, not a traceback through
    its trace loader."""
    pytester.makefile(".json", bad='{"x": 1}')
    pytester.makepyfile(test_own="""
def test_a_text_seed(race):
    race.explore("keepalive", budget=1, seed="x")

def test_a_text_budget(race):
    race.explore("keepalive", budget="abc")

def test_a_missing_trace(race):
    race.replay("nothere.json")

def test_not_a_trace(race):
    race.exhaust("bad.json")
""")
    result = run(pytester, "test_own.py", "--race-server", "reference")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(["race: reference-*-h11 (the race fixture's tests; no family "
                                 "is searched)"])
    result.stdout.fnmatch_lines(["*ValueError: race.explore's seed must be a whole number, "
                                 "got 'x'",
                                 "*ValueError: its budget must be a positive, finite number "
                                 "of seconds, got 'abc'",
                                 "harness: error: */nothere.json: cannot read trace (No such "
                                 "file or directory)",
                                 "harness: error: */bad.json: not a usable trace: format is "
                                 "None, expected 'asgi-race-harness/trace'"], consecutive=False)
    assert "HarnessFault" not in result.stdout.str()
    assert "trace.py" not in result.stdout.str()


def test_a_target_that_cannot_be_installed_stops_the_session_as_a_usage_error(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    from harness.targets.install import EnvError

    def missing(*args: Any, **kwargs: Any) -> Any:
        raise EnvError("uvicorn==99.0 does not exist on PyPI; list releases with 'pip index "
                       "versions uvicorn'")

    monkeypatch.setattr(race, "explore_family", missing)
    pytester.makepyfile(test_own=OWN_TESTS)
    result = run(pytester, "--race-server", "reference", "--race-family", "keepalive",
                 "--race-family", "pipelining")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # not "tests failed"
    result.stdout.fnmatch_lines(["*harness: error: uvicorn==99.0 does not exist on PyPI*"])
    assert "failed" not in result.stdout.str().splitlines()[-1]


def test_a_failed_race_item_is_rerun_by_last_failed_and_by_its_node_id(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """As a project's own test is: `--lf`, and the node id its summary line printed, from
    the root or (as `../race::...`) from a folder below it. The search is faked: what is
    tested is which items run."""
    ran: list[str] = []

    def fake(target: RaceTarget, family: str, *args: Any, **kwargs: Any) -> race.Outcome:
        ran.append(family)
        return race.Outcome(failure="boom" if family == "pipelining" else None)

    monkeypatch.setattr(race, "explore_family", fake)
    pytester.makepyfile(test_own=OWN_TESTS)
    (pytester.path / "sub").mkdir()
    label = target_specs("reference", "h11")[0].label
    failed = f"race::pipelining[{label}]"
    options = ("--race-server", "reference", "--race-http", "h11",
               "--race-family", "keepalive", "--race-family", "pipelining")
    first = run(pytester, *options)
    first.assert_outcomes(passed=2, failed=1)
    first.stdout.fnmatch_lines([f"FAILED {failed} - Failed: boom"])
    for args in (["--lf"], [failed], ["race::pipelining"]):
        ran.clear()
        again = run(pytester, *options, *args)
        again.assert_outcomes(failed=1)
        assert ran == ["pipelining"], args
    ran.clear()
    monkeypatch.chdir(pytester.path / "sub")
    below = run(pytester, *options, f"../{failed}", "../test_own.py")
    below.assert_outcomes(passed=1, failed=1)
    assert ran == ["pipelining"]
    for args, message in [([*options, "race::pipelinin"],
                           "ERROR: race::pipelinin names no race item of this session; "
                           f"they are: race::keepalive[{label}], {failed}"),
                          ([failed], f"ERROR: {failed} is a race item: name its target with "
                           "--race-server")]:
        wrong = run(pytester, *args)
        assert wrong.ret == pytest.ExitCode.USAGE_ERROR
        wrong.stderr.fnmatch_lines([message])


def test_a_working_copys_replay_command_names_it_from_the_root(tmp_path: Path):
    """The user may name it from a folder below the root (`--race-server=../uvicorn`);
    the trace's path in the command is the root's, so the copy's must be too."""
    root, copy = tmp_path / "project", tmp_path / "project" / "uvicorn"
    copy.mkdir(parents=True)
    spec = dataclasses.replace(target_specs("reference", "h11")[0], source=str(copy))
    command = race.replay_command(RaceTarget("../uvicorn", spec), "t.json", root)
    assert command == "harness replay t.json --server ./uvicorn --http h11"
    assert race.replay_command(RaceTarget(".", dataclasses.replace(spec, source=str(root))),
                               "t.json", root).endswith("--server . --http h11")
    at = dataclasses.replace(spec, source=f"git+{copy}@{'a' * 40}")
    assert f"--server git+{copy}@{'a' * 40} " in \
        race.replay_command(RaceTarget("git+../uvicorn@HEAD", at), "t.json", root)


def test_target_errors_name_the_plugins_own_options(pytester: pytest.Pytester):
    (pytester.path / "uvicorn-main").mkdir()
    for args, message in [(["--race-server=./nowhere"], "ERROR: --race-server ./nowhere: no "
                            "such folder; give the path of a working copy*"),
                          (["--race-server", "reference", "--race-http", "h2"],
                           "ERROR: reference has no HTTP implementation 'h2'*"),
                          (["--race-server", "uvicorn-main"], "ERROR: unknown server "
                           "'uvicorn-main', and a folder of that name is here: to run that "
                           "working copy, write its path as ./uvicorn-main")]:
        result = run(pytester, *args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([message])


def test_a_known_bug_not_met_says_a_longer_budget_may_meet_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A search that met nothing (faked here: no runs at all) fails, naming the bug it
    should have found and what to raise."""
    monkeypatch.setattr(race, "run", lambda spec, op, heard: {
        "findings": [], "target": {"version": "0.11.3"}, "runs": 3})
    target = RaceTarget("uvicorn==0.11.3", TargetSpec("uvicorn", "0.11.3", "h11"))
    outcome = explore_family(target, "pipelining", 0.05, 0, tmp_path)
    assert outcome.failure is not None
    lines = outcome.failure.splitlines()
    assert lines[0].startswith("the harness no longer finds uvicorn#748: ")
    assert lines[0].endswith(" on uvicorn==0.11.3 (h11) in 3 runs (0.05s)")
    assert "(a search of 0.05s may be too short to meet it: a longer budget, --race-budget " \
           "or race.explore's budget=, searches more runs)" in lines
    assert lines[-1] == "it found nothing"


def test_a_working_copy_newer_than_a_fix_hears_which_fixed_bug_it_brought_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """#748 met again on uvicorn 0.54.1's working copy (the search faked: what is tested
    is what the failure says)."""
    hang = REPORTS / "uvicorn-0.11.3-h11" / "receive-hang-e2bf0886" / "trace.json"
    met = {"kind": "receive-hang", "message": "/c1/r1: receive() #1 never returned",
           "signature": "blocked at uvicorn/protocols/http/h11_impl.py:600 in "
                        "RequestResponseCycle.receive",
           "trace": json.loads(hang.read_text())}
    monkeypatch.setattr(race, "run", lambda spec, op, heard: {
        "findings": [met], "target": {"version": "0.54.1"}, "runs": 40})
    copy = tmp_path / "uvicorn"
    spec = TargetSpec("uvicorn", None, "h11", str(copy))
    outcome = explore_family(RaceTarget("./uvicorn", spec), "pipelining", 1, 0, tmp_path)
    assert outcome.failure is not None
    assert "  matches uvicorn#748: request cycles share one wake-up event; receive() hangs, " \
           "fixed upstream in 0.12.3: this code (0.54.1) is newer than the fix: a regression " \
           "of it?" in outcome.failure.splitlines()


def test_progress_lines_start_a_line_of_their_own_under_minus_q(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """-q prints no file name before the status letters, so nothing ended their line."""
    def fake(target: RaceTarget, family: str, *args: Any, say: Any, **kwargs: Any) -> Any:
        say("met something")
        return race.Outcome()

    monkeypatch.setattr(race, "explore_family", fake)
    pytester.makepyfile(test_own=OWN_TESTS)
    result = run(pytester, "-q", "--race-server", "reference", "--race-http", "h11",
                 "--race-family", "keepalive")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([".", "race keepalive on reference (h11): met something",
                                 ".*"], consecutive=True)


def test_a_family_the_release_cannot_run_is_skipped_at_its_item(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(race, "explore_family", lambda *args, **kwargs: race.Outcome(
        unavailable="this release has no Server.shutdown"))
    result = run(pytester, "-rs", "--race-server", "reference", "--race-http", "h11",
                 "--race-family", "shutdown")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED ?1? race::shutdown?reference-*-h11?: this release "
                                 "has no Server.shutdown"])


def test_under_pytest_xdist_an_uninstallable_target_fails_its_items_in_one_line(
        pytester: pytest.Pytester):
    """A server's suite often runs with -n (uvicorn's with -n 8). A worker cannot end the
    session (pytest.exit there is an INTERNALERROR), so a release that does not install
    fails its items with the one line instead, and the session still ends as a usage
    error. (The failing install is faked by a conftest, which each worker loads.)"""
    pytester.makepyfile(test_own=OWN_TESTS)
    options = ("-n", "2", "--race-http", "h11", "--race-budget", "1",
               "--race-family", "keepalive", "--race-family", "pipelining")
    good = run(pytester, *options, "--race-server", "reference")
    good.assert_outcomes(passed=3)
    good.stdout.fnmatch_lines(["2 workers ?3 items?"])
    pytester.makeconftest("""
import harness.tools.race as race
from harness.targets.install import EnvError

def pytest_configure(config):
    def cannot(*args, **kwargs):
        raise EnvError("uvicorn==0.1.0 does not install here (faked)")
    race.explore_family = cannot
""")
    bad = run(pytester, *options, "--race-server", "reference")
    bad.assert_outcomes(passed=1, failed=2)
    assert bad.ret == pytest.ExitCode.USAGE_ERROR  # not "tests failed": the target did not
    bad.stdout.fnmatch_lines(["harness: error: uvicorn==0.1.0 does not install here*"])
    assert "INTERNALERROR" not in bad.stdout.str() + bad.stderr.str()


@pytest.mark.parametrize("workers", [(), ("-n", "2")])
def test_a_release_the_index_does_not_list_stops_the_session_before_any_test(
        pytester: pytest.Pytester, workers: tuple[str, ...]):
    """Not after the project's own tests have run for minutes. (uvicorn==99.0 is asked of
    the real index.)"""
    pytester.makepyfile(test_own=OWN_TESTS)
    bad = run(pytester, *workers, "--race-server", "uvicorn==99.0", "--race-family",
              "keepalive")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    assert "uvicorn==99.0 does not exist on " in bad.stderr.str()
    assert "passed" not in bad.stdout.str() and "test_own" not in bad.stdout.str()
