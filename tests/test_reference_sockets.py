"""The reference server on real loopback sockets, on asyncio and on trio."""

from __future__ import annotations

from typing import Any

import anyio
import h11
import pytest

from servers.reference.server import serve

pytestmark = pytest.mark.parametrize("backend", ["asyncio", "trio"])


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/boom":
        raise ValueError("app failure, on purpose")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-path",
                scope["path"].encode())]})
    await send({"type": "http.response.body", "body": b"got:" + body})
    after = await receive()
    assert after == {"type": "http.disconnect"}, after


async def exchange(requests: list[bytes], count: int) -> list[tuple[int, bytes]]:
    """Start the server, write the requests in one go, parse `count` responses."""
    results: list[tuple[int, bytes]] = []
    async with anyio.create_task_group() as tg:
        port_ready = anyio.Event()
        port: list[int] = []

        def ready(p: int) -> None:
            port.append(p)
            port_ready.set()

        tg.start_soon(lambda: serve(echo_app, "127.0.0.1", 0, ready=ready))
        await port_ready.wait()
        async with await anyio.connect_tcp("127.0.0.1", port[0]) as stream:
            await stream.send(b"".join(requests))
            parser = h11.Connection(h11.CLIENT)
            for _ in range(count):
                parser.send(h11.Request(method="POST", target="/", headers=[("Host", "x"),
                                        ("Content-Length", "0")]))
                parser.send(h11.EndOfMessage())
                status, body = 0, b""
                while True:
                    event = parser.next_event()
                    if event is h11.NEED_DATA:
                        try:
                            parser.receive_data(await stream.receive())
                        except anyio.EndOfStream:
                            parser.receive_data(b"")
                        continue
                    if isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
                results.append((status, body))
                if parser.our_state is h11.DONE and parser.their_state is h11.DONE:
                    parser.start_next_cycle()
                else:
                    break
        tg.cancel_scope.cancel()
    return results


def request(path: str, body: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body)


def test_a_request_gets_its_body_echoed(backend: str):
    got = anyio.run(exchange, [request("/a", b"hello")], 1, backend=backend)
    assert got == [(200, b"got:hello")]


def test_pipelined_requests_get_their_responses_in_order(backend: str):
    got = anyio.run(exchange, [request("/a", b"one"), request("/b", b"two"),
                               request("/c")], 3, backend=backend)
    assert got == [(200, b"got:one"), (200, b"got:two"), (200, b"got:")]


def test_an_app_that_raises_before_responding_gets_a_500(backend: str):
    got = anyio.run(exchange, [request("/boom", b"x")], 1, backend=backend)
    assert got[0][0] == 500


@pytest.mark.parametrize("watch", [False, True])
def test_the_reference_target_serves_keep_alive_requests_in_simulation(backend: str, watch: bool):
    from harness.app import AppBehaviour
    from harness.client import ConnSpec, RequestSpec
    from harness.decisions import OrdinarySource
    from harness.scenario import HttpScenario, run_http
    from servers.reference.target import ReferenceTarget

    if backend == "trio":
        pytest.skip("the simulated loop is asyncio; trio is covered on real sockets")
    post = RequestSpec(method="POST", framing="chunked", body_size=300, body_chunks=3)
    behaviour = AppBehaviour(watch_disconnect=watch, receive_after=True, chunks=3)
    scenario = HttpScenario("keepalive", (ConnSpec((post, post, RequestSpec())),),
                            tuple((1, i, behaviour) for i in range(3)))
    run = run_http(scenario, ReferenceTarget(), OrdinarySource())
    assert run.failures == []
    assert [r.status for r in run.observations.connections[1].client.responses] == [200] * 3
