"""The reference server in the simulation: timers in virtual time, flow control, clients leaving.

These are the behaviours that need a clock or a stalled peer, which real
sockets cannot give a test without waiting: the keep-alive timer, reading
and writing back-pressure, and a client closing or resetting at every stage
of an exchange (checked by the harness's own oracles, under the ordinary
ordering and under random ones).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.decisions import OrdinarySource, RandomSource
from harness.http.app import AppBehaviour
from harness.http.client import END_ACTIONS, END_MOMENTS, ConnSpec, RequestSpec
from harness.http.scenario import ADDRESS, HttpScenario, run_http
from harness.net.peer import PeerConnection
from harness.sim.loop import SimLoop
from harness.sim.run import simulate
from harness.sim.transport import MAX_READ
from servers.reference.config import Config
from servers.reference.target import HIGH_WATER, ReferenceTarget

GET = RequestSpec()
POST = RequestSpec(method="POST", framing="chunked", body_size=300, body_chunks=3)
PLAIN = AppBehaviour()


def scenario(conn: ConnSpec, behaviour: AppBehaviour = PLAIN,
             keep_alive: float = 5.0) -> HttpScenario:
    return HttpScenario("test", (conn,), tuple((1, i, behaviour)
                                               for i in range(len(conn.requests))),
                        {"keep_alive": keep_alive})


def test_an_idle_connection_closes_when_the_keep_alive_timer_fires():
    run = run_http(scenario(ConnSpec((GET,))), ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    assert run.observations.connections[1].server_closed_at == 5.0


def test_the_keep_alive_timer_never_fires_under_a_live_request():
    slow = AppBehaviour(sleep_before=6.0, sleep_after=6.0)
    run = run_http(scenario(ConnSpec((GET,)), slow), ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    [response] = run.observations.connections[1].client.responses
    assert (response.status, response.complete) == (200, True)
    # 12 s of app work, then 5 s idle: the timer ran only after the request was done.
    assert run.observations.connections[1].server_closed_at == 17.0


def test_a_request_arriving_before_the_timer_fires_keeps_the_connection():
    later = RequestSpec(pause=0.5)
    run = run_http(scenario(ConnSpec((GET, later, later)), keep_alive=1.0),
                   ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    assert [r.status for r in run.observations.connections[1].client.responses] == [200] * 3


def mount_and_connect(app: Any, config: Config, send: bytes,
                      read_limit: int | None = None) -> tuple[Any, dict[str, Any]]:
    """Run `app` on the reference target with one client that sends `send`; at
    quiescence return the connection and the client peer."""
    state: dict[str, Any] = {}

    async def program(loop: SimLoop) -> None:
        await ReferenceTarget().mount(loop, app, {"keep_alive": config.keep_alive}, ADDRESS)
        peer = PeerConnection(loop, ADDRESS, read_limit=read_limit)
        peer.send(send)
        state["peer"] = peer

    result = simulate(program, OrdinarySource(),
                      inspect=lambda loop: {"conn": loop.network.connections[0]})
    assert result.outcome == "quiescent", result.detail
    return result.extras["conn"], state


def test_reading_pauses_while_the_app_does_not_consume_the_body():
    stuck = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await stuck.wait()  # never reads the body

    size = 900_000
    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
    conn, _ = mount_and_connect(app, Config(), head + b"b" * size)
    # The server reads until the protocol buffer passes HIGH_WATER and the cycle holds
    # buffer_limit unconsumed bytes: at most one transport read beyond both.
    bound = MAX_READ + HIGH_WATER + Config().buffer_limit + len(head)
    assert 0 < conn.up.bytes_read <= bound
    assert conn.up.bytes_read < size  # the rest waits in the client's socket


def test_writing_pauses_while_the_client_does_not_read():
    sent: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(40):
            await send({"type": "http.response.body", "body": b"z" * 65536, "more_body": True})
            sent.append(i)

    conn, _ = mount_and_connect(app, Config(), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                read_limit=0)
    # The app is held in send() once the network window and the transport buffer are full.
    assert 0 < len(sent) < 40
    assert len(sent) * 65536 <= conn.down.window + 2 * 65536 + HIGH_WATER


MOMENTS = [(action, moment) for action in END_ACTIONS[1:] for moment in END_MOMENTS]


@pytest.mark.parametrize(("action", "moment"), MOMENTS)
def test_a_client_leaving_at_any_stage_leaves_no_hang_leak_or_error(action: str, moment: str):
    conn = ConnSpec((POST, POST), end=action, end_moment=moment, end_request=1)
    behaviour = AppBehaviour(watch_disconnect=True, receive_after=True, chunks=3,
                             yields_between=1)
    failures = []
    for source in [OrdinarySource(), *(RandomSource(seed) for seed in range(15))]:
        run = run_http(scenario(conn, behaviour), ReferenceTarget(), source)
        failures += [(getattr(source, "seed", "ordinary"), f.kind, f.message)
                     for f in run.failures]
        assert run.result.outcome == "quiescent"
    assert failures == []


@pytest.mark.parametrize("action", ["close", "half-close"])
def test_a_client_leaving_mid_body_gets_the_app_a_disconnect(action: str):
    conn = ConnSpec((POST,), end=action, end_moment="mid-body")
    run = run_http(scenario(conn, AppBehaviour(read="all")), ReferenceTarget(),
                   OrdinarySource())
    assert run.failures == []
    received = [e.message for e in run.observations.requests[1, 0].events
                if e.kind == "received"]
    assert received[-1] == {"type": "http.disconnect"}
    assert all(m["type"] == "http.request" for m in received[:-1])


def test_a_client_leaving_mid_headers_never_reaches_the_app():
    conn = ConnSpec((POST,), end="close", end_moment="mid-headers")
    run = run_http(scenario(conn), ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    assert run.observations.requests == {}


@pytest.mark.parametrize("watch", [False, True])
def test_keep_alive_requests_with_disconnect_watchers(watch: bool):
    behaviour = AppBehaviour(watch_disconnect=watch, receive_after=True, chunks=3)
    run = run_http(scenario(ConnSpec((POST, POST, GET)), behaviour), ReferenceTarget(),
                   OrdinarySource())
    assert run.failures == []
    assert [r.status for r in run.observations.connections[1].client.responses] == [200] * 3


def test_a_half_closed_client_still_gets_the_whole_response():
    # Found by `pytest scenarios/` (flow family): the client half-closes before sending a
    # body it announced; the app answers without reading it. The body can never complete,
    # but the client can still read: the response must reach it whole.
    post10 = RequestSpec(method="POST", framing="length", body_size=7, http10=True)
    conn = ConnSpec((post10,), end="half-close", end_moment="mid-body")
    behaviour = AppBehaviour(read="none", chunks=2, yields_between=1, sleep_after=6.0)
    run = run_http(scenario(conn, behaviour), ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    [response] = run.observations.connections[1].client.responses
    assert (response.status, response.body) == (200, b"c1r0:0;c1r0:1;")



def test_a_shutdown_tells_busy_exchanges_in_the_order_they_began():
    # Not in hash (address) order, as a set would: a replay must not depend on memory.
    from contextlib import ExitStack

    from servers.reference.config import Shutdown

    heard: list[int] = []

    class Exchange:
        def __init__(self, n: int) -> None:
            self.n = n

        def __hash__(self) -> int:
            return self.n

        def __call__(self) -> None:
            heard.append(self.n)

    shutdown = Shutdown()
    with ExitStack() as stack:
        for n in (5, 4, 3, 2, 1):
            stack.enter_context(shutdown.tells(Exchange(n)))
        shutdown.begin()
    assert heard == [5, 4, 3, 2, 1]
