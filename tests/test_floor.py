"""The floor tool's two sides serve the same scenario completely (timing lives in the tool)."""

from __future__ import annotations

import asyncio

import pytest

from harness.errors import InputError
from harness.tools import floor


def test_the_stock_side_serves_both_gets_and_leaves_no_task(monkeypatch):
    server = floor.StockServer("h11")
    served: list[int] = []
    original = floor.StockClient.finish

    def finish(client: floor.StockClient) -> None:
        served.append(client.responses)
        original(client)

    monkeypatch.setattr(floor.StockClient, "finish", finish)
    server.run_once()
    server.run_once()
    assert served == [floor.REQUESTS, floor.REQUESTS]
    assert not server.state.connections and not server.state.tasks


def test_the_ordinary_side_is_a_passing_harness_run():
    floor.ordinary_runner("h11")()  # raises if the run found a failure


def test_an_unknown_side_is_an_input_error():
    with pytest.raises(InputError, match="unknown floor side 'fast'"):
        floor.runner("fast", "h11")


def test_the_memory_transport_closes_once():
    loop = asyncio.new_event_loop()
    try:
        lost: list[object] = []

        class Protocol(asyncio.Protocol):
            def connection_lost(self, exc: Exception | None) -> None:
                lost.append(exc)

        transport = floor.MemoryTransport(loop, None)  # type: ignore[arg-type]
        transport._protocol = Protocol()
        transport.close()
        transport.close()
        loop.run_until_complete(asyncio.sleep(0))
        assert lost == [None] and transport.is_closing()
    finally:
        loop.close()
