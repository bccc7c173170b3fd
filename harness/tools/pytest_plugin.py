"""The pytest plugin: the race scenarios in any project's test run.

Installed with the harness (entry point `race_harness` in the `pytest11` group),
so every pytest in that environment loads it; it does nothing, and imports
nothing of the harness, until a target is named:

    pytest --race-server SPEC [--race-http all] [--race-budget 5] [--race-family F]

adds one test item per scenario family and target, `race::FAMILY[TARGET]` (unless
the command line names only test files or their tests, no folder; a race item's node id
selects it, as `--lf` does), each
a search of that family for `--race-budget` seconds, judged against the target's
known upstream bugs (harness/tools/judgement.py): a failure no known bug explains
fails with its replay command; one that only known bugs explain is an expected
failure naming them. Every item carries the `race` marker (`-m "not race"`).

For a project's own regression tests, the `race` fixture runs on each target in
turn: `race.replay("trace.json")` replays a stored trace and fails while it
still fails; `race.exhaust("trace.json", deviations=1)` runs its scenario in every
ordering within one deviation of the ordinary run and fails if any fails;
`race.explore("keepalive", budget=10)` searches one family. Without
a target such tests skip. A conftest.py can name default targets with the
`pytest_race_default_servers(config)` hook (this repository's scenarios/ does).
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from harness.tools.race import Outcome, RaceTarget

class Hooks:
    @pytest.hookspec(firstresult=True)
    def pytest_race_default_servers(self, config: pytest.Config) -> list[str] | None:
        """The servers to run the race scenarios on when no --race-server is given
        (default: none, and the plugin adds nothing)."""
        return None


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(Hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("race", "race scenarios (asgi-race-harness)")
    group.addoption("--race-server", action="append", default=None, metavar="SPEC",
                    help="a target, as `harness explore --server` takes it (repeatable; "
                         "a path as --race-server=PATH): each scenario family is searched "
                         "on it")
    group.addoption("--race-http", default="all", metavar="IMPL",
                    help="the protocol implementation to run (as `harness explore --http` "
                         "takes it) or all (default all)")
    group.addoption("--race-budget", type=float, default=None, metavar="SECONDS",
                    help="seconds of search per family and target (default: the search "
                         "profile's, HARNESS_PROFILE: 5 by default, 2 in ci); shrinking "
                         "each failure found comes on top, often longer than the search")
    group.addoption("--race-seed", type=int, default=0, metavar="N",
                    help="seed of the search (default 0)")
    group.addoption("--race-family", action="append", default=None, metavar="FAMILY",
                    help="a scenario family to search (repeatable; default all)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "race: a race scenario of the asgi-race-harness "
                                       "plugin (a searched family or a replayed trace)")
    picked = _race_ids(config)
    if picked:
        found = options(config)
        if found is None:
            raise pytest.UsageError(f"{picked[0]} is a race item: name its target with "
                                    "--race-server")
        every = [item_id(family, target) for family in found.families
                 for target in found.targets]
        for wanted in picked:
            if not any(_names(wanted, item) for item in every):
                raise pytest.UsageError(f"{wanted} names no race item of this session; "
                                        f"they are: {', '.join(every)}")
        config.stash[_PICKED] = picked


_PICKED = pytest.StashKey[list[str]]()


def _race_ids(config: pytest.Config) -> list[str]:
    """The race items the command line names by node id (`race::keepalive[...]`, as a
    failure's summary line prints them, from the root or, as `../race::...`, from below
    it), taken out of the arguments: they name no file, and pytest would look for one."""
    here, race = config.invocation_params.dir, config.rootpath / "race"
    picked, rest = [], []
    for arg in config.args:
        head, sep, tail = arg.partition("::")
        if not (here / head).exists() and (here / head).resolve() == race.resolve():
            picked.append("race" + sep + tail)
        else:
            rest.append(arg)
    if picked:
        config.args[:] = rest
    return picked


@dataclass(frozen=True)
class Options:
    targets: list[RaceTarget]
    families: list[str]
    budget: float
    seed: int
    root: Path


_OPTIONS = pytest.StashKey["Options | None"]()


def options(config: pytest.Config) -> Options | None:
    """The race run's options, checked once; None when no target is named."""
    if _OPTIONS not in config.stash:
        servers = config.getoption("race_server") or \
            config.hook.pytest_race_default_servers(config=config)
        config.stash[_OPTIONS] = _resolve(config, servers) if servers else None
    return config.stash[_OPTIONS]


def _resolve(config: pytest.Config, servers: list[str]) -> Options:
    from harness.errors import EnvironmentFault, InputError
    from harness.http.families import FAMILIES
    from harness.search.profiles import profile
    from harness.targets.envs import check_published
    from harness.tools.race import check_options, resolve_targets

    families = config.getoption("race_family") or list(FAMILIES)
    budget, seed = config.getoption("race_budget"), int(config.getoption("race_seed"))
    try:
        budget = profile().scenario_budget if budget is None else float(budget)
        check_options(families, budget)
        targets = resolve_targets(servers, str(config.getoption("race_http")))
        # A release the index does not list stops the session now, before the project's
        # own tests have run for minutes, not at the first race item.
        for target in targets:
            check_published(target.spec)
    except (InputError, EnvironmentFault) as exc:
        raise pytest.UsageError(in_plugin_terms(str(exc))) from None
    return Options(targets, list(dict.fromkeys(families)), budget, seed, config.rootpath)


def in_plugin_terms(message: str) -> str:
    """A harness message as a pytest user should read it: the targets' own errors name
    harness's options (--server, --http), which are --race-server and --race-http here."""
    return re.sub(r"(?<![\w-])--(server|http)\b", r"--race-\1", message)


def pytest_report_header(config: pytest.Config) -> list[str]:
    found = options(config)
    if found is None:
        return []
    targets = ", ".join(t.label for t in found.targets)
    if _PICKED not in config.stash and _picked_tests(config):
        return [f"race: {targets} (the race fixture's tests; no family is searched)"]
    return [f"race: {targets}; families {', '.join(found.families)}; {found.budget:g}s each, "
            f"seed {found.seed}"]


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    """The session's own collection gains the race items, beside the project's tests."""
    report = yield
    config = collector.config
    if isinstance(collector, pytest.Session) and report.passed and options(config) \
            and (_PICKED in config.stash or not _picked_tests(config)):
        report.result.append(RaceScenarios.from_parent(collector, name="race", nodeid="race"))
    return report


def _picked_tests(config: pytest.Config) -> bool:
    """The command line names test files or node ids, no folder: run just those (with
    the `race` fixture on each target), not the searches."""
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return False
    here = config.invocation_params.dir
    return not any((here / arg.split("::")[0]).is_dir() for arg in config.args)


class RaceScenarios(pytest.Collector):
    def collect(self) -> list[pytest.Item]:
        found = options(self.config)
        assert found is not None
        # The node id given whole, as a parametrized test's is: pytest 9 keeps a node id's
        # [...] apart, and --lf, which reads the ids back, looks for it there.
        items: list[pytest.Item] = [
            RaceFamily.from_parent(self, name=f"{family}[{target.label}]",
                                   nodeid=item_id(family, target), family=family,
                                   target=target)
            for family in found.families for target in found.targets]
        picked = self.config.stash.get(_PICKED, None)
        return items if picked is None else \
            [item for item in items if any(_names(wanted, item.nodeid) for wanted in picked)]


def item_id(family: str, target: RaceTarget) -> str:
    """A race item's node id: what its summary line prints and the command line selects."""
    return f"race::{family}[{target.label}]"


def _names(wanted: str, nodeid: str) -> bool:
    """Does a node id from the command line name this item's (or its family, or all)?"""
    return nodeid == wanted or nodeid.startswith((f"{wanted}::", f"{wanted}["))


class RaceFamily(pytest.Item):
    """One scenario family searched on one target."""

    def __init__(self, *, family: str, target: RaceTarget, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.family, self.target = family, target
        self.add_marker("race")

    def runtest(self) -> None:
        from harness.errors import EnvironmentFault, InputError
        from harness.tools.race import explore_family

        found = options(self.config)
        assert found is not None
        try:
            outcome = explore_family(self.target, self.family, found.budget, found.seed,
                                     found.root, say=terminal_lines(
                                         self.config, f"race {self.family} on {self.target.spec}"))
        except (InputError, EnvironmentFault) as exc:
            stop_session(self.config, exc)
        conclude(outcome)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        from harness.errors import HarnessError, HarnessFault

        error = excinfo.value
        if isinstance(error, HarnessError) and not isinstance(error, HarnessFault):
            return one_line(error)  # the user's input or this machine: one line
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"race {self.family} on {self.target.spec}"


def stop_session(config: pytest.Config, exc: Exception) -> NoReturn:
    """A release that does not exist, an index out of reach: every race test would fail
    alike, and none of it is the target's failure. A usage error, as a bad option; but a
    pytest-xdist worker cannot end the session (its controller takes that for a crash),
    so there the test fails, with the same one line, and its report tells the controller
    to end the session as a usage error still (exit 1 would say the target failed)."""
    if hasattr(config, "workerinput"):  # how pytest-xdist marks its workers
        raise Unusable(one_line(exc), pytrace=False) from None
    pytest.exit(one_line(exc), returncode=pytest.ExitCode.USAGE_ERROR)


class Unusable(pytest.fail.Exception):  # type: ignore[misc,name-defined]
    """A worker's test failed because its target cannot be used here (stop_session)."""


UNUSABLE = "race_harness_unusable_target"  # the user property such a test's report has


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """In pytest-xdist's controller: a worker's test that stop_session failed makes the
    session a usage error, as it is without xdist."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    failed = reporter.stats.get("failed", []) if reporter is not None else []
    if any(name == UNUSABLE for report in failed for name, _ in report.user_properties):
        session.exitstatus = pytest.ExitCode.USAGE_ERROR


def one_line(exc: Exception) -> str:
    return f"harness: error: {in_plugin_terms(str(exc))}"


def fail_plainly(exc: Exception) -> NoReturn:
    """Fail the test with the harness's line for `exc`, without a traceback."""
    raise pytest.fail.Exception(one_line(exc), pytrace=False) from None


@contextlib.contextmanager
def plain_errors(config: pytest.Config) -> Iterator[None]:
    """A race test's own mistake (a trace file that is missing or is not a trace) fails it
    with the harness's one-line message, not a traceback through the harness; this
    machine's fault (the target cannot be installed) stops the session."""
    from harness.errors import EnvironmentFault, InputError

    try:
        yield
    except EnvironmentFault as exc:
        stop_session(config, exc)
    except InputError as exc:
        fail_plainly(exc)


def terminal_lines(config: pytest.Config, prefix: str) -> Callable[[str], None]:
    """Where a long race check's progress lines go: the terminal, past the test's output
    capture, as pytest's live logging writes its records (a search or a walk runs for
    a minute or more, and pytest shows nothing of a test until it ends)."""
    def say(line: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return  # (-p no:terminal)
        with (capture.global_and_fixture_disabled() if capture is not None
              else contextlib.nullcontext()):
            # write_line starts a new line only after a file name (not after -q's dots);
            # the width is private to pytest, so no width means nothing to end.
            width = getattr(reporter, "_width_of_current_line", False)
            if reporter.currentfspath is None and width:
                reporter.write("\n")
            reporter.write_line(f"{prefix}: {line.strip()}")

    return say


def conclude(outcome: Outcome) -> None:
    if outcome.unchecked is not None:
        from harness.errors import RunLimitWarning

        warnings.warn(outcome.unchecked, RunLimitWarning, stacklevel=3)
    if outcome.unavailable is not None:  # nothing of the family applies to this release
        pytest.skip(outcome.unavailable)
    if outcome.failure is not None:
        pytest.fail(outcome.failure, pytrace=False)
    if outcome.explained_by:
        pytest.xfail("; ".join(outcome.explained_by))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A skip said here (a family the release cannot run, no --race-server) is placed at
    the test it skips: pytest places it at the line that raised it, in this file. A test
    failed for an unusable target says so to xdist's controller (pytest_sessionfinish)."""
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(Unusable):
        report.user_properties.append((UNUSABLE, True))
    if report.skipped and isinstance(report.longrepr, tuple) and \
            (item.config.invocation_params.dir / report.longrepr[0]).resolve() == HERE:
        where = (item.nodeid, None) if isinstance(item, RaceFamily) else item.location[:2]
        report.longrepr = (*where, report.longrepr[2])
    return report


HERE = Path(__file__).resolve()


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "race_target" in getattr(item, "fixturenames", ()):
            item.add_marker("race")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "race_target" in metafunc.fixturenames:
        found = options(metafunc.config)
        if found is not None:
            metafunc.parametrize("race_target", found.targets,
                                 ids=[t.label for t in found.targets])


@pytest.fixture
def race_target() -> RaceTarget:
    """The target a race test runs on: each --race-server target in turn."""
    pytest.skip("no --race-server given: race tests run against a named server")


class Race:
    """What a race test does on its target (the `race` fixture)."""

    def __init__(self, target: RaceTarget, config: pytest.Config, here: Path) -> None:
        self.target, self.config, self.here = target, config, here

    def replay(self, trace: str | Path) -> None:
        """Replay a stored trace (a relative path is taken from the test file's folder);
        fails, with the failure and its replay command, while the trace still fails."""
        from harness.tools.race import replay_trace

        with plain_errors(self.config):
            outcome = replay_trace(self.target, self.here / trace, self.config.rootpath)
        conclude(outcome)

    def exhaust(self, trace: str | Path, deviations: int = 1,
                max_runs: int | None = None) -> None:
        """Run a stored trace's scenario in every ordering with at most `deviations`
        deviations from the ordinary run, as `harness exhaust` does, up to `max_runs`
        orderings (default: harness exhaust's; a walk it cuts short warns); fails, with
        each failure and its replay command, if any ordering fails: a fix should hold in
        all of them, not only in the trace's own."""
        from harness.api import whole
        from harness.search.profiles import EXHAUST_RUNS
        from harness.tools.race import exhaust_trace

        # (an InputError, which is a ValueError: the test's own mistake)
        count = whole(deviations, 0, "race.exhaust's deviations",
                      "the most deviations from the ordinary run to try", "1")
        limit = EXHAUST_RUNS if max_runs is None else whole(
            max_runs, 1, "race.exhaust's max_runs", "the most orderings to run",
            f"{EXHAUST_RUNS * 5}")
        with plain_errors(self.config):
            outcome = exhaust_trace(self.target, self.here / trace, self.config.rootpath,
                                    count, limit, terminal_lines(
                                        self.config, f"race.exhaust on {self.target.spec}"))
        conclude(outcome)

    def explore(self, family: str, budget: float | None = None,
                seed: int | None = None) -> None:
        """Search one scenario family (default: --race-budget, --race-seed) and judge it
        as the generated race items are judged."""
        from harness.errors import InputError
        from harness.tools.race import check_options, explore_family

        found = options(self.config)
        assert found is not None
        budget = found.budget if budget is None else budget
        try:
            check_options([family], budget, ("race.explore's family", "its budget"))
            if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                raise InputError(f"race.explore's seed must be a whole number, got {seed!r}")
        except InputError as exc:
            raise ValueError(str(exc)) from None
        with plain_errors(self.config):
            say = terminal_lines(self.config, f"race.explore {family} on {self.target.spec}")
            outcome = explore_family(self.target, family, budget,
                                     found.seed if seed is None else seed, found.root, say=say)
        conclude(outcome)


@pytest.fixture
def race(request: pytest.FixtureRequest, race_target: RaceTarget) -> Race:
    """Replays a stored trace, runs its nearby orderings, or searches a family on each
    --race-server target."""
    return Race(race_target, request.config, request.path.parent)
