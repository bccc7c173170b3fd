"""The search engine: find failures, then shrink each toward an ordinary run.

Like Hypothesis's ConjectureRunner it takes plain callables and knows nothing
of HTTP or pytest:

    generate(draw) -> X            draws a scenario with `draw(strategy)`
    execute(X, source) -> Outcome  runs it, every choice from `source`

`Outcome.failures` are objects with `.key()`; `Outcome.decisions` is what the
run recorded; `Outcome.unjudged` says why a run could not be judged at all (its step
budget ran out while it was still under way): the search counts such runs, hands the
first to `on_unjudged` and goes on.

A run's choices are drawn at random through Hypothesis's strategies
(random_data.py), one sequence for the scenario and then the run; strategies differ
in how a run makes its decisions:

- hypothesis: each decision is a choice of the same sequence (HypothesisSource);
- random:     one choice seeds a RandomSource, which makes them all;
- pct:        likewise with a PCTSource (a few deviations at random points).

A search goes in three steps, the first two only with an examples store
(harness/search/examples.py):

1. stored failures: each stored (scenario, decisions) is replayed strictly, one run
   each. One that still fails is reported at once (it was shrunk when stored); one
   that passes or no longer replays is dropped from the store;
2. Hypothesis's example database: one round that only replays the stored choice
   sequences (Phase.reuse), which reach their failures even where the code under
   test changed under a trace;
3. random runs, seeded by the search's seed, until the budget is spent.

A failure is handed to `on_found` the moment it is detected, its run replayed
strictly first, so an interrupt while it shrinks loses nothing. Then Hypothesis
replays the detecting run's choices and shrinks scenario and decisions together
(the shrunk sequence goes to the database for step 2), a greedy pass resets each
remaining deviation to 0 where the failure survives, and the result is replayed
strictly before it is reported (README, Rule 2): a replay that does not fail
again is a harness bug and raises.

Time: the budget counts searching only, and shrinking has its own limit per failure
(the profile's shrink_seconds); the report gives both times. With `shrink="fork"`
(harness/search/forks.py) a failure the search detects is shrunk by a forked child
while the search goes on, and the search waits for its children only at the end;
inline, the search's clock pauses while a failure is shrunk. Either way the runs
are the same. The budget and the run limit are checked before every run.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
import unittest
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase, InMemoryExampleDatabase, choices_to_bytes

from harness.decisions import (
    Decision,
    DecisionSource,
    PCTSource,
    RandomSource,
    ReplaySource,
    TraceDivergence,
)
from harness.decisions.hypothesis_source import HypothesisSource
from harness.search import forks
from harness.search.claims import Claims
from harness.search.profiles import PROFILES, STRATEGIES, Profile
from harness.search.random_data import RandomData

SHRINK_MODES = ("inline", "fork")
SOURCES = ("search", "trace", "examples", "exhaustive")  # where a finding came from
X = TypeVar("X")
RUNS_EVERY = 10  # a "runs" progress event every this many runs...
RUNS_SECONDS = 0.5  # ...or this many seconds, whichever comes first
REUSE_LIMIT = 100_000


class HasKey(Protocol):
    def key(self) -> tuple[str, str]: ...


@dataclass
class Outcome:
    failures: list[Any]
    decisions: list[Decision]
    unjudged: str | None = None  # why no verdict could be given (then failures is empty)


@dataclass
class Found(Generic[X]):
    key: tuple[str, str]
    failure: Any
    scenario: X
    decisions: list[Decision]
    runs_to_find: int
    seconds_to_find: float
    seconds_to_shrink: float
    source: str = "search"  # one of SOURCES
    # From the search's start until this failure was kept (shrunk, confirmed, handed to
    # on_found): what a user waits for its report, whatever else the search met first.
    seconds_to_report: float = 0.0
    # False: the run that detected it, confirmed but not yet shrunk (see `search`).
    shrunk: bool = True


@dataclass
class Stored(Generic[X]):
    """A failure an earlier search confirmed, to replay before searching."""

    name: str
    scenario: X
    decisions: list[Decision]
    forget: Callable[[], None] = lambda: None  # it passes or no longer replays


@dataclass
class SearchReport(Generic[X]):
    runs: int = 0
    seconds: float = 0.0  # searching, shrinking excluded
    shrink_seconds: float = 0.0
    found: list[Found[X]] = field(default_factory=list)
    cpu_seconds: float = 0.0  # this process's CPU time while searching (not its children's)
    unjudged: int = 0  # runs counted in `runs` that could not be judged (Outcome.unjudged)

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0


class ReplayMismatch(AssertionError):
    """A failure did not fail again on strict replay of its run: a harness bug."""


class _Interesting(Exception):
    pass


class _Stop(KeyboardInterrupt):
    """Ends a Hypothesis run between two examples (the budget or a limit is spent).

    A KeyboardInterrupt because that is what Hypothesis's engine passes through
    without recording anything: an example cut short this way is neither a failure
    nor saved to the database. It never leaves this module."""


Progress = Callable[[str, dict[str, Any]], None]


def _no_progress(event: str, info: dict[str, Any]) -> None:
    pass


class _Clock:
    """Search time (shrinking excluded) against the budget, runs against the limit."""

    def __init__(self, report: SearchReport[Any], budget: float, max_runs: int | None,
                 progress: Progress, now: Callable[[], float]) -> None:
        self.report, self.budget, self.max_runs = report, budget, max_runs
        self.progress, self.now = progress, now
        self.start = now()
        self.shrink_began: float | None = None
        self.paused = 0.0  # shrinking done inline, while the search waited
        self.last_tick = (0, self.start)

    def searched(self) -> float:
        paused = self.now() - self.shrink_began if self.shrink_began is not None else 0.0
        return self.now() - self.start - self.paused - paused

    def spent(self) -> bool:
        over_time = self.budget > 0 and self.searched() >= self.budget
        over_runs = self.max_runs is not None and self.report.runs >= self.max_runs
        return over_time or over_runs

    def shrinking(self, key: tuple[str, str], here: bool = True, source: str = "search",
                  at: int | None = None) -> None:
        """A failure was met, at run `at`: its detection is confirmed, then shrunk here or
        (not `here`) by the parallel job that claimed it first; the clock is shrinking
        meanwhile. One from the store (`source` "trace" or "examples") was shrunk when it
        was stored."""
        self.shrink_began = self.now()
        self.progress("shrinking" if here else "shrinking elsewhere",
                      {"kind": key[0], "signature": key[1], "runs": self.report.runs,
                       # (the runs so far; the examples' replay meets several, then says)
                       "at": self.report.runs if at is None else at,
                       **({} if source == "search" else {"stored": source})})

    def shrunk(self, key: tuple[str, str]) -> float:
        assert self.shrink_began is not None
        seconds = self.now() - self.shrink_began
        self.report.shrink_seconds += seconds
        self.paused += seconds
        self.shrink_began = None
        self.progress("shrunk", {"kind": key[0], "signature": key[1], "seconds": seconds})
        return seconds

    def handed_over(self) -> None:
        """The failure went to a child to shrink: this search's clock runs on."""
        self.shrink_began = None

    def shrink_deadline(self, limit: float) -> float:
        assert self.shrink_began is not None
        return self.shrink_began + limit

    def ran(self) -> None:
        self.report.runs += 1
        runs, when = self.last_tick
        now = self.now()
        if self.report.runs - runs >= RUNS_EVERY or now - when >= RUNS_SECONDS:
            self.last_tick = (self.report.runs, now)
            self.progress("runs", {"runs": self.report.runs, "searched": self.searched(),
                                   "shrinking": self.report.shrink_seconds})


@dataclass
class _Search(Generic[X]):
    """What every step of one search shares."""

    generate: Callable[[Callable[[Any], Any]], X]
    execute: Callable[[X, DecisionSource], Outcome]
    strategy: str
    profile: Profile
    clock: _Clock
    seen: set[tuple[str, str]]
    accept: Callable[[Any], bool] | None
    forks: forks.Forks | None = None  # shrink="fork": children shrink what runs detect
    claims: Claims | None = None  # see search()
    held: set[tuple[str, str]] = field(default_factory=set)  # claimed here, not yet shrunk
    elsewhere: set[tuple[str, str]] = field(default_factory=set)  # another job's to shrink
    collect: Callable[[bool], object] = lambda block: None  # keeps what children have shrunk
    announce: Callable[[Found[X]], None] = lambda found: None  # detected, not yet shrunk
    on_unjudged: Callable[[X, list[Decision], str], None] = lambda x, d, why: None

    def judged(self, scenario: X, outcome: Outcome) -> bool:
        """False for a run that could not be judged: counted, the first handed on."""
        if outcome.unjudged is None:
            return True
        report = self.clock.report
        report.unjudged += 1
        if report.unjudged == 1:
            self.on_unjudged(scenario, outcome.decisions, outcome.unjudged)
        return False

    def claim(self, work: tuple[str, ...]) -> bool:
        return self.claims is None or self.claims(work)

    def new(self, failures: list[Any]) -> list[Any]:
        """Failures not yet met, and those another job claimed but let go (it stopped)."""
        out = []
        for f in failures:
            key = f.key()
            if key in self.seen or (self.accept is not None and not self.accept(f)):
                continue
            if key not in self.elsewhere or self.take(key):
                out.append(f)
        return out

    def take(self, key: tuple[str, str]) -> bool:
        if key in self.held:
            return True
        if not self.claim(key):
            return False
        self.held.add(key)
        return True

    def let_go(self) -> None:
        """The search stopped on an error: what it claimed and did not shrink goes back,
        so another job shrinks it when it meets it again."""
        if self.claims is not None:
            for key in self.held:
                self.claims.release(key)
        self.held.clear()

    def source(self, data: Any) -> DecisionSource:
        if self.strategy == "hypothesis":
            return HypothesisSource(data)
        run_seed = data.draw(st.integers(0, 2**32 - 1))
        return RandomSource(run_seed) if self.strategy == "random" else PCTSource(run_seed)

    def detected(self, key: tuple[str, str], scenario: X, decisions: list[Decision],
                 found_at: tuple[int, float], source: str) -> None:
        """Hand over the failure as first met, confirmed by strict replay, before any
        shrinking: an interrupt while it shrinks (here or in a child) loses nothing."""
        failure = confirm(self.execute, scenario, decisions, key, "run that detected it")
        self.announce(Found(key, failure, scenario, decisions, found_at[0], found_at[1],
                            0.0, source, shrunk=False))

    def met(self, key: tuple[str, str], scenario: X, decisions: list[Decision],
            found_at: tuple[int, float], source: str) -> bool:
        """A new failure: report it as detected; True if this search is to shrink it, False
        if another job claimed it first (this search then only looks for others)."""
        again = key in self.elsewhere  # met before, and reported: its claimer let it go
        mine = self.take(key)
        self.clock.shrinking(key, here=mine, source=source, at=found_at[0])
        # A stored failure was shrunk before it was stored: reported once, when `finish`
        # has confirmed it (a few runs), not first as detected and again as shrunk.
        if not again and not (mine and source != "search"):
            self.detected(key, scenario, decisions, found_at, source)
        if mine:
            self.elsewhere.discard(key)
        else:
            self.elsewhere.add(key)
            self.clock.handed_over()
        return mine

    def finish(self, key: tuple[str, str], scenario: X, decisions: list[Decision],
               found_at: tuple[int, float], source: str) -> Found[X]:
        """Zero what deviations it can, confirm by strict replay; the clock is shrinking."""
        deadline = self.clock.shrink_deadline(self.profile.shrink_seconds)
        decisions = _zero_deviations(self.execute, scenario, decisions, key,
                                     self.profile.zero_attempts, deadline, self.clock.now)
        failure = confirm(self.execute, scenario, decisions, key)
        shrink_seconds = self.clock.shrunk(key)
        return Found(key, failure, scenario, decisions, found_at[0], found_at[1],
                     shrink_seconds, source)


def search(
    generate: Callable[[Callable[[Any], Any]], X],
    execute: Callable[[X, DecisionSource], Outcome],
    *,
    strategy: str = "hypothesis",
    budget_seconds: float = 60.0,
    max_runs: int | None = None,
    seed: int = 0,
    known: frozenset[tuple[str, str]] = frozenset(),
    max_found: int | None = None,
    accept: Callable[[Any], bool] | None = None,
    progress: Progress = _no_progress,
    on_found: Callable[[Found[X]], None] = lambda found: None,
    profile: Profile = PROFILES["default"],
    stored: Sequence[Stored[X]] = (),
    database: ExampleDatabase | None = None,
    database_key: bytes = b"",
    now: Callable[[], float] = time.monotonic,
    shrink: str = "inline",
    claims: Claims | None = None,
    on_unjudged: Callable[[X, list[Decision], str], None] = lambda x, d, why: None,
) -> SearchReport[X]:
    """Search until the budget is spent (or `max_found` distinct failures).

    `accept`, if given, limits which failures count: the others are ignored,
    which is how a benchmark measures the time to one particular bug. `on_found` is
    called twice with each distinct failure, so a caller can keep it whatever happens
    to the rest of the search: the moment it is detected and confirmed, as the run that
    met it (`shrunk` False), and again once shrunk and confirmed. The report holds the
    shrunk ones. `stored` and `database` (under `database_key`) are the examples
    store's two layers; `now` is the clock budgets are measured by (a test's fake
    clock). `shrink` is "inline" or "fork" (where the platform forks; else inline).
    `claims`, which parallel jobs share (harness/search/claims.py), says which work is
    this search's, so each piece is done by one of them: a failure it meets to shrink
    (its key), a stored example to retry, the database to reuse. If the search stops on
    an error, the failures it claimed and did not shrink are let go for the others.
    `on_unjudged` gets the first run that could not be judged (scenario, decisions, why);
    the report counts them all."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown search strategy {strategy!r}; use one of {STRATEGIES}")
    if shrink not in SHRINK_MODES:
        raise ValueError(f"unknown shrink mode {shrink!r}; use one of {SHRINK_MODES}")
    if budget_seconds <= 0 and max_runs is None:
        raise ValueError("the search needs a budget: budget_seconds > 0 or max_runs")
    report: SearchReport[X] = SearchReport()
    clock = _Clock(report, budget_seconds, max_runs, progress, now)
    children = forks.Forks() if shrink == "fork" and forks.available() else None
    state = _Search(generate, execute, strategy, profile, clock, set(known), accept, children,
                    claims)

    def enough() -> bool:
        detected = len(report.found) + (len(children.shrinking) if children else 0)
        return clock.spent() or (max_found is not None and detected >= max_found)

    def announce(found: Found[X]) -> None:
        found.seconds_to_report = now() - clock.start
        on_found(found)

    def keep(found: Found[X]) -> None:
        found.seconds_to_report = now() - clock.start
        state.seen.add(found.key)
        state.held.discard(found.key)
        report.found.append(found)
        on_found(found)
        progress("found", {"kind": found.key[0], "signature": found.key[1],
                           "runs": report.runs, "distinct": len(report.found),
                           "source": found.source})

    def collect(block: bool, timeout: float | None = None) -> bool:
        assert children is not None
        answers = children.done(block, timeout)
        for child, found in answers:
            report.shrink_seconds += found.seconds_to_shrink
            progress("shrunk", {"kind": child.key[0], "signature": child.key[1],
                                "seconds": found.seconds_to_shrink})
            keep(found)
        return bool(answers)

    if children is not None:
        state.collect = collect
    state.announce = announce
    state.on_unjudged = on_unjudged
    cpu_start = time.process_time()
    try:
        _searching(state, stored, database, database_key, seed, enough, keep)
        report.seconds = clock.searched()
        report.cpu_seconds = time.process_time() - cpu_start
        while children is not None and children.shrinking:
            if not collect(True, RUNS_SECONDS):  # the search is over: progress says so
                progress("runs", {"runs": report.runs, "searched": report.seconds,
                                  "shrinking": report.shrink_seconds})
    except BaseException:
        state.let_go()
        raise
    finally:
        if children is not None:
            children.close()
    report.found.sort(key=lambda f: f.runs_to_find)
    return report


def _searching(state: _Search[X], stored: Sequence[Stored[X]],
               database: ExampleDatabase | None, database_key: bytes, seed: int,
               enough: Callable[[], bool], keep: Callable[[Found[X]], None]) -> None:
    """The three steps; children still shrinking are waited for by the caller."""
    for example in stored:
        if enough():
            break
        if not state.claim(("stored example", example.name)):
            continue  # another job retries it
        found = _replay_stored(state, example)
        if found is not None:
            keep(found)
    if database is not None and not enough() and state.claim(("example database", "")):
        for found in _reuse(state, database, database_key, seed):
            keep(found)
            if enough():
                break
    _generate(state, seed, database, database_key, enough, keep)


def _generate(state: _Search[X], seed: int, database: ExampleDatabase | None,
              database_key: bytes, enough: Callable[[], bool],
              keep: Callable[[Found[X]], None]) -> None:
    """Step 3: runs drawn at random (random_data.py) until the budget is spent; each new
    failure is handed over as detected, then shrunk by Hypothesis here or in a child."""
    rng = random.Random(seed)
    clock, children = state.clock, state.forks
    while not enough():
        state.collect(False)
        data = RandomData(rng)
        scenario = state.generate(data.draw)
        outcome = state.execute(scenario, state.source(data))
        clock.ran()
        if not state.judged(scenario, outcome):
            continue
        new = state.new(outcome.failures)
        if not new:
            continue
        key = new[0].key()
        found_at = (clock.report.runs, clock.searched())
        if not state.met(key, scenario, outcome.decisions, found_at, "search"):
            continue
        state.seen.add(key)  # shrunk here or by a child: the search looks for others
        if children is not None:
            if children.full():
                state.collect(True)  # wait for the oldest: a crowd would starve the search
            if not children.fork(key, found_at):
                clock.handed_over()
                continue
            clock.progress = _no_progress  # the child: its parent reports for it
            clock.shrink_began = clock.now()  # its turn came: shrinking starts now
            try:
                found = _shrink(state, key, data.choices, found_at, seed, database,
                                database_key)
            except BaseException as exc:
                children.fail(exc)
            children.deliver(found)
        keep(_shrink(state, key, data.choices, found_at, seed, database, database_key))


def round_seed(seed: int, round_index: int) -> int:
    """The seed of one of a search's Hypothesis runs (the shrinking of the failure that
    run `round_index` detected). The first is the search's own seed; the others are
    mixed from both, as `seed + round_index` would make nearby seeds share runs."""
    if round_index == 0:
        return seed
    digest = hashlib.sha256(f"{seed}/{round_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _replay_stored(state: _Search[X], example: Stored[X]) -> Found[X] | None:
    source = ReplaySource(example.decisions, strict=True)
    try:
        outcome = state.execute(example.scenario, source)
        if source.unused():
            raise TraceDivergence(f"the run ended after {source.index} of "
                                  f"{len(example.decisions)} decisions")
    except TraceDivergence as exc:
        state.clock.ran()
        state.clock.progress("stored", {"name": example.name, "state": "no longer applies",
                                        "why": str(exc)})
        example.forget()
        return None
    state.clock.ran()
    if not state.judged(example.scenario, outcome):
        return None  # kept: it may fail again where it can be judged
    if not outcome.failures:
        state.clock.progress("stored", {"name": example.name, "state": "passes now"})
        example.forget()
        return None
    new = state.new(outcome.failures)
    if not new:  # it fails still, but with what this search does not count
        return None
    key = new[0].key()
    found_at = (state.clock.report.runs, state.clock.searched())
    state.clock.progress("stored", {"name": example.name, "state": "fails",
                                    "kind": key[0], "signature": key[1]})
    if not state.met(key, example.scenario, outcome.decisions, found_at, "trace"):
        return None
    return state.finish(key, example.scenario, outcome.decisions, found_at, "trace")


def _settings(max_examples: int, database: ExampleDatabase | None, phases: list[Phase],
              multiple: bool = False) -> settings:
    return settings(database=database, deadline=None, max_examples=max_examples,
                    verbosity=Verbosity.quiet, suppress_health_check=list(HealthCheck),
                    phases=phases, report_multiple_bugs=multiple)


def _run_hypothesis(test: Any, round_seed: int, database_key: bytes) -> None:
    # The database key is ours, not Hypothesis's digest of this function's source, so it
    # survives edits of the harness. The seed is set as @seed sets it, without the
    # database=None that @seed adds: a seeded round still reads and writes examples.
    test._hypothesis_internal_database_key = database_key
    test._hypothesis_internal_use_seed = round_seed
    # SkipTest: a reuse round whose stored examples all failed to deserialise ran nothing.
    with contextlib.suppress(_Interesting, _Stop, unittest.SkipTest):
        test()


def _reuse(state: _Search[X], database: ExampleDatabase, database_key: bytes,
           round_seed: int) -> Iterator[Found[X]]:
    """Replay every choice sequence the database keeps, once.

    Any failing example raises, so Hypothesis keeps it (even one this search does not
    count, or already found by a stored trace); one that passes now it deletes. Where
    no kept failure fails any more, Hypothesis also replays (and so clears out) the
    larger examples it kept on the way to each while shrinking."""
    if not any(True for _ in database.fetch(database_key)):
        return
    hits: dict[tuple[str, str], tuple[X, list[Decision], tuple[int, float]]] = {}

    # max_examples far above what the store holds: a reuse-only run that reaches it
    # stops before deleting the stale example it has just replayed.
    @_settings(REUSE_LIMIT, database, [Phase.reuse], multiple=True)
    @given(st.data())
    def replay_one(data: Any) -> None:
        if state.clock.spent():
            raise _Stop
        scenario = state.generate(data.draw)
        outcome = state.execute(scenario, state.source(data))
        state.clock.ran()
        if not state.judged(scenario, outcome):
            raise _Interesting()  # kept in the database, as a failure is: not judged
        for failure in state.new(outcome.failures):
            key = failure.key()
            if key not in hits:
                hits[key] = (scenario, outcome.decisions, (state.clock.report.runs,
                                                           state.clock.searched()))
        if outcome.failures:
            raise _Interesting()

    _run_hypothesis(replay_one, round_seed, database_key)
    for key, (scenario, decisions, found_at) in hits.items():
        if state.met(key, scenario, decisions, found_at, "examples"):
            yield state.finish(key, scenario, decisions, found_at, "examples")


def _shrink(state: _Search[X], key: tuple[str, str], choices: list[int | bool],
            found_at: tuple[int, float], seed: int, database: ExampleDatabase | None,
            database_key: bytes) -> Found[X]:
    """Hypothesis replays the detecting run's choices and shrinks scenario and decisions
    together; then `finish`. The choices go in as a secondary example: a primary one that
    replays exactly Hypothesis takes as already shrunk, and stops."""
    clock = state.clock
    deadline = clock.shrink_deadline(state.profile.shrink_seconds)
    scratch = InMemoryExampleDatabase()
    scratch.save(database_key + b".secondary", choices_to_bytes(choices))
    last: tuple[X, list[Decision], bytes] | None = None

    @_settings(REUSE_LIMIT, scratch, [Phase.reuse, Phase.shrink])
    @given(st.data())
    def run_one(data: Any) -> None:
        nonlocal last
        if last is not None and clock.now() >= deadline:
            raise _Stop  # shrunk as far as the limit allows: report the smallest so far
        scenario = state.generate(_draw_of(data))
        outcome = state.execute(scenario, state.source(data))
        if any(f.key() == key for f in outcome.failures):
            last = (scenario, outcome.decisions, choices_to_bytes(data.conjecture_data.choices))
            raise _Interesting()

    _run_hypothesis(run_one, round_seed(seed, found_at[0]), database_key)
    if last is None:
        raise ReplayMismatch(f"harness bug: Hypothesis's replay of the run that detected "
                             f"{key} did not fail again")
    if database is not None:  # for the next search's step 2
        database.save(database_key, last[2])
    return state.finish(key, last[0], last[1], found_at, "search")


def _draw_of(data: Any) -> Callable[[Any], Any]:
    """The test case's own draw, past `st.data()`'s wrapper (see HypothesisSource)."""
    draw: Callable[[Any], Any] = getattr(data, "conjecture_data", data).draw
    return draw


def _zero_deviations(
    execute: Callable[[X, DecisionSource], Outcome],
    scenario: X,
    decisions: list[Decision],
    target: tuple[str, str],
    max_attempts: int = 200,
    deadline: float | None = None,
    now: Callable[[], float] = time.monotonic,
) -> list[Decision]:
    """Greedy: make each deviation ordinary where the failure survives without it."""
    attempts = 0
    changed = True

    def allowed() -> bool:
        return attempts < max_attempts and (deadline is None or now() < deadline)

    while changed and allowed():
        changed = False
        for i in reversed([i for i, d in enumerate(decisions) if d.choice != 0]):
            if i >= len(decisions) or decisions[i].choice == 0 or not allowed():
                continue
            attempts += 1
            trial = list(decisions)
            trial[i] = Decision(trial[i].what, trial[i].n, 0)
            outcome = execute(scenario, ReplaySource(trial, strict=False))
            if any(f.key() == target for f in outcome.failures):
                decisions = outcome.decisions
                changed = True
    return decisions


def confirm(
    execute: Callable[[X, DecisionSource], Outcome],
    scenario: X,
    decisions: list[Decision],
    target: tuple[str, str],
    run: str = "shrunk run",
) -> Any:
    """The failure `target` of a strict replay of `decisions`: a finding is handed out only
    once it replays exactly (README, Rule 2); a ReplayMismatch if it does not."""
    outcome = execute(scenario, ReplaySource(decisions, strict=True))
    for f in outcome.failures:
        if f.key() == target:
            return f
    raise ReplayMismatch(
        f"harness bug: the {run} of {target} did not fail again on strict replay"
    )
