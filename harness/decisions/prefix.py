"""A recorded prefix, replayed strictly, then the ordinary choice ever after.

The run it makes deviates from the ordinary run exactly where the prefix does. The
exhaustive search (harness/search/exhaustive.py) walks a scenario's orderings with it:
each ordering is the prefix up to its last deviation, since everything after is 0."""

from __future__ import annotations

from collections.abc import Sequence

from harness.decisions.base import Decision
from harness.decisions.replay import ReplaySource


class PrefixSource:
    def __init__(self, prefix: Sequence[Decision]) -> None:
        self.prefix = ReplaySource(prefix, strict=True)

    def choose(self, n: int, what: str) -> int:
        if self.prefix.unused():
            return self.prefix.choose(n, what)
        return 0
