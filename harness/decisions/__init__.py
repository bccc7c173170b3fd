"""Decision sources: every nondeterministic choice of a run goes through one of these.

The interface is one method, `choose(n, what) -> int in range(n)`, where 0 is
always the most ordinary behaviour (README, Rule 1). Each backend is a small
file; `Recorder` wraps any of them and keeps the list a trace stores.

HypothesisSource is imported from its own module (hypothesis_source.py): importing
Hypothesis takes about half a second, which replaying a trace does not need.
"""

from harness.decisions.base import Decision, DecisionSource, Recorder, TraceDivergence
from harness.decisions.ordinary import OrdinarySource
from harness.decisions.pct import PCTSource
from harness.decisions.prefix import PrefixSource
from harness.decisions.random_source import RandomSource
from harness.decisions.replay import ReplaySource

__all__ = [
    "Decision",
    "DecisionSource",
    "OrdinarySource",
    "PCTSource",
    "PrefixSource",
    "RandomSource",
    "Recorder",
    "ReplaySource",
    "TraceDivergence",
]
