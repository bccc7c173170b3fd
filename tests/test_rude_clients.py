"""Clients that break RFC 9112's rules: the reference server serves each one as a
robust server must, and reports say what the client did."""

from __future__ import annotations

import pytest

from harness.decisions import OrdinarySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from servers.reference.target import ReferenceTarget

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
    with pytest.raises(ValueError, match="'rude' must be one of"):
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
