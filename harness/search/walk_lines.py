"""An exhaust walk's progress in words (its events come from exhaustive.py).

Kept apart from the walk so that what only reads its events (the command line, the
API, the pytest plugin) does not import the search engine, and with it Hypothesis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LINE_EVERY = 5.0  # seconds between lines within a level, as explore's plain status lines


def walk_progress(say: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                  every: float = LINE_EVERY) -> Callable[[str, dict[str, Any]], None]:
    """The walk's progress events as lines for `say`: each level's size as it begins, then
    how far it is at most every `every` seconds. The one wording of `harness exhaust`,
    `harness.api.exhaust_trace` and `race.exhaust`: a walk of tens of thousands of
    orderings takes minutes, and its length is not the user's to set."""
    last = [clock()]

    def on_event(event: str, info: dict[str, Any]) -> None:
        if event == "level":
            d, n = info["deviations"], info["orderings"]
            say(f"{orderings(n)} with {d} deviation{'' if d == 1 else 's'} to run")
        elif event == "runs" and clock() - last[0] >= every:
            last[0] = clock()
            say(f"  {info['of_level']:,} of {info['level']:,} run ({info['runs']:,} in all)")

    return on_event


def orderings(n: int) -> str:
    """A count of orderings in words ("1 ordering", "2,400 orderings"), as the walk's
    lines and exhaustive.py's summary say it."""
    return f"{n:,} ordering{'' if n == 1 else 's'}"
