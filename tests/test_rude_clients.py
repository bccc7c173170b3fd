"""Clients that break RFC 9112's rules: the search reaches each behaviour, and the
reference server serves each one as a robust server must.

The reach tests run the ordinary search (scenarios and decisions drawn by
Hypothesis, seeded) on the reference server, with a probe of the run's event log
in place of the oracles (tests/test_wider_space.py's `reach`): the probe "fails"
when the client's rule break shows in the log, so the engine stops there, and the
oracles must pass every run on the way.
"""

from __future__ import annotations

import pytest

from harness.decisions import OrdinarySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from harness.sim.eventlog import EventLog
from servers.reference.target import ReferenceTarget
from tests.test_wider_space import entries, reach


def rude_notes(log: EventLog) -> list[tuple[int, str]]:
    """(position in the log, detail) of each rule the client broke."""
    return [(i, d) for i, (kind, d) in enumerate(entries(log)) if kind == "client-rude"]


def before_any_arrival(log: EventLog, at: int) -> bool:
    return not any(kind == "arrive" for kind, _ in entries(log)[:at])


def pipelined_after_close(log: EventLog) -> bool:
    """A request after one that asked to close, in the same write (nothing had arrived)."""
    return any("asked to close" in d and before_any_arrival(log, i) for i, d in rude_notes(log))


def later_after_close(log: EventLog) -> bool:
    """A request written after one that asked to close, once the server had answered."""
    return any("asked to close" in d and not before_any_arrival(log, i)
               for i, d in rude_notes(log))


def after_server_close(log: EventLog) -> bool:
    """A request written after a response head that said Connection: close arrived, where
    no request had asked to close (the server closes on its own: an error, say)."""
    return any("after the server's Connection: close" in d for _, d in rude_notes(log))


def empty_line(log: EventLog) -> bool:
    return any("an empty line after request" in d for _, d in rude_notes(log))


@pytest.mark.parametrize(("family", "probe", "runs"), [
    ("pipelining", pipelined_after_close, 600),
    ("keepalive", later_after_close, 600),
    # needs a response that closes on its own (the app raised, say) before the close request
    ("keepalive", after_server_close, 3000),
    ("pipelining", empty_line, 600),
    ("keepalive", empty_line, 600),
])
def test_the_search_reaches_each_rude_client_behaviour(family, probe, runs):
    scenario = reach((family,), probe, probe.__name__, runs)
    [conn] = scenario.connections
    assert conn.rude == ("crlf" if probe is empty_line else "after-close")
    assert conn.pipelined == (family == "pipelining")


SLOW = AppBehaviour(chunks=3, yields_between=1, sleep_before=0.5)
POST = RequestSpec(method="POST", framing="length", body_size=7)


def served(conn: ConnSpec) -> tuple[list[tuple[int, bool]], list[int]]:
    """Run one rude connection on the reference server under the ordinary schedule:
    (status, complete) of each response, and which requests reached the app."""
    scenario = HttpScenario("keepalive", (conn,),
                            tuple((1, i, SLOW) for i in range(len(conn.requests))), {})
    run = run_http(scenario, ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    client = run.observations.connections[1].client
    return ([(r.status, r.complete) for r in client.responses],
            sorted(i for _, i in run.observations.requests))


@pytest.mark.parametrize("after", ["pipelined", "sent", "head", "response"])
@pytest.mark.parametrize("close", [RequestSpec(close=True), RequestSpec(http10=True)])
def test_the_reference_answers_the_close_request_and_never_the_ones_after(after, close):
    later = RequestSpec(after="response" if after == "pipelined" else after)
    conn = ConnSpec((close, POST if after == "pipelined" else later),
                    pipelined=after == "pipelined", rude="after-close")
    responses, apps = served(conn)
    assert responses == [(200, True)]  # its own response, whole; nothing for the next
    assert apps == [0]  # RFC 9112, 9.6: no request after a close is processed


@pytest.mark.parametrize("pipelined", [True, False])
def test_the_reference_ignores_an_empty_line_before_a_request_line(pipelined):
    conn = ConnSpec((POST, POST, RequestSpec()), pipelined=pipelined, rude="crlf")
    responses, apps = served(conn)
    assert responses == [(200, True)] * 3
    assert apps == [0, 1, 2]


def test_rude_is_in_the_json_only_when_set_and_is_checked():
    polite = HttpScenario("keepalive", (ConnSpec((RequestSpec(),)),), (), {})
    assert "rude" not in polite.to_json()["connections"][0]
    rude = HttpScenario("keepalive", (ConnSpec((RequestSpec(),), rude="crlf"),), (), {})
    data = rude.to_json()
    assert data["connections"][0]["rude"] == "crlf"
    assert HttpScenario.from_json(data) == rude
    data["connections"][0]["rude"] = "rowdy"
    with pytest.raises(ValueError,
                       match=r"connections\[0\]\.rude is 'rowdy'; expected one of 'none'"):
        HttpScenario.from_json(data)


def test_the_report_says_how_the_client_broke_the_rules_and_when():
    from harness.tools.diagnosis import client_account
    from harness.tools.report import _mermaid

    conn = ConnSpec((RequestSpec(close=True), RequestSpec()), pipelined=True,
                    rude="after-close")
    account = client_account(HttpScenario("pipelining", (conn,), (), {}).to_json())
    assert account == ("two GETs pipelined in one write, with Connection: close, breaking "
                       "the rules: it wrote requests after one that asked to close, and after "
                       "a response that said the server closes (RFC 9112, 9.6)")
    log = ["0.000000 client-rude client[c1] request 1 after a request that asked to close "
           "(after-close)"]
    assert _mermaid(log)[4:] == ["    Note over C: request 1 after a request that asked to "
                                 "close (after-close)"]
