"""A scenario read from JSON has each field checked against its rule (harness/http/fields.py):
every scenario the search draws passes, and a bad field is named before it can fail the
run as the harness's bug or the server's."""

from __future__ import annotations

import json
import random
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from harness.http import fields as rules
from harness.http.families import FAMILIES
from harness.http.scenario import HttpScenario
from harness.http.strategies import scenarios
from harness.search.random_data import RandomData
from servers.hypercorn_target import HypercornTarget
from servers.reference.target import ReferenceTarget
from servers.uvicorn_target import UvicornTarget

TRACE = (Path(__file__).resolve().parent.parent / "reports" / "uvicorn-0.11.3-h11"
         / "receive-hang-e2bf0886" / "trace.json")


def test_every_field_of_a_scenarios_parts_has_a_rule_its_default_passes():
    for cls, table in rules.TABLES.items():
        assert sorted(table) == sorted(f.name for f in fields(cls)), cls.__name__
        default = cls()
        for name, (ok, needs) in table.items():
            value = getattr(default, name)
            value = list(value) if isinstance(value, tuple) else value  # JSON has lists
            assert ok(value), f"{cls.__name__}.{name}: the default {value!r} is not {needs}"


@pytest.mark.parametrize("target", [ReferenceTarget(), UvicornTarget("h11"),
                                    HypercornTarget("h11")], ids=lambda t: t.name)
def test_every_scenario_the_search_draws_reads_back_from_its_json(target: Any):
    strategy = scenarios(target, FAMILIES)
    for seed in range(150):
        drawn = RandomData(random.Random(seed)).draw(strategy)
        data = json.loads(json.dumps(drawn.to_json()))  # as a trace file holds it
        assert HttpScenario.from_json(data) == drawn, seed


def _scenario() -> dict[str, Any]:
    scenario: dict[str, Any] = json.loads(TRACE.read_text())["scenario"]
    return scenario


@pytest.mark.parametrize(("where", "value", "message"), [
    (("connections", 0, "read"), "fast", "connections[0].read is 'fast'; expected one of "
                                         "'normal', 'slow', 'stop'"),
    (("connections", 0, "start"), None, "connections[0].start is None; expected a number of "
                                        "seconds from 0 to 600"),
    (("connections", 0, "requests", 1, "method"), 7, "connections[0].requests[1].method is 7; "
                                                     "expected an HTTP method's name"),
    (("connections", 0, "requests", 0, "method"), "GE T", "method is 'GE T'"),
    (("connections", 0, "requests", 0, "pause"), -1.0, "requests[0].pause is -1.0"),
    (("connections", 0, "requests", 0, "body_size"), 2.5, "body_size is 2.5; expected a whole "
                                                          "number from 0 to 16,777,216"),
    # Sizes and counts a run could not hold in memory, or play out within its budget.
    (("connections", 0, "requests", 0, "body_size"), 10**12,
     "body_size is 1000000000000; expected a whole number from 0 to 16,777,216"),
    (("behaviours", 0, 2, "chunk_size"), 2**30, "chunk_size is 1073741824; expected a whole "
                                                "number from 0 to 1,048,576"),
    (("behaviours", 0, 2, "chunks"), 10**9, "chunks is 1000000000; expected a whole number "
                                            "from 1 to 100"),
    (("connections", 0, "requests", 0, "size"), 3, "connections[0].requests[0] has unknown "
                                                   "fields ['size']"),
    (("connections", 0, "requests"), "GET", "connections[0].requests is 'GET'; expected a list"),
    (("connections", 0), [], "connections[0] is []; expected an object"),
    (("connections",), {}, "connections is {}; expected a list"),
    (("behaviours", 1, 2, "yields_before"), True, "behaviours[1][2].yields_before is True; "
                                                  "expected a whole number from 0 to 1,000"),
    (("behaviours", 0, 2, "sleep_after"), 1e7, "behaviours[0][2].sleep_after is 10000000.0; "
                                               "expected a number of seconds from 0 to 600"),
    (("behaviours", 0, 2, "raise_at"), "later", "raise_at is 'later'; expected one of 'never'"),
    (("behaviours", 0, 0), "1", "behaviours[0] is ['1', 0, {"),
    (("net",), {"window": 2.5}, "net.window is 2.5; expected a whole number, 1 or more"),
    (("net",), {"write_high": "7"}, "net.write_high is '7'; expected a whole number"),
    (("shutdown",), {"after": True}, "shutdown.after is True; expected a whole number"),
    (("shutdown",), {"after": 3, "delay": "soon"}, "shutdown.delay is 'soon'; expected a "
                                                   "number of seconds"),
    (("shutdown",), {"at": 3}, "shutdown has unknown fields ['at']"),
    (("family",), "chaos", "family is 'chaos'; expected one of 'keepalive', 'pipelining', "),
    (("family",), None, "family is None; expected one of"),
])
def test_a_bad_field_is_named_with_what_it_must_be(
        where: tuple[Any, ...], value: Any, message: str):
    data = _scenario()
    HttpScenario.from_json(data)  # as committed, it reads
    holder: Any = data
    for step in where[:-1]:
        holder = holder[step]
    holder[where[-1]] = value
    with pytest.raises(ValueError) as info:
        HttpScenario.from_json(data)
    assert message in str(info.value)


@pytest.mark.parametrize(("value", "legal", "means", "fits"), [
    (5, [5, 1], "", True), (2.5, [5, 1], "keep-alive-timeout", True), (0, [5, 1], "", True),
    (None, [None, 2], "", True), (-1, [None, 2], "", False),
    (True, [5, 1], "", False), ("5", [5, 1], "", False), (float("nan"), [5, 1], "", False),
    # a count is whole: 2.5 connections at once is no setting a server can mean
    (2, [None, 2], "concurrency-limit", True), (2.0, [None, 2], "concurrency-limit", True),
    (2.5, [None, 2], "concurrency-limit", False), (0.5, [10, 1], "receive-queue-size", False),
    # null where the search tries it, or where it means "no limit" (carried by translation)
    (None, [None, 1], "graceful-timeout", True), (None, [30.0, 1.0], "graceful-timeout", True),
    (None, [5, 1], "keep-alive-timeout", False), (None, [10, 1], "receive-queue-size", False),
])
def test_a_server_setting_fits_when_it_is_of_the_kind_the_search_tries(
        value: Any, legal: list[Any], means: str, fits: bool):
    assert rules.setting_fits(value, legal, means) is fits


def test_every_setting_meaning_is_a_count_or_seconds():
    from harness.targets.registry import MEANINGS
    seconds = {m for m, text in MEANINGS.items() if text.startswith("seconds ")}
    assert set(MEANINGS) - seconds == rules.COUNTED
    assert rules.COUNTED.isdisjoint(seconds)
    assert seconds >= rules.UNLIMITED
