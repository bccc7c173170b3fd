"""Hypothesis draws every choice from the test's data, so it can shrink them.

Integers shrink toward 0, and 0 is the ordinary choice: a shrunk failure is
"an ordinary run, except for these few deviations" (DESIGN.md, Rule 1).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


class HypothesisSource:
    def __init__(self, data: Any) -> None:
        # `data` is the object `st.data()` gives a test, or anything with .draw().
        self.data = data

    def choose(self, n: int, what: str) -> int:
        return int(self.data.draw(st.integers(0, n - 1)))
