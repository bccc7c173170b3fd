"""Hypothesis strategies for the scenario space, one per family.

Every `sampled_from` lists the ordinary value first, because Hypothesis shrinks
toward the first element: a shrunk scenario is as plain as the failure allows.
Families share the request and behaviour vocabularies and differ in shape:

- keepalive:   sequential requests on one connection, pauses around the keep-alive timeout
- pipelining:  several requests in one write
- disconnect:  the client half-closes, closes or resets at any moment
- flow:        large bodies, many chunks, a client that reads slowly or stops
- concurrency: two connections at once
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import strategies as st

from harness.http.app import READ_MODES, AppBehaviour
from harness.http.client import END_ACTIONS, END_MOMENTS, ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, Target

PAUSES = [0.0, 0.5, 6.0]  # none, short, longer than uvicorn's default 5 s keep-alive
FAMILIES = ("keepalive", "pipelining", "disconnect", "flow", "concurrency")


@st.composite
def behaviours(draw: Any, large: bool = False) -> AppBehaviour:
    return AppBehaviour(
        yields_before=draw(st.integers(0, 3)),
        sleep_before=draw(st.sampled_from(PAUSES)),
        read=draw(st.sampled_from(READ_MODES)),
        watch_disconnect=draw(st.booleans()),
        raise_at=draw(st.sampled_from(["never", "never", "never", "before-response",
                                       "after-start"])),
        chunks=draw(st.integers(1, 40 if large else 3)),
        yields_between=draw(st.integers(0, 2)),
        sleep_after=draw(st.sampled_from(PAUSES)),
        receive_after=draw(st.booleans()),
    )


@st.composite
def requests(draw: Any, large: bool = False, pipelined: bool = False) -> RequestSpec:
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
        pause=0.0 if pipelined else draw(st.sampled_from(PAUSES)),
    )


@st.composite
def connections(draw: Any, family: str, cid_count: int = 1) -> ConnSpec:
    pipelined = family == "pipelining"
    large = family == "flow"
    n = draw(st.integers(2, 3)) if pipelined else draw(st.integers(1, 3))
    reqs = tuple(draw(requests(large=large, pipelined=pipelined)) for _ in range(n))
    if pipelined:
        # A client that asks to close (or speaks HTTP/1.0) may not send further requests
        # on the connection (RFC 9112, 9.6): only the last pipelined request may.
        reqs = tuple(r if i == n - 1 else dataclasses.replace(r, close=False, http10=False)
                     for i, r in enumerate(reqs))
    if family == "disconnect":
        end = draw(st.sampled_from(END_ACTIONS[1:]))
        moment = draw(st.sampled_from(END_MOMENTS))
    else:
        end = draw(st.sampled_from(END_ACTIONS))
        moment = draw(st.sampled_from(END_MOMENTS[:2]))
    return ConnSpec(
        requests=reqs,
        pipelined=pipelined,
        end=end,
        end_moment=moment,
        end_request=draw(st.integers(0, n - 1)),
        end_delay=draw(st.sampled_from(PAUSES)),
        read=draw(st.sampled_from(["normal", "slow", "stop"])) if large else "normal",
        start=draw(st.sampled_from([0.0, 0.01])) if cid_count > 1 else 0.0,
    )


@st.composite
def scenarios(draw: Any, target: Target, families: tuple[str, ...] = FAMILIES) -> HttpScenario:
    family = draw(st.sampled_from(families))
    count = 2 if family == "concurrency" else 1
    conns = tuple(draw(connections(family, count)) for _ in range(count))
    large = family == "flow"
    behaviour_list = tuple(
        (cid, i, draw(behaviours(large=large)))
        for cid, conn in enumerate(conns, start=1)
        for i in range(len(conn.requests))
    )
    server = {key: draw(st.sampled_from(values))
              for key, values in sorted(target.settings_space().items())}
    return HttpScenario(family, conns, behaviour_list, server)
