"""The app model's loops over receive() never spin: a server whose receive() answers
at once with nothing new (as uvicorn's did before 0.2.21, an http.request again after
the body's end) is reported as the stuck run a disconnect watcher would be, the same way
on every run, and the watcher keeps no exception for the garbage collector to report."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.decisions import RandomSource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from tests.programs import FakeTarget

POST = RequestSpec(method="POST", framing="length", body_size=20)


class AnswersAtOnce(asyncio.Protocol):
    """Calls the app for the first request and answers it on the wire. Its receive()
    hands over the body, then answers every call at once with an empty final
    http.request; once the response is complete it raises instead."""

    waits = False  # after the body, wait for the response's end (then raise)

    app: Any = None  # set by the target's protocol factory
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.buffer, self.called = transport, b"", False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head, sep, body = self.buffer.partition(b"\r\n\r\n")
        if sep and len(body) >= POST.body_size and not self.called:
            self.called = True
            path = head.split(b" ", 2)[1].decode()
            asyncio.get_running_loop().create_task(self.run_app(path, body))

    async def run_app(self, path: str, body: bytes) -> None:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": [],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8000)}
        state: dict[str, Any] = {"body": body, "done": False, "sent": False}
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if self.waits and state["sent"]:
                await done.wait()
            if state["done"]:
                raise RuntimeError("Response already sent.")
            chunk, state["body"], state["sent"] = state["body"], b"", True
            return {"type": "http.request", "body": chunk, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.transport.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                return
            data = message.get("body", b"")
            if data:
                self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))
            if not message.get("more_body", False):
                self.transport.write(b"0\r\n\r\n")
                state["done"] = True
                done.set()

        with contextlib.suppress(RuntimeError):  # the app passing on receive()'s raise
            await self.app(scope, receive, send)


def scenario(read: str, **behaviour: Any) -> HttpScenario:
    return HttpScenario("disconnect", (ConnSpec((POST,)),),
                        ((1, 0, AppBehaviour(read=read, watch_disconnect=True, chunks=3,
                                             yields_between=1, **behaviour)),))


@pytest.fixture(autouse=True)
def quick_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    # Were the spin left to the watchdog, it would be cut after 0.2 s of wall-clock time
    # at whatever point the alarm found it, and no two runs would log the same.
    monkeypatch.setenv("HARNESS_WATCHDOG_SECONDS", "0.2")


def garbage() -> None:
    cycles = [[] for _ in range(2000)]
    for c in cycles:
        c.append(c)


# What the process did before a run: none of it may change the run.
BEFORE: dict[str, Callable[[], None]] = {
    "nothing": lambda: None,
    "collected": gc.collect,
    "garbage cycles left": garbage,
    "frozen": gc.freeze,
}


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.collect()


@pytest.mark.parametrize("read", ["all", "none"])
def test_a_receive_that_answers_at_once_gives_the_same_run_whatever_the_process_did_before(
        read: str, restore_gc: None):
    for seed in range(3):
        runs = []
        for name, before in BEFORE.items():
            before()
            run = run_http(scenario(read), FakeTarget(AnswersAtOnce),
                           RandomSource(seed, deviation=0.3))
            runs.append((name, run.result.log.lines(), sorted(f.key() for f in run.failures)))
        first = runs[0]
        for name, log, keys in runs[1:]:
            assert (len(log), keys) == (len(first[1]), first[2]), (seed, name)
            assert log == first[1], (seed, name)
        assert not any("StuckRun" in line for line in first[1]), "the watchdog fired"


def test_the_spin_is_reported_as_stuck_naming_the_servers_receive():
    run = run_http(scenario("all"), FakeTarget(AnswersAtOnce), RandomSource(0))
    [stuck] = [f for f in run.failures if f.kind == "stuck"]
    assert stuck.signature == ("receive() answers at once with nothing new, after the "
                               "body's end: tests/test_app_spin.py in "
                               "AnswersAtOnce.run_app.<locals>.receive")
    assert stuck.request == "/c1/r0"
    # Three answers, then the model stopped: not thousands of receive() calls.
    calls = [line for line in run.result.log.lines() if " receive #" in line]
    assert len(calls) == 4, calls  # the body's read, then three empty answers


def test_a_long_poll_on_a_receive_that_answers_at_once_is_stopped_the_same_way():
    behaviour = AppBehaviour(read="all", wait_disconnect=True)
    scenario = HttpScenario("disconnect", (ConnSpec((POST,)),), ((1, 0, behaviour),))
    runs = [run_http(scenario, FakeTarget(AnswersAtOnce), RandomSource(seed))
            for seed in (0, 0, 1)]
    assert runs[0].result.log.lines() == runs[1].result.log.lines()
    for run in runs:
        assert [f.signature.split(":")[0] for f in run.failures if f.kind == "stuck"] == [
            "receive() answers at once with nothing new, after the body's end"]


def test_a_receive_that_suspends_between_empty_answers_is_no_spin():
    class Yields(AnswersAtOnce):
        async def run_app(self, path: str, body: bytes) -> None:
            app = self.app

            async def slow_app(scope: Any, receive: Any, send: Any) -> None:
                async def receive_after_a_yield() -> dict[str, Any]:
                    await asyncio.sleep(0)
                    return dict(await receive())
                await app(scope, receive_after_a_yield, send)

            self.app = slow_app
            await super().run_app(path, body)

    run = run_http(scenario("all"), FakeTarget(Yields), RandomSource(0))
    assert not [f for f in run.failures if f.kind == "stuck"]


class RaisesAfterResponse(AnswersAtOnce):
    """receive() waits after the body, and raises once the response is complete."""

    waits = True


class CollectsLater(RaisesAfterResponse):
    """The same server, but the garbage collector runs a second after the connection
    opened (as a server or library calling gc.collect() would make it)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().call_later(1.0, gc.collect)


def test_the_servers_raise_into_the_watcher_is_judged_not_left_for_the_collector():
    # The watcher's receive() is pending when the response completes, and raises then.
    # Whether the collector runs afterwards must not add an asyncio "Task exception was
    # never retrieved" that the server never logged.
    behaviour = scenario("all", sleep_after=2.0)
    verdicts = [sorted(f.key() for f in run_http(behaviour, FakeTarget(server),
                                                  RandomSource(0)).failures)
                for server in (RaisesAfterResponse, CollectsLater)]
    assert verdicts[0] == verdicts[1]
    assert ("lost-disconnect", "receive() pending at the response's end: returned raised "
            "RuntimeError") in verdicts[0]
    assert not [k for k in verdicts[0] if k[0] == "server-error"], verdicts[0]
