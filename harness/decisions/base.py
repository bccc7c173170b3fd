"""The one interface every scheduling choice goes through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class DecisionSource(Protocol):
    """Answers "which of these n options?"; 0 is the ordinary one."""

    def choose(self, n: int, what: str) -> int: ...


@dataclass(frozen=True)
class Decision:
    what: str
    n: int
    choice: int

    def to_json(self) -> list[object]:
        return [self.what, self.n, self.choice]


class TraceDivergence(Exception):
    """A replayed run asked for a different decision than the trace recorded.

    Replay is exact (README, Rule 2), so on the trace's own target this is a
    harness bug; on another release it means the code paths differ."""


class Recorder:
    """Wraps a source, validates its answers and records every real choice.

    A choice with one option is not a decision and is not recorded, so traces
    hold only the places where the run could have gone another way."""

    def __init__(self, source: DecisionSource) -> None:
        self.source = source
        self.decisions: list[Decision] = []

    def choose(self, n: int, what: str) -> int:
        if n < 1:
            raise ValueError(f"choose({n!r}, {what!r}): need at least one option")
        if n == 1:
            return 0
        choice = self.source.choose(n, what)
        if not 0 <= choice < n:
            raise ValueError(
                f"decision source {type(self.source).__name__} answered {choice!r} "
                f"for {what!r}, which has options 0..{n - 1}"
            )
        self.decisions.append(Decision(what, n, choice))
        return choice

    def deviations(self) -> list[tuple[int, Decision]]:
        """The decisions that differ from an ordinary run, with their index."""
        return [(i, d) for i, d in enumerate(self.decisions) if d.choice != 0]
