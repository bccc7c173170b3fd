"""The decision interface and its backends."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.decisions import (
    Decision,
    OrdinarySource,
    PCTSource,
    RandomSource,
    Recorder,
    ReplaySource,
    TraceDivergence,
)
from harness.decisions.hypothesis_source import HypothesisSource


def test_a_single_option_is_not_a_decision_and_is_not_recorded():
    rec = Recorder(RandomSource(1, deviation=1.0))
    assert rec.choose(1, "only") == 0
    assert rec.decisions == []


def test_the_recorder_keeps_every_real_choice_in_order():
    rec = Recorder(RandomSource(3, deviation=1.0))
    answers = [rec.choose(n, f"q{n}") for n in (2, 5, 9)]
    assert [d.choice for d in rec.decisions] == answers
    assert [d.n for d in rec.decisions] == [2, 5, 9]
    assert all(c != 0 for c in answers)  # deviation=1.0 always deviates


def test_a_source_answering_out_of_range_is_rejected_with_the_value():
    class Broken:
        def choose(self, n: int, what: str) -> int:
            return n

    with pytest.raises(ValueError, match=r"answered 3 for 'x', which has options 0\.\.2"):
        Recorder(Broken()).choose(3, "x")


def test_the_ordinary_source_always_answers_zero():
    rec = Recorder(OrdinarySource())
    assert [rec.choose(n, "q") for n in range(2, 10)] == [0] * 8


def test_random_sources_with_one_seed_agree_and_with_another_differ():
    def answers(seed: int) -> list[int]:
        src = RandomSource(seed, deviation=0.5)
        return [src.choose(7, "q") for _ in range(200)]

    assert answers(1) == answers(1)
    assert answers(1) != answers(2)


def test_pct_deviates_at_no_more_than_depth_points():
    src = PCTSource(seed=4, depth=3, horizon=50)
    answers = [src.choose(4, "q") for _ in range(50)]
    assert 1 <= sum(a != 0 for a in answers) <= 3


def test_strict_replay_names_the_first_divergent_decision():
    src = ReplaySource([Decision("arrive c1>s", 5, 2)])
    with pytest.raises(TraceDivergence, match=r"decision 0: the trace recorded 'arrive c1>s'"):
        src.choose(4, "arrive c1>s")


def test_strict_replay_refuses_to_invent_decisions_past_the_end():
    src = ReplaySource([])
    with pytest.raises(TraceDivergence, match="records only 0 decisions"):
        src.choose(2, "io order")


def test_lenient_replay_clamps_and_pads_with_the_ordinary_choice():
    src = ReplaySource([Decision("a", 5, 4)], strict=False)
    assert src.choose(3, "b") == 2
    assert src.choose(3, "c") == 0
    assert src.diverged_at == 0 and not src.past_end  # it asked another question first
    ran_out = ReplaySource([Decision("a", 5, 4)], strict=False)
    assert (ran_out.choose(5, "a"), ran_out.choose(3, "b")) == (4, 0)
    assert ran_out.diverged_at == 1 and ran_out.past_end  # it asked more than recorded


@given(st.data())
def test_hypothesis_draws_are_in_range(data: st.DataObject):
    rec = Recorder(HypothesisSource(data))
    for n in (2, 3, 50):
        assert 0 <= rec.choose(n, "q") < n
