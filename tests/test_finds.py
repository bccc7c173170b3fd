"""The harness still finds the bugs it is known for, on the releases that have them.

These install old uvicorn releases (once, into .harness-cache) and run them in
workers, so they are marked slow; `make test` runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.api import replay_trace_file
from harness.targets.registry import target_specs
from harness.targets.runner import run

REPORTS = Path(__file__).resolve().parent.parent / "reports"
HANG_748 = REPORTS / "uvicorn-0.11.3-h11" / "receive-hang-e2bf0886" / "trace.json"
LOST_241 = REPORTS / "uvicorn-0.3.26-h11" / "lost-disconnect-7039c262" / "trace.json"
EOF_50 = REPORTS / "hypercorn-0.14.3-h11" / "lost-disconnect-986dd9f3" / "trace.json"
ONCE = REPORTS / "hypercorn-0.18.0-h11" / "lost-disconnect-58bdd83d" / "trace.json"

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("trace", "buggy", "fixed", "kind"),
    [(HANG_748, "uvicorn==0.11.3", "uvicorn==0.12.3", "receive-hang"),
     (LOST_241, "uvicorn==0.3.26", "uvicorn==0.3.27", "lost-disconnect"),
     (EOF_50, "hypercorn==0.14.3", "hypercorn==0.14.4", "lost-disconnect")],
    ids=["uvicorn#748", "uvicorn#241", "hypercorn#50"],
)
def test_a_showcase_trace_fails_on_the_buggy_release_and_passes_on_the_fix(
    trace: Path, buggy: str, fixed: str, kind: str
):
    before = replay_trace_file(trace, buggy)
    assert kind in [f["kind"] for f in before["failures"]]
    after = replay_trace_file(trace, fixed)
    assert kind not in [f["kind"] for f in after["failures"]], after["failures"]


def test_search_finds_uvicorn_241_on_0_3_26_from_the_general_scenario_space():
    spec = target_specs("uvicorn==0.3.26", "h11")[0]
    result = run(spec, {"op": "explore", "families": ["keepalive", "disconnect", "pipelining"],
                        "budget": 0, "max_runs": 400, "seed": 0, "max_found": 1,
                        "accept": {"kind": "lost-disconnect",
                                   "signature_contains": "receive() after the response"}},
                 lambda e, i: None)
    [found] = result["findings"]
    assert found["deviations"] <= 2  # shrunk toward an ordinary run


@pytest.mark.parametrize(
    ("server", "good", "bad", "trace"),
    [("uvicorn", "0.3.27", "0.3.26", LOST_241), ("hypercorn", "0.14.4", "0.14.3", EOF_50)],
    ids=["uvicorn#241", "hypercorn#50"],
)
def test_bisect_names_the_release_that_fixed_the_bug(capsys, server: str, good: str, bad: str,
                                                     trace: Path):
    from harness.tools.cli import main

    code = main(["bisect", "--server", server, "--good", good, "--bad", bad,
                 "--trace", str(trace)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"first release where the behaviour changed: {server} {good} (fixed there" in out


def test_the_once_only_disconnect_is_in_the_oldest_and_the_newest_hypercorn():
    for release in ("0.10.2", "0.18.0"):
        verdict = replay_trace_file(ONCE, f"hypercorn=={release}")
        assert [f["kind"] for f in verdict["failures"]] == ["lost-disconnect"], release


@pytest.mark.parametrize("trace", [HANG_748, LOST_241, EOF_50, ONCE],
                         ids=["uvicorn#748", "uvicorn#241", "hypercorn#50", "hypercorn-once"])
def test_the_reference_server_passes_the_traces_that_catch_upstream_bugs(trace: Path):
    verdict = replay_trace_file(trace, "reference")
    assert verdict["failures"] == []
    assert verdict["target"]["server"] == "reference"
