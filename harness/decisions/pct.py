"""PCT-style: a few deviations, placed at random decision indices.

Probabilistic Concurrency Testing finds bugs of depth d by perturbing the
schedule at d randomly chosen points and running ordinarily everywhere else.
Here a "point" is a decision index below `horizon`; at each chosen index the
source answers a random non-zero option, and 0 everywhere else.
"""

from __future__ import annotations

import random


class PCTSource:
    def __init__(self, seed: int, depth: int = 3, horizon: int = 200) -> None:
        if depth < 0 or horizon < 1:
            raise ValueError(f"PCT needs depth >= 0 and horizon >= 1, got {depth!r}, {horizon!r}")
        self.seed = seed
        self._rng = random.Random(seed)
        self._points = set(self._rng.sample(range(horizon), min(depth, horizon)))
        self._index = 0

    def choose(self, n: int, what: str) -> int:
        index = self._index
        self._index += 1
        if index in self._points:
            return self._rng.randrange(1, n)
        return 0
