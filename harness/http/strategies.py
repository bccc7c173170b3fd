"""Hypothesis strategies for the scenario space, one per family.

Every `sampled_from` lists the ordinary value first, because Hypothesis shrinks
toward the first element: a shrunk scenario is as plain as the failure allows.
Families share the request and behaviour vocabularies and differ in shape:

- keepalive:   requests one after another on one connection, pauses around the keep-alive
               timeout; a request may go out before the previous response is complete
- pipelining:  several requests in one write
- disconnect:  the client half-closes, closes or resets at any moment
- flow:        large bodies, responses large enough to fill the network window and the
               server transport's write buffer (both sized by the scenario), a client
               that reads slowly (and may go away) or stops reading (and then goes away)
- concurrency: two connections at once
- shutdown:    one or two connections, pipelined or one request after another, and the
               server told to shut down gracefully (SIGTERM) at a moment the scenario
               names by the app's progress (harness/http/shutdown.py): in the middle of
               a request, a streaming response, a pending receive(), a sleep, or an idle
               keep-alive connection; only this family draws a grace period

Outside pipelining, every request after the first goes out after the previous
response (the ordinary case), after the previous request, or once the previous
response's head arrived, then waits: requests overlap responses still streaming.

Pauses (between requests, before the client leaves, in the app) are none, short
or long, or in one draw of four a pause just before, at or just after the deadline
of a timer the scenario's settings arm (keep-alive, read timeout), so a
timer-driven race is reached from either side. New axes come with a low prior
(one connection in four overlaps its requests), so widening the space does not
thin out the ordinary scenarios the known finds live in; for the same reason the
shutdown family is drawn at half the weight of each other family.

In keepalive and pipelining a connection may break RFC 9112's rules as real
clients do (`ConnSpec.rude`, harness/http/client.py), drawn seldom and polite
first, so a shrunk failure keeps a rude client only when the rudeness matters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from harness.http.app import READ_MODES, AppBehaviour
from harness.http.client import AFTER, END_ACTIONS, END_MOMENTS, RUDE, ConnSpec, RequestSpec
from harness.http.scenario import NET_DEFAULTS, HttpScenario, Target, timeouts
from harness.http.shutdown import ShutdownSpec

PAUSES = [0.0, 0.5, 6.0]  # none, short, longer than uvicorn's default 5 s keep-alive
# How far either side of a timer's deadline a pause lands: well inside one poll of any
# server's timer, so "just before" and "just after" are told apart, plus the deadline
# itself, where the timer and the client's bytes are due in the same instant and the
# schedule decides which comes first.
NEAR = 0.01
PLAIN_PAUSES = st.sampled_from(PAUSES)
FAMILIES = ("keepalive", "pipelining", "disconnect", "flow", "concurrency", "shutdown")
# Settings that act only at shutdown: other families keep them at their default.
SHUTDOWN_ONLY = ("graceful-timeout",)
# ASGI calls before the signal: a few requests' worth (a request makes about ten); a
# number past what the run makes sends the signal when the run goes quiet.
SHUTDOWN_AFTER = 30
# Response chunk sizes in flow (0: a few bytes), large enough to overrun any window here.
CHUNK_SIZES = [0, 1024, 16 * 1024, 64 * 1024]
MAX_RESPONSE = 640 * 1024  # bounds a run's cost: a slow client reads 512 bytes a poll
# Network windows and server transport high-water marks, the ordinary value first.
WINDOWS = [NET_DEFAULTS["window"], 64 * 1024, 16 * 1024, 4 * 1024]
WRITE_HIGHS = [NET_DEFAULTS["write_high"], 16 * 1024, 4 * 1024, 1024]
# Families whose clients may break the rules, and how often: polite first (shrinking's
# target), each rude behaviour once in every POLITE_WEIGHT + len(RUDE) - 1 connections.
RUDE_FAMILIES = ("keepalive", "pipelining")
POLITE_WEIGHT = 14


def deadline_pauses(timeouts: tuple[float, ...]) -> list[float]:
    """For each of the scenario's timers, a pause just before, at and just after its
    deadline."""
    out: list[float] = []
    for t in timeouts:
        out += [p for p in (round(t - NEAR, 6), t, round(t + NEAR, 6)) if p > 0 and p not in out]
    return out


def pause_strategy(timeouts: tuple[float, ...]) -> st.SearchStrategy[float]:
    """A pause: none, short or long as ever, or (one draw in four) one placed at a timer's
    deadline. The deadline points come in one group, so the more timers a scenario
    sets, the more finely that group is split, not the less often a pause is 0."""
    near = deadline_pauses(timeouts)
    if not near:
        return st.sampled_from(PAUSES)
    return st.sampled_from([*PAUSES, -1.0]).flatmap(
        lambda p: st.just(p) if p >= 0 else st.sampled_from(near))


@st.composite
def behaviours(draw: Any, large: bool = False,
               pauses: st.SearchStrategy[float] = PLAIN_PAUSES,
               long_poll: bool = False) -> AppBehaviour:
    behaviour = _behaviour(draw, large, pauses)
    if long_poll and draw(st.integers(0, 3)) == 3:  # one app in four waits for the end
        behaviour = dataclasses.replace(behaviour, wait_disconnect=True)
    if behaviour.chunk_size:  # twice what the default window and high-water mark hold
        most = max(1, MAX_RESPONSE // behaviour.chunk_size)
        behaviour = dataclasses.replace(behaviour, chunks=min(behaviour.chunks, most))
    return behaviour


def _behaviour(draw: Any, large: bool, pauses: st.SearchStrategy[float]) -> AppBehaviour:
    return AppBehaviour(
        yields_before=draw(st.integers(0, 3)),
        sleep_before=draw(pauses),
        read=draw(st.sampled_from(READ_MODES)),
        watch_disconnect=draw(st.booleans()),
        raise_at=draw(st.sampled_from(["never", "never", "never", "before-response",
                                       "after-start"])),
        chunks=draw(st.integers(1, 40 if large else 3)),
        yields_between=draw(st.integers(0, 2)),
        sleep_after=draw(pauses),
        receive_after=draw(st.booleans()),
        chunk_size=draw(st.sampled_from(CHUNK_SIZES)) if large else 0,
    )


@st.composite
def requests(draw: Any, large: bool = False, pipelined: bool = False,
             pauses: st.SearchStrategy[float] = PLAIN_PAUSES, overlap: bool = False
             ) -> RequestSpec:
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    sizes = [7, 300, 70_000, 300_000] if large else [7, 0, 300]
    size = draw(st.sampled_from(sizes)) if framing != "none" else 0
    http10 = framing != "chunked" and draw(st.booleans()) and draw(st.booleans())
    return RequestSpec(
        method="GET" if framing == "none" else "POST",
        framing=framing,
        body_size=size,
        body_chunks=draw(st.integers(1, 4)),
        expect_continue=framing != "none" and draw(st.booleans()),
        http10=http10,
        close=draw(st.booleans()) and draw(st.booleans()),
        pause=0.0 if pipelined else draw(pauses),
        after=draw(st.sampled_from(AFTER)) if overlap and not pipelined else "response",
    )


@st.composite
def connections(draw: Any, family: str, cid_count: int = 1,
                pauses: st.SearchStrategy[float] = PLAIN_PAUSES) -> ConnSpec:
    pipelined = family == "pipelining" or (family == "shutdown" and draw(st.booleans()))
    large = family == "flow"
    rude = "none"
    if family in RUDE_FAMILIES:
        rude = draw(st.sampled_from(("none",) * POLITE_WEIGHT + RUDE[1:]))
    several = pipelined or rude == "after-close"  # something to send after the close
    n = draw(st.integers(2, 3)) if several else draw(st.integers(1, 3))
    # One connection in four sends requests before the previous response is complete
    # (0, the ordinary client, is where shrinking goes).
    overlap = not pipelined and draw(st.integers(0, 3)) == 3
    reqs = tuple(draw(requests(large=large, pipelined=pipelined, pauses=pauses,
                               overlap=overlap))
                 for _ in range(n))
    if rude == "after-close":
        # A request before the last asks to close (unless one drawn already does): the
        # client writes the ones after it all the same.
        k = draw(st.integers(0, n - 2))
        if not any(r.wants_close() for r in reqs[:-1]):
            reqs = tuple(dataclasses.replace(r, close=True) if i == k else r
                         for i, r in enumerate(reqs))
    elif pipelined:
        # A client that asks to close (or speaks HTTP/1.0) may not send further requests
        # on the connection (RFC 9112, 9.6): only the last pipelined request may.
        reqs = tuple(r if i == n - 1 else dataclasses.replace(r, close=False, http10=False)
                     for i, r in enumerate(reqs))
    # The same rule for a request sent before the previous response is complete; the first
    # request has no previous one. (A rude client sends it whenever its moment comes.)
    reqs = tuple(dataclasses.replace(r, after="response")
                 if i == 0 or (reqs[i - 1].wants_close() and rude != "after-close") else r
                 for i, r in enumerate(reqs))
    read = draw(st.sampled_from(["normal", "slow", "stop"])) if large else "normal"
    if family == "disconnect":
        end = draw(st.sampled_from(END_ACTIONS[1:]))
        moment = draw(st.sampled_from(END_MOMENTS))
    elif large and read == "stop":
        # A client that never reads again must go away at some point: one that stays
        # makes every server without a write timeout wait on it forever once a response
        # fills the window, which no oracle can tell from a bug. It leaves after sending
        # (the other moments wait for response bytes it will not read), by closing or
        # resetting: a half-close keeps the connection it does not read from.
        end = draw(st.sampled_from(("close", "reset")))
        moment = "after-send"
    elif large:  # a slow reader may also go away while the response still streams
        end = draw(st.sampled_from(END_ACTIONS))
        moment = draw(st.sampled_from((*END_MOMENTS[:2], "mid-response")))
    else:
        end = draw(st.sampled_from(END_ACTIONS))
        moment = draw(st.sampled_from(END_MOMENTS[:2]))
    return ConnSpec(
        requests=reqs,
        pipelined=pipelined,
        end=end,
        end_moment=moment,
        end_request=draw(st.integers(0, n - 1)),
        end_delay=draw(pauses),
        read=read,
        start=draw(st.sampled_from([0.0, 0.01])) if cid_count > 1 else 0.0,
        rude=rude,
    )


def weighted_families(families: tuple[str, ...]) -> tuple[str, ...]:
    """The families in the order and proportion scenarios are drawn: the shutdown family,
    whose every run ends the server, at half the weight of each other family, so that
    adding it does not thin out the scenarios where the ordinary finds live."""
    return tuple(f for f in families for _ in range(1 if f == "shutdown" else 2))


@st.composite
def scenarios(draw: Any, target: Target, families: tuple[str, ...] = FAMILIES) -> HttpScenario:
    family = draw(st.sampled_from(weighted_families(families)))
    # Settings first: the timers they arm decide where pauses go. Those that act only at
    # shutdown stay at their default elsewhere.
    meanings = target.setting_meanings()
    server = {key: draw(st.sampled_from(values))
              if family == "shutdown" or meanings.get(key) not in SHUTDOWN_ONLY else values[0]
              for key, values in sorted(target.settings_space().items())}
    # A grace period's timer runs only at shutdown: elsewhere it places no pauses.
    armed = server if family == "shutdown" else {
        **server, **{k: None for k in server if meanings.get(k) in SHUTDOWN_ONLY}}
    pauses = pause_strategy(timeouts(target, armed))
    count = 2 if family == "concurrency" else 1
    if family == "shutdown":
        count = draw(st.integers(1, 2))
    conns = tuple(draw(connections(family, count, pauses)) for _ in range(count))
    large = family == "flow"
    behaviour_list = tuple(
        (cid, i, draw(behaviours(large=large, pauses=pauses, long_poll=family == "shutdown")))
        for cid, conn in enumerate(conns, start=1)
        for i in range(len(conn.requests))
    )
    net: dict[str, int] = {}
    if large:
        drawn = {"window": draw(st.sampled_from(WINDOWS)),
                 "write_high": draw(st.sampled_from(WRITE_HIGHS))}
        net = {k: v for k, v in drawn.items() if v != NET_DEFAULTS[k]}  # {}: the defaults
    shutdown = None
    if family == "shutdown":
        shutdown = ShutdownSpec(draw(st.integers(0, SHUTDOWN_AFTER)),
                                draw(pauses))
    return HttpScenario(family, conns, behaviour_list, server, net, shutdown)
