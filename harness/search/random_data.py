"""Scenarios and decisions drawn at random through Hypothesis's own strategies, with no
engine in the way.

A strategy draws by asking its test case's data for integers and booleans (its
`do_draw`). `RandomData` is such a data object: each choice is uniform (or as the
strategy weights it) from a seeded generator, and the choices are kept in order. That
sequence is the one Hypothesis would have recorded for the same values, so a failing
run is handed to Hypothesis as it stands, to replay and shrink (engine.py).

Why not let Hypothesis generate: its engine cost about 1.5 ms per example (its
mutator's span bookkeeping and its data tree) and its draws about 20 us each, more
together than a simulated run; drawn here a scenario costs about 0.1 ms. And the known
finds came sooner, not later (the README's Search section has the medians): Hypothesis's
generator spends its first examples near the minimal one, and mutates spans into copies
of one another; neither is what these races need.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis.strategies._internal.lazy import unwrap_strategies
from hypothesis.strategies._internal.strategies import SampledFromStrategy

from harness.errors import HarnessFault


class RandomData:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.choices: list[int | bool] = []

    def draw(self, strategy: Any, label: int | None = None) -> Any:
        strategy = unwrap_strategies(strategy)  # type: ignore[no-untyped-call]
        if type(strategy) is SampledFromStrategy and not strategy._transformations:
            # What its do_draw does when nothing maps or filters it: one index, the same
            # choice (tests/test_random_data.py replays it), at a third of the cost.
            elements = strategy.elements
            return elements[self.draw_integer(0, len(elements) - 1)]
        return strategy.do_draw(self)

    def draw_integer(self, min_value: int | None = None, max_value: int | None = None, *,
                     weights: dict[int, float] | None = None, **rest: Any) -> int:
        if (min_value is None or max_value is None or max_value < min_value
                or rest.get("forced") is not None):
            raise HarnessFault(f"a scenario strategy drew an integer RandomData cannot: "
                               f"bounds {min_value}..{max_value}, {rest}")
        value = self._weighted(weights) if weights else None
        if value is None:
            # randint's own arithmetic, without its two frames: the same value
            value = min_value + self._rng._randbelow(  # type: ignore[attr-defined]
                max_value - min_value + 1)
        self.choices.append(value)
        return value

    def draw_boolean(self, p: float = 0.5, **rest: Any) -> bool:
        if rest.get("forced") is not None or not 0 < p < 1:
            raise HarnessFault(f"a scenario strategy drew a boolean RandomData cannot: "
                               f"p={p}, {rest}")
        value = self._rng.random() < p
        self.choices.append(value)
        return value

    def _weighted(self, weights: dict[int, float]) -> int | None:
        """One of the weighted values with its probability; None for the rest (uniform)."""
        roll = self._rng.random()
        for value, weight in weights.items():
            if roll < weight:
                return value
            roll -= weight
        return None
