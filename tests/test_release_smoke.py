"""Each server, unmodified, answers a request that reaches it in random pieces: one
release of each construction path its registry entry lists (servers/*_target.py), each in
its own worker on its own cached environment (installed once, so these are slow)."""

from __future__ import annotations

import re

import pytest

from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario
from harness.targets.registry import entry, target_specs
from harness.targets.runner import run

pytestmark = pytest.mark.slow

# One release per VersionRange of each entry, oldest first.
RELEASES = {
    "hypercorn": ("0.10.2", "0.13.2", "0.14.3", "0.16.0", "0.17.3", "0.18.0"),
    "uvicorn": ("0.1.1", "0.2.2", "0.2.10", "0.2.16", "0.2.20", "0.3.25", "0.3.26", "0.3.32",
                "0.4.6", "0.11.3", "0.12.3"),
}
CASES = [(server, release) for server, releases in RELEASES.items() for release in releases]

# The client sends the head, waits for "100 Continue", then writes the body in four
# pieces, so the server reads the request in at least two; the poller's random choices
# split or merge the pieces further. (Bytes that arrive before hypercorn's reader is
# registered pile up in the socket buffer and are read at once, as on a real socket.)
POST = RequestSpec(method="POST", framing="length", body_size=300, body_chunks=4,
                   expect_continue=True)
SCENARIO = HttpScenario("flow", (ConnSpec((POST,)),), ((1, 0, AppBehaviour(chunks=3)),))


@pytest.mark.parametrize("server", RELEASES)
def test_the_releases_cover_every_construction_path_of_the_registry(server: str):
    ranges = {entry(server).version_range(v) for v in RELEASES[server]}
    assert ranges == set(entry(server).versions)


@pytest.mark.parametrize(("server", "release"), CASES, ids=[f"{s}-{r}" for s, r in CASES])
def test_a_release_answers_a_request_split_into_random_chunks(server: str, release: str):
    spec = target_specs(f"{server}=={release}")[0]
    pieces = set()
    for seed in range(8):
        result = run(spec, {"op": "run", "scenario": SCENARIO.to_json(), "seed": seed,
                                 "deviation": 0.5},
                     lambda event, info: None)
        assert result["target"]["version"] == release
        assert result["failures"] == [], (seed, result["failures"])
        [response] = result["responses"]["1"]
        assert (response["status"], response["body"], response["complete"]) == (
            200, "c1r0:0;c1r0:1;c1r0:2;", True), seed
        reads = [line for line in result["log"] if re.search(r" recv server\[c1\] \d+B$", line)]
        assert len(reads) >= 2, f"seed {seed}: the request arrived in one piece: {reads}"
        pieces.add(len(reads))
    assert len(pieces) >= 2, f"every seed split the request the same way: {pieces} reads"
