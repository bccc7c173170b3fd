"""The examples store: a failure found once is retried first the next time, even after
the code under test changed; budgets stop a search between two runs.

Most tests drive the engine with a toy target (plain callables) and a fake clock that
advances one second per run, so they are fast and never sleep; one goes through the
runner on the installed uvicorn, as `harness explore` and the pytest scenarios do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from harness.decisions import DecisionSource, Recorder
from harness.errors import InputError
from harness.search.engine import Found, Outcome, SearchReport, Stored, search
from harness.search.examples import ExampleStore, root_from_env
from harness.search.profiles import PROFILES, profile
from harness.targets.registry import target_specs
from harness.targets.runner import examples_root, run

KEY = b"strategy=hypothesis"


@dataclass(frozen=True)
class ToyFailure:
    kind: str = "toy"
    signature: str = "a deviation in a large scenario"

    def key(self) -> tuple[str, str]:
        return (self.kind, self.signature)


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def generate(draw: Any) -> int:
    return int(draw(st.integers(0, 100)))


def toy(options: int = 4, fails: bool = True, clock: FakeClock | None = None) -> Any:
    """Three choices of `options` each; it fails on a large scenario with any deviation.
    Another `options` is a code change: the trace's questions no longer match."""
    def execute(scenario: int, source: DecisionSource) -> Outcome:
        if clock is not None:
            clock.t += 1.0
        recorder = Recorder(source)
        picks = [recorder.choose(options, f"step {i}") for i in range(3)]
        failed = fails and scenario >= 50 and any(picks)
        return Outcome([ToyFailure()] if failed else [], list(recorder.decisions))

    return execute


def toy_search(db: Any, execute: Any = None, stored: list[Stored[int]] | None = None,
               events: list[tuple[str, dict[str, Any]]] | None = None,
               **kw: Any) -> SearchReport[int]:
    return search(generate, execute or toy(), budget_seconds=0, max_runs=kw.pop("max_runs", 400),
                  seed=0, max_found=1, database=db, database_key=KEY, stored=stored or [],
                  progress=lambda e, i: (events if events is not None else []).append((e, i)),
                  **kw)


def stored_from(found: Found[int], forgotten: list[str]) -> Stored[int]:
    return Stored("toy", found.scenario, found.decisions, lambda: forgotten.append("toy"))


def test_a_second_search_retries_the_stored_failure_first_and_finds_it_at_run_1(tmp_path):
    db = DirectoryBasedExampleDatabase(tmp_path)
    [first] = toy_search(db).found
    assert first.source == "search" and first.runs_to_find > 1
    forgotten: list[str] = []
    again = toy_search(db, stored=[stored_from(first, forgotten)])
    [second] = again.found
    assert (second.source, second.runs_to_find, again.runs) == ("trace", 1, 1)
    assert second.decisions == first.decisions and forgotten == []


@pytest.mark.parametrize("layer", ["trace", "examples"])
def test_a_stored_failure_met_again_is_handed_over_once_as_shrunk_not_as_detected(
        tmp_path, layer: str):
    # It was shrunk before it was stored: one report, not a detected one and then the
    # same again "shrunk" in no time; its "shrinking" event says where it came from.
    db = DirectoryBasedExampleDatabase(tmp_path)
    [first] = toy_search(db).found
    stored = [stored_from(first, [])] if layer == "trace" else []
    handed: list[Found[int]] = []
    events: list[tuple[str, dict[str, Any]]] = []
    toy_search(db, stored=stored, events=events, on_found=handed.append)
    assert [(f.source, f.shrunk) for f in handed] == [(layer, True)]
    [shrinking] = [i for e, i in events if e == "shrinking"]
    assert shrinking["stored"] == layer
    # The run that met it, as runs_to_find says: Hypothesis replays all it kept first.
    assert shrinking["at"] == handed[0].runs_to_find


def test_after_a_code_change_the_trace_is_dropped_and_the_hypothesis_examples_find_it(
        tmp_path):
    db = DirectoryBasedExampleDatabase(tmp_path)
    [first] = toy_search(db).found
    forgotten: list[str] = []
    events: list[tuple[str, dict[str, Any]]] = []
    changed = toy(options=5)  # the run asks its questions with another option count
    [found] = toy_search(db, changed, [stored_from(first, forgotten)], events).found
    assert forgotten == ["toy"]
    assert ("stored", "no longer applies") in [(e, i.get("state")) for e, i in events]
    # Run 1 replayed the trace (and found it diverged); run 2 the stored example.
    assert found.source == "examples" and found.runs_to_find == 2
    assert all(d.n == 5 for d in found.decisions)  # recorded afresh on the changed code


def test_a_stored_failure_that_passes_now_is_dropped_from_both_layers(tmp_path):
    db = DirectoryBasedExampleDatabase(tmp_path)
    [first] = toy_search(db).found
    assert list(db.fetch(KEY))
    forgotten: list[str] = []
    fixed = toy(fails=False)
    report = toy_search(db, fixed, [stored_from(first, forgotten)], max_runs=50)
    assert report.found == [] and forgotten == ["toy"]
    assert list(db.fetch(KEY)) == []  # Hypothesis deleted what no longer fails


def test_the_examples_of_one_strategy_or_target_never_replay_on_another(tmp_path):
    db = DirectoryBasedExampleDatabase(tmp_path)
    toy_search(db)
    assert list(db.fetch(KEY)) and not list(db.fetch(b"strategy=random"))
    a = ExampleStore.for_target(tmp_path, {"server": "s", "version": "1", "http": "h11"},
                                {"timeout": [5]}, ("flow",))
    b = ExampleStore.for_target(tmp_path, {"server": "s", "version": "2", "http": "h11"},
                                {"timeout": [5]}, ("flow",))
    c = ExampleStore.for_target(tmp_path, {"server": "s", "version": "1", "http": "h11"},
                                {"timeout": [5, 1]}, ("flow",))
    wc = ExampleStore.for_target(tmp_path, {"server": "s", "version": "1", "http": "h11",
                                            "source": "/src/s", "key": "digest-1"},
                                 {"timeout": [5]}, ("flow",))
    edited = ExampleStore.for_target(tmp_path, {"server": "s", "version": "1", "http": "h11",
                                                "source": "/src/s", "key": "digest-2"},
                                     {"timeout": [5]}, ("flow",))
    commits = [ExampleStore.for_target(tmp_path, {"server": "s", "version": "1",
                                                  "http": "h11", "source": f"git+/r@{c}"},
                                       {"timeout": [5]}, ("flow",)) for c in ("ab12", "cd34")]
    assert len({a.folder, b.folder, c.folder, wc.folder, commits[0].folder}) == 5
    assert wc == edited and commits[0] == commits[1]  # an edit, another commit: same store
    assert wc.folder.name.startswith("s-1+wc-h11-")
    assert a == ExampleStore.for_target(tmp_path, {"server": "s", "version": "1",
                                                   "http": "h11"}, {"timeout": [5]}, ("flow",))


def test_the_budget_stops_the_search_between_two_runs_and_saves_nothing(tmp_path):
    clock = FakeClock()
    db = DirectoryBasedExampleDatabase(tmp_path)
    report = search(generate, toy(fails=False, clock=clock), budget_seconds=5.5, seed=0,
                    database=db, database_key=KEY, now=clock)
    assert report.runs == 6
    assert report.seconds == 6.0
    assert list(tmp_path.rglob("*")) == []  # nothing failed: nothing stored


def test_shrinking_pauses_the_budget_and_stops_at_the_profile_limit():
    clock = FakeClock()
    quick = PROFILES["ci"]  # shrink_seconds 10
    report = search(generate, toy(clock=clock), budget_seconds=30, seed=0, max_found=1,
                    profile=quick, now=clock)
    [found] = report.found
    assert found.seconds_to_shrink == report.shrink_seconds
    assert quick.shrink_seconds <= report.shrink_seconds <= quick.shrink_seconds + 2
    assert report.seconds == found.seconds_to_find  # the search clock stood still meanwhile
    assert found.failure.key() == ToyFailure().key()  # confirmed by strict replay


def test_the_engine_reports_runs_every_ten_runs_and_brackets_each_shrink():
    events: list[tuple[str, dict[str, Any]]] = []
    search(generate, toy(fails=False), budget_seconds=0, max_runs=100, seed=0,
           progress=lambda e, i: events.append((e, i)), now=lambda: 0.0)
    assert [i["runs"] for e, i in events if e == "runs"] == list(range(10, 101, 10))
    events.clear()
    search(generate, toy(), budget_seconds=0, max_runs=400, seed=0, max_found=1,
           progress=lambda e, i: events.append((e, i)))
    names = [e for e, _ in events if e != "runs"]
    assert names == ["shrinking", "shrunk", "found"]


def test_profiles_are_chosen_by_name_or_environment(monkeypatch):
    assert profile("nightly").budget > profile("ci").budget
    monkeypatch.setenv("HARNESS_PROFILE", "ci")
    assert profile().name == "ci" and profile("nightly").name == "nightly"
    monkeypatch.setenv("HARNESS_PROFILE", "weekly")
    with pytest.raises(InputError, match="HARNESS_PROFILE 'weekly' is not a search profile; "
                                         "use one of default, ci, nightly"):
        profile()
    monkeypatch.setenv("HARNESS_PROFILE", "")  # empty is unset, as for any variable
    assert profile().name == "default"
    with pytest.raises(InputError, match="--profile '' is not a search profile"):
        profile("")


def test_the_store_is_found_from_the_request_or_the_environment(monkeypatch, tmp_path):
    assert examples_root({"examples": None}) is None
    assert examples_root({"examples": str(tmp_path)}) == tmp_path
    monkeypatch.setenv("HARNESS_EXAMPLES", "off")
    assert examples_root({}) is None
    monkeypatch.setenv("HARNESS_EXAMPLES", str(tmp_path / "x"))
    assert examples_root({}) == tmp_path / "x"
    monkeypatch.delenv("HARNESS_EXAMPLES")
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    assert root_from_env(Path("/d")) == Path("/d")
    assert examples_root({}) == tmp_path / "cache" / "examples"


def test_an_explore_through_the_runner_retries_what_the_last_one_found_at_run_1(
        monkeypatch, tmp_path):
    """What `harness explore` and the pytest scenarios share: the runner's explore op."""
    monkeypatch.setenv("HARNESS_EXAMPLES", str(tmp_path))
    spec = target_specs("uvicorn", "httptools")[0]
    request = {"op": "explore", "families": ["pipelining"], "budget": 0, "max_runs": 1500,
               "seed": 1, "max_found": 1}

    def explore(**extra: Any) -> dict[str, Any]:
        result = run(spec, {**request, **extra}, lambda e, i: None)
        [finding] = result["findings"]
        return finding

    cold = explore()
    warm = explore()
    assert cold["source"] == "search" and cold["runs_to_find"] > 1
    assert (warm["source"], warm["runs_to_find"]) == ("trace", 1)
    assert (warm["kind"], warm["signature"]) == (cold["kind"], cold["signature"])
    # Turned off, the search is as cold as the first: the store never steers it.
    off = explore(examples=None)
    assert (off["source"], off["runs_to_find"]) == ("search", cold["runs_to_find"])
