"""The report's account of each deviation says what really happened in the run: how many
bytes of a split arrival arrived, whether or not holding them back was an option."""

from __future__ import annotations

import re

from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from harness.tools.report import describe_decision
from servers.uvicorn_target import UvicornTarget

POST = RequestSpec(method="POST", framing="length", body_size=30)
SCENARIO = HttpScenario("keepalive", (ConnSpec((POST, POST)),),
                        ((1, 0, AppBehaviour()), (1, 1, AppBehaviour())))


class Splitting:
    """Every arrival with a choice is split: mostly option 2, every third option 1.
    Option k means k bytes, or k - 1 where option 1 was holding them back."""

    def __init__(self) -> None:
        self.arrivals = 0

    def choose(self, n: int, what: str) -> int:
        if not what.startswith("arrive ") or n < 3:
            return 0
        self.arrivals += 1
        return 1 if self.arrivals % 3 == 0 else 2


def test_the_narrative_counts_the_bytes_each_split_arrival_really_delivered():
    run = run_http(SCENARIO, UvicornTarget("h11"), Splitting())
    log = run.result.log.lines()
    sent = sum(int(m) for m in re.findall(r" client-send client\[c1\] (\d+)B", "\n".join(log)))
    # Arrivals nobody chose (everything in flight, at once) are in the log untagged;
    # the narrative must account for the rest of the client's bytes.
    ordinary = sum(int(m) for m in re.findall(r" arrive c1>s (\d+)B(?: FIN)?$",
                                              "\n".join(log), re.M))
    told: list[int] = []
    held = 0
    for i, d in enumerate(run.result.decisions):
        if not d.choice or d.what != "arrive c1>s":
            continue
        text = describe_decision(d.what, d.n, d.choice, i, log)
        if "held back" in text:
            held += 1
            continue
        told.append(int(re.findall(r"first (\d+) byte", text)[0]))
    assert ordinary + sum(told) == sent > 0
    # Both kinds of arrival happened: with holding back an option (option 2 is 1 byte)
    # and without (option 2 is 2 bytes), and some were held.
    assert {1, 2} <= set(told) and held > 0


def test_an_arrival_the_log_does_not_explain_is_not_given_a_made_up_count():
    text = describe_decision("arrive c1>s", 9, 3, 4, ["0.000000 arrive c1>s 40B"])
    assert "byte(s)" not in text and "option 3 of 9" in text
