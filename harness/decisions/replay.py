"""Replay a recorded decision list."""

from __future__ import annotations

from collections.abc import Sequence

from harness.decisions.base import Decision, TraceDivergence


class ReplaySource:
    """Answers from a recorded list.

    strict (the default, and what `harness replay` uses on a trace's own target):
    the run must ask exactly the recorded questions, or `TraceDivergence` names
    the first difference. Lenient (replaying on another release): a question
    with another option count gets the recorded answer clamped into range, and
    questions past the end get 0, the ordinary choice."""

    def __init__(self, decisions: Sequence[Decision], strict: bool = True) -> None:
        self.decisions = list(decisions)
        self.strict = strict
        self.index = 0
        self.diverged_at: int | None = None
        self.past_end = False  # it diverged by asking more than the trace records

    def choose(self, n: int, what: str) -> int:
        i = self.index
        self.index += 1
        if i >= len(self.decisions):
            if self.strict:
                raise TraceDivergence(
                    f"decision {i}: the run asked {what!r} ({n} options) but the trace "
                    f"records only {len(self.decisions)} decisions"
                )
            self._note_divergence(i)
            return 0
        rec = self.decisions[i]
        if rec.n != n or rec.what != what:
            if self.strict:
                raise TraceDivergence(
                    f"decision {i}: the trace recorded {rec.what!r} with {rec.n} options, "
                    f"the run asked {what!r} with {n}"
                )
            self._note_divergence(i)
            return min(rec.choice, n - 1)
        return rec.choice

    def _note_divergence(self, i: int) -> None:
        if self.diverged_at is None:
            self.diverged_at = i
            self.past_end = i >= len(self.decisions)

    def unused(self) -> int:
        return max(0, len(self.decisions) - self.index)
