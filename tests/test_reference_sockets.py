"""The reference server on real loopback sockets, on asyncio and on trio.

Every test starts `serve` on port 0, talks raw HTTP/1.1 to it over a socket and
reads until the server closes or a whole response is in. Nothing waits on a
clock: the apps signal the test through events, and `fail_after` only bounds
a test that would otherwise hang on a server bug.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import h11
import pytest

from servers.reference.config import App, Config
from servers.reference.server import serve

pytestmark = pytest.mark.parametrize("backend", ["asyncio", "trio"])
LIMIT = 10  # seconds before a test counts the server as hung


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/boom":
        raise ValueError("app failure, on purpose")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"x-path", scope["path"].encode())]})
    if scope["path"] == "/boom-after-body":
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("app failure after the response started, on purpose")
    if scope["path"] == "/boom-after-start":
        raise ValueError("app failure before any body, on purpose")
    await send({"type": "http.response.body", "body": b"got:" + body})
    after = await receive()
    assert after == {"type": "http.disconnect"}, after


@asynccontextmanager
async def running(app: App, config: Config | None = None,
                  stop: anyio.Event | None = None) -> AsyncIterator[int]:
    """The server on a free port until the block ends (then stopped, gracefully if `stop`)."""
    stop = stop or anyio.Event()
    with anyio.fail_after(LIMIT):
        async with anyio.create_task_group() as tg:
            ready = anyio.Event()
            port: list[int] = []

            def on_ready(p: int) -> None:
                port.append(p)
                ready.set()

            tg.start_soon(lambda: serve(app, "127.0.0.1", 0, config, on_ready, stop))
            await ready.wait()
            yield port[0]
            stop.set()


async def read_all(stream: anyio.abc.ByteStream) -> bytes:
    data = b""
    while True:
        try:
            data += await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return data


async def read_responses(stream: anyio.abc.ByteStream, count: int,
                         method: str = "POST") -> list[tuple[int, dict[bytes, bytes], bytes]]:
    """Parse `count` responses (fewer if the server closes); status, headers, body."""
    parser = h11.Connection(h11.CLIENT)
    results = []
    for _ in range(count):
        parser.send(h11.Request(method=method, target="/", headers=[("Host", "x"),
                                ("Content-Length", "0")]))
        parser.send(h11.EndOfMessage())
        status, headers, body = 0, {}, b""
        while True:
            event = parser.next_event()
            if event is h11.NEED_DATA:
                try:
                    parser.receive_data(await stream.receive())
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    parser.receive_data(b"")
                continue
            if isinstance(event, h11.Response):
                status, headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        results.append((status, headers, body))
        if parser.our_state is h11.DONE and parser.their_state is h11.DONE:
            parser.start_next_cycle()
        else:
            break
    return results


def request(path: str, body: bytes = b"", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            .encode() + body)


async def exchange(data: bytes, count: int, app: App = echo_app,
                   config: Config | None = None) -> list[tuple[int, dict[bytes, bytes], bytes]]:
    async with running(app, config) as port, await anyio.connect_tcp("127.0.0.1", port) as s:
        await s.send(data)
        return await read_responses(s, count)


async def raw(data: bytes, app: App = echo_app, config: Config | None = None) -> bytes:
    """Everything the server writes back before it closes the connection."""
    async with running(app, config) as port, await anyio.connect_tcp("127.0.0.1", port) as s:
        await s.send(data)
        return await read_all(s)


def test_a_request_gets_its_body_echoed(backend: str):
    got = anyio.run(exchange, request("/a", b"hello"), 1, backend=backend)
    assert [(s, b) for s, _, b in got] == [(200, b"got:hello")]


def test_pipelined_requests_get_their_responses_in_order(backend: str):
    data = request("/a", b"one") + request("/b", b"two") + request("/c")
    got = anyio.run(exchange, data, 3, backend=backend)
    assert [(s, h[b"x-path"], b) for s, h, b in got] == [
        (200, b"/a", b"got:one"), (200, b"/b", b"got:two"), (200, b"/c", b"got:")]


@pytest.mark.parametrize("path", ["/boom", "/boom-after-start"])
def test_an_app_that_raises_before_its_response_is_out_gets_a_500_logged_once(
        backend: str, path: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.ERROR, logger="reference"):
        wire = anyio.run(raw, request(path, b"x"), backend=backend)
    assert wire.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"connection: close" in wire.lower()
    assert [r.message for r in caplog.records] == ["Exception in ASGI application"]


def test_an_app_that_raises_mid_body_gets_its_connection_closed_logged_once(
        backend: str, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.ERROR, logger="reference"):
        wire = anyio.run(raw, request("/boom-after-body", b"x") + request("/a"),
                         backend=backend)
    # The head and the first chunk went out; the chunked body never ends, the connection
    # closes, and the pipelined second request is not served.
    assert wire.startswith(b"HTTP/1.1 200 OK\r\n") and b"partial" in wire
    assert not wire.endswith(b"0\r\n\r\n") and wire.count(b"HTTP/1.1") == 1
    assert len(caplog.records) == 1


def test_a_request_head_over_the_limit_gets_431_and_close(backend: str):
    config = Config(max_header_bytes=1024)
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n"
    wire = anyio.run(raw, head, echo_app, config, backend=backend)
    assert wire.startswith(b"HTTP/1.1 431 ")


def test_a_declared_body_over_the_limit_gets_413_before_the_app_runs(backend: str):
    called: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        called.append(scope["path"])

    config = Config(max_body_bytes=100)
    wire = anyio.run(raw, request("/big", b"x" * 101), app, config, backend=backend)
    assert wire.startswith(b"HTTP/1.1 413 ")
    assert called == []


def test_a_chunked_body_over_the_limit_gets_413_and_the_app_a_disconnect(backend: str):
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            seen.append(await receive())
            if seen[-1]["type"] == "http.disconnect":
                return

    config = Config(max_body_bytes=100, buffer_limit=10)
    chunk = b"40\r\n" + b"y" * 64 + b"\r\n"
    data = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3
    wire = anyio.run(raw, data, app, config, backend=backend)
    assert wire.startswith(b"HTTP/1.1 413 ")
    assert seen[-1] == {"type": "http.disconnect"}
    assert sum(len(m.get("body", b"")) for m in seen) <= 100


@pytest.mark.parametrize("data", [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
])
def test_a_malformed_request_gets_400_and_close(backend: str, data: bytes):
    wire = anyio.run(raw, data, backend=backend)
    assert wire.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_a_malformed_chunked_body_gets_400_and_close(backend: str):
    data = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
    wire = anyio.run(raw, data, backend=backend)
    assert wire.startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_expect_100_continue_is_answered_when_the_app_reads_the_body(backend: str):
    async def main() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        async with running(echo_app) as port, await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(request("/e", extra="Expect: 100-continue\r\n").replace(
                b"Content-Length: 0", b"Content-Length: 5"))
            interim = b""
            while b"\r\n\r\n" not in interim:  # the client waits for 100 before the body
                interim += await s.receive()
            assert interim.startswith(b"HTTP/1.1 100 ")
            await s.send(b"hello")
            rest = interim.split(b"\r\n\r\n", 1)[1]
            assert rest == b""
            return await read_responses(s, 1)

    got = anyio.run(main, backend=backend)
    assert [(s, b) for s, _, b in got] == [(200, b"got:hello")]


def test_a_client_that_leaves_mid_body_wakes_the_pending_receive(backend: str):
    async def main() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        first = anyio.Event()
        done = anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            while True:
                seen.append(await receive())
                first.set()
                if seen[-1]["type"] == "http.disconnect":
                    done.set()
                    return

        async with running(app) as port:
            s = await anyio.connect_tcp("127.0.0.1", port)
            await s.send(request("/p", b"0123456789")[:-5])  # half of the body
            await first.wait()
            await s.aclose()
            await done.wait()
        return seen

    seen = anyio.run(main, backend=backend)
    assert seen[0]["type"] == "http.request" and seen[0]["more_body"] is True
    assert seen[-1] == {"type": "http.disconnect"}


def test_graceful_shutdown_lets_in_flight_requests_finish(backend: str):
    async def main() -> tuple[list[Any], bytes, bool]:
        entered, release = anyio.Event(), anyio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await receive()
            if scope["path"] == "/slow":
                entered.set()
                await release.wait()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": scope["path"].encode()})

        stop = anyio.Event()
        async with running(app, stop=stop) as port:
            idle = await anyio.connect_tcp("127.0.0.1", port)
            await idle.send(request("/quick"))
            await read_responses(idle, 1)
            busy = await anyio.connect_tcp("127.0.0.1", port)
            await busy.send(request("/slow"))
            await entered.wait()
            stop.set()
            idle_rest = await read_all(idle)  # the idle keep-alive connection is closed
            refused = False
            try:  # by then the listener is closed: no new connections
                await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
            except OSError:
                refused = True
            release.set()
            slow = await read_responses(busy, 1)
            await busy.aclose()
            await idle.aclose()
        return slow, idle_rest, refused

    slow, idle_rest, refused = anyio.run(main, backend=backend)
    status, headers, body = slow[0]
    assert (status, body, headers.get(b"connection")) == (200, b"/slow", b"close")
    assert idle_rest == b""
    assert refused


def test_a_close_delimited_response_cut_short_ends_in_a_reset(backend: str):
    # HTTP/1.0 without Content-Length: the body ends at the close, so a FIN after half of
    # it would look like a whole response. The client must see a reset instead.
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"half", "more_body": True})
        raise RuntimeError("the app fails mid-body, on purpose")

    async def main() -> tuple[bytes, bool]:
        async with running(app) as port, await anyio.connect_tcp("127.0.0.1", port) as s:
            await s.send(b"GET / HTTP/1.0\r\n\r\n")
            data = b""
            while True:
                try:
                    data += await s.receive()
                except anyio.EndOfStream:
                    return data, False
                except anyio.BrokenResourceError:
                    return data, True

    logging.getLogger("reference").disabled = True
    try:
        data, reset = anyio.run(main, backend=backend)
    finally:
        logging.getLogger("reference").disabled = False
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"half")
    assert reset
