"""The registry's claims of a release that fixed a bug hold on a trace of that bug.

Each trace in tests/traces/ fails on the release it was found on with failures the
registry explains by an entry whose range holds that release and which names `fixed` as
the first release without it; on `fixed` none of those entries' failures is left. Both
replays are lenient: on its own release a recorded trace asks the questions it recorded,
and the handmade one, which records none, gets the ordinary choice at each. The traces are
searches' shrunk finds, every choice the ordinary one, except the handmade one
(no decisions at all: an ordinary run of its scenario). They install the releases
(once, into .harness-cache), so they are marked slow; `make test` runs them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.api import replay_trace_file
from harness.targets.registry import KnownBug, entry

TRACES = Path(__file__).resolve().parent / "traces"

pytestmark = pytest.mark.slow


def explained(failures: list[dict[str, str]], version: str) -> list[KnownBug]:
    """The hypercorn entries for `version` that explain one of `failures`."""
    return [bug for bug in entry("hypercorn").known_for(version, "h11")
            if any(bug.matches(f["kind"], f["signature"]) for f in failures)]


@pytest.mark.parametrize(
    ("trace", "buggy", "fixed", "bugs"),
    [("hypercorn-0.12.0-timer-rearmed.json", "0.12.0", "0.13.0", 1),
     ("hypercorn-0.12.0-late-app-after-keepalive.json", "0.12.0", "0.13.0", 2),
     ("hypercorn-0.12.0-write-after-eof.json", "0.12.0", "0.13.0", 1),
     ("hypercorn-0.16.0-max-requests.json", "0.16.0", "0.17.0", 1)],
    ids=["timer re-armed", "late app after keep-alive", "write after eof", "max requests"],
)
def test_a_registered_bug_fails_its_trace_on_the_release_and_not_on_the_fix(
    trace: str, buggy: str, fixed: str, bugs: int
):
    before = replay_trace_file(TRACES / trace, f"hypercorn=={buggy}", lenient=True)
    fixed_by = [b for b in explained(before["failures"], buggy) if b.fixed == fixed]
    assert len(fixed_by) == bugs, (before["failures"], [b.name for b in fixed_by])
    after = replay_trace_file(TRACES / trace, f"hypercorn=={fixed}", lenient=True)
    left = [b.name for b in fixed_by
            if any(b.matches(f["kind"], f["signature"]) for f in after["failures"])]
    assert left == [], after["failures"]
