"""A premature close is signed by where the server closed: two close paths are two
failures, and one path met twice (other timing, other requests) is one."""

from __future__ import annotations

import asyncio
from typing import Any

from harness.decisions import OrdinarySource
from harness.http.app import AppBehaviour
from harness.http.client import ConnSpec, RequestSpec
from harness.http.scenario import HttpScenario, run_http
from tests.programs import FakeTarget, OneAppCall


class TinyServer(OneAppCall):
    """Calls the app once per connection, for the first request's path; never answers
    on its own. Subclasses close the connection under the app, each its own way."""

    async def run_app(self, path: str) -> None:
        scope = self.scope(path)
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            pass

        await self.app(scope, receive, send)


class ClosesFromATimer(TinyServer):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        asyncio.get_running_loop().call_later(1.0, self.idle_timeout)

    def idle_timeout(self) -> None:
        self.transport.close()


class ClosesOnData(TinyServer):
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.transport.close()


def close_signatures(server: type[TinyServer], sleep: float, requests: int = 1) -> set[str]:
    """The premature-close signatures of one run: the app sleeps past the close."""
    specs = tuple(RequestSpec() for _ in range(requests))
    scenario = HttpScenario("keepalive", (ConnSpec(specs),),
                            tuple((1, i, AppBehaviour(sleep_before=sleep))
                                  for i in range(requests)))
    run = run_http(scenario, FakeTarget(server), OrdinarySource())
    return {f.signature for f in run.failures if f.kind == "premature-close"}


def test_a_close_from_a_timer_and_a_close_from_data_received_are_two_failures():
    [timer] = close_signatures(ClosesFromATimer, sleep=3.0)
    [on_data] = close_signatures(ClosesOnData, sleep=3.0)
    assert timer != on_data
    # Each names the server's own frame that closed, relative to the package root.
    assert timer.startswith("closed during a live request: close() at ")
    assert timer.endswith("in ClosesFromATimer.idle_timeout")
    assert "tests/test_close_signatures.py:" in timer and "harness/" not in timer
    assert on_data.endswith("in ClosesOnData.data_received")


def test_the_same_close_path_met_in_other_runs_is_one_failure():
    assert close_signatures(ClosesFromATimer, sleep=3.0) == close_signatures(
        ClosesFromATimer, sleep=9.0, requests=2)
    assert close_signatures(ClosesOnData, sleep=0.5) == close_signatures(
        ClosesOnData, sleep=2.0, requests=2)
