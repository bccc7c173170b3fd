"""Oracles: from Observations to failures, one function per failure kind.

Rules as data: `KINDS` is the table docs and reports are generated from.
Every oracle judges only ASGI messages and the wire (README, Rule 4). A
failure's `signature` is what makes two runs "the same bug": for anything
blocked, the await stack's frame inside the server; for a premature close, the
server frames of the call that closed the connection; otherwise a short,
run-independent description.

A client that breaks RFC 9112's rules (`ConnSpec.rude`) is owed less: every
request before the first one written at its own risk (`at_risk_from`) answered
correctly and completely, and the connection then closed where the RFC makes the
server close it; requests from there on may be answered, refused or dropped.
What the server hands the app is judged as always (the request was well formed),
and a plain ERROR line about the client's bytes is no server error.
"""

from __future__ import annotations

import json
import operator

from harness.http.app import SPIN_ANSWERS, AsgiEvent, RequestRecord
from harness.http.client import request_path
from harness.http.failure import APP_FRAMES, Failure, receive_frame, server_frame
from harness.http.observations import ConnFacts, Observations
from harness.http.shutdown_oracle import shutdown_failures
from harness.sim.quiescence import short_path

KINDS: dict[str, str] = {
    "receive-hang": "an app's receive() never returned, though its request's body had "
    "fully arrived at the server and the connection was open",
    "lost-disconnect": "receive() did not return http.disconnect after the response was sent "
    "or the connection was gone (it blocked, or waited for more input or time)",
    "response-integrity": "a request did not get exactly one well-formed response, in order, "
    "with the status and body the app sent",
    "body-integrity": "an app did not receive exactly its own request's body",
    "server-error": "the server logged an error the app did not cause",
    "premature-close": "the server closed a connection while a request on it was being served",
    "leak": "tasks or timers still alive after every connection had closed, or a connection "
    "the server had to close left open",
    "stuck": "a callback never gave control back to the loop (it spins or blocks)",
    "livelock": "the loop never went quiet: for half the step budget it kept running "
    "callbacks while no byte moved and no time passed",
    "shutdown-hang": "a graceful shutdown never completed: the server's shutdown routine, "
    "or the process exit after it, still waited when nothing else could happen",
}

def check(obs: Observations) -> list[Failure]:
    if obs.outcome == "unsettled":
        return []  # cut while still under way: not judged (run_http's callers refuse it)
    if obs.outcome == "livelock":
        # Hangs are found at quiescence (Rule 3), which this run never reached: a request
        # still waiting might yet have been served. Only what holds at any moment counts.
        return _unique(server_error_failures(obs) + stuck_failures(obs)
                       + spin_failures(obs) + livelock_failures(obs))
    failures: list[Failure] = []
    for rec in sorted(obs.requests.values(), key=lambda r: (r.cid, r.index)):
        facts = obs.connections.get(rec.cid)
        if facts is not None:
            failures += receive_failures(rec, facts, obs)
            failures += body_failures(rec, facts)
    for facts in obs.connections.values():
        failures += response_failures(facts, obs)
        failures += premature_close_failures(facts, obs)
        failures += owed_response_failures(facts, obs)
        failures += left_open_failures(facts)
    for facts in obs.connections.values():  # after the others: it skips their consequences
        failures += unanswered_failures(facts, obs, failures)
    failures += server_error_failures(obs)
    failures += stuck_failures(obs)
    if obs.shutdown is not None:
        failures += shutdown_failures(obs, failures)
    failures += spin_failures(obs)
    failures += leak_failures(obs, failures)
    return _unique(failures)


def _unique(failures: list[Failure]) -> list[Failure]:
    """One failure per (kind, signature) is enough to report a run."""
    unique: dict[tuple[str, str], Failure] = {}
    for f in failures:
        unique.setdefault(f.key(), f)
    return list(unique.values())


# -- receive(): hangs and lost disconnects -----------------------------------------
def _pairs(rec: RequestRecord) -> list[tuple[AsgiEvent, AsgiEvent | None]]:
    calls: dict[int, AsgiEvent] = {}
    returns: dict[int, AsgiEvent] = {}
    for e in rec.events:  # (one pass; the last of each call's events, as before)
        if e.kind == "receive":
            calls[e.call] = e
        elif e.kind == "received":
            returns[e.call] = e
    return [(calls[c], returns.get(c)) for c in sorted(calls)]


def _response_done(rec: RequestRecord) -> AsgiEvent | None:
    """The app handing over its final body message: from then on the response is the
    server's to finish (a server may close the connection inside that send())."""
    for e in rec.events:
        if (e.kind == "send" and e.message.get("type") == "http.response.body"
                and not e.message.get("more_body", False)):
            return e
    return None


_KIND = operator.attrgetter("kind")


def _raised(rec: RequestRecord) -> bool:
    """Whether the app raised (its "raised" event): a scan in C, no frame per event."""
    return "raised" in map(_KIND, rec.events)


def _returned(rec: RequestRecord) -> AsgiEvent | None:
    return next((e for e in rec.events if e.kind == "returned"), None)


def _response_handed_over(rec: RequestRecord) -> AsgiEvent | None:
    """The app's final send() returning: only then has the server taken the whole
    response. Under write back-pressure a server may hold that send() until the client
    reads (uvicorn awaits its drain first), and while it is held the response is not
    "sent" in the ASGI sense: a receive() pending then owes nothing yet."""
    done = _response_done(rec)
    if done is None:
        return None
    for e in rec.events:
        if e.kind == "sent" and e.seq > done.seq and e.message.get("type") == "http.response.body":
            return e
    return None


def receive_failures(rec: RequestRecord, facts: ConnFacts, obs: Observations) -> list[Failure]:
    out: list[Failure] = []
    where = request_path(rec.cid, rec.index)
    done = _response_handed_over(rec)
    closed_at = facts.server_closed_at
    end_seen = facts.server_saw_end()
    for call, ret in _pairs(rec):
        # Since when must this receive() answer http.disconnect at once?
        # A body the app has not read yet may still be handed over first.
        # (Even an empty body is one http.request message the app is owed.)
        body_read = bool(call.message.get("body_complete"))
        due: AsgiEvent | None = None
        pending_at_done = (
            done is not None and call.seq < done.seq and (ret is None or ret.seq > done.seq)
        )
        if body_read and pending_at_done:
            due = done  # pending when the response completed
        if body_read and call.message.get("after_response"):
            due = call  # called after the response was sent
        context = "after the response" if call.message.get("after_response") else (
            "pending at the response's end")
        if ret is None:
            if due is None and obs.cuts.get((rec.cid, rec.index, call.call)) == "grace":
                continue  # a shutdown's grace period ran out on it: the cut is allowed
            # where it waits, for the signature (only a receive() that never returned has one)
            stack = receive_frame(obs.receive_stacks.get((rec.cid, rec.index, call.call), ()))
            if due is not None:
                out.append(Failure("lost-disconnect", f"receive() {context}: blocked at {stack}",
                                   f"{where}: receive() #{call.call} {context} never returned",
                                   where))
            elif closed_at is not None or end_seen == "rst":
                out.append(Failure("lost-disconnect", f"receive() after close: blocked at {stack}",
                                   f"{where}: receive() #{call.call} never returned though the "
                                   "connection was closed", where))
            elif end_seen == "fin" and not rec.body_complete and not _body_arrived(rec, facts):
                # (A body that had all arrived is owed whatever the client did next.)
                out.append(Failure("lost-disconnect",
                                   f"receive() after client EOF: blocked at {stack}",
                                   f"{where}: receive() #{call.call} waits for a body the client "
                                   "can no longer send (it closed its side)", where))
            elif call.message.get("body_complete"):
                # Only a disconnect is left to deliver: owed once the response is done,
                # even when the server wrote it (a 500 after the app raised).
                if _answered_on_wire(rec, facts):
                    out.append(Failure("lost-disconnect",
                                       f"receive() after the server's response: blocked at {stack}",
                                       f"{where}: receive() #{call.call} never returned though "
                                       "the response was complete on the wire", where))
            elif _disconnected_before(rec, call):
                # The server already said the client is gone; it owes that answer again.
                out.append(Failure("lost-disconnect",
                                   f"receive() after http.disconnect: blocked at {stack}",
                                   f"{where}: receive() #{call.call} never returned though an "
                                   "earlier receive() had returned http.disconnect", where))
            elif _body_arrived(rec, facts):
                out.append(Failure("receive-hang", f"blocked at {stack}",
                                   f"{where}: receive() #{call.call} never returned though the "
                                   "request body had fully arrived", where))
            continue
        kind = ret.message.get("type")
        if due is not None:
            # Late means virtual time had to pass: the loop went idle with this
            # receive() still waiting, so only a timer or new input woke it. Reads in
            # the same instant are not evidence: other I/O may run before the wake-up.
            late = ret.time > max(due.time, call.time)
            if kind != "http.disconnect" or late:
                what = f"returned {kind}" if kind != "http.disconnect" else (
                    "http.disconnect only after virtual time passed")
                out.append(Failure("lost-disconnect", f"receive() {context}: {what}",
                                   f"{where}: receive() #{call.call} {context}: {what}", where))
    return out


def _disconnected_before(rec: RequestRecord, call: AsgiEvent) -> bool:
    return any(e.kind == "received" and e.message.get("type") == "http.disconnect"
               and e.seq < call.seq for e in rec.events)


def _answered_on_wire(rec: RequestRecord, facts: ConnFacts) -> bool:
    responses = facts.client.responses
    return rec.index < len(responses) and responses[rec.index].complete


def _body_arrived(rec: RequestRecord, facts: ConnFacts) -> bool:
    offsets = facts.client.request_offsets
    if rec.index >= len(offsets):
        return False
    return facts.server_read_bytes() >= offsets[rec.index][1]


# -- bodies and responses ---------------------------------------------------------
def body_failures(rec: RequestRecord, facts: ConnFacts) -> list[Failure]:
    specs = facts.client.spec.requests
    if not rec.body_complete or not 0 <= rec.index < len(specs):
        return []
    expected = specs[rec.index].body(rec.cid, rec.index)
    if rec.body == expected:
        return []
    where = request_path(rec.cid, rec.index)
    return [Failure("body-integrity", "body differs from the request's own",
                    f"{where}: app received {len(rec.body)} bytes {shown(rec.body[:40])}..., "
                    f"sent {len(expected)} bytes", where)]


def response_failures(facts: ConnFacts, obs: Observations) -> list[Failure]:
    client = facts.client
    out: list[Failure] = []
    at_risk = at_risk_from(facts)
    # A response cut short by a close is the premature-close oracle's business
    # (or expected, when the app raised mid-response); only bad bytes count here,
    # and only before the client broke the rules.
    if client.protocol_error is not None and not _is_truncation(client.protocol_error) \
            and client.protocol_error_at < at_risk:
        out.append(Failure("response-integrity", "malformed response",
                           f"c{facts.cid}: {client.protocol_error}"))
    for i, resp in enumerate(client.responses):
        where = request_path(facts.cid, i)
        if i >= len(client.spec.requests):
            out.append(Failure("response-integrity", "more responses than requests", where, where))
            break
        rec = obs.requests.get((facts.cid, i))
        if rec is None:
            if resp.status < 400:
                out.append(Failure("response-integrity", "response for a request the app never saw",
                                   f"{where}: status {resp.status} without an app call", where))
            continue
        raised = _raised(rec)
        if raised and rec.behaviour.raise_at == "before-response":
            # Owed a 500, unless the server had already refused the request itself (a
            # 4xx for a malformed or incomplete request): any error status will do.
            if resp.status < 400:
                out.append(Failure("response-integrity", "app error not answered with 500",
                                   f"{where}: status {resp.status}", where))
            continue
        if raised:
            continue  # raised mid-response: a truncated response is all a server can send
        if obs.shutdown is not None and resp.status >= 500 and "returned" not in map(
                _KIND, rec.events):
            continue  # a shutdown cut the app short and the server said so: visible
        done = _response_done(rec)
        closing = facts.server_close_tick
        if closing is not None and (done is None or done.tick > closing):
            continue  # cut short by the close: premature-close judges that, not this
        expected = rec.expected_body()
        if client.reset and not resp.complete and len(resp.body) < len(expected) \
                and i < at_risk:
            # The app finished its response before the server closed, yet the client
            # lost part of it: the server closed with unread input, so its RST discarded
            # what the client had not read yet (RFC 9112, 9.6: close in stages). (A
            # close-delimited body read whole and then reset is only ambiguous, not lost.)
            out.append(Failure("response-integrity", "response lost to the server's reset",
                               f"{where}: read {len(resp.body)} of {len(expected)} body bytes "
                               "before the server's RST", where))
            continue
        if resp.status != 200 or (resp.complete and resp.body != expected):
            out.append(Failure("response-integrity", "wrong status or body",
                               f"{where}: got {resp.status} {shown(resp.body[:60])}, app sent "
                               f"200 {shown(expected[:60])}", where))
    return out


def shown(data: bytes | bytearray) -> str:
    """Bytes in a message as a JSON string (each byte one character, as latin-1 reads it),
    never a Python repr: reports are pasted where b'...' means nothing."""
    return json.dumps(data.decode("latin-1"))


def _is_truncation(error: str) -> bool:
    return "closed connection" in error or "ConnectionClosed" in error


def premature_close_failures(facts: ConnFacts, obs: Observations) -> list[Failure]:
    closed_at = facts.server_closed_at
    if closed_at is None:
        return []
    client = facts.client
    closing = facts.server_close_tick
    if facts.client_end_tick is not None and (closing is None
                                               or facts.client_end_tick < closing):
        return []  # the client left first
    if obs.shutdown is not None and obs.shutdown.grace_over(closed_at):
        return []  # a shutdown's grace period was over: cutting in-flight work is its point
    out: list[Failure] = []
    for i in range(min(at_risk_from(facts), len(client.spec.requests))):
        rec = obs.requests.get((facts.cid, i))
        if rec is None:
            if _read_but_dropped(facts, obs, i):
                where = request_path(facts.cid, i)
                out.append(Failure("premature-close",
                                   f"closed during a live request: {close_place(facts)}",
                                   f"{where}: the server read the whole request, never called "
                                   f"the app for it and closed the connection at "
                                   f"t={closed_at:g} without answering it", where))
                break
            continue
        done = _response_done(rec) or _returned(rec)  # the app may end without a response
        raised = _raised(rec)
        if raised or (done is not None and closing is not None and done.tick < closing):
            continue
        where = request_path(facts.cid, i)
        started = rec.events[0].tick if rec.events else None
        when = "before the app finished its response" if started is not None and (
            closing is None or started < closing) else "with the request received but the " \
            "app not yet called"
        out.append(Failure("premature-close",
                           f"closed during a live request: {close_place(facts)}",
                           f"{where}: the server closed the connection at t={closed_at:g} "
                           f"{when}", where))
    return out


# -- clients that break the rules ----------------------------------------------------
def at_risk_from(facts: ConnFacts) -> int:
    """The first request on this connection at the client's own risk: the one it wrote
    after breaking a rule (client.py, RUDE), or after one that asked to close; every
    request before it is owed an answer as on any connection."""
    specs = facts.client.spec.requests
    after_close = next((i + 1 for i, s in enumerate(specs) if s.wants_close()), len(specs))
    rude = facts.client.rude_from
    return after_close if rude is None else min(rude, after_close)


def _owed(facts: ConnFacts) -> range:
    """The requests of a connection still owed a whole answer: before any break (or a
    request that asked to close), wholly written, and not cut off by the client itself
    (it went away, or ended in the middle of one)."""
    client, spec = facts.client, facts.client.spec
    if client.ended and spec.end in ("close", "reset"):
        return range(0)
    end = min(at_risk_from(facts), client.fully_sent)
    if spec.end != "none" and spec.end_moment in ("mid-headers", "mid-body"):
        end = min(end, spec.end_request)
    return range(end)


def owed_response_failures(facts: ConnFacts, obs: Observations) -> list[Failure]:
    """A response the app finished arrives whole: on a rule-breaking client's connection
    for each request before the break; on any other whose client reads everything and
    never ends the connection itself, for each request the app answered before the
    server closed the connection, unless a shutdown's grace period was over by then.
    (Wrong bytes in one are response_failures' to judge, a close under a live one
    premature_close_failures'.)"""
    client = facts.client
    closing = facts.server_close_tick
    polite = client.rude_from is None
    # Still open, a client that stops reading or leaves (owed less), or a close after a
    # shutdown's grace period (cutting what is in flight is what its end is for).
    if polite and (closing is None or client.spec.read != "normal"
                   or client.spec.end != "none" or (
                       obs.shutdown is not None
                       and obs.shutdown.grace_over(facts.server_closed_at))):
        return []
    out: list[Failure] = []
    for i in _owed(facts):
        if i < len(client.responses) and client.responses[i].complete:
            continue
        where = request_path(facts.cid, i)
        rec = obs.requests.get((facts.cid, i))
        if rec is None:
            if not polite and facts.server_closed_at is None:  # waits on an open connection
                out.append(Failure("response-integrity", "request before the rule break never "
                                   "answered", f"{where}: no response and no app call, on a "
                                   "connection the server kept open", where))
            continue  # closed first: whether the server had it is the close's question
        done = _response_done(rec)
        if _raised(rec) or done is None or (
                closing is not None and done.tick > closing):
            continue  # the app's own failure, or a close under a live request
        got = client.responses[i].body if i < len(client.responses) else None
        expected = rec.expected_body()
        if got is not None and len(got) >= len(expected):
            continue  # a close-delimited body read whole: ambiguous, as response_failures says
        if client.reset:
            sig, how = "response lost to the server's reset", "the server's RST came first"
        else:
            sig, how = "response never arrived whole", "the app had finished it"
        out.append(Failure("response-integrity", sig,
                           f"{where}: {'no response' if got is None else f'{len(got)} body bytes'}"
                           f" reached the client, though {how}", where))
    return out


def unanswered_failures(facts: ConnFacts, obs: Observations,
                        found: list[Failure] | None = None) -> list[Failure]:
    """README, Rule 3: a polite client's request still waiting for its response on a
    connection the server keeps open at quiescence is a hang, when nothing but the
    server stands in its way: the client wrote it whole, reads everything (one that
    stopped may hold the server up by back-pressure) and has not closed or reset the
    connection (one that only half-closed still waits, as does one meaning to end it
    after its responses; a server that will not serve it must close), no shutdown is
    under way (the shutdown oracle's), and every response before it arrived whole, none
    saying the server closes after it. Only the first such request: the ones behind it
    wait on it. Judged here: a request with no app call ("never answered"), and one whose app
    handed over its whole response ("never delivered"); an app that did not finish is
    judged by what it saw (receive(), premature close). Not one behind a request another
    oracle already reported (`found`): that failure explains the wait. An earlier app
    still blocked in the server's send() explains nothing: the server holds it. (A
    rule-breaking client's request is owed_response_failures'.)"""
    client, spec = facts.client, facts.client.spec
    if (client.rude_from is not None or facts.server_closed_at is not None
            or spec.read == "stop" or (client.ended and spec.end != "half-close")
            or obs.shutdown is not None):
        return []
    responses = client.responses
    i = next((k for k, r in enumerate(responses) if not r.complete), len(responses))
    if i not in _owed(facts) or client.protocol_error is not None:
        return []  # all answered, or the one after them not owed, or a bad response
    if any(r.closes for r in responses[:i]):
        return []  # the server said it closes after one before it
    earlier = {request_path(facts.cid, j) for j in range(i + 1)}
    if any(f.request in earlier for f in found or ()):
        return []
    where = request_path(facts.cid, i)
    rec = obs.requests.get((facts.cid, i))
    if rec is not None:
        if _raised(rec) or _response_done(rec) is None:
            return []  # the app's own failure, or an app still under way
        expected = len(rec.expected_body())
        got = (f"{len(responses[i].body)} of its {expected} body bytes and never its end"
               if i < len(responses) else "no byte of it")
        return [Failure("response-integrity", "response never delivered on an open connection",
                        f"{where}: the client got {got}, though the app had handed over the "
                        "whole response and the server kept the connection open", where)]
    if i < len(responses):
        return []  # a response the server wrote on its own (no app call): not this one's
    # How much of it the server had read: a request never read and one read and never
    # dispatched are the same hang to the client, told apart for whoever debugs it.
    start = client.request_offsets[i - 1][1] if i else 0
    size = client.request_offsets[i][1] - start
    had = min(size, max(0, facts.server_read_bytes() - start))
    return [Failure("response-integrity", "request never answered on an open connection",
                    f"{where}: no response and no app call, though every response before "
                    f"it arrived whole and the server kept the connection open (it had read "
                    f"{had} of the request's {size} bytes)", where)]


def left_open_failures(facts: ConnFacts) -> list[Failure]:
    """RFC 9112, 9.6: a request that asked to close, or a response that said so, before
    a rule-breaking client's break obliges the server to close the connection once that
    response is complete. (One never completed is another oracle's to explain.)"""
    client = facts.client
    if client.rude_from is None or facts.server_closed_at is not None:
        return []
    if client.ended and client.spec.end in ("close", "reset"):
        return []
    at_risk = at_risk_from(facts)
    answered = [i for i, r in enumerate(client.responses[:at_risk]) if r.complete]
    asked = [i for i in answered if client.spec.requests[i].wants_close()]
    said = [i for i in answered if client.responses[i].closes]
    if not (asked or said):
        return []
    i = min(asked + said)
    why = "asked to close" if i in asked else "was answered with Connection: close"
    return [Failure("leak", "connection left open after a close was due",
                    f"c{facts.cid}: the server never closed the connection, though request {i} "
                    f"{why} (RFC 9112, 9.6)")]


def _read_but_dropped(facts: ConnFacts, obs: Observations, i: int) -> bool:
    """Request i was read whole by the server before it began to close, the server
    closed in reaction to input it read (inside data_received) without answering the
    request or calling the app, and nothing before it ended the connection: every
    earlier response is complete, none said Connection: close, and no earlier app
    raised or left its body unread (a server may close rather than drain it). A close
    from a timer or a task, with the request read into a buffer meanwhile, is the
    race every client must retry (the server had decided to close); a close while
    handling the request's own bytes is a request the server had and threw away."""
    client = facts.client
    if not facts.closed_on_read:
        return False
    if i < len(client.responses) or i >= len(client.request_offsets):
        return False
    if facts.read_before_close < client.request_offsets[i][1]:
        return False
    earlier = client.responses[:i]
    if len(earlier) < i or any(not r.complete or r.closes for r in earlier):
        return False
    before = [obs.requests.get((facts.cid, j)) for j in range(i)]
    return all(rec is None or (rec.body_complete and not _raised(rec))
               for rec in before)


# Frames that never say which path of the server closed: the harness (its loop,
# transport, app model) and the async libraries the close passed through.
NOT_CLOSER = ("harness/", "asyncio/", "anyio/", "trio/")
CLOSE_FRAMES = 4  # enough to tell paths apart; more would split one path by its callers


def close_place(facts: ConnFacts) -> str:
    """Where the server closed: its innermost frames of the call stack that first ended
    the connection (outermost first), below the app model's last frame: whoever called
    the app is not the close path. A timer's close shows the timer's callback; a close
    with no server frame on the stack was the transport's own (a fatal error)."""
    stack = facts.closed_stack
    last_app = max((i for i, f in enumerate(stack) if f.file.startswith(APP_FRAMES[0])),
                   default=-1)
    # Top-level stdlib modules (contextlib.py, ...) are no server's either.
    frames = [f for f in stack[last_app + 1:]
              if not f.file.startswith(NOT_CLOSER) and "/" in f.file]
    how = facts.closed_how or "close"
    if how == "exit":
        return "closed at process exit"
    if not frames:
        return f"{how} by the transport itself"
    if how in ("close", "abort", "write_eof"):
        how += "()"
    return f"{how} at " + " < ".join(str(f) for f in reversed(frames[-CLOSE_FRAMES:]))


def stuck_failures(obs: Observations) -> list[Failure]:
    out = []
    for stack in obs.stuck:
        frames = [_frame_words(line) for line in stack]
        inner = [f for f in frames if not f[0].startswith(("asyncio/", "harness/"))]
        path, where = (inner or frames or [("?", "?")])[-1]
        out.append(Failure("stuck", f"stuck in {path} in {where}",
                           "a callback never returned to the loop; stopped by the watchdog "
                           "at:\n" + "\n".join(stack[-8:])))
    return out


def livelock_failures(obs: Observations) -> list[Failure]:
    """Signed by where each callback the loop still had queued would run next."""
    places = sorted({server_frame(work.stack) for work in obs.spinning}) or ["?"]
    queued = "\n".join(f"{work.coroutine} at {server_frame(work.stack)}" for work in obs.spinning)
    return [Failure("livelock", "loop never idle; queued at " + "; ".join(places),
                    "the loop kept running callbacks with no byte moving and no time "
                    f"passing; queued when the run was cut:\n{queued or '(nothing)'}")]


def spin_failures(obs: Observations) -> list[Failure]:
    """The app model stopped a loop over receive() that would have spun forever
    (harness/http/app.py): signed by the server's receive callable that kept answering."""
    out = []
    # (the model notes "spin" only right after setting `spun`: no other record has one)
    for rec in sorted((r for r in obs.requests.values() if r.spun),
                      key=lambda r: (r.cid, r.index)):
        for e in rec.events:
            if e.kind != "spin":
                continue
            where = request_path(rec.cid, rec.index)
            after = "after the body's end" if e.message.get("after_body") else "mid-body"
            answer = e.message.get("answer", "?")
            out.append(Failure(
                "stuck", f"receive() answers at once with nothing new, {after}: "
                f"{e.message.get('receive', '?')}",
                f"{where}: receive() returned {answer} at once, with nothing new, "
                f"{SPIN_ANSWERS} times in a row up to #{e.call} ({after}): an app looping "
                "over receive() until http.disconnect (a disconnect watcher) never gives "
                "control back to the loop", where))
    return out


def _frame_words(line: str) -> tuple[str, str]:
    """("file", "function") of a "file:line in function" stack line, the file made short."""
    place, _, function = line.rpartition(" in ")
    return short_path(place.rsplit(":", 1)[0]), function


def server_error_failures(obs: Observations) -> list[Failure]:
    out = []
    # A client that broke the rules may be told so in the server's log: a plain line,
    # even at ERROR, is fair. An exception is not: the server lost control of its state.
    rude = any(f.client.rude_from is not None for f in obs.connections.values())
    for record in obs.errors:
        if record.deliberate or (rude and record.exc_type is None
                                 and record.logger != "asyncio"):
            continue
        if obs.shutdown is not None and obs.shutdown.grace_over(record.time):
            continue  # the cut a shutdown's grace period made
        out.append(Failure("server-error", f"{record.logger}: {record.exc_type or record.message}",
                           f"{record.logger} logged: {record.message} ({record.exc_type})"))
    return out


def leak_failures(obs: Observations, found: list[Failure]) -> list[Failure]:
    conns = obs.connections.values()
    if not conns or any(f.server_closed_at is None for f in conns):
        return []
    shutdown = obs.shutdown
    if shutdown is not None and shutdown.signalled_tick is not None \
            and shutdown.exited_tick is None:
        return []  # what a shutdown that never ended keeps alive is that failure's
    out = []
    if obs.outcome in ("horizon", "polling") and obs.timers:
        out.append(Failure("leak", f"timers alive: {', '.join(sorted(set(obs.timers)))}",
                           "timers still scheduled after every connection closed"))
    # An app blocked in receive() (reported above as a hang or lost disconnect) keeps
    # alive whatever waits for it: its task, and on servers that tie the connection's
    # task to the app's (hypercorn's task group), the connection's too. Those tasks are
    # that failure's consequence, not a leak of their own; with no app left blocked,
    # every task still alive is one.
    if any(f.kind in ("receive-hang", "lost-disconnect") and "blocked at" in f.signature
           for f in found):
        return out
    for task in obs.blocked:
        if shutdown is not None and task.coroutine == shutdown.coroutine:
            continue
        frame = server_frame(task.stack)
        out.append(Failure("leak", f"task alive at {frame}",
                           f"task {task.coroutine} still blocked after every connection closed"))
    return out
