"""Code that would leave the simulation is named in one clear error, never run."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
from typing import Any

import pytest

from harness.decisions import OrdinarySource
from harness.sim.loop import SimLoop, SimulationEscape
from harness.sim.run import simulate


def run(program: Any) -> Any:
    return simulate(program, OrdinarySource())


def test_a_server_on_a_real_socket_is_an_escape_naming_the_socket():
    sock = socket.socket()
    try:
        async def program(loop: SimLoop) -> None:
            await loop.create_server(asyncio.Protocol, sock=sock)

        with pytest.raises(SimulationEscape, match=r"create_server\(sock=<socket.socket"):
            run(program)
    finally:
        sock.close()


def test_reading_a_real_socket_is_an_escape():
    a, b = socket.socketpair()
    try:
        async def program(loop: SimLoop) -> None:
            await loop.sock_recv(a, 10)

        with pytest.raises(SimulationEscape, match="sock_recv.*real socket would carry the bytes"):
            run(program)
    finally:
        a.close()
        b.close()


def test_run_in_executor_is_an_escape_naming_the_function():
    def blocking_work() -> int:
        return 1

    async def program(loop: SimLoop) -> None:
        await loop.run_in_executor(None, blocking_work)

    with pytest.raises(SimulationEscape, match=r"run_in_executor\(.*blocking_work\).*real thread"):
        run(program)


def test_an_escape_the_code_catches_is_still_reported():
    async def program(loop: SimLoop) -> None:
        # A server swallowing the error must not hide the escape.
        with contextlib.suppress(Exception):
            await asyncio.to_thread(print, "never printed")

    with pytest.raises(SimulationEscape, match="run_in_executor"):
        run(program)


def test_starting_a_thread_during_a_run_is_an_escape():
    async def program(loop: SimLoop) -> None:
        threading.Thread(target=lambda: None, name="worker").start()

    with pytest.raises(SimulationEscape, match=r"threading.Thread\('worker'\)"):
        run(program)
    # The patch is undone after the run.
    t = threading.Thread(target=lambda: None)
    t.start()
    t.join()


def test_adding_a_reader_for_a_real_file_descriptor_is_an_escape():
    async def program(loop: SimLoop) -> None:
        loop.add_reader(0, lambda: None)

    with pytest.raises(SimulationEscape, match=r"add_reader\(fd=0\)"):
        run(program)


def test_signal_handlers_are_registered_and_never_fire():
    fired = []

    async def program(loop: SimLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, fired.append, "term")
        await asyncio.sleep(10)
        assert loop.remove_signal_handler(signal.SIGTERM)
        assert not loop.remove_signal_handler(signal.SIGTERM)

    result = run(program)
    assert result.program_error is None
    assert fired == []
    assert result.virtual_time == 10
