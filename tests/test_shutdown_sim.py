"""The simulated runtime's part in a shutdown: signals, quiescence, listeners, process exit."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from harness.decisions import OrdinarySource, ReplaySource
from harness.net.peer import PeerConnection
from harness.sim.exit import exit_process
from harness.sim.loop import SimLoop
from harness.sim.run import simulate
from tests.programs import ADDRESS


class Holder(asyncio.Protocol):
    """Never closes; given `reply`, answers the first chunk with that many bytes and
    reads nothing more."""

    reply = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.reply:
            self.transport.write(b"x" * self.reply)
            self.transport.pause_reading()  # what comes later stays unread


def kinds(result: Any) -> list[str]:
    return [e.kind for e in result.log.entries]


def test_a_signal_runs_its_handler_at_a_poll_in_the_order_the_decision_source_picks():
    async def program(loop: SimLoop) -> None:
        await loop.create_server(Holder, *ADDRESS)
        PeerConnection(loop, ADDRESS)  # its accept is an I/O event of the first poll too
        loop.send_signal("SIGTERM", lambda: loop.record("handled", ""))

    first = simulate(program, OrdinarySource())
    assert [k for k in kinds(first) if k in ("accept", "signal", "handled")] == [
        "accept", "signal", "handled"]
    assert ("io order", 2, 0) in [(d.what, d.n, d.choice) for d in first.decisions]
    # The other order of the same poll: the signal's handler before the accept.
    flipped = [dataclasses.replace(d, choice=1) if d.what == "io order" else d
               for d in first.decisions]
    second = simulate(program, ReplaySource(flipped))
    assert [k for k in kinds(second) if k in ("accept", "signal", "handled")] == [
        "signal", "handled", "accept"]


def test_a_loop_that_only_polls_is_quiescent_after_the_poll_window_not_at_the_horizon():
    async def program(loop: SimLoop) -> None:
        async def poll() -> None:
            while True:
                await asyncio.sleep(0.1)

        loop.create_task(poll())

    result = simulate(program, OrdinarySource())
    assert result.outcome == "polling"
    assert 60.0 <= result.virtual_time <= 61.0  # not the 3600 s horizon


def test_a_timer_further_away_than_a_poll_still_fires_while_the_loop_polls():
    fired: list[float] = []

    async def program(loop: SimLoop) -> None:
        async def poll() -> None:
            while True:
                await asyncio.sleep(0.1)

        loop.create_task(poll())
        loop.call_later(90.0, lambda: fired.append(loop.time()))

    result = simulate(program, OrdinarySource())
    assert fired == [pytest.approx(90.0)]
    # the polling window counts only from when no timer further than a poll was left
    assert result.outcome == "polling" and result.virtual_time >= 89.0 + 60.0


def test_what_waits_for_quiescence_runs_then_the_run_goes_on():
    async def program(loop: SimLoop) -> None:
        loop.at_quiescence.append(lambda: loop.call_later(1.0, loop.record, "late", ""))

    result = simulate(program, OrdinarySource())
    assert kinds(result)[-2:] == ["late", "end"] and result.outcome == "quiescent"
    assert result.virtual_time == 1.0


def test_closing_a_listener_resets_the_connections_it_never_accepted():
    async def program(loop: SimLoop) -> None:
        server = await loop.create_server(Holder, *ADDRESS)
        peer = PeerConnection(loop, ADDRESS)  # in the backlog: accepted at the next poll
        server.close()
        loop.call_soon(lambda: loop.record("reset-seen", str(peer.conn.down.rst_sent)))

    result = simulate(program, OrdinarySource())
    assert "refuse" in kinds(result)
    assert [e.detail for e in result.log.entries if e.kind == "reset-seen"] == ["True"]
    assert "accept" not in kinds(result)


def test_the_process_exit_cancels_tasks_drops_buffered_bytes_and_resets_over_unread_input():
    seen: dict[str, Any] = {}

    async def program(loop: SimLoop) -> None:
        loop.write_buffer_limits = (1 << 30, 1 << 29)  # never pause: keep it all buffered
        Holder.reply = 400_000  # more than the window: the rest stays in the transport
        server = await loop.create_server(Holder, *ADDRESS)
        peer = PeerConnection(loop, ADDRESS, read_limit=0)  # it never reads
        loop.network.at(0.0, lambda: peer.send(b"hello"))
        sleeper = loop.create_task(asyncio.sleep(1000))

        async def later() -> None:
            await asyncio.sleep(0.5)
            peer.send(b"unread")  # arrives, is never read by the server
            await asyncio.sleep(0.5)
            transport = server.transports[0]
            seen["buffered"] = transport.get_write_buffer_size()
            await exit_process(loop)
            seen["cancelled"] = sleeper.cancelled()
            seen["rst"] = peer.conn.down.rst_sent
            seen["closed_by"] = transport.closed_by

        loop.create_task(later())

    try:
        result = simulate(program, OrdinarySource())
    finally:
        Holder.reply = 0
    assert seen["buffered"] > 0 and seen["cancelled"] and seen["rst"]
    assert seen["closed_by"] == ("exit", ())
    exits = [e.detail for e in result.log.entries if e.kind == "exit-close"]
    assert exits == [f"server[c1] buffered={seen['buffered']} lost"]
