"""A request the server read whole and then dropped, closing without an answer and
without calling the app, is a premature close; requests the server never read (the
keep-alive race every client retries) or that follow a response that ended the
connection are not."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.decisions import OrdinarySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from servers.reference.target import ReferenceTarget
from tests.programs import FakeTarget

HEAD_END = b"\r\n\r\n"


class AnswersThenDrops(asyncio.Protocol):
    """Answers the first request with a fixed 200 (no app call), then reads the next
    request whole and closes the connection without a word."""

    close_after_first = False  # the first answer says Connection: close (and closes)
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buffer, self.answered = transport, b"", 0

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while HEAD_END in self.buffer and not self.transport.is_closing():
            _, _, self.buffer = self.buffer.partition(HEAD_END)
            if self.answered:
                self.transport.close()  # the request was read: it is dropped
                return
            self.answered += 1
            close = b"connection: close\r\n" if self.close_after_first else b""
            self.transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n" + close +
                                 b"\r\nok")
            if self.close_after_first:
                self.transport.close()


class SaysCloseThenDrops(AnswersThenDrops):
    close_after_first = True


class ClosesWhenIdle(asyncio.Protocol):
    """Closes as soon as the connection opens: it never reads a byte of the request."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class BuffersThenTimesOut(asyncio.Protocol):
    """Reads whatever comes into a buffer it never parses, and closes from a timer a
    second after the connection opened, as a read timeout would."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.buffer = b""
        asyncio.get_running_loop().call_later(1.0, transport.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data


def premature_closes(server: type[asyncio.Protocol], pipelined: bool) -> list[Any]:
    scenario = HttpScenario("pipelining", (ConnSpec((RequestSpec(), RequestSpec()),
                                                    pipelined=pipelined),),
                            ((1, 0, AppBehaviour()), (1, 1, AppBehaviour())))
    run = run_http(scenario, FakeTarget(server), OrdinarySource())
    return [f for f in run.failures if f.kind == "premature-close"]


def test_a_request_read_whole_and_dropped_is_a_premature_close_signed_where_it_closed():
    for pipelined in (False, True):
        [failure] = premature_closes(AnswersThenDrops, pipelined)
        assert failure.request == "/c1/r1"
        assert failure.signature.startswith("closed during a live request: close() at "
                                            "tests/test_dropped_requests.py:")
        assert failure.signature.endswith("in AnswersThenDrops.data_received")
        assert "never called the app" in failure.message


def test_a_request_after_a_response_that_ended_the_connection_is_the_clients_risk():
    assert premature_closes(SaysCloseThenDrops, pipelined=True) == []


def test_a_request_the_server_never_read_is_the_keep_alive_race_not_a_drop():
    assert premature_closes(ClosesWhenIdle, pipelined=True) == []


def test_a_close_from_a_timer_with_the_request_only_buffered_is_the_race_not_a_drop():
    # The server had decided to close (its timer); the request sat in a buffer meanwhile.
    assert premature_closes(BuffersThenTimesOut, pipelined=True) == []


def test_a_request_sent_after_an_app_left_its_body_unread_is_the_clients_risk():
    # The reference server drains the unread body, reads the next request along with it,
    # and closes rather than serve it: a server may close instead of draining.
    big = RequestSpec(method="POST", framing="chunked", body_size=300_000)
    scenario = HttpScenario("keepalive", (ConnSpec((big, RequestSpec())),),
                            ((1, 0, AppBehaviour(read="one")), (1, 1, AppBehaviour())))
    run = run_http(scenario, ReferenceTarget("h11"), OrdinarySource())
    assert "write_eof" in "\n".join(run.result.log.lines())  # it did close under r1
    assert run.failures == []
