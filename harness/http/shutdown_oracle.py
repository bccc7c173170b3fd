"""What a graceful shutdown owes, judged from the ASGI interface and the wire.

Only runs whose scenario shut the server down (harness/http/shutdown.py), and
only once the signal was handled. From then on:

1. The shutdown completes: the server's own shutdown routine returns and the
   process exits (every task still alive ends when cancelled, as `asyncio.run`
   cancels it). One still waiting at quiescence (or only polling) is a
   `shutdown-hang`, signed by the server frame it waits in and what it waits
   for, as the wire and the app show it: an app still running, or a
   connection left open with nothing in flight (an idle keep-alive connection
   the shutdown never closed).
2. Every receive() pending when the shutdown began, or called after, returns:
   http.disconnect, or the body it is still owed. One that never returns, or
   that the process exit cancels, is a `lost-disconnect`: the app waited for
   news of a connection the server was taking away. A receive() the server
   itself cancels once the scenario's grace period is over is not: cutting
   in-flight work short then is what a grace period means.
3. In-flight apps finish. A close under a live request is a `premature-close`
   as in any run (oracles.py), a close by the process exit included ("closed at
   process exit": the shutdown returned without waiting for it), unless it
   came after the grace period.
4. Nothing is cut off silently. A response the app finished (its final send()
   returned) before the connection ended must reach the client whole; oracles.py
   judges that as in any run, and a close that cuts it is a premature close or
   a response lost to a reset. A response the app had not finished may be cut
   only after the grace period, and then visibly: no response, a body short of
   its framing followed by the close, or a reset, never a response that parses
   as complete. Why this line: once send() returns, the app believes the
   response is out and no ASGI message can tell it otherwise, so a graceful
   shutdown must deliver it; a response still being written belongs to work
   the operator chose to cut, and a client can retry what it can tell failed,
   but not what looks whole.
5. The shutdown routine does not raise (a `server-error`), and ERROR records
   the server logs once the grace period is over (uvicorn logs each task it
   cancels) are that cut, not errors.
"""

from __future__ import annotations

from harness.http.app import AsgiEvent, RequestRecord
from harness.http.client import request_path
from harness.http.failure import Failure, receive_frame
from harness.http.observations import ConnFacts, Observations
from harness.http.shutdown import ShutdownFacts
from harness.sim.quiescence import Frame

# Frames of the harness's own shutdown driver and of the async libraries: never where
# the server waits.
NOT_SERVER = ("harness/", "asyncio/", "anyio/", "trio/")


def shutdown_failures(obs: Observations, found: list[Failure]) -> list[Failure]:
    facts = obs.shutdown
    if facts is None or facts.signalled_tick is None:
        return []
    out: list[Failure] = []
    if facts.raised is not None:
        out.append(Failure("server-error", f"shutdown raised {facts.raised.split(':')[0]}",
                           f"the server's shutdown routine raised {facts.raised}"))
    if facts.exited_tick is None:
        out.append(_hang(obs, facts))
    flagged = {f.request for f in found if f.kind in ("receive-hang", "lost-disconnect")}
    for rec in sorted(obs.requests.values(), key=lambda r: (r.cid, r.index)):
        where = request_path(rec.cid, rec.index)
        if where not in flagged:
            out += _receives(rec, obs, facts)
    for conn in obs.connections.values():
        out += _silent_cuts(conn, obs, facts)
    return out


def _hang(obs: Observations, facts: ShutdownFacts) -> Failure:
    frame = _server_frame(facts.stack)
    if frame is None:  # the server's routine returned: the exit waits for a task
        inner = [t for t in obs.blocked if t.coroutine != facts.coroutine]
        where = _server_frame(inner[0].stack) if inner else None
        place = f"process exit waits for a task that will not end, at {where or '?'}"
    else:
        place = f"shutdown waits at {frame}"
    cause = _waiting_for(obs)
    # and where a server task that keeps it waiting waits, if one is blocked there
    tasks = sorted(f for t in obs.blocked if t.coroutine != facts.coroutine
                   if (f := _server_frame(_own(t.stack))) is not None)
    if tasks and frame is not None and "receive()" not in cause:
        cause += f"; a server task waits at {tasks[0]}"
    return Failure("shutdown-hang", f"{place} ({cause})",
                   f"the graceful shutdown begun at t={facts.signalled_at:g} never "
                   f"completed: {place}, with {cause}")


def _own(stack: tuple[Frame, ...]) -> tuple[Frame, ...]:
    """The frames below the app model's last one: where the server waits, not the app."""
    last = max((i for i, f in enumerate(stack) if f.file == "harness/http/app.py"), default=-1)
    return stack[last + 1:]


def _server_frame(stack: tuple[Frame, ...]) -> str | None:
    frames = [f for f in stack if not f.file.startswith(NOT_SERVER) and "/" in f.file]
    return str(frames[-1]) if frames else None


def _finished(rec: RequestRecord) -> bool:
    """The app returned or raised; or an exception the server raised into its receive()
    ended it (the app model passes that on: the app is over, not running)."""
    last = rec.events[-1] if rec.events else None
    return any(e.kind in ("returned", "raised") for e in rec.events) or (
        last is not None and last.kind == "received"
        and str(last.message.get("type", "")).startswith("raised"))


def _waiting_for(obs: Observations) -> str:
    """What the wire and the app show the shutdown still has: the first that applies."""
    running = [r for r in obs.requests.values() if not _finished(r)]
    receiving = [r for r in running
                 if any((r.cid, r.index) == key[:2] for key in obs.receive_stacks)]
    if receiving:
        closed = all(obs.connections[r.cid].server_closed_at is not None for r in receiving
                     if r.cid in obs.connections)
        where = sorted(receive_frame(stack) for key, stack in obs.receive_stacks.items()
                       for r in receiving if key[:2] == (r.cid, r.index))
        return (f"an app waiting in receive() at {where[0]}"
                + (" after its connection closed" if closed else ""))
    if running:
        return "an app still running"
    open_conns = [c for c in obs.connections.values() if c.server_closed_at is None]
    unanswered = [c for c in open_conns for r in obs.requests.values() if r.cid == c.cid
                  and not (r.index < len(c.client.responses)
                           and c.client.responses[r.index].complete)]
    if unanswered:
        return "a connection left open with a request unanswered"
    if open_conns:
        return "an idle connection left open"
    return "every connection closed"


def _receives(rec: RequestRecord, obs: Observations, facts: ShutdownFacts) -> list[Failure]:
    assert facts.signalled_tick is not None
    out = []
    where = request_path(rec.cid, rec.index)
    calls = {e.call: e for e in rec.events if e.kind == "receive"}
    returns = {e.call: e for e in rec.events if e.kind == "received"}
    for n, call in sorted(calls.items()):
        ret: AsgiEvent | None = returns.get(n)
        pending = call.tick < facts.signalled_tick and (
            ret is None or ret.tick > facts.signalled_tick)
        if not pending and call.tick < facts.signalled_tick:
            continue
        # One signature for both: whether the receive() was already waiting when the
        # signal came or was called after, the server owed it the same answer.
        context = "pending when the shutdown began" if pending else "called during shutdown"
        if ret is None:
            if obs.cuts.get((rec.cid, rec.index, n)) == "grace":
                continue  # cut once the grace period was over: what a grace period is for
            stack = obs.receive_stacks.get((rec.cid, rec.index, n), ())
            out.append(Failure("lost-disconnect", "receive() during shutdown: blocked at "
                               f"{receive_frame(stack)}",
                               f"{where}: receive() #{n}, {context}, never returned", where))
            break
        kind = str(ret.message.get("type", ""))
        if kind.startswith("raised") and not facts.grace_over(ret.time):
            # the server's own cancel (the exit's are left out: see observations.py)
            out.append(Failure("lost-disconnect", f"receive() during shutdown: {kind} before "
                               "the grace period", f"{where}: receive() #{n}, {context}, ended "
                               f"by {kind.split()[-1]} before any grace period was over, never "
                               "by http.disconnect", where))
            break
    return out


def _silent_cuts(conn: ConnFacts, obs: Observations, facts: ShutdownFacts) -> list[Failure]:
    """A response cut off after the signal that nonetheless parses as complete."""
    closing = conn.server_close_tick
    if closing is None or facts.signalled_tick is None or closing < facts.signalled_tick:
        return []
    out = []
    for i, resp in enumerate(conn.client.responses):
        rec = obs.requests.get((conn.cid, i))
        if rec is None or not resp.complete or any(e.kind == "raised" for e in rec.events):
            continue
        done = _final_send(rec)
        if done is not None and done.tick < closing:
            continue  # finished before the close: oracles.py judges it as in any run
        expected = rec.expected_body()
        if resp.status == 200 and resp.body != expected:  # the app's own status: no 5xx
            where = request_path(conn.cid, i)
            out.append(Failure("response-integrity", "a response cut off at shutdown looks "
                               "complete", f"{where}: the client read a complete response of "
                               f"{len(resp.body)} body bytes; the app was sending "
                               f"{len(expected)}", where))
    return out


def _final_send(rec: RequestRecord) -> AsgiEvent | None:
    for e in rec.events:
        if (e.kind == "send" and e.message.get("type") == "http.response.body"
                and not e.message.get("more_body", False)):
            return e
    return None
