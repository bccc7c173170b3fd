"""Runs drawn by RandomData are the runs Hypothesis replays from their choices: the search
detects with one and shrinks with the other, so the two must agree on every choice."""

from __future__ import annotations

import random

import pytest
from hypothesis import strategies as st
from hypothesis.internal.conjecture.data import ConjectureData

from harness.decisions import Recorder
from harness.decisions.hypothesis_source import HypothesisSource
from harness.errors import HarnessFault
from harness.http.families import FAMILIES
from harness.http.scenario import run_http
from harness.http.strategies import scenarios
from harness.search.explore import SETTINGS
from harness.search.random_data import RandomData
from servers.reference.target import ReferenceTarget


@pytest.mark.parametrize("seed", range(12))
def test_hypothesis_replays_a_random_run_from_its_choices(seed: int):
    target = ReferenceTarget()
    strategy = scenarios(target, FAMILIES)
    data = RandomData(random.Random(seed))
    drawn = data.draw(strategy)
    recorder = Recorder(HypothesisSource(data))
    run_http(drawn, target, recorder, SETTINGS)
    assert recorder.decisions and data.choices

    replay = ConjectureData.for_choices(data.choices)
    again = replay.draw(strategy)
    replayed = Recorder(HypothesisSource(replay))
    run_http(again, target, replayed, SETTINGS)
    assert again == drawn
    assert replayed.decisions == recorder.decisions
    assert list(replay.choices) == data.choices  # every choice used, none invented


def test_the_seed_decides_every_choice():
    def choices(seed: int) -> list[int | bool]:
        data = RandomData(random.Random(seed))
        data.draw(scenarios(ReferenceTarget(), FAMILIES))
        return data.choices

    assert choices(5) == choices(5) != choices(6)


def test_a_draw_it_cannot_make_is_a_harness_fault_not_a_wrong_value():
    with pytest.raises(HarnessFault, match="bounds 0..None"):
        RandomData(random.Random(0)).draw(st.integers(min_value=0))
