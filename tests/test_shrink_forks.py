"""Shrinking in forked children: the search goes on at once, and finds what it found inline."""

from __future__ import annotations

import os
import select
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase

from harness.decisions import DecisionSource, Recorder
from harness.errors import HarnessFault
from harness.search.claims import Claims
from harness.search.engine import Outcome, Stored, search

PARENT = os.getpid()


@dataclass(frozen=True)
class Kind:
    n: int

    def key(self) -> tuple[str, str]:
        return ("toy", f"kind {self.n}")


def generate(draw: Any) -> int:
    return int(draw(st.integers(0, 100)))


def three_kinds(scenario: int, source: DecisionSource) -> Outcome:
    """Three distinct failures: a deviation in a large scenario, by the scenario mod 3."""
    recorder = Recorder(source)
    picks = [recorder.choose(4, f"step {i}") for i in range(3)]
    failed = scenario >= 50 and any(picks)
    return Outcome([Kind(scenario % 3)] if failed else [], list(recorder.decisions))


def summary(report: Any) -> list[tuple[Any, ...]]:
    return [(f.key, f.scenario, f.decisions, f.runs_to_find) for f in report.found]


def test_a_forked_search_finds_and_shrinks_exactly_what_an_inline_one_does():
    runs = {mode: search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0,
                         shrink=mode) for mode in ("inline", "fork")}
    assert len(runs["inline"].found) == 3
    assert summary(runs["fork"]) == summary(runs["inline"])
    assert runs["fork"].runs == runs["inline"].runs


def test_the_search_detects_the_next_failure_while_the_first_is_still_shrinking():
    # The first failure's shrinking (in a child) cannot finish until the parent has
    # detected the second: a search that waited for shrinking would never get there.
    gate_read, gate_write = os.pipe()
    events: list[tuple[str, Any]] = []

    def execute(scenario: int, source: DecisionSource) -> Outcome:
        # In the child shrinking the first failure (it was detected before the fork).
        if os.getpid() != PARENT and f"kind {scenario % 3}" == events[0][1]:
            ready, _, _ = select.select([gate_read], [], [], 120)
            assert ready, "the parent never detected a second failure"
        return three_kinds(scenario, source)

    def progress(event: str, info: dict[str, Any]) -> None:
        if event != "runs":
            events.append((event, info.get("signature")))
        if event == "shrinking" and sum(e == "shrinking" for e, _ in events) == 2:
            os.write(gate_write, b"go")

    search(generate, execute, budget_seconds=0, max_runs=600, seed=0, shrink="fork",
           progress=progress)
    os.close(gate_read)
    os.close(gate_write)
    first = events[0][1]
    shrinking = [sig for e, sig in events if e == "shrinking"]
    shrunk = [sig for e, sig in events if e == "shrunk"]
    assert shrinking[0] == first and len(shrinking) == 3 and sorted(shrunk) == sorted(shrinking)
    # the second detection came before the first failure was shrunk
    assert events.index(("shrinking", shrinking[1])) < events.index(("shrunk", first))


def test_a_search_over_and_waiting_for_its_shrinking_still_reports_progress(monkeypatch):
    # After the budget, the search waits for its children to shrink: seconds, minutes,
    # with nothing else to say. Its "runs" events go on meanwhile (the status line's), each
    # with the search's own final figures. The child waits for the second of them.
    from harness.search import engine

    monkeypatch.setattr(engine, "RUNS_SECONDS", 0.01)
    gate_read, gate_write = os.pipe()
    events: list[tuple[str, Any]] = []

    def execute(scenario: int, source: DecisionSource) -> Outcome:
        met = [signature for e, signature in events if e == "shrinking"]
        if os.getpid() != PARENT and met and f"kind {scenario % 3}" == met[0]:
            ready, _, _ = select.select([gate_read], [], [], 60)
            assert ready, "the search said nothing while it waited"
        return three_kinds(scenario, source)

    def progress(event: str, info: dict[str, Any]) -> None:
        events.append((event, info.get("signature") or info))
        waiting = [i for e, i in events if e == "runs" and i["runs"] == 200]
        if len(waiting) == 2:
            os.write(gate_write, b"go")

    report = search(generate, execute, budget_seconds=0, max_runs=200, seed=0,
                    shrink="fork", progress=progress)
    os.close(gate_read)
    os.close(gate_write)
    first = next(signature for e, signature in events if e == "shrinking")
    after = [i for e, i in events[:events.index(("shrunk", first))] if e == "runs"
             and i["runs"] == 200][1:]
    assert after and all(i["searched"] == report.seconds for i in after)


def test_a_harness_fault_while_a_child_shrinks_is_raised_by_the_search():
    def execute(scenario: int, source: DecisionSource) -> Outcome:
        if os.getpid() != PARENT and getattr(source, "strict", False):  # confirming
            raise HarnessFault("the simulated loop broke while shrinking")
        return three_kinds(scenario, source)

    with pytest.raises(HarnessFault, match="broke while shrinking"):
        search(generate, execute, budget_seconds=0, max_runs=600, seed=0, shrink="fork")


def test_an_unknown_shrink_mode_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown shrink mode 'thread'.*inline"):
        search(generate, three_kinds, max_runs=1, shrink="thread")


SEARCH_THAT_SHRINKS_FOREVER = """
import os, signal, sys
from hypothesis import strategies as st
from hypothesis.database import InMemoryExampleDatabase
from harness.decisions import Recorder
from harness.search.engine import Outcome, Stored, search

PARENT = os.getpid()

class Found:
    def key(self):
        return ("toy", "always")

def execute(scenario, source):
    recorder = Recorder(source)
    picks = [recorder.choose(4, "step") for _ in range(3)]
    if os.getpid() != PARENT:  # the shrinking child: say so, then never finish
        print(os.getpid(), flush=True)
        signal.pause()
    return Outcome([Found()] if any(picks) else [], list(recorder.decisions))

search(lambda draw: draw(st.integers(0, 9)), execute, budget_seconds=0, max_runs=100,
       shrink="fork")
"""


def test_a_child_shrinking_dies_with_its_search():
    # An interrupted explore stops its worker with SIGTERM, which runs no cleanup: the
    # child must not go on shrinking for nobody. It holds the write end of `alive`, so
    # reading `alive` to its end waits exactly until the child is gone.
    import signal
    import subprocess
    import sys

    alive_read, alive_write = os.pipe()
    with subprocess.Popen([sys.executable, "-c", SEARCH_THAT_SHRINKS_FOREVER],
                          stdout=subprocess.PIPE, text=True, pass_fds=(alive_write,)) as proc:
        os.close(alive_write)
        try:
            assert proc.stdout is not None
            child = int(proc.stdout.readline())
            assert child != proc.pid
            proc.send_signal(signal.SIGTERM)
            proc.wait()
            ready, _, _ = select.select([alive_read], [], [], 120)
            assert ready and os.read(alive_read, 1) == b"", "the child outlived its search"
        finally:
            proc.kill()
            os.close(alive_read)


class Unrebuildable(Exception):
    def __init__(self, what: str, where: int) -> None:  # pickles, but does not unpickle
        super().__init__(f"{what} at {where}")


def test_an_error_that_cannot_cross_the_pipe_arrives_as_a_harness_fault_with_its_text():
    def execute(scenario: int, source: DecisionSource) -> Outcome:
        if os.getpid() != PARENT and getattr(source, "strict", False):
            raise Unrebuildable("the replay broke", 7)
        return three_kinds(scenario, source)

    with pytest.raises(HarnessFault, match="Unrebuildable: the replay broke at 7"):
        search(generate, execute, budget_seconds=0, max_runs=600, seed=0, shrink="fork")


def test_an_interrupt_that_comes_while_the_search_forks_is_not_lost():
    # Python prints and drops an exception raised inside its at-fork callbacks (logging
    # releases its lock in one): a Ctrl-C landing there let the explore run on.
    import signal

    armed = [True]

    def interrupt_once() -> None:
        if armed:
            armed.clear()
            signal.raise_signal(signal.SIGINT)

    os.register_at_fork(after_in_parent=interrupt_once)
    with pytest.raises(KeyboardInterrupt):
        search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0, shrink="fork")
    assert not armed


def test_searches_sharing_claims_shrink_each_failure_once(tmp_path):
    # Two parallel jobs (here: the same seed, so both meet every failure): the first to
    # claim a failure shrinks it; the other reports it as detected and goes on.
    claims = Claims(tmp_path)
    first = search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0,
                   shrink="fork", claims=claims)
    events: list[tuple[str, Any]] = []
    detected: list[tuple[str, str]] = []
    second = search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0,
                    shrink="fork", claims=claims,
                    progress=lambda e, i: events.append((e, i.get("signature"))),
                    on_found=lambda found: detected.append(found.key))
    alone = search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0,
                   shrink="fork")
    assert summary(first) == summary(alone) and len(first.found) == 3
    assert second.found == [] and second.runs == alone.runs  # the same runs, none shrunk
    assert sorted(detected) == sorted(f.key for f in alone.found)  # reported, as detected
    assert [e for e, _ in events if e != "runs"] == ["shrinking elsewhere"] * 3


def test_a_job_that_stops_on_an_error_lets_go_of_what_it_had_not_shrunk(tmp_path):
    # The first job's shrinking of one failure breaks (a harness fault in its child),
    # which stops it. What it claimed and did not shrink goes back, so a job that
    # meets the failure afterwards shrinks it: every failure is shrunk by one job.
    claims = Claims(tmp_path)
    broken = ["kind 1"]

    def execute(scenario: int, source: DecisionSource) -> Outcome:
        if os.getpid() != PARENT and f"kind {scenario % 3}" in broken:
            raise HarnessFault("the model broke while shrinking")
        return three_kinds(scenario, source)

    shrunk: dict[str, list[tuple[str, str]]] = {"first": [], "second": []}
    with pytest.raises(HarnessFault, match="the model broke"):
        search(generate, execute, budget_seconds=0, max_runs=600, seed=0, shrink="fork",
               claims=claims, on_found=lambda f: f.shrunk and shrunk["first"].append(f.key))
    broken.clear()
    second = search(generate, execute, budget_seconds=0, max_runs=600, seed=0, shrink="fork",
                    claims=claims,
                    on_found=lambda f: f.shrunk and shrunk["second"].append(f.key))
    assert ("toy", "kind 1") in shrunk["second"]
    assert sorted(shrunk["first"] + shrunk["second"]) == [("toy", f"kind {n}") for n in range(3)]
    assert sorted(f.key for f in second.found) == sorted(shrunk["second"])


def test_a_failure_another_job_let_go_is_shrunk_when_met_again(tmp_path):
    # Met while another job held it (reported as detected, not shrunk); that job then
    # stopped and let it go; met again, it is shrunk here, and not reported twice.
    claims = Claims(tmp_path)
    alone = search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0)
    first = alone.found[0].key
    assert claims(first)  # the other job's claim
    events: list[tuple[str, Any]] = []

    def progress(event: str, info: dict[str, Any]) -> None:
        if event != "runs":
            events.append((event, info.get("signature")))
        if event == "shrinking elsewhere":
            claims.release(first)  # the other job stopped

    detected: list[tuple[str, str]] = []
    report = search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0,
                    shrink="fork", claims=claims, progress=progress,
                    on_found=lambda f: None if f.shrunk else detected.append(f.key))
    assert sorted(f.key for f in report.found) == sorted(f.key for f in alone.found)
    assert events[0] == ("shrinking elsewhere", first[1])
    assert ("shrinking", first[1]) in events and ("shrunk", first[1]) in events
    assert [e for e, _ in events].count("shrinking elsewhere") == 1
    assert sorted(detected) == sorted(f.key for f in alone.found)  # each reported once


def test_a_claim_is_won_once_per_failure_across_processes(tmp_path):
    key = ("receive-hang", "blocked at impl.py:12")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # another job's process
        os.write(write, b"1" if Claims(tmp_path)(key) else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert not Claims(tmp_path)(key)
    assert Claims(tmp_path)(("receive-hang", "blocked at impl.py:13"))
    # No folder to claim in: shrink it (twice at worst), never not at all.
    assert Claims(tmp_path / "gone")(key)


def test_searches_sharing_claims_retry_each_stored_example_once(tmp_path):
    alone = search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0)
    stored = [Stored(f"toy-{i}", f.scenario, f.decisions) for i, f in enumerate(alone.found)]
    claims = Claims(tmp_path)
    retried: dict[str, list[Any]] = {"first": [], "second": []}
    for job in retried:
        search(generate, three_kinds, budget_seconds=0, max_runs=20, seed=1, stored=stored,
               claims=claims, progress=lambda e, i, job=job: retried[job].append(i.get("name"))
               if e == "stored" else None)
    assert retried == {"first": ["toy-0", "toy-1", "toy-2"], "second": []}


def test_searches_sharing_claims_reuse_the_example_database_once(tmp_path):
    database = InMemoryExampleDatabase()
    search(generate, three_kinds, budget_seconds=0, max_runs=600, seed=0,
           database=database, database_key=b"toy")  # its shrunk examples are kept there
    claims = Claims(tmp_path)
    sources: list[set[str]] = [set(), set()]  # of each failure met, shrunk there or not
    for job in (0, 1):
        search(generate, three_kinds, budget_seconds=0, max_runs=50, seed=1,
               database=database, database_key=b"toy", claims=claims,
               on_found=lambda found, job=job: sources[job].add(found.source))
    assert "examples" in sources[0] and "examples" not in sources[1], sources
