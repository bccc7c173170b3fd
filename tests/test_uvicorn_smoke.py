"""The installed uvicorn, unmodified, serves a request on one simulated connection."""

from __future__ import annotations

import itertools
import random
from typing import Any

import h11
import pytest
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from harness.decisions import RandomSource
from harness.net.peer import PeerConnection
from harness.sim.loop import SimLoop
from harness.sim.run import simulate

REQUEST = (
    b"POST /echo HTTP/1.1\r\nHost: example.org\r\nContent-Length: 26\r\n\r\n"
    b"abcdefghijklmnopqrstuvwxyz"
)


async def upper_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body.upper()})


def split_points(rng: random.Random) -> list[int]:
    cuts = sorted(rng.sample(range(1, len(REQUEST)), rng.randint(1, 6)))
    return [0, *cuts, len(REQUEST)]


def make_program(protocol_class: type, cuts: list[int]) -> Any:
    async def program(loop: SimLoop) -> None:
        config = Config(app=upper_app, lifespan="off", ws="none", log_level="warning")
        config.load()
        state = ServerState()
        await loop.create_server(
            lambda: protocol_class(config=config, server_state=state, app_state={}),
            "127.0.0.1", 8000,
        )
        peer = PeerConnection(loop, ("127.0.0.1", 8000))
        for i, (a, b) in enumerate(itertools.pairwise(cuts)):
            # Chunks leave the client 1 ms apart, so each is its own data_received.
            loop.network.at(0.001 * i, lambda a=a, b=b: peer.send(REQUEST[a:b]))

    return program


def parse_response(data: bytes) -> tuple[int, bytes]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/echo", headers=[("Host", "x")]))
    client.receive_data(data)
    status, body = -1, b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif event is h11.NEED_DATA or isinstance(event, h11.EndOfMessage):
            return status, body


@pytest.mark.parametrize("protocol_class", [H11Protocol, HttpToolsProtocol])
@pytest.mark.parametrize("seed", range(10))
def test_uvicorn_answers_a_request_split_into_random_chunks(protocol_class: type, seed: int):
    cuts = split_points(random.Random(seed))
    result = simulate(
        make_program(protocol_class, cuts),
        RandomSource(seed),
        inspect=lambda loop: {"received": bytes(loop.peers[0].received)},
    )
    assert result.outcome == "quiescent", result.detail
    recvs = [e for e in result.log.of_kind("recv") if e.detail.endswith("B")]
    assert len(recvs) >= 2, "the request should reach data_received in several pieces"
    status, body = parse_response(result.extras["received"])
    assert (status, body) == (200, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert result.blocked == []
