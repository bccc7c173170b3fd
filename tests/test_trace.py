"""Traces: JSON round trip, precise errors, exact replay."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from harness.decisions import Decision, RandomSource, TraceDivergence
from harness.search.trace import UMASK, Trace, TraceError, build_program, replay
from harness.sim.run import simulate

SCENARIO = {"kind": "program", "ref": "tests.programs:busy_echo", "params": {"clients": 2}}


def recorded(seed: int = 11) -> tuple[Trace, str]:
    result = simulate(build_program(SCENARIO), RandomSource(seed, deviation=0.4))
    return Trace(SCENARIO, result.decisions), result.log.text()


def test_a_saved_trace_loads_back_equal_and_replays_to_the_same_log(tmp_path: Path):
    trace, log = recorded()
    path = tmp_path / "trace.json"
    trace.save(path)
    loaded = Trace.load(path)
    assert loaded.decisions == trace.decisions
    assert loaded.scenario == trace.scenario
    assert replay(loaded).log.text() == log


def test_saving_leaves_no_temporary_files_behind(tmp_path: Path):
    trace, _ = recorded()
    trace.save(tmp_path / "trace.json")
    assert [p.name for p in tmp_path.iterdir()] == ["trace.json"]


def test_an_edited_decision_list_is_caught_as_a_divergence():
    trace, _ = recorded()
    assert trace.decisions, "the program must make decisions for this test to mean anything"
    first = trace.decisions[0]
    trace.decisions[0] = Decision(first.what, first.n + 1, 0)
    with pytest.raises(TraceDivergence, match="decision 0"):
        replay(trace)


def test_leftover_decisions_are_a_divergence_too():
    trace, _ = recorded()
    trace.decisions.append(Decision("io order", 2, 1))
    with pytest.raises(TraceDivergence, match="ended after"):
        replay(trace)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object, got list"),
        ('{"format": "other"}', "format is 'other'"),
        ('{"format": "asgi-race-harness/trace", "version": "1"}', "version is '1'"),
        (
            '{"format": "asgi-race-harness/trace", "version": 1, "scenario": {"kind": "program"},'
            ' "decisions": [["a", 2, 5]]}',
            r"decision 0 \(a\) chooses 5 of 2 options; a choice is numbered from 0 to "
            r"options - 1",
        ),
        (
            '{"format": "asgi-race-harness/trace", "version": 1, "scenario": {"kind": "program"},'
            ' "decisions": [["a", 2]]}',
            r"decision 0 is \['a', 2\]; expected \[what, options, choice\]",
        ),
        (
            '{"format": "asgi-race-harness/trace", "version": 1, "scenario": {"kind": "program"},'
            ' "decisions": [], "settings": {"speed": 3}}',
            "'settings' has unknown fields",
        ),
    ],
)
def test_a_malformed_trace_is_rejected_with_its_path_and_the_reason(
    tmp_path: Path, content: str, message: str
):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TraceError, match=message) as info:
        Trace.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xd4\x01binary", "not UTF-8 text"),
        (b"[" * 100_000, "JSON nested too deep for a trace"),
    ],
)
def test_a_file_that_is_no_json_text_at_all_is_rejected_not_a_harness_fault(
        tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=message):
        Trace.load(path)


def test_a_file_larger_than_any_trace_is_not_read_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from harness.search import trace as trace_module

    monkeypatch.setattr(trace_module, "MAX_TRACE_BYTES", 2**20)
    with pytest.raises(TraceError, match="/dev/zero: larger than 1 MiB"):
        Trace.load("/dev/zero")  # endless: read up to the bound, no further


def test_a_trace_with_a_byte_order_mark_loads(tmp_path: Path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(Trace({"kind": "program", "ref": "x:y"},
                                                        []).to_json()).encode())
    assert Trace.load(path).scenario == {"kind": "program", "ref": "x:y"}


def test_every_simulation_setting_has_a_rule_for_what_a_trace_may_set_it_to():
    from harness.search import trace as trace_module
    from harness.sim.run import Settings

    fields = {f.name for f in dataclasses.fields(Settings)}
    assert set(trace_module._SETTING_RULES) == set(trace_module._SETTING_NEEDS) == fields
    for name in fields:  # each default passes its own rule
        assert trace_module._SETTING_RULES[name](getattr(Settings(), name)), name


def test_a_trace_from_a_newer_harness_asks_for_an_upgrade(tmp_path: Path):
    path = tmp_path / "future.json"
    path.write_text(json.dumps({"format": "asgi-race-harness/trace", "version": 99}))
    with pytest.raises(TraceError, match="version 99 is newer.*upgrade"):
        Trace.load(path)


def test_a_missing_trace_file_names_the_path(tmp_path: Path):
    with pytest.raises(TraceError, match="cannot read trace"):
        Trace.load(tmp_path / "nope.json")


def test_only_a_program_scenario_runs_as_a_program():
    with pytest.raises(TraceError, match="a 'http' scenario is replayed on a target"):
        build_program({"kind": "http"})


def test_writing_through_a_link_replaces_what_it_points_to_and_keeps_the_link(tmp_path: Path):
    from harness.search.trace import write_atomically

    (tmp_path / "summary.json").write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to("summary.json")
    write_atomically(link, "new")
    assert link.is_symlink() and (tmp_path / "summary.json").read_text() == "new"
    # Made as open() makes a file (the umask says), not mkstemp's owner-only 0600.
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~UMASK


def test_writing_to_a_device_writes_to_it_and_leaves_the_device_in_place():
    import stat

    from harness.search.trace import write_atomically

    write_atomically(Path("/dev/null"), "{}")  # a rename would have put a file there
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)
