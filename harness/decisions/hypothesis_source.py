"""Hypothesis draws every choice from the test's data, so it can shrink them.

Integers shrink toward 0, and 0 is the ordinary choice: a shrunk failure is
"an ordinary run, except for these few deviations" (README, Rule 1).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

# Hypothesis draws bounded integers roughly uniformly, which would make almost
# every choice a deviation: a run far from anything a real loop does often.
# A gate first decides whether to deviate at all (1 in DEVIATE_ONE_IN); the
# gate shrinks toward 0, "do not deviate", so shrinking still ends ordinary.
DEVIATE_ONE_IN = 8
_GATE = st.integers(0, DEVIATE_ONE_IN - 1)
_OPTIONS = {n: st.integers(1, n - 1) for n in range(2, 17)}  # a run's questions have few


class HypothesisSource:
    def __init__(self, data: Any) -> None:
        # `data` is the object `st.data()` gives a test, or anything with .draw(). A run
        # asks dozens of questions, so they skip the test-facing wrapper (which notes each
        # draw for a failure's printout and checks the draw left `random` alone) and go
        # to the test case's own data: the same choices, spans and shrinking.
        self.data = getattr(data, "conjecture_data", data)

    def choose(self, n: int, what: str) -> int:
        if self.data.draw(_GATE) != DEVIATE_ONE_IN - 1:
            return 0
        options = _OPTIONS[n] if n in _OPTIONS else st.integers(1, n - 1)
        return int(self.data.draw(options))
