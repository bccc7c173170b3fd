"""The plugin on a maintainer's working copy: uvicorn built from its 0.11.3 and 0.12.3
source distributions (slow: each is built into its own environment once)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.targets.registry import target_specs
from harness.tools.race import RaceTarget, explore_family
from tests.sdists import unpack

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

HANG_748 = (Path(__file__).resolve().parent.parent / "reports" / "uvicorn-0.11.3-h11"
            / "receive-hang-e2bf0886" / "trace.json")


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    return {v: unpack("uvicorn", v, base) for v in ("0.11.3", "0.12.3")}


def test_a_bug_fixed_upstream_fails_in_a_working_copy_and_names_the_fix(
        copies: dict[str, Path], tmp_path: Path):
    """On the 0.11.3 release #748 is an expected failure; in a working copy of the same
    code it fails: fixed upstream in 0.12.3, so this code is older than the fix."""
    copy = RaceTarget(str(copies["0.11.3"]), target_specs(str(copies["0.11.3"]), "h11")[0])
    outcome = explore_family(copy, "pipelining", 1, 0, tmp_path, max_runs=300)
    assert outcome.failure is not None
    assert "matches uvicorn#748: request cycles share one wake-up event; receive() hangs, " \
           "fixed upstream in 0.12.3" in outcome.failure
    assert f"--server {copies['0.11.3']} --http h11" in outcome.failure


def test_the_replay_fixture_follows_a_trace_into_a_working_copy(
        copies: dict[str, Path], pytester: pytest.Pytester):
    shutil.copy(HANG_748, pytester.path / "hang.json")
    pytester.makepyfile(test_748="""
def test_748_stays_fixed(race):
    race.replay("hang.json")
""")
    args = ("-W", "ignore::pytest.PytestAssertRewriteWarning", "test_748.py", "--race-http",
            "h11")
    failing = pytester.runpytest(*args, f"--race-server={copies['0.11.3']}")
    failing.assert_outcomes(failed=1)
    failing.stdout.fnmatch_lines(["- receive-hang: blocked at uvicorn/protocols/http/h11_impl.py*",
                                  f"replay: harness replay hang.json --server {copies['0.11.3']}"
                                  " --http h11"])
    passing = pytester.runpytest(*args, f"--race-server={copies['0.12.3']}")
    passing.assert_outcomes(passed=1)
