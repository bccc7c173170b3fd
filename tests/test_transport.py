"""The server-side transport behaves as the stock selector transport does."""

from __future__ import annotations

import asyncio
import socket
from typing import Any, NoReturn

import pytest

from harness.decisions import OrdinarySource
from harness.net.peer import PeerConnection
from harness.sim.loop import SimLoop, SimulationEscape
from harness.sim.run import Settings, SimResult, simulate
from harness.sim.sock import SimSocket

ADDRESS = ("127.0.0.1", 8000)


class Recording(asyncio.Protocol):
    """Records every protocol call; `script` reacts to them."""

    instances: list[Recording] = []

    def __init__(self, keep_open: bool = False) -> None:
        self.calls: list[str] = []
        self.keep_open = keep_open
        self.transport: Any = None
        Recording.instances.append(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.calls.append("connection_made")

    def data_received(self, data: bytes) -> None:
        self.calls.append(f"data {data.decode()}")

    def eof_received(self) -> bool:
        self.calls.append("eof_received")
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append(f"connection_lost {type(exc).__name__ if exc else None}")

    def pause_writing(self) -> None:
        self.calls.append("pause_writing")

    def resume_writing(self) -> None:
        self.calls.append("resume_writing")


def serve(
    client: Any, settings: Settings | None = None, **proto: Any
) -> tuple[SimResult, Recording]:
    Recording.instances = []

    async def program(loop: SimLoop) -> None:
        await loop.create_server(lambda: Recording(**proto), *ADDRESS)
        await client(loop, PeerConnection(loop, ADDRESS))

    result = simulate(program, OrdinarySource(), settings)
    assert result.program_error is None, result.program_error
    [server] = Recording.instances
    return result, server


def test_writing_empty_bytes_is_not_end_of_stream():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        peer.send(b"hi")
        await asyncio.sleep(1)
        [server] = Recording.instances
        server.transport.write(b"")
        server.transport.write(b"still open")

    result, _ = serve(client)
    assert [e.detail for e in result.log.of_kind("client-recv")] == ["client[c1] 10B"]


def test_eof_received_returning_false_closes_the_transport():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        peer.send(b"a")
        peer.shutdown_write()

    _result, server = serve(client)
    assert server.calls == ["connection_made", "data a", "eof_received", "connection_lost None"]


def test_eof_received_returning_true_keeps_the_write_side_open():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        peer.shutdown_write()
        await asyncio.sleep(1)
        [server] = Recording.instances
        server.transport.write(b"late reply")
        server.transport.close()

    result, server = serve(client, keep_open=True)
    assert server.calls == ["connection_made", "eof_received", "connection_lost None"]
    assert [e.detail for e in result.log.of_kind("send")] == ["server[c1] 10B"]


def test_pause_reading_holds_data_until_resume_reading():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        await asyncio.sleep(0.1)
        [server] = Recording.instances
        server.transport.pause_reading()
        assert not server.transport.is_reading()
        peer.send(b"held")
        await asyncio.sleep(5)
        server.calls.append("resuming")
        server.transport.resume_reading()

    _, server = serve(client)
    assert server.calls == ["connection_made", "resuming", "data held"]


def test_a_client_that_stops_reading_pauses_and_then_resumes_the_writer():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        peer.read_limit = 0
        await asyncio.sleep(0.1)
        [server] = Recording.instances
        server.transport.set_write_buffer_limits(high=100, low=10)
        server.transport.write(b"x" * 500)  # window 200 takes 200, 300 stay buffered
        assert server.transport.get_write_buffer_size() == 300
        await asyncio.sleep(1)
        server.calls.append("client reads again")
        peer.read_limit = None

    result, server = serve(client, Settings(window=200))
    assert server.calls == [
        "connection_made", "pause_writing", "client reads again", "resume_writing",
    ]
    assert sum(int(e.detail.split()[1][:-1]) for e in result.log.of_kind("send")) == 500


def test_close_waits_for_buffered_bytes_to_drain_and_abort_drops_them():
    for how, expected_bytes in (("close", 50), ("abort", 20)):
        async def client(loop: SimLoop, peer: PeerConnection, how: str = how) -> None:
            peer.read_limit = 0
            await asyncio.sleep(0.1)
            [server] = Recording.instances
            server.transport.write(b"y" * 50)
            getattr(server.transport, how)()
            await asyncio.sleep(1)
            peer.read_limit = None

        result, server = serve(client, Settings(window=20))
        sent = sum(int(e.detail.split()[1][:-1]) for e in result.log.of_kind("send"))
        assert sent == expected_bytes, how
        assert server.calls[-1] == "connection_lost None"


def test_write_after_write_eof_raises_like_the_stock_transport():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        await asyncio.sleep(0.1)
        [server] = Recording.instances
        assert server.transport.can_write_eof()
        server.transport.write_eof()
        with pytest.raises(RuntimeError, match=r"Cannot call write\(\) after write_eof\(\)"):
            server.transport.write(b"x")

    result, _ = serve(client)
    assert [e.detail for e in result.log.of_kind("client-recv")] == ["client[c1] EOF"]


def test_extra_info_names_both_ends_and_a_socket_that_answers_but_does_no_io():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        await asyncio.sleep(0.1)
        [server] = Recording.instances
        info = {k: server.transport.get_extra_info(k) for k in ("peername", "sockname")}
        assert info == {"peername": ("127.0.0.1", 50000), "sockname": ADDRESS}
        sock = server.transport.get_extra_info("socket")
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
        assert (sock.getpeername(), sock.getsockname()) == (("127.0.0.1", 50000), ADDRESS)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1

    serve(client)


def test_the_simulated_socket_refuses_its_file_descriptor_as_an_escape():
    def escape(what: str, why: str) -> NoReturn:
        raise SimulationEscape(f"{what}: {why}")

    sock = SimSocket(ADDRESS, ("127.0.0.1", 50000), escape)
    with pytest.raises(SimulationEscape, match=r"fileno\(\).*real file descriptor"):
        sock.fileno()


def test_a_client_reset_reaches_connection_lost_as_connection_reset_error():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        peer.send(b"a")
        await asyncio.sleep(0.1)
        peer.reset()

    _, server = serve(client)
    assert server.calls == ["connection_made", "data a", "connection_lost ConnectionResetError"]


def test_writing_to_a_client_that_closed_draws_a_reset():
    async def client(loop: SimLoop, peer: PeerConnection) -> None:
        peer.close()
        await asyncio.sleep(0.1)
        [server] = Recording.instances
        server.transport.write(b"to nobody")  # arrives at a closed socket: RST comes back
        await asyncio.sleep(1)
        server.transport.write(b"again")  # the send now fails

    result, server = serve(client, keep_open=True)
    assert server.calls == [
        "connection_made", "eof_received", "connection_lost ConnectionResetError",
    ]
    assert any(e.kind == "discard" for e in result.log.entries)
