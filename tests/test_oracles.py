"""Each oracle passes a clean run and flags the observation a buggy server would produce.

A clean run on the installed uvicorn gives real observations; each test then
changes one observed fact into what a broken server would have shown, so every
oracle is seen to fail (no check that cannot fail).
"""

from __future__ import annotations

import dataclasses
import re

from harness.decisions import OrdinarySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.failure import Failure, receive_frame
from harness.http.observations import LogRecord, Observations
from harness.http.oracles import KINDS, check, leak_failures, unanswered_failures
from harness.http.scenario import HttpScenario, run_http
from harness.http.shutdown import ShutdownFacts
from harness.sim.quiescence import BlockedTask, Frame
from servers.uvicorn_target import UvicornTarget

POST = RequestSpec(method="POST", framing="length", body_size=300)
PLAIN = AppBehaviour()


def clean_run(behaviour: AppBehaviour = PLAIN, end: str = "close") -> Observations:
    scenario = HttpScenario("keepalive", (ConnSpec((POST, POST), end=end),),
                            ((1, 0, behaviour), (1, 1, AppBehaviour())))
    run = run_http(scenario, UvicornTarget("h11"), OrdinarySource())
    assert run.failures == []
    return run.observations


def kinds(obs: Observations) -> set[str]:
    return {f.kind for f in check(obs)}


def test_every_failure_kind_has_a_description():
    assert set(KINDS) == {"receive-hang", "lost-disconnect", "response-integrity",
                          "body-integrity", "server-error", "premature-close", "leak", "stuck",
                          "livelock", "shutdown-hang"}


def test_an_app_that_got_another_requests_body_is_a_body_integrity_failure():
    obs = clean_run()
    rec = obs.requests[(1, 0)]
    obs.requests[(1, 0)] = dataclasses.replace(rec, body=obs.requests[(1, 1)].body)
    assert kinds(obs) == {"body-integrity"}


def test_a_response_with_the_wrong_body_is_a_response_integrity_failure():
    obs = clean_run()
    obs.connections[1].client.responses[1].body = b"c1r0:0;"
    assert kinds(obs) == {"response-integrity"}


def test_malformed_response_bytes_are_a_response_integrity_failure():
    obs = clean_run()
    obs.connections[1].client.protocol_error = "response 1: illegal header line"
    assert kinds(obs) == {"response-integrity"}


def test_a_receive_after_the_response_answered_late_is_a_lost_disconnect():
    obs = clean_run(AppBehaviour(receive_after=True))
    rec = obs.requests[(1, 0)]
    events = [e._replace(time=e.time + 5.0) if e.kind == "received" and e.call == 2
              else e for e in rec.events]
    obs.requests[(1, 0)] = dataclasses.replace(rec, events=events)
    assert kinds(obs) == {"lost-disconnect"}


def test_a_receive_pending_while_the_final_send_is_held_is_owed_disconnect_from_its_return():
    # Under write back-pressure a server may hold the app's final send() until the client
    # reads (uvicorn awaits its drain first): the response is not handed over until that
    # send() returns, so a receive() pending meanwhile owes http.disconnect from then on.
    obs = clean_run(AppBehaviour(watch_disconnect=True))
    rec = obs.requests[(1, 0)]
    by = {(e.kind, e.call, e.message.get("type")): e for e in rec.events}
    pending = by[("receive", 2, None)]._replace(
        message={"after_response": False, "body_complete": True})
    order = [by[("call", 0, None)], by[("receive", 1, None)],
             by[("received", 1, "http.request")], by[("watch", 0, None)], pending,
             by[("send", 0, "http.response.start")], by[("sent", 0, "http.response.start")],
             by[("send", 0, "http.response.body")], by[("sent", 0, "http.response.body")],
             by[("received", 2, "http.disconnect")], by[("returned", 0, None)]]

    def held_until(sent: float, answered: float) -> set[str]:
        times = {("sent", "http.response.body"): sent, ("received", "http.disconnect"): answered,
                 ("returned", None): sent}
        events = [e._replace(seq=i, time=times.get((e.kind, e.message.get("type")), e.time))
                  for i, e in enumerate(order)]
        obs.requests[(1, 0)] = dataclasses.replace(rec, events=events)
        return kinds(obs)

    assert held_until(sent=3.0, answered=3.0) == set()
    assert held_until(sent=3.0, answered=4.0) == {"lost-disconnect"}
    assert held_until(sent=0.0, answered=3.0) == {"lost-disconnect"}


def test_a_receive_that_never_returned_with_its_body_arrived_is_a_receive_hang():
    obs = clean_run(end="none")
    rec = obs.requests[(1, 1)]
    events = [e for e in rec.events if e.kind not in ("received", "send", "sent", "returned")]
    obs.requests[(1, 1)] = dataclasses.replace(rec, events=events, body_complete=False)
    obs.connections[1].conn.down.fin_sent_at = None  # the connection is still open
    obs.connections[1].conn.down.rst_sent_at = None
    obs.connections[1].client.responses.pop()
    stack = (Frame("uvicorn/protocols/http/h11_impl.py", 500, "RequestResponseCycle.receive"),)
    obs.receive_stacks[(1, 1, 1)] = stack
    [failure] = check(obs)
    assert failure.kind == "receive-hang"
    assert failure.signature == "blocked at uvicorn/protocols/http/h11_impl.py:500 in " \
                                "RequestResponseCycle.receive"


def test_a_receive_whose_body_had_arrived_is_a_hang_whatever_the_client_did_after():
    # The client half-closed after its request had all arrived: the body is owed, so a
    # receive() that never returns is a hang, not a wait for a body it cannot send.
    obs = clean_run(end="none")
    rec = obs.requests[(1, 1)]
    events = [e for e in rec.events if e.kind not in ("received", "send", "sent", "returned")]
    obs.requests[(1, 1)] = dataclasses.replace(rec, events=events, body_complete=False)
    obs.connections[1].conn.down.fin_sent_at = None
    obs.connections[1].conn.down.rst_sent_at = None
    obs.connections[1].client.responses.pop()
    up = obs.connections[1].conn.up
    up.fin_arrived, up.rx = True, bytearray()
    assert obs.connections[1].server_saw_end() == "fin"
    assert [f.kind for f in check(obs)] == ["receive-hang"]
    # Had the body not all arrived, the receive() waits for what the client cannot send.
    up.bytes_read = obs.connections[1].client.request_offsets[1][1] - 1
    assert [f.signature.split(":")[0] for f in check(obs)] == ["receive() after client EOF"]


def test_a_receive_blocked_after_an_earlier_http_disconnect_is_a_lost_disconnect():
    obs = clean_run(end="none")
    rec = obs.requests[(1, 1)]
    first = next(e for e in rec.events if e.kind == "receive")
    gone = first._replace(kind="received", message={"type": "http.disconnect"},
                          seq=first.seq + 1)
    again = first._replace(call=2, seq=first.seq + 2)
    events = [e for e in rec.events if e.seq <= first.seq] + [gone, again]
    obs.requests[(1, 1)] = dataclasses.replace(rec, events=events)
    obs.connections[1].conn.down.fin_sent_at = None  # the connection is still open
    obs.connections[1].conn.down.rst_sent_at = None
    obs.connections[1].client.responses.pop()
    obs.receive_stacks[(1, 1, 2)] = (Frame("asyncio/queues.py", 158, "Queue.get"),)
    [failure] = check(obs)
    assert (failure.kind, failure.signature) == (
        "lost-disconnect", "receive() after http.disconnect: blocked at asyncio/queues.py:158 "
        "in Queue.get")


def test_an_app_that_raised_is_owed_a_500_unless_the_server_had_refused_the_request():
    obs = clean_run(AppBehaviour(raise_at="before-response"))
    response = obs.connections[1].client.responses[0]
    assert response.status == 500
    response.status = 400  # the server's own answer to a bad request: fine
    assert kinds(obs) == set()
    response.status = 200
    assert kinds(obs) == {"response-integrity"}


def test_a_finished_response_the_server_reset_away_is_a_response_integrity_failure():
    obs = clean_run(end="none")
    client = obs.connections[1].client
    last = client.responses[1]
    last.body, last.complete = last.body[:3], False
    # The app had finished it before the server closed (at the keep-alive timeout): lost,
    # whether the close was a FIN or a RST.
    assert {f.key() for f in check(obs)} == {("response-integrity",
                                              "response never arrived whole")}
    client.reset = True
    [failure] = check(obs)
    assert (failure.kind, failure.signature) == (
        "response-integrity", "response lost to the server's reset")


NEVER_ANSWERED = ("response-integrity", "request never answered on an open connection")
NEVER_DELIVERED = ("response-integrity", "response never delivered on an open connection")


def test_a_finished_response_that_never_arrives_before_the_servers_close_is_lost():
    # hypercorn 0.12.0 on real asyncio: an app answering after the keep-alive timeout is
    # let finish, then the connection closes without a byte of its response.
    obs = clean_run(end="none")
    facts, client = obs.connections[1], obs.connections[1].client
    assert facts.server_close_tick is not None  # the keep-alive timeout closed it
    client.responses.pop()
    assert {f.key() for f in check(obs)} == {("response-integrity",
                                              "response never arrived whole")}
    # Owed only to a client that reads everything and stays until the server closes.
    for changed in ({"read": "stop"}, {"read": "slow"}, {"end": "close"}):
        client.spec = dataclasses.replace(client.spec, **changed)  # type: ignore[arg-type]
        assert kinds(obs) == set(), changed
    client.spec = dataclasses.replace(client.spec, read="normal", end="none")
    facts.server_close_tick = None  # still open at quiescence: the client waits forever
    facts.conn.down.fin_sent_at = facts.conn.down.rst_sent_at = None
    assert {f.key() for f in check(obs)} == {NEVER_DELIVERED}




def kept_open_with_r1_unanswered() -> Observations:
    """A clean run as a server that read r1 and never dispatched it would leave it: no app
    call, no response, and the connection not closed (no keep-alive timeout)."""
    obs = clean_run(end="none")
    facts = obs.connections[1]
    facts.conn.down.fin_sent_at = facts.conn.down.rst_sent_at = None
    facts.server_close_tick = None
    del obs.requests[(1, 1)]
    facts.client.responses.pop()
    return obs


def unanswered(obs: Observations) -> set[tuple[str, str]]:
    return {f.key() for f in unanswered_failures(obs.connections[1], obs)}


def test_a_polite_clients_request_left_unanswered_on_an_open_connection_is_a_hang():
    obs = kept_open_with_r1_unanswered()
    [failure] = check(obs)
    assert failure.key() == NEVER_ANSWERED and failure.request == "/c1/r1"
    assert "read 364 of the request's 364 bytes" in failure.message  # head and body
    obs.connections[1].conn.up.bytes_read = obs.connections[1].client.request_offsets[0][1]
    assert "read 0 of" in check(obs)[0].message  # never read: the same hang to the client


def test_an_unanswered_request_is_no_hang_where_the_client_or_a_shutdown_stands_in_its_way():
    obs = kept_open_with_r1_unanswered()
    client = obs.connections[1].client
    assert unanswered(obs) == {NEVER_ANSWERED}
    # A client that stopped reading may hold the server up (back-pressure); one that
    # read slowly has read all there was by quiescence, as a normal one has.
    client.spec = dataclasses.replace(client.spec, read="stop")
    assert unanswered(obs) == set()
    client.spec = dataclasses.replace(client.spec, read="slow")
    assert unanswered(obs) == {NEVER_ANSWERED}
    # One that closed or reset the connection itself is owed less; one that means to end
    # it only after its responses, or only half-closed it, still waits for them.
    for end in ("half-close", "close", "reset"):
        client.spec = dataclasses.replace(client.spec, end=end)
        assert unanswered(obs) == {NEVER_ANSWERED}, end
        client.ended = True
        assert unanswered(obs) == ({NEVER_ANSWERED} if end == "half-close" else set()), end
        client.ended = False
    obs.shutdown = ShutdownFacts(signalled_tick=1, signalled_at=0.0, returned_tick=None,
                                 exited_tick=None, stack=(), grace=None, coroutine="drive")
    assert unanswered(obs) == set()  # the shutdown oracle's to judge
    obs.shutdown = None
    client.fully_sent = 1  # r1 not wholly written (a body held for 100 Continue)
    assert unanswered(obs) == set()
    client.fully_sent = 2
    client.rude_from = 2  # a rule-breaking client keeps its own signature
    assert {f.key() for f in check(obs)} == {
        ("response-integrity", "request before the rule break never answered")}


def test_an_unanswered_request_is_no_hang_where_the_server_closed_or_the_app_was_called():
    obs = kept_open_with_r1_unanswered()
    facts = obs.connections[1]
    assert unanswered(obs) == {NEVER_ANSWERED}
    facts.conn.down.fin_sent_at = 7.0  # closed: whether it had the request is the close's
    assert unanswered(obs) == set()
    facts.conn.down.fin_sent_at = None
    rec = clean_run(end="none").requests[(1, 1)]
    obs.requests[(1, 1)] = rec  # the app handed over its whole response: never delivered
    assert {(f.key(), f.request) for f in unanswered_failures(facts, obs)} == {
        (NEVER_DELIVERED, "/c1/r1")}
    done = next(e for e in rec.events if e.kind == "send" and e.message["type"]
                == "http.response.body" and not e.message.get("more_body", False))
    obs.requests[(1, 1)] = dataclasses.replace(  # still under way: the receive() oracles'
        rec, events=[e for e in rec.events if e.seq < done.seq])
    assert unanswered(obs) == set()
    last = rec.events[-1]
    raised = last._replace(kind="raised", message={}, seq=last.seq + 1, tick=last.tick + 1)
    obs.requests[(1, 1)] = dataclasses.replace(rec, events=[*rec.events, raised])
    assert unanswered(obs) == set()  # the app's own failure, whatever it sent


def test_an_unanswered_request_behind_an_unfinished_one_is_that_ones_consequence():
    obs = kept_open_with_r1_unanswered()
    client, first = obs.connections[1].client, obs.connections[1].client.responses[0]
    rec = obs.requests[(1, 0)]
    assert unanswered(obs) == {NEVER_ANSWERED}
    # Responses come in order: r1 waits for r0's end, and r0, its app done, is the hang.
    first.complete = False
    assert {(f.key(), f.request) for f in unanswered_failures(obs.connections[1], obs)} == {
        (NEVER_DELIVERED, "/c1/r0")}
    first.complete, first.closes = True, True  # the server said it closes after r0
    assert unanswered(obs) == set()
    first.closes = False
    client.protocol_error = "response 0: illegal header line"
    assert unanswered(obs) == set()
    client.protocol_error = None
    # r0's app still in the server's send() (hypercorn 0.18.0 parks it, max_app_queue_size
    # 1, when the app left its request unread): the server holds it, so r1 still counts.
    obs.requests[(1, 0)] = dataclasses.replace(
        rec, events=[e for e in rec.events if e.kind not in ("sent", "returned")])
    assert unanswered(obs) == {NEVER_ANSWERED}
    # A failure another oracle reports for r0 (its receive() blocked) explains the wait.
    blocked = Failure("lost-disconnect", "receive() after the response: blocked at q.py:1",
                      "/c1/r0: receive() #2 never returned", "/c1/r0")
    assert unanswered_failures(obs.connections[1], obs, [blocked]) == []
    elsewhere = dataclasses.replace(blocked, request="/c2/r0")
    assert unanswered_failures(obs.connections[1], obs, [elsewhere]) != []


def test_an_error_the_server_logged_is_a_server_error_unless_the_app_caused_it():
    obs = clean_run()
    obs.errors.append(LogRecord("uvicorn.error", "Exception in ASGI application",
                                "AppRaised", deliberate=True))
    assert kinds(obs) == set()
    obs.errors.append(LogRecord("uvicorn.error", "boom", "KeyError", deliberate=False))
    assert kinds(obs) == {"server-error"}


def test_closing_before_the_app_finished_is_a_premature_close():
    obs = clean_run(end="none")
    facts = obs.connections[1]
    rec = obs.requests[(1, 1)]
    # The close came before the app handed over its last body message.
    facts.server_close_tick = min(e.tick for e in rec.events if e.kind == "send") - 1
    facts.client_end_tick = None
    facts.conn.down.fin_sent_at = 0.0
    assert "premature-close" in kinds(obs)


def test_tasks_or_timers_alive_after_every_connection_closed_are_a_leak():
    obs = clean_run()
    assert obs.connections[1].server_closed_at is not None
    obs.blocked.append(BlockedTask("Server.watchdog", (Frame("server.py", 9, "watchdog"),)))
    assert kinds(obs) == {"leak"}
    obs.blocked.clear()
    obs.outcome, obs.timers = "horizon", ["H11Protocol.timeout_keep_alive_handler"]
    assert kinds(obs) == {"leak"}


def test_tasks_kept_alive_by_an_app_blocked_in_receive_are_that_failure_not_a_leak():
    obs = clean_run()
    obs.blocked.append(BlockedTask("TCPServer.run", (Frame("tcp_server.py", 70, "run"),)))
    blocked_app = Failure("lost-disconnect", "receive() after close: blocked at q.py:1 in get",
                          "/c1/r0: receive() #3 never returned")
    assert leak_failures(obs, [blocked_app]) == []
    assert [f.kind for f in leak_failures(obs, [])] == ["leak"]
    obs.outcome, obs.timers = "horizon", ["TCPServer._idle_timeout"]
    assert [f.kind for f in leak_failures(obs, [blocked_app])] == ["leak"]  # timers still count


def test_a_blocked_receive_is_signed_where_the_receive_callable_waits_whoever_awaited_it():
    get = Frame("asyncio/queues.py", 158, "Queue.get")
    in_app_task = (Frame("hypercorn/asyncio/task_group.py", 28, "_handle"),
                   Frame("hypercorn/app_wrappers.py", 34, "ASGIWrapper.__call__"),
                   Frame("harness/http/app.py", 153, "RecordingApp._receive"), get)
    in_watcher = (Frame("harness/http/app.py", 180, "RecordingApp._watch"),
                  Frame("harness/http/app.py", 153, "RecordingApp._receive"), get)
    assert receive_frame(in_app_task) == receive_frame(in_watcher) == str(get)
    uvicorn = (Frame("harness/http/app.py", 153, "RecordingApp._receive"),
               Frame("uvicorn/protocols/http/h11_impl.py", 530, "RequestResponseCycle.receive"),
               Frame("asyncio/locks.py", 213, "Event.wait"))
    assert receive_frame(uvicorn) == str(uvicorn[1])


def test_asgi_events_carry_virtual_time_and_their_position_in_the_log():
    obs = clean_run()
    ticks = [e.tick for e in obs.requests[(1, 0)].events]
    assert ticks == sorted(ticks) and ticks[0] > 0


def test_observations_are_not_changed_by_the_teardown_after_quiescence():
    # The app sleeps past the horizon, so the run ends with its task alive and the
    # connection open; teardown then cancels the task, and the server answers the
    # cancellation by closing the connection. The oracles must not see that close.
    scenario = HttpScenario("keepalive", (ConnSpec((POST,)),),
                            ((1, 0, AppBehaviour(sleep_before=7200.0)),))
    run = run_http(scenario, UvicornTarget("h11"), OrdinarySource())
    assert run.observations.outcome == "horizon"
    assert run.observations.connections[1].server_closed_at is None
    assert run.failures == []


def test_a_timeline_names_connections_deviations_errors_and_the_app_s_own_end():
    from harness.tools.report import _mermaid

    log = ["0.000000 client-send client[c1] 42B", "0.000000 hold c1>s 42B (decision 3)",
           "0.500000 arrive c1>s 10B (decision 4)", "0.500000 arrive c1>s 32B",
           "0.500000 recv server[c1] 42B", "0.500000 asgi /c1/r0 call /c1/r0",
           "0.500000 asgi /c1/r0 raised RuntimeError",
           "5.000000 loop-error Exception in callback H.timeout(): LocalProtocolError",
           "5.000000 close server[c2] buffered=0"]
    assert _mermaid(log)[4:] == [
        "    C->>S: c1 42B (t=0)",
        "    Note over C,S: c1#62;s held back (decision 3) (t=0)",
        "    Note over C,S: c1#62;s only 10B arrived (decision 4) (t=0.5)",
        "    Note over S: reads 42B on c1",
        "    S->>A: call /c1/r0",
        "    Note over A: /c1/r0 raised RuntimeError",
        "    Note over S: error logged: Exception in callback H.timeout(): "
        "LocalProtocolError (t=5)",
        "    S->>C: c2 close (t=5)"]


def test_a_long_timeline_keeps_its_start_and_its_end():
    from harness.tools.report import MAX_TIMELINE, TIMELINE_HEAD, _mermaid

    log = [f"0.000000 client-send client[c1] {n}B" for n in range(1, 501)]
    lines = _mermaid(log)
    assert len(lines) == MAX_TIMELINE
    assert lines[4] == "    C->>S: c1 1B (t=0)" and lines[-1] == "    C->>S: c1 500B (t=0)"
    kept = MAX_TIMELINE - 4 - 1
    assert lines[4 + TIMELINE_HEAD] == f"    Note over C,A: ... {500 - kept} events omitted ..."


def test_timeline_labels_escape_what_mermaid_would_eat():
    from harness.tools.report import _mermaid

    lines = _mermaid(["0.5 asgi /c1/r0 received #2 http.disconnect",
                      "1.0 end quiescent: nothing ready; no timers"])
    assert "    S-->>A: /c1/r0 received #35;2 http.disconnect" in lines
    assert "    Note over C,A: quiescent: nothing ready#59; no timers" in lines
    for line in lines:  # every "#" starts an entity code, no ";" ends a statement early
        assert re.fullmatch(r"[^#;]*(#\d+;[^#;]*)*", line), line
