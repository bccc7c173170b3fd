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
import functools
from typing import Any

from hypothesis import strategies as st

from harness.http.app import READ_MODES, AppBehaviour
from harness.http.client import (
    AFTER,
    CLIENT_READS,
    END_ACTIONS,
    END_MOMENTS,
    FRAMINGS,
    RUDE,
    ConnSpec,
    RequestSpec,
)
from harness.http.families import FAMILIES
from harness.http.scenario import NET_DEFAULTS, HttpScenario, Target, timeouts
from harness.http.shutdown import ShutdownSpec

PAUSES = [0.0, 0.5, 6.0]  # none, short, longer than uvicorn's default 5 s keep-alive
# How far either side of a timer's deadline a pause lands: well inside one poll of any
# server's timer, so "just before" and "just after" are told apart, plus the deadline
# itself, where the timer and the client's bytes are due in the same instant and the
# schedule decides which comes first.
NEAR = 0.01
PLAIN_PAUSES = st.sampled_from(PAUSES)
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

# Every strategy is built once, here or by a cached factory below: Hypothesis validates a
# strategy object the first time it draws from it, and composites whose bodies built
# their strategies anew paid that on every draw of every scenario.
_INT = {bounds: st.integers(*bounds) for bounds in
        ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (1, 4), (2, 3), (1, 40), (0, SHUTDOWN_AFTER))}
_BOOL = st.booleans()
_READ_MODES = st.sampled_from(READ_MODES)
_RAISE_AT = st.sampled_from(["never", "never", "never", "before-response", "after-start"])
_CHUNK_SIZES = st.sampled_from(CHUNK_SIZES)
_FRAMING = st.sampled_from(FRAMINGS)
_SIZES = {True: st.sampled_from([7, 300, 70_000, 300_000]), False: st.sampled_from([7, 0, 300])}
_AFTER = st.sampled_from(AFTER)
_RUDE = st.sampled_from(("none",) * POLITE_WEIGHT + RUDE[1:])
_CLIENT_READ = st.sampled_from(CLIENT_READS)
_DISCONNECT_END = st.sampled_from(END_ACTIONS[1:])
_END_MOMENTS = st.sampled_from(END_MOMENTS)
_STOP_END = st.sampled_from(("close", "reset"))
_LARGE_END_MOMENTS = st.sampled_from((*END_MOMENTS[:2], "mid-response"))
_END = st.sampled_from(END_ACTIONS)
_SMALL_END_MOMENTS = st.sampled_from(END_MOMENTS[:2])
_START = st.sampled_from([0.0, 0.01])
_WINDOWS = st.sampled_from(WINDOWS)
_WRITE_HIGHS = st.sampled_from(WRITE_HIGHS)


@functools.cache
def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    return _INT[low, high] if (low, high) in _INT else st.integers(low, high)


@functools.cache
def _sampled(values: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    return st.sampled_from(values)


def deadline_pauses(timeouts: tuple[float, ...]) -> list[float]:
    """For each of the scenario's timers, a pause just before, at and just after its
    deadline."""
    out: list[float] = []
    for t in timeouts:
        out += [p for p in (round(t - NEAR, 6), t, round(t + NEAR, 6)) if p > 0 and p not in out]
    return out


@functools.cache
def pause_strategy(timeouts: tuple[float, ...]) -> st.SearchStrategy[float]:
    """A pause: none, short or long as ever, or (one draw in four) one placed at a timer's
    deadline. The deadline points come in one group, so the more timers a scenario
    sets, the more finely that group is split, not the less often a pause is 0."""
    near = deadline_pauses(timeouts)
    if not near:
        return st.sampled_from(PAUSES)
    exact = {p: st.just(p) for p in PAUSES}
    nearby = st.sampled_from(near)
    return st.sampled_from([*PAUSES, -1.0]).flatmap(
        lambda p: exact[p] if p >= 0 else nearby)


@st.composite
def behaviours(draw: Any, large: bool = False,
               pauses: st.SearchStrategy[float] = PLAIN_PAUSES,
               long_poll: bool = False) -> AppBehaviour:
    behaviour = _behaviour(draw, large, pauses)
    if long_poll and draw(_INT[0, 3]) == 3:  # one app in four waits for the end
        behaviour = dataclasses.replace(behaviour, wait_disconnect=True)
    if behaviour.chunk_size:  # twice what the default window and high-water mark hold
        most = max(1, MAX_RESPONSE // behaviour.chunk_size)
        behaviour = dataclasses.replace(behaviour, chunks=min(behaviour.chunks, most))
    return behaviour


def _behaviour(draw: Any, large: bool, pauses: st.SearchStrategy[float]) -> AppBehaviour:
    return AppBehaviour(
        yields_before=draw(_INT[0, 3]),
        sleep_before=draw(pauses),
        read=draw(_READ_MODES),
        watch_disconnect=draw(_BOOL),
        raise_at=draw(_RAISE_AT),
        chunks=draw(_INT[1, 40] if large else _INT[1, 3]),
        yields_between=draw(_INT[0, 2]),
        sleep_after=draw(pauses),
        receive_after=draw(_BOOL),
        chunk_size=draw(_CHUNK_SIZES) if large else 0,
    )


@st.composite
def requests(draw: Any, large: bool = False, pipelined: bool = False,
             pauses: st.SearchStrategy[float] = PLAIN_PAUSES, overlap: bool = False
             ) -> RequestSpec:
    framing = draw(_FRAMING)
    size = draw(_SIZES[large]) if framing != "none" else 0
    http10 = framing != "chunked" and draw(_BOOL) and draw(_BOOL)
    return RequestSpec(
        method="GET" if framing == "none" else "POST",
        framing=framing,
        body_size=size,
        body_chunks=draw(_INT[1, 4]),
        expect_continue=framing != "none" and draw(_BOOL),
        http10=http10,
        close=draw(_BOOL) and draw(_BOOL),
        pause=0.0 if pipelined else draw(pauses),
        after=draw(_AFTER) if overlap and not pipelined else "response",
    )


@st.composite
def connections(draw: Any, family: str, cid_count: int = 1,
                pauses: st.SearchStrategy[float] = PLAIN_PAUSES) -> ConnSpec:
    pipelined = family == "pipelining" or (family == "shutdown" and draw(_BOOL))
    large = family == "flow"
    rude = "none"
    if family in RUDE_FAMILIES:
        rude = draw(_RUDE)
    several = pipelined or rude == "after-close"  # something to send after the close
    n = draw(_INT[2, 3]) if several else draw(_INT[1, 3])
    # One connection in four sends requests before the previous response is complete
    # (0, the ordinary client, is where shrinking goes).
    overlap = not pipelined and draw(_INT[0, 3]) == 3
    reqs = tuple(draw(_requests(large, pipelined, pauses, overlap))
                 for _ in range(n))
    if rude == "after-close":
        # A request before the last asks to close (unless one drawn already does): the
        # client writes the ones after it all the same.
        k = draw(_integers(0, n - 2))
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
    read = draw(_CLIENT_READ) if large else "normal"
    if family == "disconnect":
        end = draw(_DISCONNECT_END)
        moment = draw(_END_MOMENTS)
    elif large and read == "stop":
        # A client that never reads again must go away at some point: one that stays
        # makes every server without a write timeout wait on it forever once a response
        # fills the window, which no oracle can tell from a bug. It leaves after sending
        # (the other moments wait for response bytes it will not read), by closing or
        # resetting: a half-close keeps the connection it does not read from.
        end = draw(_STOP_END)
        moment = "after-send"
    elif large:  # a slow reader may also go away while the response still streams
        end = draw(_END)
        moment = draw(_LARGE_END_MOMENTS)
    else:
        end = draw(_END)
        moment = draw(_SMALL_END_MOMENTS)
    return ConnSpec(
        requests=reqs,
        pipelined=pipelined,
        end=end,
        end_moment=moment,
        end_request=draw(_integers(0, n - 1)),
        end_delay=draw(pauses),
        read=read,
        start=draw(_START) if cid_count > 1 else 0.0,
        rude=rude,
    )


# The composites above, one strategy object per distinct argument list (see _INT).
_behaviours = functools.cache(behaviours)
_requests = functools.cache(requests)
_connections = functools.cache(connections)


def weighted_families(families: tuple[str, ...]) -> tuple[str, ...]:
    """The families in the order and proportion scenarios are drawn: the shutdown family,
    whose every run ends the server, at half the weight of each other family, so that
    adding it does not thin out the scenarios where the ordinary finds live."""
    return tuple(f for f in families for _ in range(1 if f == "shutdown" else 2))


@st.composite
def scenarios(draw: Any, target: Target, families: tuple[str, ...] = FAMILIES) -> HttpScenario:
    family = draw(_sampled(weighted_families(families)))
    # Settings first: the timers they arm decide where pauses go. Those that act only at
    # shutdown stay at their default elsewhere.
    meanings = target.setting_meanings()
    server = {key: draw(_sampled(tuple(values)))
              if family == "shutdown" or meanings.get(key) not in SHUTDOWN_ONLY else values[0]
              for key, values in sorted(target.settings_space().items())}
    # A grace period's timer runs only at shutdown: elsewhere it places no pauses.
    armed = server if family == "shutdown" else {
        **server, **{k: None for k in server if meanings.get(k) in SHUTDOWN_ONLY}}
    pauses = pause_strategy(timeouts(target, armed))
    count = 2 if family == "concurrency" else 1
    if family == "shutdown":
        count = draw(_INT[1, 2])
    conns = tuple(draw(_connections(family, count, pauses)) for _ in range(count))
    large = family == "flow"
    behaviour_list = tuple(
        (cid, i, draw(_behaviours(large, pauses, family == "shutdown")))
        for cid, conn in enumerate(conns, start=1)
        for i in range(len(conn.requests))
    )
    net: dict[str, int] = {}
    if large:
        drawn = {"window": draw(_WINDOWS),
                 "write_high": draw(_WRITE_HIGHS)}
        net = {k: v for k, v in drawn.items() if v != NET_DEFAULTS[k]}  # {}: the defaults
    shutdown = None
    if family == "shutdown":
        shutdown = ShutdownSpec(draw(_INT[0, SHUTDOWN_AFTER]),
                                draw(pauses))
    return HttpScenario(family, conns, behaviour_list, server, net, shutdown)
