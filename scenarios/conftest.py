"""`pytest scenarios/`: each scenario family, searched on each target.

Targets default to the reference server (which must pass every family) and
every registered server installed beside the harness, in each protocol
implementation; `--server NAME==X` (repeatable) runs other releases, each in
its own worker process. `--scenario-budget` sets the seconds of search per family and target
(default: the search profile's, chosen by HARNESS_PROFILE). Failures found are kept in the
examples store and retried first next time, as explore does (HARNESS_EXAMPLES=off: cold).
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from harness.search.profiles import profile
from harness.search.trace import Trace
from harness.targets.envs import PROJECT_ROOT
from harness.targets.registry import REFERENCE, TargetSpec, entries, target_specs
from harness.targets.runner import run
from harness.tools.report import report_id

# The reference server first (it must pass every family), then every registered server
# whose release is installed beside the harness.
DEFAULT_SERVERS = [REFERENCE] + [name for name, e in entries().items()
                                 if name != REFERENCE and e.installed_version() is not None]
FAILED_TRACES = PROJECT_ROOT / ".harness-cache" / "scenario-failures"


def save_trace(finding: dict[str, Any], label: str, family: str) -> str:
    """Every failure says how to replay it: its trace is kept where the message points."""
    trace = Trace.from_json(finding["trace"])
    FAILED_TRACES.mkdir(parents=True, exist_ok=True)
    name = f"{label}-{family}-{report_id(finding['kind'], finding['signature'])}.json"
    path = FAILED_TRACES / name
    trace.save(path)
    return os.path.relpath(path)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("race harness")
    group.addoption("--server", action="append", default=None,
                    help="NAME or NAME==VERSION (repeatable); default: the reference "
                         f"server and each installed one ({', '.join(DEFAULT_SERVERS)})")
    group.addoption("--http", default="all", help="h11, httptools or all (default all)")
    group.addoption("--scenario-budget", type=float, default=None,
                    help="seconds of search per family and target (default: the search "
                         "profile's, HARNESS_PROFILE: default 5, ci 2, nightly 120)")
    group.addoption("--scenario-seed", type=int, default=0)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        servers = metafunc.config.getoption("--server") or DEFAULT_SERVERS
        http = metafunc.config.getoption("--http")
        specs = [s for server in servers for s in target_specs(server, http)]
        metafunc.parametrize("target", specs, ids=[s.label for s in specs])


@pytest.fixture
def search_family(request: pytest.FixtureRequest, target: TargetSpec) -> Any:
    budget = request.config.getoption("--scenario-budget") or profile().scenario_budget
    seed = request.config.getoption("--scenario-seed")

    def search(family: str) -> None:
        result = run(target, {"op": "explore", "families": [family], "budget": budget,
                              "seed": seed}, lambda event, info: None)
        found = result["findings"]
        version = result["target"]["version"]
        # A bug shows up in whichever family reaches it: anything known for this release
        # explains a finding, but only the bugs listed for this family must be found.
        anywhere = target.entry.known_for(version, target.http)
        known = target.entry.known_for(version, target.http, family)
        unexplained = [f for f in found if not any(
            k.matches(f["kind"], f["signature"]) for k in anywhere)]
        details = "\n".join(
            f"- {f['kind']}: {f['signature']}\n  {f['message']}\n"
            f"  replay: harness replay {save_trace(f, target.label, family)}" for f in unexplained)
        assert not unexplained, (
            f"{len(unexplained)} failure(s) on {target} in family {family!r} "
            f"after {result['runs']} runs:\n{details}")
        for bug in known:
            hits = [f for f in found if bug.matches(f["kind"], f["signature"])]
            assert hits, (f"the harness no longer finds {bug.name} on {target} "
                          f"within {budget:g}s ({result['runs']} runs)")
        explained = {k.name for k in anywhere for f in found
                     if k.matches(f["kind"], f["signature"])}
        if explained:
            pytest.xfail("; ".join(sorted(explained)))

    return search
