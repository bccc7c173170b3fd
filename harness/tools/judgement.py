"""The judgement of one search: which findings a known upstream bug explains.

A bug shows up in whichever scenario family reaches it, so any known bug of the
release explains a finding, in any family; only the bugs listed for the family
searched must be found again (the harness must not lose them). A target that is
not a release from the index (a working copy, a git commit) is judged against
the bugs still open upstream only: a bug fixed upstream that shows up there is
a regression or old code, and fails; nothing must be found there. Such a finding is
named with the fixed bugs it matches, also those fixed before the code's own version:
a maintainer's branch that brings a fixed bug back should hear which one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from packaging.version import InvalidVersion, Version

from harness.targets.registry import KnownBug, TargetEntry


@dataclass(frozen=True)
class Judgement:
    unexplained: list[dict[str, Any]]  # findings no admissible known bug explains
    explained_by: list[str]  # names of the known bugs that explain the other findings
    not_found: list[KnownBug]  # bugs listed for the family that the search missed
    # an unexplained finding's (kind, signature) -> the fixed bugs it matches (source targets)
    fixed_upstream: dict[tuple[str, str], list[KnownBug]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.unexplained and not self.not_found


def judge(findings: Sequence[dict[str, Any]], entry: TargetEntry, version: str, http: str,
          family: str, source: bool) -> Judgement:
    """Judge the findings ({"kind", "signature", ...}) of a search of `family` on
    `version` of `entry` over `http`; `source`: the target is a working copy or commit."""
    known = entry.known_for(version, http)
    excuses = [b for b in known if b.fixed is None] if source else known
    fixed = known + [b for b in entry.known_bugs if source and http in b.http and b not in known
                     and b.fixed is not None and at_or_after(version, b.fixed)]
    must = [] if source else entry.known_for(version, http, family)

    def matching(bugs: list[KnownBug], f: dict[str, Any]) -> list[KnownBug]:
        return [b for b in bugs if b.matches(f["kind"], f["signature"])]

    unexplained = [f for f in findings if not matching(excuses, f)]
    return Judgement(
        unexplained=unexplained,
        explained_by=sorted({b.name for f in findings for b in matching(excuses, f)}),
        not_found=[b for b in must if not any(b.matches(f["kind"], f["signature"])
                                              for f in findings)],
        fixed_upstream={(f["kind"], f["signature"]): matching(fixed, f)
                        for f in unexplained if matching(fixed, f)},
    )


def at_or_after(version: str, fixed: str) -> bool:
    try:
        return Version(version) >= Version(fixed)
    except InvalidVersion:
        return False
