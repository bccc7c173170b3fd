"""Seeded random: deviate from the ordinary choice with a fixed probability."""

from __future__ import annotations

import random


class RandomSource:
    def __init__(self, seed: int, deviation: float = 0.2) -> None:
        if not 0.0 <= deviation <= 1.0:
            raise ValueError(f"deviation must be a probability in [0, 1], got {deviation!r}")
        self.seed = seed
        self.deviation = deviation
        self._rng = random.Random(seed)

    def choose(self, n: int, what: str) -> int:
        if self._rng.random() >= self.deviation:
            return 0
        return self._rng.randrange(1, n)
