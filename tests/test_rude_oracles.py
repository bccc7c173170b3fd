"""What a server owes a client that breaks the rules, each rule seen to fail.

A clean run of a rule-breaking client on the reference server gives real
observations; each test changes one observed fact into what a broken server would
have shown, and checks the oracle flags it before the client's break and lets it
pass from the break on (no check that cannot fail, none that overreaches).
"""

from __future__ import annotations

import dataclasses

from harness.decisions import OrdinarySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.observations import LogRecord, Observations
from harness.http.oracles import at_risk_from, check
from harness.http.scenario import HttpScenario, run_http
from servers.reference.target import ReferenceTarget

POST = RequestSpec(method="POST", framing="length", body_size=7)
# The client asks to close with its first request and pipelines a second all the same.
AFTER_CLOSE = ConnSpec((RequestSpec(close=True), POST), pipelined=True, rude="after-close")
# An empty line after each request: the second is at the client's risk, but served.
CRLF = ConnSpec((POST, POST), pipelined=True, rude="crlf")


def clean_run(conn: ConnSpec, **polite: object) -> Observations:
    conn = dataclasses.replace(conn, **polite)  # type: ignore[arg-type]
    scenario = HttpScenario("pipelining", (conn,),
                            tuple((1, i, AppBehaviour()) for i in range(len(conn.requests))),
                            {})
    run = run_http(scenario, ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    return run.observations


def found(obs: Observations) -> set[tuple[str, str]]:
    return {f.key() for f in check(obs)}


def never_closed(obs: Observations) -> None:
    facts = obs.connections[1]
    facts.conn.down.fin_sent_at = facts.conn.down.rst_sent_at = None
    facts.server_close_tick = None


def test_the_break_is_where_the_client_says_it_broke_the_rules():
    assert at_risk_from(clean_run(AFTER_CLOSE).connections[1]) == 1
    assert at_risk_from(clean_run(CRLF).connections[1]) == 1
    assert at_risk_from(clean_run(CRLF, rude="none").connections[1]) == 2


def test_a_response_before_the_break_that_never_arrives_is_a_response_integrity_failure():
    obs = clean_run(AFTER_CLOSE)
    client = obs.connections[1].client
    whole = client.responses.pop()  # the app finished r0's response, and none of it arrived
    assert found(obs) == {("response-integrity", "response never arrived whole")}
    client.reset = True
    assert found(obs) == {("response-integrity", "response lost to the server's reset")}
    # A close-delimited body read whole, then a RST instead of its FIN: only ambiguous.
    client.responses.append(dataclasses.replace(whole, complete=False))
    assert found(obs) == set()
    client.responses.clear()
    client.ended = True  # ... but a client that went away is owed nothing
    obs.connections[1].client.spec = dataclasses.replace(AFTER_CLOSE, end="close")
    assert found(obs) == set()


def test_a_request_before_the_break_left_unanswered_on_an_open_connection_is_a_failure():
    obs = clean_run(AFTER_CLOSE)
    del obs.requests[(1, 0)]
    obs.connections[1].client.responses.clear()
    assert found(obs) == set()  # the server closed: whether it had the request is moot
    never_closed(obs)
    assert ("response-integrity", "request before the rule break never answered") in found(obs)


def test_a_connection_left_open_after_the_client_asked_to_close_is_a_leak():
    obs = clean_run(AFTER_CLOSE)
    never_closed(obs)
    assert found(obs) == {("leak", "connection left open after a close was due")}
    obs.connections[1].client.responses[0].complete = False  # not due before its response
    assert ("leak", "connection left open after a close was due") not in found(obs)
    crlf = clean_run(CRLF)  # nobody asked to close: keeping it open is the server's right
    never_closed(crlf)
    assert found(crlf) == set()


def test_requests_from_the_break_on_are_owed_no_response_and_no_live_close():
    obs = clean_run(CRLF)
    facts = obs.connections[1]
    late = obs.requests[(1, 1)]
    # The server closed under the second request (at the client's risk): fair.
    facts.server_close_tick = min(e.tick for e in late.events if e.kind == "send") - 1
    facts.client.responses.pop()
    assert found(obs) == set()
    # The same close under the first request (before the break) is not.
    first = obs.requests[(1, 0)]
    facts.server_close_tick = min(e.tick for e in first.events if e.kind == "send") - 1
    assert {k for k, _ in found(obs)} == {"premature-close"}


def test_a_reset_or_bad_bytes_after_the_break_are_the_clients_risk_before_it_a_failure():
    obs = clean_run(CRLF)
    client = obs.connections[1].client
    second = client.responses[1]
    second.body, second.complete, client.reset = second.body[:2], False, True
    client.protocol_error, client.protocol_error_at = "response 1: illegal status line", 1
    assert found(obs) == set()
    first = client.responses[0]
    first.body, first.complete = first.body[:2], False
    client.protocol_error_at = 0
    assert found(obs) == {("response-integrity", "response lost to the server's reset"),
                          ("response-integrity", "malformed response")}


def test_what_the_server_hands_the_app_after_the_break_is_still_judged():
    obs = clean_run(CRLF)
    late = obs.requests[(1, 1)]
    obs.requests[(1, 1)] = dataclasses.replace(late, body=late.body[2:] + b"\r\n")
    assert found(obs) == {("body-integrity", "body differs from the request's own")}


def test_a_plain_error_line_about_a_rude_client_is_no_server_error_an_exception_is():
    def errors(obs: Observations, *records: LogRecord) -> set[tuple[str, str]]:
        obs.errors[:] = records
        return {k for k, _ in found(obs)}

    plain = LogRecord("hypercorn.error", "Bad request from the client", None, False)
    raised = LogRecord("hypercorn.error", "Error in ASGI Framework", "LocalProtocolError", False)
    loop = LogRecord("asyncio", "Fatal error: protocol.data_received() call failed.", None,
                     False)
    assert errors(clean_run(CRLF), plain) == set()
    assert errors(clean_run(CRLF), raised) == {"server-error"}
    assert errors(clean_run(CRLF), loop) == {"server-error"}
    assert errors(clean_run(CRLF, rude="none"), plain) == {"server-error"}  # a polite client

